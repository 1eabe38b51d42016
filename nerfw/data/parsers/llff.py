"""LLFF forward-facing captures: poses_bounds.npy + images[_N]/.

poses_bounds.npy is [N, 17]: a 3x5 [R | t | (H, W, f)] camera-to-world pose with rotation columns
(down, right, backward) at full resolution, then the near/far bounds of the image. The image folder is
images_N for --img_downscale N when present, else the available folder whose factor is nearest (the
image cache then resizes to round(W/N) x round(H/N)). Every `test_every`-th image (index % 8 == 0 by
default) is held out as test, as in NeRF.

Lens distortion: poses_bounds.npy has none, but LLFF's imgs2poses writes it from a COLMAP model whose
registered images, sorted by name, are its rows. When that model lies beside it (sparse/0 or sparse), row i
takes the distortion of the camera of the i-th image by name (normalised coefficients: the same for every
images_N). When the counts differ or the model cannot be read, a warning says so and the views are pinhole.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from nerfw.data.conventions import Distortion, llff_to_T_world_cam
from nerfw.data.parsers import colmap, common
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


COLMAP_MODEL_DIRS = ("sparse/0", "sparse")


def colmap_distortions(root: Path, focals: np.ndarray, warnings: list[str]) -> list[Distortion | None]:
    """Per poses_bounds row (focal [N] of each row), the distortion of the COLMAP model beside it (see the module
    doc); all None when there is no model."""
    n_rows = len(focals)
    folder = next((root / d for d in COLMAP_MODEL_DIRS if colmap._model_files(root / d)), None)
    if folder is None:
        return [None] * n_rows
    rel = folder.relative_to(root).as_posix()
    try:
        cams, images = colmap.read_cameras_and_images(folder)
        ordered = sorted(images.values(), key=lambda im: im.name)
        if len(ordered) != n_rows:
            warnings.append(f"{rel}: {len(ordered)} registered images but poses_bounds.npy has {n_rows} rows; "
                            "lens distortion not used (pinhole rays)")
            return [None] * n_rows
        out = []
        for im in ordered:
            cam = cams[im.camera_id]
            if colmap.CAMERA_MODELS[cam.model][2] is None:
                raise DatasetError(folder, f"camera {cam.id}: model {cam.model} is not supported")
            out.append(cam.distortion())
        model_focals = np.array([cams[im.camera_id].pinhole(folder)[0] for im in ordered])
        off = float(np.max(np.abs(model_focals / focals - 1)))
        if off > 1e-3:
            warnings.append(f"{rel}: the COLMAP cameras' focal lengths differ from poses_bounds.npy's by up to "
                            f"{100 * off:.2g} % (LLFF writes one camera's for every image); nerfw uses poses_bounds' "
                            "focal with each image's own distortion (--dataset colmap: each image's own intrinsics)")
        return out
    except DatasetError as exc:
        warnings.append(f"{rel}: COLMAP model not usable for lens distortion ({exc}); pinhole rays")
        return [None] * n_rows


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
    distortions = colmap_distortions(root, pb[:, 14], warnings)  # row-major 3x5: [2, 4] is the focal
    cameras = []
    for i, (row, file) in enumerate(zip(pb, files)):
        T, (H, W, f) = llff_to_T_world_cam(row[:15].reshape(3, 5))
        common.check_pose(T, path)
        out = common.downscaled_size(int(round(W)), int(round(H)), img_downscale)
        split = "test" if test_every > 0 and i % test_every == 0 else "train"
        cameras.append(common.make_view(file.relative_to(root).as_posix(), file, split, T,
                                        (f, f, W / 2.0, H / 2.0), (W, H), out, near=row[15], far=row[16]))
        cameras[-1].distortion = distortions[i]
    return SceneData(format="llff", root=root, cameras=cameras, warnings=warnings)
