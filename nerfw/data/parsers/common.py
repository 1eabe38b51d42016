"""Small helpers shared by the dataset parsers: text lines, numbers, image sizes, bounds.

Every helper either returns a value or raises :class:`nerfw.errors.DatasetError` naming the file, the
line and what was expected; no other exception escapes on malformed text (tests fuzz this).
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from nerfw.data.scene import CameraView
from nerfw.errors import DatasetError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".PNG", ".JPG", ".JPEG")
_SPLIT_RE = re.compile(r"[,\s]+")

# Percentiles of visible z-depths used as near / far (NeRF-W / nerf_pl: 0.1 and 99.9).
NEAR_PERCENTILE = 0.1
FAR_PERCENTILE = 99.9
# A camera needs at least this many visible points for its own bounds; else the scene median is used.
MIN_POINTS_FOR_BOUNDS = 20


# --------------------------------------------------------------------------- text
def read_lines(path: Path) -> list[tuple[int, str]]:
    """(1-based line number, line stripped of CR/LF, BOM and surrounding blanks) for every line."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(path, "file not found")
    try:
        text = path.read_bytes().decode("utf-8-sig", errors="replace")
    except OSError as exc:
        raise DatasetError(path, f"cannot read the file ({exc.strerror})") from None
    return [(i + 1, line.strip()) for i, line in enumerate(text.splitlines())]


def data_lines(path: Path, comment: str = "#") -> list[tuple[int, str]]:
    """Non-blank lines that do not start with `comment`."""
    return [(n, s) for n, s in read_lines(path) if s and not s.startswith(comment)]


def split_fields(text: str) -> list[str]:
    """Tokens separated by blanks, tabs and/or commas (7-Scenes uses tabs, vReLoc commas)."""
    return [t for t in _SPLIT_RE.split(text.strip()) if t]


def parse_float(token: str, path: Path, line: int | None, what: str) -> float:
    """One finite float (MSVC three-digit exponents such as 1.0e+000 are fine for float())."""
    try:
        value = float(token)
    except (TypeError, ValueError):
        raise DatasetError(path, f"expected {what} as a number, got {token!r:.40}", line=line) from None
    if not math.isfinite(value):
        raise DatasetError(path, f"expected a finite {what}, got {token!r:.40}", line=line)
    return value


def parse_floats(tokens: list[str], count: int, path: Path, line: int | None, what: str) -> np.ndarray:
    """Exactly `count` finite floats -> float64 [count]."""
    if len(tokens) != count:
        raise DatasetError(path, f"expected {count} numbers ({what}), found {len(tokens)}", line=line)
    return np.array([parse_float(t, path, line, what) for t in tokens], dtype=np.float64)


def parse_int(token: str, path: Path, line: int | None, what: str) -> int:
    """One integer (a float token with an integral value such as '12.0' is accepted)."""
    try:
        return int(token)
    except (TypeError, ValueError):
        pass
    value = parse_float(token, path, line, what)
    if value != int(value):
        raise DatasetError(path, f"expected {what} as an integer, got {token!r:.40}", line=line)
    return int(value)


def parse_matrix_text(path: Path, rows: int = 4, cols: int = 4) -> np.ndarray:
    """A rows x cols matrix written one row per line (blanks, tabs or commas; CRLF; '#' comments)."""
    lines = data_lines(path)
    if len(lines) < rows:
        raise DatasetError(path, f"expected a {rows}x{cols} matrix, found {len(lines)} lines",
                           line=lines[-1][0] if lines else None)
    M = np.stack([parse_floats(split_fields(s), cols, path, n, "matrix row") for n, s in lines[:rows]])
    return M


# --------------------------------------------------------------------------- images
def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the image header only (PIL opens lazily; pixels are not decoded)."""
    try:
        with Image.open(path) as im:
            return int(im.size[0]), int(im.size[1])
    except FileNotFoundError:
        raise DatasetError(path, "image file not found") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise DatasetError(path, f"expected a readable image ({exc})") from None


def downscaled_size(width: int, height: int, downscale: float) -> tuple[int, int]:
    """Size after --img_downscale N: (round(W / N), round(H / N)), at least 1 pixel.

    Rounding (not floor like NeRFW-pytorch's W // N) keeps the aspect closest to the original; the
    intrinsics are scaled by the actual ratio new_size / old_size per axis, so either choice is exact.
    """
    if downscale <= 0:
        raise DatasetError("--img_downscale", f"expected a positive downscale factor, got {downscale}")
    return max(1, int(round(width / downscale))), max(1, int(round(height / downscale)))


def find_image(folder: Path, stem_or_name: str) -> Path | None:
    """`folder/name` if it exists, else `folder/name` + a known image extension."""
    p = Path(folder) / stem_or_name
    if p.is_file():
        return p
    for ext in IMAGE_EXTENSIONS:
        q = p.with_name(p.name + ext)
        if q.is_file():
            return q
    return None


def missing_files_error(path: Path, missing: list[str], what: str = "image files") -> DatasetError:
    """DatasetError listing the first few missing names and the total count."""
    shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
    return DatasetError(path, f"{len(missing)} listed {what} not found: {shown}")


# --------------------------------------------------------------------------- cameras
def make_view(
    name: str, image_path: Path, split: str, T_world_cam: np.ndarray,
    K_ref: tuple[float, float, float, float],  # (fx, fy, cx, cy) at ref_size
    ref_size: tuple[int, int],  # (W, H) the intrinsics refer to
    out_size: tuple[int, int],  # (W, H) after downscale
    near: float = float("nan"), far: float = float("nan"), depth_path: Path | None = None,
    depth_scale: float = 1000.0,
) -> CameraView:
    """CameraView with intrinsics scaled from ref_size to out_size by the actual ratio per axis."""
    sx, sy = out_size[0] / ref_size[0], out_size[1] / ref_size[1]
    fx, fy, cx, cy = K_ref
    return CameraView(
        name=name, image_path=Path(image_path), split=split, width=int(out_size[0]), height=int(out_size[1]),
        fx=float(fx * sx), fy=float(fy * sy), cx=float(cx * sx), cy=float(cy * sy),
        T_world_cam=np.asarray(T_world_cam, dtype=np.float64), near=float(near), far=float(far),
        depth_path=depth_path, depth_scale=depth_scale,
    )


def check_pose(T: np.ndarray, path: Path, line: int | None = None) -> np.ndarray:
    """Finite 4x4 rigid pose (rotation orthonormal to 1e-2) or DatasetError."""
    T = np.asarray(T, dtype=np.float64)
    if T.shape != (4, 4) or not np.all(np.isfinite(T)):
        raise DatasetError(path, "expected a finite 4x4 pose (found NaN or inf)", line=line)
    R = T[:3, :3]
    if not np.allclose(R @ R.T, np.eye(3), atol=1e-2) or np.linalg.det(R) < 0:
        raise DatasetError(path, "expected a rotation matrix in the pose (not orthonormal)", line=line)
    return T


# --------------------------------------------------------------------------- bounds
def depth_percentile_bounds(z: np.ndarray) -> tuple[float, float] | None:
    """(0.1, 99.9) percentiles of positive finite z-depths, or None when fewer than MIN_POINTS_FOR_BOUNDS."""
    z = np.asarray(z, dtype=np.float64)
    z = z[np.isfinite(z) & (z > 0)]
    if len(z) < MIN_POINTS_FOR_BOUNDS:
        return None
    lo, hi = np.percentile(z, [NEAR_PERCENTILE, FAR_PERCENTILE])
    return float(lo), float(hi)


def points_bounds(
    points: np.ndarray,  # [N, 3] world
    T_world_cam: np.ndarray, fx: float, fy: float, cx: float, cy: float, width: int, height: int,
) -> tuple[float, float] | None:
    """near/far of one camera from the SfM points in its view frustum (see frustum_bounds)."""
    view = CameraView("", Path(""), "", width, height, fx, fy, cx, cy, np.asarray(T_world_cam), np.nan, np.nan)
    return frustum_bounds(points, [view])[0]


def frustum_bounds(
    points: np.ndarray,  # [N, 3] world
    cameras: list[CameraView],
    chunk: int = 32,
) -> list[tuple[float, float] | None]:
    """Per camera, near/far = (0.1, 99.9) percentiles of the z-depth of the points in its view frustum
    (z > 0 and projecting into the image), or None when fewer than MIN_POINTS_FOR_BOUNDS.

    Deviation from NeRFW-pytorch (which kept every point with z > 0): points outside the image are not seen
    by the camera and would only inflate `far`. Cameras are transformed in chunks (one batched float32
    matrix product per chunk), so thousands of cameras x 100k points take seconds.
    """
    if points is None or len(points) == 0:
        return [None] * len(cameras)
    X_T = np.ascontiguousarray(np.asarray(points, dtype=np.float32).T)  # [3, N]
    out: list[tuple[float, float] | None] = []
    for start in range(0, len(cameras), chunk):
        cams = cameras[start:start + chunk]
        T_cw = np.stack([np.linalg.inv(c.T_world_cam) for c in cams]).astype(np.float32)  # [C, 4, 4]
        # Camera-major layout: rows are contiguous per camera and coordinate.
        Xc = (T_cw[:, :3, :3] @ X_T) + T_cw[:, :3, 3:]  # [C, 3, N]
        for j, c in enumerate(cams):
            x, y, z = Xc[j]
            front = z > 0
            x, y, z = x[front], y[front], z[front]
            u, v = x / z * c.fx + c.cx, y / z * c.fy + c.cy
            inside = (u >= 0) & (u < c.width) & (v >= 0) & (v < c.height)
            out.append(depth_percentile_bounds(z[inside]))
    return out


def fill_missing_bounds(cameras: list[CameraView], default: tuple[float, float], warnings: list[str],
                        source: str) -> None:
    """Cameras with NaN near/far get the median of the others (or `default` when none has bounds)."""
    ok = [bool(np.isfinite(c.near) and np.isfinite(c.far)) for c in cameras]
    have = [c for c, good in zip(cameras, ok) if good]
    lacking = [c for c, good in zip(cameras, ok) if not good]
    if not lacking:
        return
    if have:
        near = float(np.median([c.near for c in have]))
        far = float(np.median([c.far for c in have]))
        how = "the median near/far of the other cameras"
    else:
        near, far = default
        how = f"the default near={near:g} far={far:g}"
    for c in lacking:
        c.near, c.far = near, far
    names = ", ".join(c.name for c in lacking[:3]) + (", ..." if len(lacking) > 3 else "")
    warnings.append(f"{len(lacking)} camera(s) had too little {source} for bounds ({names}); used {how}")


def subsample_points(points: np.ndarray, max_points: int = 100_000, seed: int = 0) -> np.ndarray:
    """At most `max_points` rows (fixed random subset) for bounds estimation: percentiles are robust."""
    if points is None or len(points) <= max_points:
        return points
    idx = np.random.default_rng(seed).choice(len(points), size=max_points, replace=False)
    return points[np.sort(idx)]
