"""`nerfw export --format transforms`: write any scene's cameras as a nerfstudio transforms.json.

Poses go out with OpenGL axes (conventions.T_world_cam_to_opengl) in the dataset's own frame and units;
every frame carries fl_x, fl_y, cx, cy, w, h of the image file it points at, near and far (extra keys other
tools ignore) and file_path relative to the json's folder (or absolute with --absolute_paths). The splits are
written as nerfstudio's train_filenames / val_filenames / test_filenames.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from nerfw.data.cli import add_dataset_args, load_from_args
from nerfw.data.conventions import T_world_cam_to_opengl
from nerfw.data.parsers.common import image_size
from nerfw.data.scene import CameraView, SceneData
from nerfw.errors import ConfigError


def _file_path(c: CameraView, out_dir: Path, absolute: bool) -> str:
    p = Path(c.image_path).resolve()
    return p.as_posix() if absolute else Path(os.path.relpath(p, out_dir.resolve())).as_posix()


def _intrinsics_of_file(c: CameraView) -> dict:
    """fl_x, fl_y, cx, cy, w, h of the image file the frame points at (the camera scaled per axis to the file's
    size): readers take w, h as the file's size, and LLFF's images_N files are not the size its cameras state."""
    w, h = image_size(c.image_path)
    sx, sy = w / c.width, h / c.height
    return {"fl_x": c.fx * sx, "fl_y": c.fy * sy, "cx": c.cx * sx, "cy": c.cy * sy, "w": w, "h": h}


def to_transforms(scene: SceneData, out_dir: Path, absolute: bool = False) -> dict:
    """nerfstudio transforms.json content for a scene."""
    frames, splits = [], {"train": [], "val": [], "test": []}
    for c in scene.cameras:
        path = _file_path(c, out_dir, absolute)
        frames.append({"file_path": path, "transform_matrix": T_world_cam_to_opengl(c.T_world_cam).tolist(),
                       **_intrinsics_of_file(c), "near": c.near, "far": c.far})
        splits.setdefault(c.split, []).append(path)
    meta = {"camera_model": "OPENCV", "nerfw_source_format": scene.format, "nerfw_axes": "opengl",
            "frames": frames}
    meta.update({f"{s}_filenames": names for s, names in splits.items() if names and s in ("train", "val", "test")})
    return meta


def write_transforms(scene: SceneData, out: Path, absolute: bool = False) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(to_transforms(scene, out.parent, absolute), indent=1))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nerfw export", description="Export a dataset's cameras.")
    add_dataset_args(parser)
    parser.add_argument("--format", default="transforms", choices=("transforms",), help="output format")
    parser.add_argument("--out", required=True, help="output file, e.g. transforms.json")
    parser.add_argument("--absolute_paths", action="store_true", help="write absolute image paths")
    args = parser.parse_args(argv)
    if not args.out.endswith(".json"):
        raise ConfigError(f"--out {args.out}: expected a .json file name")
    scene = load_from_args(args)
    path = write_transforms(scene, Path(args.out), args.absolute_paths)
    print(f"wrote {len(scene.cameras)} cameras ({scene.format}) to {path}")
    return 0
