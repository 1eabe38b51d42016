"""Pixels through a lens: undistorted normalised coordinates of pixel centres, and per-lens tables of them.

A pixel outside the lens model's invertible domain (NaN there, or a solution on the far side of the model's fold:
see conventions.in_lens_domain) falls back to its pinhole direction; such pixels are counted so callers can warn."""
from __future__ import annotations

import functools

import numpy as np

from nerfw.cameras.conventions import Distortion, in_lens_domain, pixels_to_normalized


def lens_normalized(fx: float, fy: float, cx: float, cy: float, uv: np.ndarray,
                    distortion: Distortion | None) -> tuple[np.ndarray, int]:
    """Undistorted normalised coordinates [N, 2] (float64) of pixel coordinates uv [N, 2] through the lens, and
    how many pixels lay outside the lens model's domain: those get their pinhole coordinates instead."""
    xy, bad = lens_normalized_mask(fx, fy, cx, cy, uv, distortion)
    return xy, int(bad.sum())


def lens_normalized_mask(fx: float, fy: float, cx: float, cy: float, uv: np.ndarray,
                         distortion: Distortion | None) -> tuple[np.ndarray, np.ndarray]:
    """lens_normalized with the [N] bool mask of the pixels outside the lens model's domain."""
    uv = np.asarray(uv, dtype=np.float64)
    xy = pixels_to_normalized(fx, fy, cx, cy, uv, distortion)
    if distortion is None or distortion.is_identity:
        return xy, np.zeros(len(xy), dtype=bool)
    xy_d = np.stack([(uv[:, 0] - cx) / fx, (uv[:, 1] - cy) / fy], axis=-1)
    bad = ~in_lens_domain(distortion, xy_d, xy)
    if bad.any():
        xy[bad] = xy_d[bad]
    return xy, bad


# Undistorted coordinates of every pixel centre of the training images, per (lens, image size), are computed once
# when all fit in this many MB (17 bytes a pixel; about 1 s per million pixels): training rays go through pixel
# centres, so a batch then reads them instead of running the lens model's Newton iterations. On the collection
# preset (80 images, each its own focal length and distortion) the per-batch undistortion took 90-140 ms of a
# 512-ray batch on 2 CPU cores and the table reads take ~1 ms; the tables of all 80 images take 3.4 s and 50 MB.
LENS_TABLE_MB = 256.0


# Tables are built only when they pay back within about 200 steps: building costs ~1 us a pixel, and each lens a
# batch meets costs one Newton call, ~1.2 ms (both measured on the 2-core CPU). One lens on 1920x1080 images (the
# fox at full size) would take 7.6 s to save 2.7 ms a step, so it keeps the per-batch call.
TABLE_PIXELS_PER_LENS = 240_000


def tables_pay_off(n_lenses: int, n_pixels: int) -> bool:
    """Whether pixel-centre tables of n_lenses (lens, image size) pairs holding n_pixels in all are worth building:
    within LENS_TABLE_MB and at most TABLE_PIXELS_PER_LENS pixels a lens."""
    return 17 * n_pixels <= LENS_TABLE_MB * 2**20 and n_pixels <= TABLE_PIXELS_PER_LENS * n_lenses


def pixel_centre_table(lens: tuple, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """lens_normalized_mask of every pixel centre of a width x height image, row-major: ([W H, 2], [W H])."""
    v, u = np.meshgrid(np.arange(height) + 0.5, np.arange(width) + 0.5, indexing="ij")
    return lens_normalized_mask(*lens[:4], np.stack([u.ravel(), v.ravel()], -1), lens[4])


@functools.lru_cache(maxsize=16)
def pixels_without_ray(lens: tuple, width: int, height: int) -> np.ndarray | None:
    """[W H] bool, row-major (read-only): the pixel centres of a width x height image outside the lens model's
    domain (a lens that folds inside the image leaves them without a ray), or None when there are none. The
    border, where a lens leaves its domain first, is checked before the whole image. Training (RayBatcher) and
    `nerfw eval` leave these pixels out."""
    if lens[4] is None or lens[4].is_identity:
        return None
    if not lens_normalized_mask(*lens[:4], border_pixels(width, height), lens[4])[1].any():
        return None
    outside = pixel_centre_table(lens, width, height)[1]
    outside.setflags(write=False)
    return outside


def outside_domain_message(n_pixels: int, n_images: int, what: str) -> str:
    return (f"{n_pixels} {what} of {n_images} image(s) lie outside their lens model's invertible domain (the "
            "distortion polynomial folds back there); their rays use the pinhole direction")


def border_pixels(width: int, height: int) -> np.ndarray:
    """Centres of the pixels on the image border [n, 2]: where a lens model leaves its domain first."""
    u, v = np.arange(width) + 0.5, np.arange(height) + 0.5
    return np.concatenate([np.stack([u, np.full_like(u, v[0])], -1), np.stack([u, np.full_like(u, v[-1])], -1),
                           np.stack([np.full_like(v, u[0]), v], -1), np.stack([np.full_like(v, u[-1]), v], -1)])
