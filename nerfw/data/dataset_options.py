"""The dataset options every command that reads a dataset shares (--data_root_dir, --scene, --dataset, ...), and
the one-paragraph summary of what nerfw reads from a dataset."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from nerfw.data.loader import load_scene
from nerfw.data.scene import SceneData
from nerfw.errors import ConfigError

DatasetFormat = Literal["auto", "cambridge", "7scenes", "colmap", "phototourism", "llff", "transforms"]


@dataclass(kw_only=True)
class DatasetOptions:
    """How `inspect`, `export` and `cameras` read a dataset (the same names as `nerfw train`'s options)."""

    data_root_dir: str = ""
    """folder holding the scene folder(s) (`export` and `cameras`: or give --run)"""
    scene: str | None = None
    """scene folder inside data_root_dir (default: data_root_dir itself)"""
    dataset: DatasetFormat = "auto"
    """dataset format; auto recognises it from the files"""
    img_downscale: float = 1
    """image size divisor, as `nerfw train`'s (images become round(W/N) x round(H/N))"""
    focal: float | None = None
    """focal length in pixels of the original images, for Cambridge scenes without an .nvm"""
    sevenscenes_focal: float = 525.0
    """7-Scenes colour focal in pixels at 640x480 (525 colour camera; 585 the depth camera)"""
    test_every: int = 8
    """COLMAP / LLFF / transforms.json: every N-th image is a test image (0: none)"""


def load_from_args(options) -> SceneData:
    """The dataset read with the dataset options of `options` (DatasetOptions, or a run's TrainConfig: the same
    names), so every command reads a dataset the way its run was trained on it."""
    if not options.data_root_dir:
        raise ConfigError("--data_root_dir is required: the folder holding the scene")
    return load_scene(options.data_root_dir, options.scene, dataset=options.dataset,
                      img_downscale=options.img_downscale, focal=options.focal or None,
                      sevenscenes_focal=options.sevenscenes_focal, test_every=options.test_every)


def _range(values, fmt: str = "{:.4g}") -> str:
    lo, hi = float(np.min(values)), float(np.max(values))
    return fmt.format(lo) if lo == hi else f"{fmt.format(lo)} .. {fmt.format(hi)}"


def summary(scene: SceneData) -> str:
    """A short human-readable description of a parsed scene."""
    cams = scene.cameras
    counts = ", ".join(f"{k} {v}" for k, v in scene.split_counts().items())
    sizes = sorted({(c.width, c.height) for c in cams}, key=lambda s: s[0] * s[1])
    size_text = " .. ".join(f"{w}x{h}" for w, h in ([sizes[0], sizes[-1]] if len(sizes) > 1 else sizes))
    lines = [
        f"scene:   {scene.root}",
        f"format:  {scene.format}",
        f"images:  {len(cams)} ({counts})",
        f"size:    {size_text}",
        f"focal:   fx {_range([c.fx for c in cams])}, fy {_range([c.fy for c in cams])} px",
        f"bounds:  near {_range([c.near for c in cams])}, far {_range([c.far for c in cams])}",
        f"depth:   {sum(c.depth_path is not None for c in cams)} images with depth maps",
        f"points:  {0 if scene.points is None else len(scene.points)} sparse 3-D points",
    ]
    if scene.warnings:
        lines.append(f"warnings ({len(scene.warnings)}):")
        lines += [f"  - {w}" for w in scene.warnings]
    return "\n".join(lines)
