"""Ray-traced rendering of the synthetic scene: 2x2 supersampled colour, pixel-centre depth, transient mask.

Rays follow ``nerfw.cameras.conventions``: OpenCV camera axes, pixel centres at +0.5, directions with
camera-z = 1 so the hit parameter t is the z-depth. Images are rendered in bands of rows; primitives
whose projection misses a band are culled before the (vectorised) intersection. With a lens distortion the
rays are ``conventions.camera_rays`` of the distorted image's pixels.
"""
from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import numpy as np

from nerfw.cameras.conventions import Distortion, camera_rays, invert_T
from nerfw.synthetic import geometry, materials

SUPERSAMPLE = 2  # 2x2 sub-pixel samples per pixel, box-averaged (anti-aliasing)
BAND_ROWS = 6  # output rows per band


def _band_uv(width: int, v0: int, v1: int, ss: int) -> tuple[np.ndarray, np.ndarray]:
    """Sub-pixel sample coordinates [(v1-v0)*ss, width*ss, 2] and pixel centres [(v1-v0), width, 2]."""
    off = (np.arange(ss) + 0.5) / ss
    us = (np.arange(width)[:, None] + off[None]).ravel()
    vs = (np.arange(v0, v1)[:, None] + off[None]).ravel()
    sub = np.stack(np.meshgrid(us, vs, indexing="xy"), -1)
    cen = np.stack(np.meshgrid(np.arange(width) + 0.5, np.arange(v0, v1) + 0.5, indexing="xy"), -1)
    return sub, cen


def _rays(uv: np.ndarray, fx, fy, cx, cy, T_local_cam: np.ndarray):
    """Camera rays (local frame) for pixel coordinates uv [N,2]; direction camera-z = 1."""
    d_cam = np.stack([(uv[:, 0] - cx) / fx, (uv[:, 1] - cy) / fy, np.ones(len(uv))], -1)
    d = (d_cam @ T_local_cam[:3, :3].T).astype(np.float32)
    o = np.broadcast_to(T_local_cam[:3, 3], d.shape).astype(np.float32)
    return o, d


def shade(prims: geometry.Primitives, mats: list[dict], hit: geometry.Hit, o, d, app: dict, sky: bool):
    """Display colour [N,3] in [0,1] of traced rays."""
    n = len(o)
    lin = np.zeros((n, 3), np.float32)
    ok = hit.kind >= 0
    if ok.any():
        p = o[ok] + hit.t[ok, None] * d[ok]
        lo_all, hi_all = prims.bounding_boxes()
        offsets = np.array([0, len(prims.box_lo), len(prims.box_lo) + len(prims.cyl)])
        flat = offsets[hit.kind[ok]] + hit.index[ok]
        alb = materials.albedo(mats, hit.material[ok], p, hit.normal[ok], lo_all[flat], hi_all[flat])
        lin[ok] = materials.shade_linear(alb, hit.normal[ok], app)
    if sky and (~ok).any():
        lin[~ok] = materials.sky_linear(d[~ok], app)
    return materials.to_display(lin, app)


def render_image(prims: geometry.Primitives, mats: list[dict], T_local_cam: np.ndarray,
                 fx: float, fy: float, cx: float, cy: float, width: int, height: int,
                 app: dict, sky: bool = True, ss: int = SUPERSAMPLE, distortion: Distortion | None = None) -> dict:
    """Render one view. T_local_cam [4,4] camera-to-local. Returns dict(
    rgb float32 [H,W,3] in [0,1] (ss x ss box-averaged), depth float32 [H,W] z-depth at pixel centres
    (inf on a miss), transient bool [H,W] (any sample or the centre sees a transient material),
    material int32 [H,W] (material index seen through the pixel centre, -1 for the sky)).

    distortion: the lens of the DISTORTED image to render (``conventions.Distortion``); every sample's ray is
    ``conventions.camera_rays`` of its pixel. A pixel outside the lens model's invertible domain raises
    ValueError (choose the coefficients so that the image corners stay inside it)."""
    if distortion is not None and not distortion.is_identity:
        return _render_image_lens(prims, mats, T_local_cam, fx, fy, cx, cy, width, height, app, sky, ss, distortion)
    transient_mat = np.array([bool(m.get("transient", False)) for m in mats] + [False])  # index -1 -> False
    visible, vmin, vmax = geometry.projected_row_ranges(prims, invert_T(T_local_cam), fx, fy, cx, cy, width, height)
    nb, nc = len(prims.box_lo), len(prims.cyl)
    rgb = np.zeros((height, width, 3), np.float32)
    depth = np.full((height, width), np.inf, np.float32)
    transient = np.zeros((height, width), bool)
    material = np.full((height, width), -1, np.int32)
    for v0 in range(0, height, BAND_ROWS):
        v1 = min(height, v0 + BAND_ROWS)
        keep = visible & (vmax >= v0 - 1) & (vmin <= v1 + 1)
        band = prims.subset(keep[:nb], keep[nb:nb + nc], keep[nb + nc:])
        sub, cen = _band_uv(width, v0, v1, ss)
        uv = np.concatenate([sub.reshape(-1, 2), cen.reshape(-1, 2)])
        o, d = _rays(uv, fx, fy, cx, cy, T_local_cam)
        hit = geometry.trace(band, o, d)
        n_sub = sub.shape[0] * sub.shape[1]
        tr = transient_mat[hit.material]
        hs = geometry.Hit(hit.t[:n_sub], hit.normal[:n_sub], hit.material[:n_sub], hit.kind[:n_sub], hit.index[:n_sub])
        col = shade(band, mats, hs, o[:n_sub], d[:n_sub], app, sky)  # [n_sub, 3]
        rows = v1 - v0
        rgb[v0:v1] = col.reshape(rows, ss, width, ss, 3).mean(axis=(1, 3))
        depth[v0:v1] = hit.t[n_sub:].reshape(rows, width)
        transient[v0:v1] = tr[:n_sub].reshape(rows, ss, width, ss).any(axis=(1, 3)) | tr[n_sub:].reshape(rows, width)
        material[v0:v1] = hit.material[n_sub:].reshape(rows, width)
    return {"rgb": rgb, "depth": depth, "transient": transient, "material": material}


def _render_image_lens(prims, mats, T_local_cam, fx, fy, cx, cy, width, height, app, sky, ss, distortion):
    """`render_image` through a distorted lens. Culling compares each band's rays in PINHOLE pixel coordinates
    (the undistorted ones, which span more than the image for barrel distortion) with each primitive's
    pinhole bounding box, so it stays conservative."""
    transient_mat = np.array([bool(m.get("transient", False)) for m in mats] + [False])
    behind, straddle, umin, umax, vmin, vmax = geometry.projected_boxes(prims, invert_T(T_local_cam), fx, fy, cx, cy)
    nb, nc = len(prims.box_lo), len(prims.cyl)
    R = T_local_cam[:3, :3]
    rgb = np.zeros((height, width, 3), np.float32)
    depth = np.full((height, width), np.inf, np.float32)
    transient = np.zeros((height, width), bool)
    material = np.full((height, width), -1, np.int32)
    for v0 in range(0, height, BAND_ROWS):
        v1 = min(height, v0 + BAND_ROWS)
        sub, cen = _band_uv(width, v0, v1, ss)
        uv = np.concatenate([sub.reshape(-1, 2), cen.reshape(-1, 2)])
        o64, d64 = camera_rays(fx, fy, cx, cy, T_local_cam, uv, distortion)  # d has camera z = 1
        if not np.isfinite(d64).all():
            raise ValueError(f"lens {distortion} has no ray for some pixels of rows {v0}..{v1 - 1} "
                             f"(outside its invertible domain); choose milder coefficients or a longer focal")
        xy = (d64 @ R)[:, :2]  # undistorted normalised coordinates of every sample
        pu, pv = xy[:, 0] * fx + cx, xy[:, 1] * fy + cy
        keep = ~behind & (straddle | ((umax >= pu.min() - 1) & (umin <= pu.max() + 1)
                                      & (vmax >= pv.min() - 1) & (vmin <= pv.max() + 1)))
        band = prims.subset(keep[:nb], keep[nb:nb + nc], keep[nb + nc:])
        o, d = o64.astype(np.float32), d64.astype(np.float32)
        hit = geometry.trace(band, o, d)
        n_sub = sub.shape[0] * sub.shape[1]
        tr = transient_mat[hit.material]
        hs = geometry.Hit(hit.t[:n_sub], hit.normal[:n_sub], hit.material[:n_sub], hit.kind[:n_sub], hit.index[:n_sub])
        col = shade(band, mats, hs, o[:n_sub], d[:n_sub], app, sky)
        rows = v1 - v0
        rgb[v0:v1] = col.reshape(rows, ss, width, ss, 3).mean(axis=(1, 3))
        depth[v0:v1] = hit.t[n_sub:].reshape(rows, width)
        transient[v0:v1] = tr[:n_sub].reshape(rows, ss, width, ss).any(axis=(1, 3)) | tr[n_sub:].reshape(rows, width)
        material[v0:v1] = hit.material[n_sub:].reshape(rows, width)
    return {"rgb": rgb, "depth": depth, "transient": transient, "material": material}


def to_uint8(rgb: np.ndarray) -> np.ndarray:
    """float [H,W,3] in [0,1] -> uint8 (round to nearest)."""
    return np.round(np.clip(rgb, 0, 1) * 255.0).astype(np.uint8)


def run_jobs(render_job, jobs: list[dict], workers: int) -> list:
    """[render_job(job) for job in jobs], in `workers` forked processes when there are several (results in order)."""
    if workers <= 1 or len(jobs) <= 1:
        return [render_job(j) for j in jobs]
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("fork")) as pool:
        return list(pool.map(render_job, jobs, chunksize=1))
