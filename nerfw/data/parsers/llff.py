"""LLFF forward-facing captures: poses_bounds.npy + images[_N]/.

poses_bounds.npy is [N, 17]: a 3x5 [R | t | (H, W, f)] camera-to-world pose with rotation columns
(down, right, backward) at full resolution, then the near/far bounds of the image. The image folder is
images_N for --img_downscale N when present, else the available folder whose factor is nearest (the
image cache then resizes to round(W/N) x round(H/N)). Every `test_every`-th image (index % 8 == 0 by
default) is held out as test, as in NeRF.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from nerfw.data.conventions import llff_to_T_world_cam
from nerfw.data.parsers import common
from nerfw.data.scene import SceneData
from nerfw.errors import DatasetError


def image_folders(root: Path) -> dict[float, Path]:
    """{downscale factor: folder} for images/ (1) and images_N/ (N)."""
    out = {}
    for p in root.iterdir():
        m = re.fullmatch(r"images(?:_(\d+))?", p.name)
        if p.is_dir() and m:
            out[float(m.group(1) or 1)] = p
    return out


def choose_folder(root: Path, downscale: float) -> Path:
    folders = image_folders(root)
    if not folders:
        raise DatasetError(root, "expected an images/ or images_N/ folder beside poses_bounds.npy")
    factor = min(folders, key=lambda k: (abs(k - downscale), k))  # nearest; ties -> higher resolution
    return folders[factor]


def load_llff(root: Path, img_downscale: float = 1, test_every: int = 8) -> SceneData:
    root = Path(root)
    path = root / "poses_bounds.npy"
    try:
        pb = np.load(path)
    except (OSError, ValueError) as exc:
        raise DatasetError(path, f"expected a readable .npy array ({exc})") from None
    if pb.ndim != 2 or pb.shape[1] != 17:
        raise DatasetError(path, f"expected an [N, 17] array (3x5 pose + near, far), got shape {pb.shape}")
    if not np.all(np.isfinite(pb)):
        bad = int(np.flatnonzero(~np.all(np.isfinite(pb), axis=1))[0])
        raise DatasetError(path, f"expected finite poses and bounds (row {bad} has NaN or inf)")
    bad_bounds = np.flatnonzero(~((pb[:, 15] > 0) & (pb[:, 16] > pb[:, 15])))
    if len(bad_bounds):
        k = int(bad_bounds[0])
        raise DatasetError(path, f"expected bounds 0 < near < far in the last two columns (row {k} has near "
                                 f"{pb[k, 15]:g}, far {pb[k, 16]:g})")
    folder = choose_folder(root, img_downscale)
    files = sorted(p for p in folder.iterdir() if p.suffix in common.IMAGE_EXTENSIONS)
    if len(files) != len(pb):
        raise DatasetError(folder, f"expected {len(pb)} images (one per row of poses_bounds.npy), found {len(files)}")
    warnings: list[str] = []
    if folder.name != (f"images_{int(img_downscale)}" if img_downscale != 1 else "images"):
        warnings.append(f"no images folder for downscale {img_downscale:g}: resizing the images of {folder.name}")
    cameras = []
    for i, (row, file) in enumerate(zip(pb, files)):
        T, (H, W, f) = llff_to_T_world_cam(row[:15].reshape(3, 5))
        common.check_pose(T, path)
        out = common.downscaled_size(int(round(W)), int(round(H)), img_downscale)
        split = "test" if test_every > 0 and i % test_every == 0 else "train"
        cameras.append(common.make_view(file.relative_to(root).as_posix(), file, split, T,
                                        (f, f, W / 2.0, H / 2.0), (W, H), out, near=row[15], far=row[16]))
    return SceneData(format="llff", root=root, cameras=cameras, warnings=warnings)
