"""`nerfw cameras`: a dataset's (or a run's) camera frustums, with its sparse points or the probed density, as a PLY
for MeshLab."""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from nerfw.data import cameras_ply
from nerfw.data.cameras_ply import write_cameras_ply
from nerfw.data.dataset_options import DatasetOptions, load_from_args
from nerfw.data.poses_file import read_poses_file
from nerfw.errors import ConfigError
from nerfw.options import build_command_parser, parse_command
from nerfw.training.run_io import load_run

PROG = "nerfw cameras"
DESCRIPTION = cameras_ply.__doc__.split("\n\n")[0]


@dataclass(kw_only=True)
class CamerasOutput:
    out: str
    """the .ply file to write (binary; MeshLab, CloudCompare, Blender open it)"""
    run: str = ""
    """a run folder (its dataset is used, read as it was trained)"""


@dataclass(kw_only=True)
class CamerasContent:
    views: str = ""
    """also draw a Cambridge-format poses file as synthetic views"""
    points: Literal["none", "sparse", "density"] = "sparse"
    """points to add: the dataset's sparse points, or a run's density probe (density.npz)"""
    size: float = 0.0
    """frustum depth in dataset units (0: automatic)"""


def build_parser() -> argparse.ArgumentParser:
    return build_command_parser(PROG, DESCRIPTION, CamerasOutput, DatasetOptions, CamerasContent)


def main(argv: list[str]) -> int:
    output, dataset, content = parse_command(argv, PROG, DESCRIPTION, CamerasOutput, DatasetOptions, CamerasContent)
    if output.run:
        scene = load_run(output.run).scene
    elif dataset.data_root_dir:
        scene = load_from_args(dataset)
    else:
        raise ConfigError("give --run DIR or --data_root_dir DIR [--scene S]")
    cameras = list(scene.cameras)
    if content.views:
        cameras += read_poses_file(Path(content.views), scene.split("train")[0], split="synth")
    points, colors = None, None
    if content.points == "sparse" and scene.points is not None:
        points, colors = scene.points, scene.point_colors
    elif content.points == "density":
        if not output.run:
            raise ConfigError("--points density needs --run")
        npz = Path(output.run) / "density" / "density.npz"
        if not npz.is_file():
            raise ConfigError(f"{npz}: not found; run `nerfw density --run {output.run}` first")
        points = np.load(npz)["occupied_points"]
    path = write_cameras_ply(Path(output.out), cameras, content.size or None, points, colors)
    print(f"wrote {path}: {len(cameras)} cameras" + (f", {len(points)} points" if points is not None else ""))
    return 0
