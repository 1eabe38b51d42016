"""`nerfw export`: a dataset's cameras in another layout (transforms.json, COLMAP, LLFF), or a trained run's
geometry (points, mesh)."""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import torch
from tqdm import tqdm

from nerfw.data.dataset_options import DatasetOptions, load_from_args
from nerfw.data.export import (
    lens_keys,
    llff_notes,
    write_colmap,
    write_llff,
    write_transforms,
)
from nerfw.errors import ConfigError
from nerfw.options import build_command_parser, parse_command
from nerfw.outputs.geometry import (
    MeshOptions,
    PointOptions,
    check_output,
    export_mesh,
    export_points,
    frame_comments,
    write_obj,
    write_ply,
)
from nerfw.training.run_io import load_run

PROG = "nerfw export"
DESCRIPTION = ("Export a dataset in another layout (cameras, lenses and sparse points), or a trained run's static "
               "geometry (--run).")


@dataclass(kw_only=True)
class ExportTarget:
    format: Literal["transforms", "llff", "colmap", "points", "mesh"] = "transforms"
    """output format: transforms = nerfstudio / instant-ngp transforms.json (OpenGL axes) and the sparse points as
    sparse_pc.ply; llff = a folder with poses_bounds.npy, images/ (links) and the lenses and points in sparse/0;
    colmap = a folder with images/ (links) and a COLMAP text model in sparse/0; with --run: points = a coloured
    point cloud (.ply) of the static scene, mesh = its surface by marching cubes (.ply or .obj), both in the
    dataset's frame and units"""
    out: str
    """output: a .json file for transforms, a folder for llff and colmap, a .ply (or mesh: .obj) file for points and
    mesh"""
    absolute_paths: bool = False
    """write absolute image paths (default: relative to the output file, so the file can move with the images)"""


@dataclass(kw_only=True)
class GeometryExport:
    OPTIONS_GROUP: ClassVar[str] = "geometry (--run RUN --format points|mesh)"

    run: str | None = None
    """a trained run folder: export its static scene's geometry (--format points or mesh) instead of a dataset's
    cameras"""
    appearance: str | None = PointOptions.appearance
    """colour with this training image's appearance (name or index; default: the mean of all images)"""
    width: int = PointOptions.width
    """points: pixels across each rendered view"""
    max_views: int = PointOptions.max_views
    """points: training views rendered (evenly spread)"""
    min_opacity: float = PointOptions.min_opacity
    """points: smallest opacity of a kept pixel (the ray hit a surface)"""
    max_transient: float = PointOptions.max_transient
    """points: largest transient share of a kept pixel (passers-by are dropped)"""
    max_distance: float | None = PointOptions.max_distance
    """points: farthest kept point from the framed centre, dataset units (default: twice the framed radius; the
    contracted far shell beyond it is coarse)"""
    voxel: float | None = PointOptions.voxel
    """points: voxel size of the downsampling, dataset units (default: framed radius / 256)"""
    num_points: int = PointOptions.num_points
    """points: at most this many points"""
    outlier_std: float = PointOptions.outlier_std
    """points: drop points whose mean distance to their 16 nearest neighbours exceeds the cloud's mean by more than
    this many standard deviations (statistical outlier removal; 0: keep them)"""
    max_depth_spread: float = PointOptions.max_depth_spread
    """points and mesh: a rendered depth counts as sure when the middle half of its ray's weight lies within this
    share of the framed radius; points of unsure depths are dropped, and mesh faces no sure depth shows are removed
    (inf: keep them)"""
    resolution: int = MeshOptions.resolution
    """mesh: grid cells along the framed ball's box for marching cubes"""
    threshold: float | None = MeshOptions.threshold
    """mesh: static density of the surface, per dataset unit (default: the median density at the rendered median
    depth of 24 training views)"""
    min_component: int = MeshOptions.min_component
    """mesh: disconnected pieces with fewer faces are removed"""

    def check(self) -> None:
        """One-line errors for values no export can use."""
        checks = [(0.0 <= self.min_opacity <= 1.0, "--min_opacity must lie in [0, 1]"),
                  (0.0 <= self.max_transient <= 1.0, "--max_transient must lie in [0, 1]"),
                  (self.width >= 8, "--width must be >= 8 pixels"), (self.max_views >= 1, "--max_views must be >= 1"),
                  (self.voxel is None or self.voxel > 0, "--voxel must be > 0"),
                  (self.max_distance is None or self.max_distance > 0, "--max_distance must be > 0"),
                  (self.num_points >= 1, "--num_points must be >= 1"),
                  (self.outlier_std >= 0, "--outlier_std must be >= 0 (0 turns the outlier removal off)"),
                  (self.max_depth_spread > 0, "--max_depth_spread must be > 0 (inf keeps unsure depths)"),
                  (16 <= self.resolution <= 1024, "--resolution must lie in [16, 1024]"),
                  (self.threshold is None or self.threshold > 0, "--threshold must be > 0"),
                  (self.min_component >= 0, "--min_component must be >= 0")]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    def point_options(self) -> PointOptions:
        return PointOptions(self.width, self.max_views, self.min_opacity, self.max_transient, self.max_distance,
                            self.voxel, self.num_points, self.appearance, self.outlier_std, self.max_depth_spread)

    def mesh_options(self) -> MeshOptions:
        return MeshOptions(self.resolution, self.threshold, self.min_component, self.appearance, self.max_depth_spread)


OPTION_CLASSES = (DatasetOptions, ExportTarget, GeometryExport)


def build_parser() -> argparse.ArgumentParser:
    return build_command_parser(PROG, DESCRIPTION, *OPTION_CLASSES)


def export_geometry(target: ExportTarget, geometry_args: GeometryExport) -> int:
    """`nerfw export --run RUN --format points|mesh`."""
    if target.format not in ("points", "mesh"):
        raise ConfigError(f"--run exports geometry: expected --format points or mesh, got {target.format}")
    geometry_args.check()
    out = check_output(Path(target.out), (".ply",) if target.format == "points" else (".ply", ".obj"))
    run = load_run(geometry_args.run)
    with torch.no_grad():  # a context, not the global switch: in-process callers (tests, notebooks) keep theirs
        if target.format == "points":
            geometry = export_points(run, geometry_args.point_options(),
                                     progress=lambda xs: tqdm(xs, desc="views", unit="view", leave=False))
        else:
            geometry = export_mesh(run, geometry_args.mesh_options())
    writer = write_obj if out.suffix.lower() == ".obj" else write_ply
    writer(out, geometry, frame_comments(run))
    faces = "" if geometry.faces is None else f", {len(geometry.faces)} faces"
    print(f"wrote {len(geometry.points)} points{faces} of the static scene (dataset frame) to {out}")
    return 0


def export_dataset(dataset: DatasetOptions, target: ExportTarget) -> int:
    """`nerfw export --data_root_dir D --format transforms|llff|colmap`."""
    if target.format in ("points", "mesh"):
        raise ConfigError(f"--format {target.format} exports a trained model's geometry: give --run RUN")
    if not dataset.data_root_dir:
        raise ConfigError("nerfw export: give --data_root_dir (a dataset) or --run (a trained run)")
    out = Path(target.out)
    if target.format == "transforms" and not target.out.endswith(".json"):
        raise ConfigError(f"--out {target.out}: expected a .json file name")
    if target.format != "transforms" and out.is_file():
        raise ConfigError(f"--out {target.out}: expected a folder for --format {target.format}")
    scene = load_from_args(dataset)
    if target.format == "llff":
        path, notes = write_llff(scene, out), llff_notes(scene)
    elif target.format == "colmap":
        path, notes = write_colmap(scene, out), []
    else:
        path = write_transforms(scene, out, target.absolute_paths)
        only_nerfw = sum(1 for c in scene.cameras if lens_keys(c.distortion)[0] == "")
        notes = [f"{only_nerfw} camera(s) have a lens model nerfstudio cannot express (rational OpenCV or VisualSfM "
                 "radial); it is written as nerfw_distortion only, which other tools ignore"] if only_nerfw else []
    points = 0 if scene.points is None else len(scene.points)
    print(f"wrote {len(scene.cameras)} cameras and {points} sparse points ({scene.format}) to {path}")
    for note in notes:
        print(f"note: {note}")
    return 0


def main(argv: list[str] | None = None) -> int:
    dataset, target, geometry_args = parse_command(argv, PROG, DESCRIPTION, *OPTION_CLASSES)
    if geometry_args.run is not None:
        return export_geometry(target, geometry_args)
    return export_dataset(dataset, target)
