"""`nerfw inspect`: print what nerfw reads from a dataset (a short summary, or --json)."""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from typing import Literal

from nerfw.data.dataset_options import DatasetOptions, load_from_args, summary
from nerfw.data.framing import (
    choose_framing,
    content_report,
    join_scene_box_arg,
    parse_scene_box,
)
from nerfw.data.orientation import orient_scene
from nerfw.data.photo_points import photo_points_wanted, with_photo_points
from nerfw.options import build_command_parser, parse_command

PROG = "nerfw inspect"
DESCRIPTION = ("Print what nerfw reads from a dataset: images, sizes, focal lengths, bounds, depth maps, points "
               "and framing.")


@dataclass(kw_only=True)
class InspectOptions(DatasetOptions):
    framing: Literal["auto", "points", "focus", "frustum", "cameras"] = "auto"
    """how `nerfw train` would find the content ball (see docs/datasets.md, Framing)"""
    scene_box: str = ""
    """x0,y0,z0,x1,y1,z1 (dataset units): content box override"""
    grid_max_res: int = 512
    """finest plane resolution of the grid field, as `nerfw train`'s: the framing keeps a cell within a pixel at the
    content, and the report counts the content's cells"""
    photo_points: bool = True
    """as `nerfw train`'s: without sparse points in the dataset, frame and orient by points triangulated from the
    training photos"""
    orient: Literal["auto", "none"] = "auto"
    """how `nerfw train` would turn the model frame (auto: z up; see docs/datasets.md, Orientation)"""
    json: bool = False
    """machine-readable output (SceneData.to_json()) instead of the summary"""


def build_parser() -> argparse.ArgumentParser:
    return build_command_parser(PROG, DESCRIPTION, InspectOptions)


def main(argv: list[str] | None = None) -> int:
    args = parse_command(join_scene_box_arg(sys.argv[1:] if argv is None else argv), PROG, DESCRIPTION,
                         InspectOptions)
    scene = load_from_args(args)
    framed, points_note = with_photo_points(scene, photo_points_wanted(args.photo_points, args.framing, args.scene_box))
    framing = choose_framing(framed, args.framing, parse_scene_box(args.scene_box), args.grid_max_res)
    orientation = orient_scene(framed, framing, args.orient)
    content, warning = content_report(scene.split("train") or scene.cameras, framing, args.grid_max_res)
    if args.json:
        print(json.dumps({**scene.to_json(), "photo_points": points_note,
                          "framing": {**framing.to_dict(), "content": content, "content_warning": warning},
                          "orientation": orientation.to_dict()}, indent=1))
    else:
        print("\n".join([summary(scene), *([points_note] if points_note else []), framing.describe(), content,
                         *([warning] if warning else []), orientation.describe()]))
    return 0
