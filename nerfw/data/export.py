"""`nerfw export --format transforms`: write any scene's cameras as a nerfstudio transforms.json.

Poses go out with OpenGL axes (conventions.T_world_cam_to_opengl) in the dataset's own frame and units;
every frame carries fl_x, fl_y, cx, cy, w, h of the image file it points at, near and far (extra keys other
tools ignore) and file_path relative to the json's folder (or absolute with --absolute_paths). The splits are
written as nerfstudio's train_filenames / val_filenames / test_filenames.

Lens distortion: a distorted frame carries ``nerfw_distortion`` ({"model", "coeffs"}, exact, what nerfw reads
back first) and, where nerfstudio's models express it exactly, nerfstudio's keys too: "opencv" without the
rational terms (k4 = k5 = k6 = 0) as k1 k2 p1 p2 k3 (camera_model OPENCV), "fisheye" as k1 k2 k3 k4
(camera_model OPENCV_FISHEYE). The top-level camera_model is OPENCV_FISHEYE when every distorted frame is fisheye,
else OPENCV; a frame whose model differs says so in its own camera_model. Rational OpenCV and VisualSfM ("nvm")
lenses have no nerfstudio form: only nerfw_distortion is written, and the export says so.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from nerfw.data.cli import add_dataset_args, load_from_args
from nerfw.data.conventions import Distortion, T_world_cam_to_opengl
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


def lens_keys(distortion: Distortion | None) -> tuple[str, dict]:
    """(nerfstudio camera_model, keys) of a frame's lens: nerfstudio's k / p keys where its models express the
    lens exactly, and always nerfw's exact nerfw_distortion. camera_model "" when nerfstudio has no such lens."""
    if distortion is None or distortion.is_identity:
        return "OPENCV", {}
    keys = {"nerfw_distortion": distortion.to_dict()}
    c = distortion.coeffs
    if distortion.model == "fisheye":
        return "OPENCV_FISHEYE", {**dict(zip(("k1", "k2", "k3", "k4"), c)), **keys}
    if distortion.model == "opencv" and not any(c[5:]):
        return "OPENCV", {**dict(zip(("k1", "k2", "p1", "p2", "k3"), c[:5])), **keys}
    return "", keys


def to_transforms(scene: SceneData, out_dir: Path, absolute: bool = False) -> dict:
    """nerfstudio transforms.json content for a scene."""
    frames, splits = [], {"train": [], "val": [], "test": []}
    lenses = [lens_keys(c.distortion) for c in scene.cameras]
    distorted = [model for (model, keys) in lenses if keys]
    top_model = "OPENCV_FISHEYE" if distorted and all(m == "OPENCV_FISHEYE" for m in distorted) else "OPENCV"
    for c, (model, keys) in zip(scene.cameras, lenses):
        path = _file_path(c, out_dir, absolute)
        own = {"camera_model": model} if model and model != top_model else {}
        frames.append({"file_path": path, "transform_matrix": T_world_cam_to_opengl(c.T_world_cam).tolist(),
                       **_intrinsics_of_file(c), **own, **keys, "near": c.near, "far": c.far})
        splits.setdefault(c.split, []).append(path)
    meta = {"camera_model": top_model, "nerfw_source_format": scene.format, "nerfw_axes": "opengl",
            "frames": frames}
    meta.update({f"{s}_filenames": names for s, names in splits.items() if names and s in ("train", "val", "test")})
    return meta


def write_transforms(scene: SceneData, out: Path, absolute: bool = False) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(to_transforms(scene, out.parent, absolute), indent=1))
    return out


def build_parser() -> argparse.ArgumentParser:
    from nerfw.cli_args import Parser, add_switch

    parser = Parser(prog="nerfw export", description="Export a dataset's cameras (for nerfstudio / instant-ngp).")
    add_dataset_args(parser)
    parser.add_argument("--format", default="transforms", choices=("transforms",),
                        help="output format: transforms = nerfstudio / instant-ngp transforms.json (OpenGL axes)")
    parser.add_argument("--out", required=True, help="output file, e.g. transforms.json")
    add_switch(parser, "--absolute_paths", "write absolute image paths (default: relative to the output file, "
                                           "so the file can move with the images)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.out.endswith(".json"):
        raise ConfigError(f"--out {args.out}: expected a .json file name")
    scene = load_from_args(args)
    path = write_transforms(scene, Path(args.out), args.absolute_paths)
    print(f"wrote {len(scene.cameras)} cameras ({scene.format}) to {path}")
    only_nerfw = sum(1 for c in scene.cameras if lens_keys(c.distortion)[0] == "")
    if only_nerfw:
        print(f"note: {only_nerfw} camera(s) have a lens model nerfstudio cannot express (rational OpenCV or "
              "VisualSfM radial); it is written as nerfw_distortion only, which other tools ignore")
    return 0
