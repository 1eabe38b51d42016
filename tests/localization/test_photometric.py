"""Photometric pose refinement (nerfw.localization.photometric) against exact renders of a textured scene."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from nerfw.cameras.conventions import Distortion, axis_angle_to_rotmat, invert_T, make_T, rotation_angle
from nerfw.localization.photometric import AlignParams, align, depth_edges, se3_exp, undistort_image

W, H = 160, 120
K = (150.0, 150.0, 80.0, 60.0)


def texture(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """A colour texture on the scene's surfaces: smooth shading plus detail with periods of 6-10 pixels (as the
    windows and paving of a real scene; no aliasing at this resolution)."""
    r = 0.5 + 0.25 * np.sin(2.1 * X + 0.3) * np.cos(1.7 * Y) + 0.15 * np.sin(5.3 * X - 3.1 * Y) \
        + 0.1 * np.sin(17.0 * X) * np.sin(13.0 * Y)
    g = 0.5 + 0.3 * np.cos(1.3 * X - 2.2 * Y + 1.0) + 0.1 * np.cos(19.0 * Y - 7.0 * X)
    b = 0.4 + 0.2 * np.sin(3.7 * Y + 0.5) + 0.1 * np.cos(4.1 * X)
    return np.stack([r, g, b], -1)


def render_scene(T_world_cam: np.ndarray, K=K, size=(W, H)):
    """Exact render of two textured planes (a wall z = 6 with a box-like step z = 4.5 in one quadrant) seen by a
    pinhole camera: (rgb [H, W, 3], z-depth [H, W])."""
    fx, fy, cx, cy = K
    w, h = size
    u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    d_cam = np.stack([(u - cx) / fx, (v - cy) / fy, np.ones_like(u)], -1)
    d = d_cam @ T_world_cam[:3, :3].T
    o = T_world_cam[:3, 3]
    best_t = np.full(u.shape, np.inf)
    rgb = np.zeros((h, w, 3))
    for plane_z, region in ((6.0, lambda X, Y: np.ones_like(X, bool)), (4.5, lambda X, Y: (X > 0.3) & (Y < -0.2))):
        t = (plane_z - o[2]) / d[..., 2]
        X, Y = o[0] + t * d[..., 0], o[1] + t * d[..., 1]
        hit = (t > 0) & region(X, Y) & (t < best_t)
        best_t = np.where(hit, t, best_t)
        rgb = np.where(hit[..., None], texture(X + plane_z, Y), rgb)
    # t along d with d's camera z = 1 is the z-depth
    return rgb, best_t


def test_se3_exp_matches_rotation_and_small_translation():
    xi = np.array([0.1, -0.2, 0.3, 0.02, -0.01, 0.03])
    T = se3_exp(xi)
    np.testing.assert_allclose(T[:3, :3], axis_angle_to_rotmat(xi[3:]), atol=1e-12)
    np.testing.assert_allclose(se3_exp(np.zeros(6)), np.eye(4))
    # a pure translation twist moves by exactly v
    np.testing.assert_allclose(se3_exp(np.array([1.0, 2.0, 3.0, 0, 0, 0]))[:3, 3], [1, 2, 3])


@pytest.mark.parametrize("gain,normalize", [(1.0, 2.0), (0.7, 2.0), (0.7, 0.0)])
def test_align_recovers_a_known_offset(gain, normalize):
    """The render at a wrong pose (1.5 px, 0.6 deg off) and the query photo at the true pose: alignment recovers the
    true relative pose to a small fraction of a pixel, also under a different exposure (gain / offset)."""
    T_render = np.eye(4)
    R = axis_angle_to_rotmat(np.radians([0.3, -0.5, 0.2]))
    T_true = make_T(R, np.array([0.04, -0.03, 0.05]))  # query pose in the world (= in the render camera)
    query, _ = render_scene(T_true)
    query = gain * query + 0.05
    render, depth = render_scene(T_render)
    res = align(query, render, depth, np.isfinite(depth), K, AlignParams(normalize_sigma=normalize))
    assert res is not None
    T_qr_true = invert_T(T_true) @ T_render
    err_t = np.linalg.norm(res.T_qr[:3, 3] - T_qr_true[:3, 3])
    err_r = np.degrees(rotation_angle(res.T_qr[:3, :3] @ T_qr_true[:3, :3].T))
    assert err_t < 0.004 and err_r < 0.03, (err_t, err_r)  # started 0.07 / 0.6 deg off
    assert res.cost_after < 0.3 * res.cost_before


def test_depth_edges_marks_occlusions_not_slanted_planes():
    """The box's outline and the pixels without a surface are edges; the wall and a ground plane seen at a grazing
    angle (depth changing fast, but smoothly) are not."""
    _, depth = render_scene(np.eye(4))
    edges = depth_edges(depth, 0.15)
    fx, fy, cx, cy = K
    u, v = np.meshgrid(np.arange(W) + 0.5, np.arange(H) + 0.5)
    box = np.isclose(depth, 4.5)
    # the box's outline inside the frame and the wall pixels next to it
    outline = box & ~ndimage.binary_erosion(box, border_value=1)
    near_outline = ndimage.binary_dilation(outline, iterations=2)
    assert edges[outline].mean() > 0.9
    assert edges[~near_outline].mean() < 0.01
    # a ground plane y = 1.5 below the camera: depth 1.5 / ((v - cy) / fy) in the lower half, grazing near cy
    ground = np.where(v > cy + 2, 1.5 * fy / np.maximum(v - cy, 1e-9), np.inf)
    g_edges = depth_edges(ground, 0.15)
    # the 3x3 window's inverse depths differ by 2 / (v - cy + 1): only rows near the horizon count as edges
    assert not g_edges[v > cy + 15].any()
    assert g_edges[~np.isfinite(ground)].all()


def test_align_rejects_a_textureless_render():
    flat = np.full((H, W, 3), 0.5)
    assert align(flat, flat, np.full((H, W), 5.0), np.zeros((H, W), bool), K) is None


def test_undistort_image_inverts_the_lens():
    """A photo rendered through a radial lens, undistorted, equals the pinhole render (inside the frame)."""
    dist = Distortion("opencv", [-0.12, 0.02])
    fx, fy, cx, cy = K
    pin, _ = render_scene(np.eye(4))
    # the distorted photo: each photo pixel sees the undistorted direction of its pixel centre
    from nerfw.cameras.conventions import pixels_to_normalized

    u, v = np.meshgrid(np.arange(W) + 0.5, np.arange(H) + 0.5)
    xy = pixels_to_normalized(fx, fy, cx, cy, np.stack([u.ravel(), v.ravel()], -1), dist)
    uv_pin = xy * [fx, fy] + [cx, cy]
    from nerfw.localization.photometric import _sample

    photo = np.stack([_sample(pin[..., c], uv_pin) for c in range(3)], -1).reshape(H, W, 3)
    back = undistort_image(photo, fx, fy, cx, cy, dist)
    inner = (slice(15, H - 15), slice(20, W - 20))
    ok = np.isfinite(back[inner]).all(-1)
    assert ok.mean() > 0.95
    err = np.abs(back[inner][ok] - pin[inner][ok])
    assert err.mean() < 0.005 and np.percentile(err, 99) < 0.03  # bilinear twice; the step's edge blurs a little
    # without the undistortion the photo is visibly off the pinhole render
    assert np.abs(photo[inner] - pin[inner])[ok].mean() > 3 * err.mean()


def test_match_support_rejects_a_move_that_many_precise_matches_contradict():
    """The chi-square guard: 3,000 matches with 0.3 px noise pin a pose (a 5 mm move at 5 units, 0.5 px, adds
    ~2.8 per match: ~8,000 in all); 30 matches with 3 px noise let a 2 cm move (2 px) pass."""
    from types import SimpleNamespace

    from nerfw.cameras.conventions import intrinsics_matrix, project_points
    from nerfw.localization.localize import LocalizeParams, MatchSupport

    rng = np.random.default_rng(0)
    cam = SimpleNamespace(fx=500.0, fy=500.0, cx=320.0, cy=240.0)
    T = np.eye(4)

    def matches(n, noise_px):
        xyz = np.column_stack([rng.uniform(-2, 2, n), rng.uniform(-1.5, 1.5, n), rng.uniform(4, 6, n)])
        uv, _ = project_points(intrinsics_matrix(500.0, 500.0, 320.0, 240.0), T, xyz)
        return uv + rng.normal(0, noise_px, uv.shape), xyz

    precise = MatchSupport(T, *matches(3000, 0.3), cam, floor_px=0.05)
    noisy = MatchSupport(T, *matches(30, 3.0), cam, floor_px=0.05)
    assert precise.sigma == pytest.approx(0.3, rel=0.1) and noisy.sigma == pytest.approx(3.0, rel=0.5)
    moved = make_T(np.eye(3), np.array([0.005, 0.0, 0.0]))
    assert precise.chi2_growth(T) == pytest.approx(0.0)
    assert precise.chi2_growth(moved) > LocalizeParams().photometric_max_chi2
    assert noisy.chi2_growth(make_T(np.eye(3), np.array([0.02, 0.0, 0.0]))) < 16.81
