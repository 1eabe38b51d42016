"""Poses files in the Cambridge format: 3 header lines, then `name X Y Z W P Q R` per view, where XYZ is the
camera centre and WPQR the world-to-camera Hamilton quaternion, in the dataset's frame and units."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from nerfw.cameras.conventions import T_world_cam_to_cambridge, cambridge_to_T_world_cam
from nerfw.data.scene import CameraView
from nerfw.errors import DatasetError

HEADER = ["Visual Landmark Dataset V1", "ImageFile, Camera Position [X Y Z W P Q R]", ""]


def format_pose_line(name: str, T_world_cam: np.ndarray) -> str:
    center, q = T_world_cam_to_cambridge(T_world_cam)
    return f"{name} " + " ".join(f"{v:.6f}" for v in center) + " " + " ".join(f"{v:.6f}" for v in q)


def write_poses_file(path: Path, named_poses: list[tuple[str, np.ndarray]]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = HEADER + [format_pose_line(name, T) for name, T in named_poses]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)
    return path


def parse_poses_file(path: Path) -> list[tuple[str, np.ndarray]]:
    """[(name, T_world_cam)] from a Cambridge-format file; one-line DatasetError on a bad line."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise DatasetError(path, f"cannot read poses file ({exc.strerror})") from None
    poses = []
    for number, line in enumerate(lines[3:], start=4):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 8:
            raise DatasetError(path, f"expected 'name X Y Z W P Q R' (8 fields), got {len(fields)}", number)
        try:
            values = np.array([float(v) for v in fields[1:]])
        except ValueError:
            raise DatasetError(path, "expected numbers after the image name", number) from None
        if not np.all(np.isfinite(values)) or np.linalg.norm(values[3:]) < 1e-9:
            raise DatasetError(path, "expected a finite centre and a non-zero quaternion", number)
        poses.append((fields[0], cambridge_to_T_world_cam(values[:3], values[3:])))
    return poses


def read_poses_file(path: Path, template: CameraView, split: str = "synth") -> list[CameraView]:
    """Cameras at the poses of a file, with intrinsics, size and bounds taken from `template`."""
    return [dataclasses.replace(template, name=name, T_world_cam=T, split=split, image_path=Path(name),
                                depth_path=None) for name, T in parse_poses_file(path)]
