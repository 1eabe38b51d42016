"""Photometric pose refinement: direct alignment of the query photo to the model's RGB-D render.

The SIFT pose is limited by keypoint precision (about a pixel of the feature image: 0.4 deg at 160 px). This stage
aligns every rendered pixel instead. The model renders the static scene (RGB, median depth, opacity) at the
current estimate; each rendered pixel p with a surface behind it is a 3-D point X_p in that render camera. The
pose of the query relative to the render camera, T_qr = exp(xi) (rotation R, translation t), minimises

    E(xi) = sum_p rho( I_q(pi(R X_p + t)) - (g_c * I_r(p) + b_c) )

over the pixels and colour channels c: I_q the query photo (undistorted through its lens to the render's pinhole
camera), I_r the render, g_c / b_c a per-channel gain and offset (re-fitted each iteration: the query's lighting
is not the render's appearance), rho Huber's loss. Gauss-Newton with analytic Jacobians (image gradient times
the projection's derivative times the SE(3) generators), on a blur pyramid (sigma 4, 2, 1, 0 px: a wide basin
first, full precision last). The render is then redone at the new estimate and aligned again.

This is the objective of iNeRF (Yen-Chen et al. 2021, Eq. 2) linearised around one render per round: the render's
geometry is held fixed while the pose moves, so each round costs one forward render instead of a backward pass
through the field per iteration (which would not fit the 3 s per query on a CPU). Classic direct image alignment
(Lucas-Kanade with depth, as in dense visual odometry) is the same solver.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from nerfw.cameras.conventions import make_T, normalized_to_pixels

# local normalisation: variance floor, a local contrast of 0.03 (8 grey levels): below it (flat or noisy regions)
# the image is only high-passed, not amplified (measured on the built-in scene: docs/localization.md)
NORMALIZE_EPS = 1e-3


@dataclass
class AlignParams:
    blur_sigmas: tuple[float, ...] = (4.0, 2.0, 1.0, 0.0)  # pyramid, pixels of the render (coarse to fine)
    iterations: int = 12  # Gauss-Newton iterations per pyramid level at most
    huber: float = 1.345  # Huber threshold in robust standard deviations (95 % efficiency)
    min_points: int = 200  # fewer usable rendered pixels: no alignment
    max_step_px: float = 6.0  # a total motion of the image centre beyond this many pixels: rejected
    normalize_sigma: float = 2.0  # both images locally contrast-normalised (Gaussian window, pixels; 0: off)
    max_points: int = 6000  # rendered pixels used at most: those with the strongest (normalised) image gradient
    max_depth_jump: float = 0.15  # depth edge: neighbouring inverse depths this far apart (share; depth_edges)
    converged_px: float = 0.005  # an update that moves the image by less than this (pixels) ends a level


@dataclass
class AlignResult:
    T_qr: np.ndarray  # [4, 4] render-camera coordinates -> query-camera coordinates
    cost_before: float  # robust RMS photometric residual at the identity (finest level)
    cost_after: float
    points: int
    iterations: int


def _hat(w: np.ndarray) -> np.ndarray:
    return np.array([[0.0, -w[2], w[1]], [w[2], 0.0, -w[0]], [-w[1], w[0], 0.0]])


def se3_exp(xi: np.ndarray) -> np.ndarray:
    """exp of a twist xi = (v, w) [6] (translation part first) as a 4x4 transform (Rodrigues + the V matrix)."""
    v, w = np.asarray(xi[:3], float), np.asarray(xi[3:], float)
    theta = float(np.linalg.norm(w))
    W = _hat(w)
    if theta < 1e-9:
        R, V = np.eye(3) + W, np.eye(3) + 0.5 * W
    else:
        a, b = np.sin(theta) / theta, (1 - np.cos(theta)) / theta ** 2
        c = (1 - a) / theta ** 2
        R = np.eye(3) + a * W + b * W @ W
        V = np.eye(3) + b * W + c * W @ W
    return make_T(R, V @ v)


def undistort_image(image: np.ndarray, fx: float, fy: float, cx: float, cy: float, distortion) -> np.ndarray:
    """The photo [H, W, C] resampled to the pinhole camera of the same intrinsics (bilinear; NaN outside)."""
    if distortion is None or distortion.is_identity:
        return image
    h, w = image.shape[:2]
    u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    xy = np.stack([(u.ravel() - cx) / fx, (v.ravel() - cy) / fy], -1)
    src = normalized_to_pixels(fx, fy, cx, cy, xy, distortion)  # where the pinhole pixel lies in the photo
    out = np.stack([_sample(image[..., c], src) for c in range(image.shape[2])], -1)
    return out.reshape(h, w, -1)


def _sample(channel: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Bilinear samples of one channel [H, W] at continuous pixels uv [N, 2] (centres at +0.5); NaN outside."""
    coords = np.stack([uv[:, 1] - 0.5, uv[:, 0] - 0.5])  # (row, column) of pixel centres
    vals = ndimage.map_coordinates(channel, coords, order=1, mode="nearest")
    h, w = channel.shape
    inside = (uv[:, 0] >= 0.5) & (uv[:, 0] <= w - 0.5) & (uv[:, 1] >= 0.5) & (uv[:, 1] <= h - 0.5)
    return np.where(inside, vals, np.nan)


def _blurred(image: np.ndarray, sigma: float) -> np.ndarray:
    if sigma <= 0:
        return image
    return np.stack([ndimage.gaussian_filter(image[..., c], sigma, mode="nearest") for c in range(image.shape[2])],
                    -1)


def _local_normalized(image: np.ndarray, sigma: float) -> np.ndarray:
    """(I - local mean) / local standard deviation per channel (Gaussian window): lighting-invariant texture."""
    if sigma <= 0:
        return image
    mean = _blurred(image, sigma)
    var = _blurred((image - mean) ** 2, sigma)
    return (image - mean) / np.sqrt(var + NORMALIZE_EPS)


def _prepared(image: np.ndarray, sigma: float, normalize: float) -> np.ndarray:
    return _local_normalized(_blurred(image, sigma), normalize)


class _Level:
    """The query's blurred channels and their image gradients (central differences) at one pyramid level."""

    def __init__(self, query: np.ndarray, sigma: float, normalize: float = 0.0):
        q = _prepared(np.nan_to_num(query, nan=0.0), sigma, normalize)
        self.channels = [q[..., c] for c in range(q.shape[2])]
        self.grads = [(np.gradient(ch, axis=1), np.gradient(ch, axis=0)) for ch in self.channels]
        # a pixel whose filters reach outside the photo (or the lens's domain) is not comparable
        valid = np.isfinite(query).all(-1).astype(np.float64)
        self.valid = ndimage.minimum_filter(valid, size=2 * _support(sigma, normalize) + 1, mode="constant", cval=0.0)


def _support(sigma: float, normalize: float) -> int:
    """Pixels within which the blur and the local normalisation see an image's border."""
    return 1 + int(np.ceil(2 * sigma + 2 * normalize))


def depth_edges(depth: np.ndarray, max_jump: float) -> np.ndarray:
    """Pixels [H, W] at an occlusion edge or without a surface (depth inf): where the inverse depths of the 3x3
    neighbourhood differ by more than ``max_jump`` times their largest value. Adjacent pixels of one smooth surface
    differ by a few per cent even at grazing angles (and the model's median depth steps by about that much)."""
    inv = np.where(np.isfinite(depth) & (depth > 0), 1.0 / np.where(depth > 0, depth, 1.0), 0.0)
    hi = ndimage.maximum_filter(inv, size=3, mode="nearest")
    lo = ndimage.minimum_filter(inv, size=3, mode="nearest")
    return (inv <= 0) | (hi - lo > max_jump * hi)


def _reference(render: np.ndarray, on_edge: np.ndarray, v: np.ndarray, u: np.ndarray, sigma: float,
               normalize: float) -> np.ndarray:
    """The prepared render at its pixels (v, u) [N, C]; NaN where the filters' support reaches the render's border
    or the pixel is on a depth edge (``on_edge`` [N]: parallax moves the two sides of an edge apart, so the filtered
    values there do not warp with one pose)."""
    h, w = render.shape[:2]
    r = _support(sigma, normalize)
    ref = _prepared(render, sigma, normalize)[v, u]
    inner = (u >= r) & (u < w - r) & (v >= r) & (v < h - r) & ~on_edge
    return np.where(inner[:, None], ref, np.nan)


def _residuals(level: _Level, ref: np.ndarray, X: np.ndarray, T: np.ndarray, K: tuple, jacobian: bool):
    """Residuals [M] (pixels x channels, gain/offset fitted), their Jacobian [M, 6] and the usable-point mask."""
    fx, fy, cx, cy = K
    Xq = X @ T[:3, :3].T + T[:3, 3]
    z = Xq[:, 2]
    ok = z > 1e-6
    zs = np.where(ok, z, 1.0)
    uv = np.stack([fx * Xq[:, 0] / zs + cx, fy * Xq[:, 1] / zs + cy], -1)
    ok &= _sample(level.valid, uv) > 0.5
    vals = np.stack([_sample(ch, uv) for ch in level.channels], -1)  # [N, C]
    ok &= np.isfinite(vals).all(-1) & np.isfinite(ref).all(-1)
    res, jac = [], []
    for c in range(vals.shape[1]):
        A = np.stack([ref[ok, c], np.ones(int(ok.sum()))], -1)
        gain, offset = np.linalg.lstsq(A, vals[ok, c], rcond=None)[0]
        res.append(vals[ok, c] - (gain * ref[ok, c] + offset))
        if jacobian:
            gu, gv = (_sample(g, uv[ok]) for g in level.grads[c])
            jac.append(_point_jacobian(Xq[ok], gu, gv, fx, fy))
    r = np.concatenate(res)
    return r, (np.concatenate(jac) if jacobian else None), ok


def _point_jacobian(Xq: np.ndarray, gu: np.ndarray, gv: np.ndarray, fx: float, fy: float) -> np.ndarray:
    """d I_q(pi(exp(xi) X)) / d xi at xi = 0 (left perturbation, xi = (v, w)): [N, 6]."""
    x, y, z = Xq[:, 0], Xq[:, 1], Xq[:, 2]
    iz = 1.0 / z
    # d pixel / d Xq
    du = np.stack([fx * iz, np.zeros_like(z), -fx * x * iz * iz], -1)
    dv = np.stack([np.zeros_like(z), fy * iz, -fy * y * iz * iz], -1)
    g = gu[:, None] * du + gv[:, None] * dv  # [N, 3] dI / dXq
    # dXq / dxi = [I | -[Xq]x]  ->  dI/dw = Xq x g
    return np.concatenate([g, np.cross(Xq, g)], -1)


def _robust_rms(r: np.ndarray, scale: float, k: float) -> float:
    a = np.abs(r) / scale
    rho = np.where(a <= k, 0.5 * a * a, k * a - 0.5 * k * k)
    return float(scale * np.sqrt(2 * rho.mean()))


def _select_points(render: np.ndarray, surface: np.ndarray, p: AlignParams) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns (v, u) of the rendered pixels to align: those with a surface, at most ``max_points`` of the
    most textured (the strongest gradient of the normalised render; flat pixels only add cost)."""
    v, u = np.nonzero(surface)
    if len(u) > p.max_points:
        grey = _prepared(render, 1.0, p.normalize_sigma).mean(-1)
        strength = np.hypot(*np.gradient(grey))[v, u]
        keep = np.argpartition(-strength, p.max_points)[:p.max_points]
        v, u = v[keep], u[keep]
    return v, u


def _gauss_newton(level: _Level, ref: np.ndarray, X: np.ndarray, T: np.ndarray, K: tuple, p: AlignParams,
                  z_median: float) -> tuple[np.ndarray | None, int]:
    """Huber-weighted Gauss-Newton on one pyramid level from pose T: (the pose or None, iterations run)."""
    focal = max(K[0], K[1])
    for it in range(p.iterations):
        r, J, ok = _residuals(level, ref, X, T, K, jacobian=True)
        if ok.sum() < p.min_points:
            return None, it
        scale = max(1.4826 * float(np.median(np.abs(r))), 1e-4)  # robust standard deviation (MAD)
        a = np.abs(r) / scale
        wts = np.where(a <= p.huber, 1.0, p.huber / np.maximum(a, 1e-12))
        H = (J * wts[:, None]).T @ J
        g = (J * wts[:, None]).T @ r
        step = np.linalg.solve(H + 1e-6 * np.trace(H) / 6 * np.eye(6), -g)
        T = se3_exp(step) @ T
        moved = (np.linalg.norm(step[:3]) / z_median + np.linalg.norm(step[3:])) * focal  # pixels, roughly
        if moved < p.converged_px:
            return T, it + 1
    return T, p.iterations


def align(query: np.ndarray, render: np.ndarray, depth: np.ndarray, valid: np.ndarray, K: tuple,
          params: AlignParams | None = None) -> AlignResult | None:
    """Pose of the query camera relative to the render camera (same pinhole intrinsics K = (fx, fy, cx, cy), same
    size): query / render [H, W, C] in [0, 1] (NaN where the undistorted query has no data), depth [H, W] z-depth
    of the render, valid [H, W] rendered pixels that have a surface. None when too few pixels are usable or the
    result jumped more than ``max_step_px``."""
    p = params or AlignParams()
    fx, fy, cx, cy = K
    surface = valid & np.isfinite(depth) & (depth > 0)
    if surface.sum() < p.min_points:
        return None
    v, u = _select_points(render, surface, p)
    depth = np.where(surface, depth, np.inf)  # no surface: a depth edge to every neighbour
    z = depth[v, u]
    X = np.stack([(u + 0.5 - cx) / fx * z, (v + 0.5 - cy) / fy * z, z], -1)  # points in the render camera
    on_edge = depth_edges(depth, p.max_depth_jump)[v, u]
    T, iterations = np.eye(4), 0
    for sigma in p.blur_sigmas:
        ref = _reference(render, on_edge, v, u, sigma, p.normalize_sigma)
        T, its = _gauss_newton(_Level(query, sigma, p.normalize_sigma), ref, X, T, K, p, float(np.median(z)))
        iterations += its
        if T is None:
            return None
    level = _Level(query, 0.0, p.normalize_sigma)
    ref = _reference(render, on_edge, v, u, 0.0, p.normalize_sigma)
    r0, _, _ = _residuals(level, ref, X, np.eye(4), K, jacobian=False)
    r1, _, ok = _residuals(level, ref, X, T, K, jacobian=False)
    scale = max(1.4826 * float(np.median(np.abs(r0))), 1e-4)
    cost_before, cost_after = _robust_rms(r0, scale, p.huber), _robust_rms(r1, scale, p.huber)
    # how far the principal point's ray moved, in pixels: a jump this large is a wrong basin, not a refinement
    centre = T[:3, :3] @ np.array([0.0, 0.0, float(np.median(z))]) + T[:3, 3]
    shift = np.hypot(fx * centre[0] / centre[2], fy * centre[1] / centre[2])
    if not np.isfinite(T).all() or shift > p.max_step_px:
        return None
    return AlignResult(T, cost_before, cost_after, int(ok.sum()), iterations)
