"""What to localize: a split of the run's dataset, a folder of photos, or a poses file of named photos.

A query is an image file and its reference camera (CameraView: intrinsics at a reference size, lens); its pose
is known for a split of the dataset and for a poses file, else it is None.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nerfw.data.poses_file import parse_poses_file
from nerfw.data.scene import CameraView
from nerfw.localization import IntrinsicsError, LocalizationError
from nerfw.data.features import image_size

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


@dataclass
class Query:
    name: str
    path: Path
    camera: CameraView  # reference intrinsics and lens; T_world_cam is the true pose when known
    known: bool  # whether camera.T_world_cam is the true pose


def split_queries(run, split: str) -> list[Query]:
    cams = run.scene.split(split)
    if not cams:
        raise LocalizationError(f"the run's dataset has no '{split}' images (splits: "
                                f"{', '.join(f'{k} {v}' for k, v in run.scene.split_counts().items())})")
    return [Query(c.name, Path(c.image_path), c, True) for c in cams]


def list_images(folder: Path) -> list[str]:
    folder = Path(folder)
    if not folder.is_dir():
        raise LocalizationError(f"{folder}: not a folder")
    names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                   if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not names:
        raise LocalizationError(f"{folder}: no image files ({', '.join(IMAGE_SUFFIXES)})")
    return names


def dataset_camera(run) -> CameraView:
    """The dataset's camera when every training image shares one (intrinsics relative to the image size)."""
    train = run.scene.split("train")
    ref = train[0]
    rel = lambda c: np.array([c.fx / c.width, c.fy / c.height, c.cx / c.width, c.cy / c.height])  # noqa: E731
    if any(not np.allclose(rel(c), rel(ref), rtol=1e-4, atol=1e-6) or c.distortion != ref.distortion for c in train):
        raise IntrinsicsError("the query images' intrinsics are unknown and the dataset's training images do not "
                              "share one camera: give --fx (and --fy --cx --cy, in the query images' pixels)")
    return ref


def query_camera(name: str, path: Path, size: tuple[int, int], intrinsics: dict | None, template: CameraView | None,
                 T: np.ndarray | None) -> CameraView:
    """A camera for a photo of `size` (W, H): explicit intrinsics (fx, fy, cx, cy; None parts defaulted), else the
    template camera's scaled to the size (its lens kept)."""
    w, h = size
    if intrinsics and intrinsics.get("fx"):
        fx = float(intrinsics["fx"])
        fy = float(intrinsics.get("fy") or fx)
        cx = float(intrinsics["cx"]) if intrinsics.get("cx") is not None else w / 2.0
        cy = float(intrinsics["cy"]) if intrinsics.get("cy") is not None else h / 2.0
        distortion = None
    elif template is not None:
        sx, sy = w / template.width, h / template.height
        fx, fy, cx, cy = template.fx * sx, template.fy * sy, template.cx * sx, template.cy * sy
        distortion = template.distortion
    else:
        raise IntrinsicsError(f"{path}: no intrinsics (give --fx)")
    near, far = (template.near, template.far) if template is not None else (0.0, 0.0)
    return CameraView(name, path, "query", w, h, fx, fy, cx, cy, np.eye(4) if T is None else np.asarray(T, float),
                      near, far, distortion=distortion)


def folder_queries(run, folder: Path | None, poses: Path | None, intrinsics: dict | None) -> list[Query]:
    """Photos of `folder` (every image file under it), or the images a poses file names (relative to `folder`,
    default the dataset's folder), with intrinsics from the flags or the dataset's single camera."""

    template = None if intrinsics and intrinsics.get("fx") else dataset_camera(run)
    if intrinsics and not intrinsics.get("fx") and any(intrinsics.get(k) is not None for k in ("fy", "cx", "cy")):
        raise IntrinsicsError("--fy/--cx/--cy need --fx")
    if poses is not None:
        base = Path(folder) if folder else Path(run.scene.root)
        named = [(n, T) for n, T in parse_poses_file(Path(poses))]
        if not named:
            raise LocalizationError(f"{poses}: no poses")
    else:
        named = [(n, None) for n in list_images(Path(folder))]
        base = Path(folder)
    queries = []
    for name, T in named:
        path = base / name
        if not path.is_file():
            raise LocalizationError(f"{path}: query image not found")
        cam = query_camera(name, path, image_size(path), intrinsics, template, T)
        if template is not None and cam.far <= 0:
            cam = dataclasses.replace(cam, near=template.near, far=template.far)
        queries.append(Query(name, path, cam, T is not None))
    return queries
