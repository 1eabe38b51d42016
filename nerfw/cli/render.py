"""`nerfw render`: render a split, a poses file or a camera path of a trained run to PNG/MP4."""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Literal

from nerfw.errors import ConfigError
from nerfw.options import build_command_parser, parse_command
from nerfw.outputs import render as render_module
from nerfw.outputs.render import render_all
from nerfw.training.run_io import load_run

PROG = "nerfw render"


@dataclass(kw_only=True)
class RenderOptions:
    run: str
    """a training run folder (<root_dir>/<exp_name>)"""
    out: str
    """output folder for rgb/, static/, transient/, depth/, beta/ and the videos"""
    split: str = field(default="test", metadata={"exclusive": "cameras"})
    """render the dataset's split (default test)"""
    poses: str = field(default="", metadata={"exclusive": "cameras"})
    """a Cambridge-format poses file"""
    path: Literal["interp", "spiral"] | None = field(default=None, metadata={"exclusive": "cameras"})
    """a smooth camera path: interp = through every 8th training camera, spiral = a circle around the mean training
    camera (default: none, render --split)"""
    n_frames: int = 60
    """frames of a --path (video length = n_frames / fps)"""
    max_frames: int = 0
    """render at most this many frames (0: all)"""
    appearance: str = "mean"
    """appearance (lighting) of the frames: mean, an image id or name, vec:v1,v2,..., or interp:A,B[,t] (see
    above)"""
    fx: float = 0.0
    """focal in pixels, also fy unless --fy (0: the dataset camera's; a new size alone keeps the field of view)"""
    fy: float = 0.0
    """vertical focal in pixels (0: the dataset camera's; a new size alone keeps the field of view)"""
    cx: float = 0.0
    """principal point x in pixels (0: the dataset camera's; a new size alone keeps the field of view)"""
    cy: float = 0.0
    """principal point y in pixels (0: the dataset camera's; a new size alone keeps the field of view)"""
    width: int = 0
    """image width (0: the dataset camera's; a new size alone keeps the field of view)"""
    height: int = 0
    """image height (0: the dataset camera's; a new size alone keeps the field of view)"""
    keep_distortion: bool = False
    """render through the cameras' lens distortion, as the photographs were taken (default: undistorted pinhole
    images of the same intrinsics)"""
    chunk: int = 4096
    """rays per forward pass; only speed and memory change (lower it if memory runs out)"""
    quality: Literal["fast", "full"] = "fast"
    """fast: the grid field's inference approximations (nerfw/model/fast_render.py; static scene only, several times
    faster); full: the renderer as trained (what nerfw eval scores)"""
    fps: int = 15
    """frames per second of the MP4 videos"""
    no_video: bool = False
    """write the PNG frames only, no rgb.mp4 / depth.mp4"""
    device: str = "cpu"
    """cpu, cuda or cuda:N: where the model renders"""


def build_parser() -> argparse.ArgumentParser:
    return build_command_parser(PROG, render_module.__doc__, RenderOptions)


def main(argv: list[str]) -> int:
    args = parse_command(argv, PROG, render_module.__doc__, RenderOptions)
    if min(args.fx, args.fy, args.cx, args.cy, args.width, args.height, args.max_frames) < 0 or args.n_frames < 1:
        raise ConfigError("expected --fx/--fy/--cx/--cy/--width/--height/--max_frames >= 0 and --n_frames >= 1")
    run = load_run(args.run, device=args.device)
    result = render_all(run, args)
    print(f"rendered {result['frames']} frames into {result['out']}" +
          "".join(f"; {k} video {v}" for k, v in result["videos"].items()))
    return 0
