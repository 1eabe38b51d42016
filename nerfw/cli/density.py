"""`nerfw density`: probe a trained run's static density on a 3-D grid (LENS, step 1)."""
from __future__ import annotations

import argparse
from dataclasses import dataclass

from nerfw.errors import ConfigError
from nerfw.novel_views import density as density_module
from nerfw.novel_views.density import DEFAULT_RESOLUTION, run_density
from nerfw.options import build_command_parser, parse_command
from nerfw.training.run_io import load_run

PROG = "nerfw density"
DESCRIPTION = density_module.__doc__.split("\n\n")[0]


@dataclass(kw_only=True)
class DensityOptions:
    run: str
    """a training run folder"""
    out: str = ""
    """output folder (default RUN/density)"""
    resolution: int = DEFAULT_RESOLUTION
    """cells along the longest box side"""
    threshold: float = 0.0
    """occupied where sigma > this, per dataset unit (0: ln2 / cell side)"""
    margin: float | None = None
    """box margin in dataset units (default: a share of the box's longest side, DEFAULT_MARGIN_FRACTION = 0.05)"""
    chunk: int = 65536
    """points per model query; only speed and memory change"""
    device: str = "cpu"
    """cpu, cuda or cuda:N: where the model runs"""


def build_parser() -> argparse.ArgumentParser:
    return build_command_parser(PROG, DESCRIPTION, DensityOptions)


def main(argv: list[str]) -> int:
    args = parse_command(argv, PROG, DESCRIPTION, DensityOptions)
    if args.resolution < 2:
        raise ConfigError(f"--resolution must be >= 2, got {args.resolution}")
    if args.threshold < 0 or (args.margin is not None and args.margin < 0):
        raise ConfigError("--threshold and --margin must be >= 0")
    run = load_run(args.run, device=args.device)
    _, npz = run_density(run, args.out or None, args.resolution, args.threshold or None, args.margin, args.chunk)
    print(f"wrote {npz} and {npz.parent / 'occupied.ply'}")
    return 0
