"""`nerfw synthesize`: render novel views into a dataset in the Cambridge / 7-Scenes format (LENS, step 3)."""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from nerfw.data.poses_file import parse_poses_file
from nerfw.errors import ConfigError
from nerfw.novel_views import synthesis
from nerfw.novel_views.synthesis import synthesize
from nerfw.options import build_command_parser, parse_command
from nerfw.training.run_io import load_run

PROG = "nerfw synthesize"
DESCRIPTION = synthesis.__doc__.split("\n\n")[0]


@dataclass(kw_only=True)
class SynthesizeOptions:
    run: str
    """a training run folder"""
    views: str
    """poses file (Cambridge format), e.g. from nerfw select-views"""
    out: str
    """output dataset folder"""
    num_procs: int = field(default=1, metadata={"exclusive": "devices"})
    """CPU processes rendering in parallel"""
    num_gpus: int = field(default=0, metadata={"exclusive": "devices"})
    """GPU processes (one per GPU); 0: the CPU"""
    appearance: Literal["nearest", "interp"] = "nearest"
    """appearance of each view: nearest = the nearest training camera's embedding, interp = a random mix of the two
    nearest (more lighting variety)"""
    seed: int = 0
    """seeds the interpolation weights"""
    sequence: str = "synth"
    """7-Scenes output sequence: 'synth' -> seq-synth; a number N -> seq-NN + TrainSplit.txt"""
    chunk: int = 4096
    """rays per forward pass; only speed and memory change"""
    quality: Literal["fast", "full"] = "fast"
    """fast: the grid field's inference approximations (nerfw/model/fast_render.py); full: the renderer as
    trained"""
    no_progress: bool = False
    """no progress bar (for logs)"""


def build_parser() -> argparse.ArgumentParser:
    return build_command_parser(PROG, DESCRIPTION, SynthesizeOptions)


def main(argv: list[str]) -> int:
    args = parse_command(argv, PROG, DESCRIPTION, SynthesizeOptions)
    if args.num_procs < 1 or args.num_gpus < 0 or args.chunk < 1:
        raise ConfigError("expected --num_procs >= 1, --num_gpus >= 0 and --chunk >= 1")
    if not args.sequence.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(f"--sequence must be letters, digits, '-' or '_', got '{args.sequence}'")
    run = load_run(args.run, device="cuda:0" if args.num_gpus > 0 else "cpu")
    views = parse_poses_file(Path(args.views))
    synthesize(run, views, Path(args.out), args.num_procs, args.num_gpus, args.appearance, args.seed,
               args.sequence, args.chunk, progress=not args.no_progress, quality=args.quality)
    return 0
