"""LLFF forward-facing captures: poses_bounds.npy + images[_N]/.

poses_bounds.npy is [N, 17]: a 3x5 [R | t | (H, W, f)] camera-to-world pose with rotation columns
(down, right, backward) at full resolution, then the near/far bounds of the image. The image folder is
images_N for --img_downscale N when present, else the available folder whose factor is nearest (the
image cache then resizes to round(W/N) x round(H/N)). Every `test_every`-th image (index % 8 == 0 by
default) is held out as test, as in NeRF.

Lens distortion: poses_bounds.npy has none, but LLFF's imgs2poses writes it from a COLMAP model whose
registered images, sorted by name, are its rows. When that model lies beside it (sparse/0 or sparse), row i
takes the distortion of the camera of the i-th image by name (normalised coefficients: the same for every
images_N), and the model's sparse points frame and orient the scene as they do for a COLMAP folder (they are
moved into the rows' frame by the similarity that maps the model's camera centres onto the rows'; when that
leaves a misfit the points are not used). When the counts differ or the model cannot be read, a warning says
so and the views are pinhole.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
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


@dataclass
class CompanionModel:
    """What a COLMAP model beside poses_bounds.npy adds: per-row distortion, and sparse points in its frame."""
    distortions: list[Distortion | None]
    points: np.ndarray | None = None  # [M, 3] in the poses_bounds frame
    colors: np.ndarray | None = None  # [M, 3] uint8


MAX_CENTRE_MISFIT = 0.01  # rms misfit of the aligned camera centres, as a share of their rms spread


def align_centres(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, float]:
    """The similarity dst ~ s * R @ src + t between matched camera centres [N, 3] -> (s, R, t, relative rms
    misfit). poses_bounds.npy written by LLFF's imgs2poses keeps COLMAP's world (s = 1, R = I, t = 0); other
    tools may recentre or rescale it, which the similarity absorbs."""
    from scipy.spatial.transform import Rotation

    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    spread_s, spread_d = np.sqrt((a ** 2).sum(1).mean()), np.sqrt((b ** 2).sum(1).mean())
    if spread_s < 1e-12 or spread_d < 1e-12:
        return 1.0, np.eye(3), np.zeros(3), np.inf
    s = spread_d / spread_s
    R = Rotation.align_vectors(b, s * a)[0].as_matrix() if len(src) >= 2 else np.eye(3)
    t = mu_d - s * R @ mu_s
    misfit = np.sqrt((((s * src @ R.T + t) - dst) ** 2).sum(1).mean()) / spread_d
    return float(s), R, t, float(misfit)


def read_companion_model(root: Path, focals: np.ndarray, centres: np.ndarray,
                         warnings: list[str]) -> CompanionModel:
    """The COLMAP model beside poses_bounds.npy (see the module doc); `focals` [N] and camera `centres` [N, 3] are
    the rows'. Distortion needs the same number of registered images as rows; the sparse points also need the
    model's camera centres to match the rows' (up to a similarity, which moves the points into the rows' frame)."""
    n_rows = len(focals)
    folder = next((root / d for d in COLMAP_MODEL_DIRS if colmap._model_files(root / d)), None)
    none = CompanionModel([None] * n_rows)
    if folder is None:
        return none
    rel = folder.relative_to(root).as_posix()
    try:
        model = colmap.read_model(folder)
    except DatasetError as exc:
        warnings.append(f"{rel}: COLMAP model not usable ({exc}); pinhole rays, no sparse points")
        return none
    cams = model.cameras
    ordered = sorted(model.images.values(), key=lambda im: im.name)
    if len(ordered) != n_rows:
        warnings.append(f"{rel}: {len(ordered)} registered images but poses_bounds.npy has {n_rows} rows; "
                        "lens distortion and sparse points not used (pinhole rays)")
        return none
    for im in ordered:
        if colmap.CAMERA_MODELS[cams[im.camera_id].model][2] is None:
            raise DatasetError(folder, f"camera {im.camera_id}: model {cams[im.camera_id].model} is not supported")
    model_focals = np.array([cams[im.camera_id].pinhole(folder)[0] for im in ordered])
    off = float(np.max(np.abs(model_focals / focals - 1)))
    if off > 1e-3:
        warnings.append(f"{rel}: the COLMAP cameras' focal lengths differ from poses_bounds.npy's by up to "
                        f"{100 * off:.2g} % (LLFF writes one camera's for every image); nerfw uses poses_bounds' "
                        "focal with each image's own distortion (--dataset colmap: each image's own intrinsics)")
    out = CompanionModel([cams[im.camera_id].distortion() for im in ordered])
    if len(model.points):
        model_centres = np.stack([im.T_world_cam[:3, 3] for im in ordered])
        s, R, t, misfit = align_centres(model_centres, centres)
        if misfit <= MAX_CENTRE_MISFIT:
            out.points, out.colors = s * model.points @ R.T + t, model.colors
        else:
            warnings.append(f"{rel}: its camera centres do not match poses_bounds.npy's (rms misfit {100 * misfit:.2g} "
                            "% of their spread after the best similarity); sparse points not used")
    return out


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
    centres = pb[:, :15].reshape(-1, 3, 5)[:, :, 3]
    companion = read_companion_model(root, pb[:, 14], centres, warnings)  # row-major 3x5: [2, 4] is the focal
    cameras = []
    for i, (row, file) in enumerate(zip(pb, files)):
        T, (H, W, f) = llff_to_T_world_cam(row[:15].reshape(3, 5))
        common.check_pose(T, path)
        out = common.downscaled_size(int(round(W)), int(round(H)), img_downscale)
        split = "test" if test_every > 0 and i % test_every == 0 else "train"
        cameras.append(common.make_view(file.relative_to(root).as_posix(), file, split, T,
                                        (f, f, W / 2.0, H / 2.0), (W, H), out, near=row[15], far=row[16]))
        cameras[-1].distortion = companion.distortions[i]
    return SceneData(format="llff", root=root, cameras=cameras, points=companion.points,
                     point_colors=companion.colors, warnings=warnings)
