"""`nerfw select-views`: choose novel camera poses in free space near the training cameras (LENS, step 2)."""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from nerfw.errors import ConfigError, NerfwError
from nerfw.novel_views import selection
from nerfw.novel_views.density import load_density, run_density
from nerfw.novel_views.selection import (
    SelectionParams,
    defaults_for,
    select_views,
    write_selection,
)
from nerfw.options import build_command_parser, parse_command
from nerfw.training.run_io import load_run

PROG = "nerfw select-views"
DESCRIPTION = selection.__doc__.split("\n\n")[0]


@dataclass(kw_only=True)
class SelectViewsOptions:
    run: str
    """a training run folder"""
    n_novel: int
    """how many novel views"""
    out: str
    """the poses file to write (Cambridge format)"""
    density: str = ""
    """density.npz (default RUN/density/density.npz; probed if absent)"""
    d_scene: float | None = None
    """min distance to occupied space, dataset units (default: the LENS values, 0.15 for 7-Scenes, 2 for every other
    format)"""
    d_view: float | None = None
    """max distance to a training camera, dataset units (default: 0.15 for 7-Scenes, 6 otherwise)"""
    theta: float | None = None
    """max rotation from the nearest camera in degrees (default: 9)"""
    seed: int = SelectionParams.seed
    """random seed of the candidate positions and rotations"""
    min_opacity: float = SelectionParams.min_opacity
    """drop views with a lower mean opacity (0: off)"""
    check_width: int = SelectionParams.check_width
    """width of the opacity-check render (pixels)"""
    min_views: int = SelectionParams.min_views
    """training cameras that must have seen through a free centre, with d_scene of free space beyond it (0: the
    density rule alone)"""
    visibility_width: int = SelectionParams.visibility_width
    """width in pixels of the training cameras' visibility depth maps (rendered once, cached)"""
    device: str = "cpu"
    """cpu, cuda or cuda:N: where the model runs"""


def build_parser() -> argparse.ArgumentParser:
    return build_command_parser(PROG, DESCRIPTION, SelectViewsOptions)


def params_from_args(args: SelectViewsOptions, fmt: str) -> SelectionParams:
    """The selection parameters of the options for a dataset format (its LENS defaults where none are given)."""
    d_scene, d_view, theta = defaults_for(fmt)
    params = SelectionParams(
        n_novel=args.n_novel, d_scene=d_scene if args.d_scene is None else args.d_scene,
        d_view=d_view if args.d_view is None else args.d_view, theta_deg=theta if args.theta is None else args.theta,
        seed=args.seed, min_opacity=args.min_opacity, check_width=args.check_width, min_views=args.min_views,
        visibility_width=args.visibility_width)
    if params.n_novel < 1 or params.d_scene < 0 or params.d_view <= 0 or not 0 <= params.theta_deg <= 180:
        raise ConfigError("expected --n_novel >= 1, --d_scene >= 0, --d_view > 0 and 0 <= --theta <= 180")
    if params.check_width < 1 or not 0 <= params.min_opacity <= 1:
        raise ConfigError("expected --check_width >= 1 and 0 <= --min_opacity <= 1")
    if params.min_views < 0 or params.visibility_width < 2:
        raise ConfigError("expected --min_views >= 0 and --visibility_width >= 2")
    return params


def load_or_probe_density(run, path: str, log=print):
    """The density grid at ``path`` (default RUN/density/density.npz), probed with the defaults if that is absent."""
    npz = Path(path) if path else Path(run.run_dir) / "density" / "density.npz"
    if npz.is_file():
        return load_density(npz)
    if path:
        raise NerfwError(f"{npz}: density grid not found")
    log(f"select-views: no {npz}; probing the density with the defaults first")
    return run_density(run, log=log)[0]


def main(argv: list[str]) -> int:
    args = parse_command(argv, PROG, DESCRIPTION, SelectViewsOptions)
    run = load_run(args.run, device=args.device)
    params = params_from_args(args, run.scene.format)
    density = load_or_probe_density(run, args.density)
    views = select_views(run, density, params)
    paths = write_selection(views, Path(args.out), run, params)
    print(f"wrote {len(views)} novel views to {paths['poses']} (frustums {paths['ply']}, details {paths['json']})")
    return 0
