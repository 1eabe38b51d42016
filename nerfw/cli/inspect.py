"""`nerfw inspect`: print what nerfw reads from a dataset (a short summary, or --json)."""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from nerfw.data.framing import METHODS, choose_framing, content_report, join_scene_box_arg, parse_scene_box
from nerfw.data.orientation import ORIENT_METHODS, orient_scene
from nerfw.data.loader import FORMATS, load_scene
from nerfw.data.scene import SceneData


def add_dataset_args(parser: argparse.ArgumentParser, required: bool = True) -> None:
    """The dataset flags shared by `inspect`, `export` and `cameras` (and named as `train`'s options)."""
    parser.add_argument("--data_root_dir", required=required, help="folder holding the scene folder(s)" +
                        ("" if required else "; required unless --run is given"))
    parser.add_argument("--scene", default=None, help="scene folder inside data_root_dir (default: data_root_dir itself)")
    parser.add_argument("--dataset", default="auto", choices=("auto",) + FORMATS,
                        help="dataset format; auto recognises it from the files")
    parser.add_argument("--img_downscale", type=float, default=1,
                        help="image size divisor, as `nerfw train`'s (images become round(W/N) x round(H/N))")
    parser.add_argument("--focal", type=float, default=None,
                        help="focal length in pixels of the original images, for Cambridge scenes without an .nvm")
    parser.add_argument("--sevenscenes_focal", type=float, default=525.0,
                        help="7-Scenes colour focal in pixels at 640x480 (525 colour camera; 585 the depth camera)")
    parser.add_argument("--test_every", type=int, default=8,
                        help="COLMAP / LLFF / transforms.json: every N-th image is a test image (0: none)")


def load_from_args(options) -> SceneData:
    """The dataset read with the dataset options of `options`: parsed flags, or a run's TrainConfig (same names),
    so every command reads a dataset the way its run was trained on it."""
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


def build_parser() -> argparse.ArgumentParser:
    from nerfw.cli_args import Parser, add_switch

    parser = Parser(prog="nerfw inspect", description="Print what nerfw reads from a dataset: images, sizes, "
                                                      "focal lengths, bounds, depth maps, points and framing.")
    add_dataset_args(parser)
    parser.add_argument("--framing", default="auto", choices=METHODS,
                        help="how `nerfw train` would find the content ball (see docs/datasets.md, Framing)")
    parser.add_argument("--scene_box", default="", help="x0,y0,z0,x1,y1,z1 (dataset units): content box override")
    parser.add_argument("--grid_max_res", type=int, default=512,
                        help="finest plane resolution of the grid field, as `nerfw train`'s: the framing keeps a "
                             "cell within a pixel at the content, and the report counts the content's cells")
    parser.add_argument("--orient", default="auto", choices=ORIENT_METHODS,
                        help="how `nerfw train` would turn the model frame (auto: z up; see docs/datasets.md, "
                             "Orientation)")
    add_switch(parser, "--json", "machine-readable output (SceneData.to_json()) instead of the summary")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(join_scene_box_arg(sys.argv[1:] if argv is None else argv))
    scene = load_from_args(args)
    framing = choose_framing(scene, args.framing, parse_scene_box(args.scene_box), args.grid_max_res)
    orientation = orient_scene(scene, framing, args.orient)
    content, warning = content_report(scene.split("train") or scene.cameras, framing, args.grid_max_res)
    if args.json:
        print(json.dumps({**scene.to_json(), "framing": {**framing.to_dict(), "content": content,
                                                          "content_warning": warning},
                          "orientation": orientation.to_dict()}, indent=1))
    else:
        print("\n".join([summary(scene), framing.describe(), content, *([warning] if warning else []),
                         orientation.describe()]))
    return 0
