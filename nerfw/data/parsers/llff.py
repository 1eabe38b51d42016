"""LLFF forward-facing captures: poses_bounds.npy + images[_N]/.

poses_bounds.npy is [N, 17]: a 3x5 [R | t | (H, W, f)] camera-to-world pose with rotation columns
(down, right, backward) at full resolution, then the near/far bounds of the image. The image folder is
images_N for --img_downscale N when present, else the available folder whose factor is nearest (the
image cache then resizes to round(W/N) x round(H/N)). Every `test_every`-th image (index % 8 == 0 by
default) is held out as test, as in NeRF.

Lens distortion and sparse points: poses_bounds.npy has neither, but LLFF's imgs2poses writes it from a COLMAP
model, in that model's own world (only the rotation's columns are reordered), and users often ship the model (or
part of it) in sparse/0 or sparse beside it:
- with the model's image list (images.bin / images.txt) holding one registered image per row: row i is the i-th
  image by name and takes its camera's distortion (normalised coefficients: the same for every images_N); the
  points are moved into the rows' frame by the similarity that maps the model's camera centres onto the rows'
  (not used when that leaves a misfit);
- without an image list (or with another count of images): a model with one camera lends its lens to every row,
  else a row takes the lens of the cameras whose aspect ratio and focal match its H, W, f; the points are taken
  as they are when the rows' cameras see them (in front, inside the image, within the row's near/far bounds:
  :func:`points_seen`), which holds for imgs2poses' output and fails for recentred or rescaled poses.
Every part that is present but not used gets a one-line warning saying why; then the views are pinhole and the
scene is framed without points.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nerfw.cameras.conventions import Distortion, llff_to_T_world_cam, project_points
from nerfw.data.parsers import colmap, common
from nerfw.data.scene import CameraView, SceneData
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
MIN_SEEN_SHARE = 0.7  # points without camera centres: share that some row must see, and share of rows that
MIN_ROW_POINTS = 10  # ... see at least this many points (see points_seen)
SEEN_DEPTH_SLACK = 2.0  # a seen point's z-depth lies within [near / slack, far * slack] of the row
SEEN_SAMPLE = 4000  # points tested by projection (a fixed random subset)


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


def points_seen(points: np.ndarray, views: list[CameraView]) -> tuple[float, float]:
    """(share of the points some row's camera sees, share of the rows that see at least MIN_ROW_POINTS of them).
    A camera sees a point in front of it, inside its image and within its near/far bounds (with SEEN_DEPTH_SLACK).
    imgs2poses writes the rows in the model's own world and takes each row's bounds from the depths of the points
    it sees, so points in the rows' frame score close to 1 on both; points of another frame (recentred or rescaled
    poses) fall behind most cameras or outside their bounds."""
    if len(points) > SEEN_SAMPLE:
        points = points[np.sort(np.random.default_rng(0).choice(len(points), SEEN_SAMPLE, replace=False))]
    seen = np.zeros(len(points), bool)
    rows_seeing = 0
    for v in views:
        uv, z = project_points(v.K, v.T_world_cam, points)
        with np.errstate(invalid="ignore"):
            here = ((z > v.near / SEEN_DEPTH_SLACK) & (z < v.far * SEEN_DEPTH_SLACK) & (uv[:, 0] >= 0)
                    & (uv[:, 0] < v.width) & (uv[:, 1] >= 0) & (uv[:, 1] < v.height))
        seen |= here
        rows_seeing += int(here.sum() >= min(MIN_ROW_POINTS, len(points)))
    return (float(seen.mean()) if len(points) else 0.0), rows_seeing / max(len(views), 1)


def row_lenses(cams: dict[int, colmap.ColmapCamera], rows_hwf: np.ndarray) -> list[Distortion | None] | None:
    """Each row's lens when the model has no usable image list: the lens of the camera whose aspect ratio matches
    the row's H / W and whose focal (relative to its width) is nearest the row's f / W, within 0.1 % (imgs2poses
    writes one model camera's); None when a row matches no camera, or equally well cameras with different lenses.
    A model with one camera gives its lens to every row."""
    if len(cams) == 1:
        return [next(iter(cams.values())).distortion()] * len(rows_hwf)
    usable = [c for c in cams.values() if _supported(c)]
    aspect = np.array([c.width / c.height for c in usable])
    focal = np.array([c.pinhole(Path(""))[0] / c.width for c in usable])
    out = []
    for H, W, f in rows_hwf:
        off = np.where(np.abs(aspect / (W / H) - 1) < 1e-3, np.abs(focal / (f / W) - 1), np.inf)
        if not len(off) or off.min() > 1e-3:
            return None
        lenses = {usable[k].distortion() for k in np.flatnonzero(off <= off.min() + 1e-9)}
        if len(lenses) != 1:
            return None
        out.append(lenses.pop())
    return out


def _supported(cam: colmap.ColmapCamera) -> bool:
    return colmap.CAMERA_MODELS[cam.model][2] is not None


def _with_image_list(rel: str, folder: Path, cams, ordered, views, warnings) -> CompanionModel:
    """Registered images sorted by name are the rows: each row's own lens; points moved by the camera centres."""
    for im in ordered:
        if not _supported(cams[im.camera_id]):
            raise DatasetError(folder, f"camera {im.camera_id}: model {cams[im.camera_id].model} is not supported")
    model_focals = np.array([cams[im.camera_id].pinhole(folder)[0] / cams[im.camera_id].width for im in ordered])
    row_focals = np.array([v.fx / v.width for v in views])
    off = float(np.max(np.abs(model_focals / row_focals - 1)))
    if off > 1e-3:
        warnings.append(f"{rel}: the COLMAP cameras' focal lengths differ from poses_bounds.npy's by up to "
                        f"{100 * off:.2g} % (LLFF writes one camera's for every image); nerfw uses poses_bounds' "
                        "focal with each image's own distortion (--dataset colmap: each image's own intrinsics)")
    return CompanionModel([cams[im.camera_id].distortion() for im in ordered])


def _points_by_centres(rel, ordered, model_points, views, warnings) -> np.ndarray | None:
    model_centres = np.stack([im.T_world_cam[:3, 3] for im in ordered])
    s, R, t, misfit = align_centres(model_centres, np.stack([v.center for v in views]))
    if misfit <= MAX_CENTRE_MISFIT:
        return s * model_points @ R.T + t
    warnings.append(f"{rel}: sparse points not used: the model's camera centres do not match poses_bounds.npy's "
                    f"(rms misfit {100 * misfit:.2g} % of their spread after the best similarity)")
    return None


def _points_by_projection(rel, model_points, views, warnings) -> np.ndarray | None:
    point_share, row_share = points_seen(model_points, views)
    if min(point_share, row_share) >= MIN_SEEN_SHARE:
        return model_points
    warnings.append(f"{rel}: sparse points not used: without the model's images they must already lie in "
                    f"poses_bounds.npy's frame, but {point_share:.0%} of them are seen by a row's camera within its "
                    f"bounds and {row_share:.0%} of the rows see {MIN_ROW_POINTS} or more (expected "
                    f"{MIN_SEEN_SHARE:.0%} of each)")
    return None


def read_companion_model(root: Path, views: list[CameraView], rows_hwf: np.ndarray,
                         warnings: list[str]) -> CompanionModel:
    """The COLMAP model beside poses_bounds.npy (see the module doc). `views` are the rows' cameras and
    `rows_hwf` [N, 3] their H, W, f as poses_bounds.npy states them."""
    n_rows = len(views)
    folder = next((root / d for d in COLMAP_MODEL_DIRS
                   if any((root / d / f"cameras{ext}").is_file() for ext in (".bin", ".txt"))), None)
    if folder is None:
        return CompanionModel([None] * n_rows)
    rel = folder.relative_to(root).as_posix()
    try:
        cams, images, points, colors = colmap.read_partial_model(folder)
    except DatasetError as exc:
        warnings.append(f"{rel}: COLMAP model not usable ({exc}); pinhole rays, no sparse points")
        return CompanionModel([None] * n_rows)
    ordered = sorted(images.values(), key=lambda im: im.name) if images is not None else []
    if images is not None and len(ordered) == n_rows:
        out = _with_image_list(rel, folder, cams, ordered, views, warnings)
        if points is not None and len(points):
            out.points = _points_by_centres(rel, ordered, points, views, warnings)
    else:
        why = (f"{len(ordered)} registered images but poses_bounds.npy has {n_rows} rows" if images is not None
               else "no images.bin / images.txt")
        lenses = row_lenses(cams, rows_hwf)
        if lenses is None:
            warnings.append(f"{rel}: {why}, and its {len(cams)} cameras do not tell each row's lens apart; "
                            "pinhole rays")
        out = CompanionModel(lenses or [None] * n_rows)
        if points is not None and len(points):
            out.points = _points_by_projection(rel, points, views, warnings)
    if out.points is not None:
        out.colors = colors
    elif points is None or not len(points):
        warnings.append(f"{rel}: no points3D.bin / points3D.txt (or no points in it): no sparse points shipped")
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
    cameras = []
    for i, (row, file) in enumerate(zip(pb, files)):
        T, (H, W, f) = llff_to_T_world_cam(row[:15].reshape(3, 5))
        common.check_pose(T, path)
        out = common.downscaled_size(int(round(W)), int(round(H)), img_downscale)
        split = "test" if test_every > 0 and i % test_every == 0 else "train"
        cameras.append(common.make_view(file.relative_to(root).as_posix(), file, split, T,
                                        (f, f, W / 2.0, H / 2.0), (W, H), out, near=row[15], far=row[16]))
    rows_hwf = pb[:, :15].reshape(-1, 3, 5)[:, :, 4]
    companion = read_companion_model(root, cameras, rows_hwf, warnings)
    for view, distortion in zip(cameras, companion.distortions):
        view.distortion = distortion
    return SceneData(format="llff", root=root, cameras=cameras, points=companion.points,
                     point_colors=companion.colors, warnings=warnings)
