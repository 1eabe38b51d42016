"""Lens distortion end to end: the models against COLMAP (pycolmap, an independent implementation), a projection
worked out by hand, the distort/undistort round trip, every parser that reads a lens, the training rays, export
round trips and `nerfw render`'s pinhole default."""
from __future__ import annotations

import json
import shutil
import types
import warnings
from pathlib import Path

import numpy as np
import pycolmap
import pytest
import torch
from hypothesis import assume, given, settings, strategies as st
from PIL import Image

from nerfw.cameras import conventions as cv
from nerfw.cameras.conventions import Distortion
from nerfw.data.export import write_transforms
from nerfw.data.loader import load_scene
from nerfw.data.parsers import colmap
from nerfw.data.scene import CameraView, Normalization, SceneData
from nerfw.training.ray_batches import CameraTable, RayBatcher

from helpers import REALDATA, needs_realdata
W, H = 1920, 1080

# COLMAP cameras with realistic parameters (PARAMS in COLMAP's order; see colmap.CAMERA_MODELS).
COLMAP_CAMERAS = {
    "SIMPLE_RADIAL": [1500.0, 961.3, 538.2, -0.083],
    "RADIAL": [1420.0, 955.0, 545.0, 0.051, -0.021],
    "OPENCV": [1450.0, 1441.0, 950.5, 531.0, -0.105, 0.032, 0.0011, -0.00052],
    "FULL_OPENCV": [1450.0, 1441.0, 950.5, 531.0, -0.21, 0.045, 0.0011, -0.00052, 0.004, 0.12, -0.011, 0.002],
    "OPENCV_FISHEYE": [900.0, 903.0, 962.0, 541.0, 0.052, -0.011, 0.0031, -0.0006],
    "SIMPLE_RADIAL_FISHEYE": [880.0, 960.0, 540.0, 0.04],
    "RADIAL_FISHEYE": [880.0, 960.0, 540.0, 0.04, -0.006],
}


def nerfw_camera(model: str, params: list[float]):
    """(fx, fy, cx, cy), Distortion of a COLMAP camera, through nerfw's COLMAP parser."""
    cam = colmap.ColmapCamera(1, model, W, H, np.asarray(params))
    return cam.pinhole(Path("cameras.txt")), cam.distortion()


def random_pixels(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    uv = np.stack([rng.uniform(0, W, n), rng.uniform(0, H, n)], axis=-1)
    corners = np.array([[0.0, 0.0], [W, 0.0], [0.0, H], [W, H], [0.5, 0.5], [W - 0.5, H - 0.5]])
    return np.concatenate([uv, corners])


# ----------------------------------------------------------------------------- against pycolmap
@pytest.mark.parametrize("model", sorted(COLMAP_CAMERAS))
def test_unprojection_and_projection_match_pycolmap(model):
    params = COLMAP_CAMERAS[model]
    (fx, fy, cx, cy), distortion = nerfw_camera(model, params)
    assert distortion is not None
    ref = pycolmap.Camera(model=model, width=W, height=H, params=params)
    uv = random_pixels(400)
    # pixel -> normalised (undistorted) coordinates; COLMAP's pixel convention is nerfw's (centre at +0.5)
    ours = cv.pixels_to_normalized(fx, fy, cx, cy, uv, distortion)
    theirs = ref.cam_from_img(uv)
    assert np.all(np.isfinite(ours))
    np.testing.assert_allclose(ours, theirs, atol=1e-6, rtol=0)
    # normalised -> pixel (projection through the lens)
    rng = np.random.default_rng(1)
    xy = ours + rng.normal(0, 0.01, ours.shape)
    X_cam = np.concatenate([xy, np.ones((len(xy), 1))], -1) * rng.uniform(0.5, 20, (len(xy), 1))
    np.testing.assert_allclose(cv.normalized_to_pixels(fx, fy, cx, cy, xy, distortion), ref.img_from_cam(X_cam),
                               atol=1e-6, rtol=0)


@pytest.mark.parametrize("model", sorted(COLMAP_CAMERAS))
def test_pixel_ray_projection_round_trip(model):
    (fx, fy, cx, cy), distortion = nerfw_camera(model, COLMAP_CAMERAS[model])
    T = cv.make_T(cv.axis_angle_to_rotmat([0.3, -0.2, 0.1]), [1.0, -2.0, 0.5])
    uv = random_pixels(300, seed=2)
    o, d = cv.camera_rays(fx, fy, cx, cy, T, uv, distortion)
    t = np.random.default_rng(3).uniform(0.2, 50, (len(uv), 1))  # z-depths
    back, z = cv.project_points(cv.intrinsics_matrix(fx, fy, cx, cy), T, o + t * d, distortion)
    np.testing.assert_allclose(back, uv, atol=1e-6, rtol=0)
    np.testing.assert_allclose(z, t[:, 0], rtol=1e-9)


# ----------------------------------------------------------------------------- by hand
def test_simple_radial_projection_by_hand():
    """SIMPLE_RADIAL f=100, cx=50, cy=40, k=0.1; camera-frame point X = (0.4, 0.2, 2.0):
    x = 0.4 / 2 = 0.2, y = 0.2 / 2 = 0.1, r^2 = 0.04 + 0.01 = 0.05, radial factor 1 + k r^2 = 1.005,
    distorted (0.201, 0.1005), pixel u = 100 * 0.201 + 50 = 70.1, v = 100 * 0.1005 + 40 = 50.05, z = 2."""
    camera = colmap.ColmapCamera(1, "SIMPLE_RADIAL", 100, 80, np.array([100.0, 50.0, 40.0, 0.1]))
    (fx, fy, cx, cy), distortion = camera.pinhole(Path("cameras.txt")), camera.distortion()
    assert (fx, fy, cx, cy) == (100, 100, 50, 40) and distortion == Distortion("opencv", [0.1])
    uv, z = cv.project_points(cv.intrinsics_matrix(fx, fy, cx, cy), np.eye(4), np.array([[0.4, 0.2, 2.0]]),
                              distortion)
    np.testing.assert_allclose(uv, [[70.1, 50.05]], atol=1e-12)
    assert z[0] == 2.0
    # and back: the ray through (70.1, 50.05) passes through X
    _, d = cv.camera_rays(fx, fy, cx, cy, np.eye(4), uv, distortion)
    np.testing.assert_allclose(d * 2.0, [[0.4, 0.2, 2.0]], atol=1e-12)


# ----------------------------------------------------------------------------- round trip in the domain
def _monotonic_radius(poly_derivative, r_max: float) -> bool:
    s = np.linspace(0, r_max, 200)
    return bool(np.all(poly_derivative(s) > 0.2))


@settings(max_examples=150, deadline=None)
@given(k1=st.floats(-0.3, 0.3), k2=st.floats(-0.1, 0.1), p1=st.floats(-0.005, 0.005), p2=st.floats(-0.005, 0.005),
       k3=st.floats(-0.02, 0.02), x=st.floats(-0.8, 0.8), y=st.floats(-0.8, 0.8))
def test_opencv_distort_undistort_round_trip(k1, k2, p1, p2, k3, x, y):
    r = float(np.hypot(x, y))
    # valid domain: the radial map r -> r (1 + k1 r^2 + k2 r^4 + k3 r^6) still increases out to this radius
    assume(_monotonic_radius(lambda s: 1 + 3 * k1 * s**2 + 5 * k2 * s**4 + 7 * k3 * s**6, r * 1.05))
    d = Distortion("opencv", [k1, k2, p1, p2, k3])
    xy = np.array([[x, y]])
    np.testing.assert_allclose(cv.undistort(d, cv.distort(d, xy)), xy, atol=1e-9)


@settings(max_examples=100, deadline=None)
@given(k=st.lists(st.floats(-0.05, 0.05), min_size=4, max_size=4), theta=st.floats(0.0, 1.2),
       phi=st.floats(0, 2 * np.pi))
def test_fisheye_distort_undistort_round_trip(k, theta, phi):
    k1, k2, k3, k4 = k
    assume(_monotonic_radius(lambda t: 1 + 3 * k1 * t**2 + 5 * k2 * t**4 + 7 * k3 * t**6 + 9 * k4 * t**8, theta))
    d = Distortion("fisheye", k)
    xy = np.tan(theta) * np.array([[np.cos(phi), np.sin(phi)]])
    np.testing.assert_allclose(cv.undistort(d, cv.distort(d, xy)), xy, atol=1e-9 * max(1.0, np.tan(theta) ** 2))


@settings(max_examples=100, deadline=None)
@given(r=st.floats(-0.2, 0.2), x=st.floats(-1, 1), y=st.floats(-1, 1))
def test_nvm_distort_undistort_round_trip(r, x, y):
    # distorted radius rd solves rd (1 + r rd^2) = |xy|; for r < 0 the left side peaks at (2/3) / sqrt(-3 r)
    if r < 0:
        assume(np.hypot(x, y) < 0.9 * (2 / 3) / np.sqrt(-3 * r))
    d = Distortion("nvm", [r])
    xy = np.array([[x, y]])
    np.testing.assert_allclose(cv.undistort(d, cv.distort(d, xy)), xy, atol=1e-9)


FOLDED = [  # (lens, distorted points: the first inside the invertible domain, the others beyond it)
    (Distortion("opencv", [-0.6]), [[0.3, 0.0], [0.6, 0.0], [0.5, 0.5]]),  # r (1 - 0.6 r^2) peaks at 0.497
    (Distortion("fisheye", [-0.3]), [[0.5, 0.0], [0.8, 0.0], [0.0, 1.0]]),  # theta (1 - 0.3 theta^2) peaks at 0.703
    (Distortion("nvm", [-0.3]), [[0.5, 0.0], [1.5, 0.0], [0.0, 2.0]]),  # r_d (1 - 0.3 r_d^2) peaks at r_d = 1.054
]


@pytest.mark.parametrize("lens,points", FOLDED)
def test_rays_beyond_the_fold_of_the_lens_model_fall_back_to_pinhole(lens, points):
    from nerfw.cameras.pixels import lens_normalized

    uv = np.asarray(points) * 100 + 50  # f = 100, c = (50, 50)
    xy, n_bad = lens_normalized(100, 100, 50, 50, uv, lens)
    assert n_bad == 2
    np.testing.assert_allclose(xy[1:], points[1:])  # the pinhole direction
    np.testing.assert_allclose(cv.distort(lens, xy[:1]), points[:1], atol=1e-9)  # the lens ray


@pytest.mark.parametrize("lens,points", FOLDED)
def test_conventions_undistort_is_nan_outside_the_domain(lens, points):
    out = cv.undistort(lens, np.asarray(points, dtype=float))
    assert np.all(np.isfinite(out[0])) and np.all(np.isnan(out[1:]))


# ----------------------------------------------------------------------------- parsers
@needs_realdata
def test_colmap_text_model_with_opencv_camera(tmp_path):
    root = tmp_path / "m"
    shutil.copytree(REALDATA / "colmap_maupertuis_kapture", root)
    (root / "reconstruction" / "cameras.txt").write_text(
        "# Camera list\n1 OPENCV 1919 1079 1800 1790 959.5 539.5 -0.12 0.03 0.001 -0.002\n")
    scene = load_scene(root, img_downscale=2)
    assert scene.format == "colmap" and not any("distortion" in w or "ignored" in w for w in scene.warnings)
    for c in scene.cameras:
        assert c.distortion == Distortion("opencv", [-0.12, 0.03, 0.001, -0.002])  # not scaled by the downscale
        assert c.to_json()["distortion"] == {"model": "opencv", "coeffs": [-0.12, 0.03, 0.001, -0.002, 0, 0, 0, 0]}
    (root / "reconstruction" / "cameras.txt").write_text("1 SIMPLE_PINHOLE 1919 1079 1847.53 959.5 539.5\n")
    assert all(c.distortion is None and c.to_json()["distortion"] is None for c in load_scene(root).cameras)


def tiny_transforms(root: Path, meta: dict, frame_extra=({}, {})) -> Path:
    root.mkdir(parents=True)
    frames = []
    for i, extra in enumerate(frame_extra):
        Image.fromarray(np.full((30, 40, 3), 90, np.uint8)).save(root / f"im{i}.png")
        M = np.eye(4)
        M[0, 3] = i
        frames.append({"file_path": f"im{i}.png", "transform_matrix": M.tolist(), **extra})
    (root / "transforms.json").write_text(json.dumps({"fl_x": 50, "fl_y": 50, "w": 40, "h": 30, "near": 0.5,
                                                      "far": 5.0, **meta, "frames": frames}))
    return root


def test_transforms_lens_keys(tmp_path):
    # nerfstudio OPENCV: k1 k2 p1 p2 and k3 (the r^6 term, OpenCV's k3); per-frame keys win over the top level
    s = load_scene(tiny_transforms(tmp_path / "a", {"camera_model": "OPENCV", "k1": 0.1, "k2": -0.02, "p1": 0.001,
                                                    "p2": 0.002, "k3": 0.003}, ({}, {"k1": 0.0, "k2": 0.0,
                                                                                     "p1": 0, "p2": 0, "k3": 0})))
    assert s.cameras[0].distortion == Distortion("opencv", [0.1, -0.02, 0.001, 0.002, 0.003])
    assert s.cameras[1].distortion is None  # all zero
    # nerfstudio's k4 is an r^8 radial term OpenCV's model does not have: dropped, with a warning in pixels
    s = load_scene(tiny_transforms(tmp_path / "b", {"camera_model": "OPENCV", "k1": 0.1, "k4": 0.01}))
    assert s.cameras[0].distortion == Distortion("opencv", [0.1])
    assert any("k4" in w and "2 frame(s)" in w and "px" in w for w in s.warnings)
    # OPENCV_FISHEYE and instant-ngp's is_fisheye: k1..k4 of the fisheye model
    s = load_scene(tiny_transforms(tmp_path / "c", {"camera_model": "OPENCV_FISHEYE", "k1": 0.05, "k2": 0.01,
                                                    "k3": -0.002, "k4": 0.0005}))
    assert s.cameras[0].distortion == Distortion("fisheye", [0.05, 0.01, -0.002, 0.0005])
    s = load_scene(tiny_transforms(tmp_path / "d", {"is_fisheye": True, "k1": 0.05, "k2": 0.01}))
    assert s.cameras[1].distortion == Distortion("fisheye", [0.05, 0.01])
    s = load_scene(tiny_transforms(tmp_path / "e", {"k1": 0.05, "p2": 0.001}))  # instant-ngp, not fisheye
    assert s.cameras[1].distortion == Distortion("opencv", [0.05, 0, 0, 0.001])


@needs_realdata
def test_fox_transforms_distortion_and_training_rays():
    """instant-ngp's fox: one camera with k1 k2 p1 p2. Training rays of a corner pixel go through the lens."""
    meta = json.loads((REALDATA / "fox" / "transforms.json").read_text())
    scene = load_scene(REALDATA / "fox")
    expected = Distortion("opencv", [meta["k1"], meta["k2"], meta["p1"], meta["p2"]])
    assert all(c.distortion == expected for c in scene.cameras)
    norm = Normalization(np.array([0.1, -0.2, 0.3]), 0.7)
    table = CameraTable(scene.cameras, norm)
    c = scene.cameras[5]
    uv = np.array([[0.5, 0.5], [c.width - 0.5, c.height - 0.5], [c.cx, c.cy]])
    o, d, _, _ = table.rays(torch.full((3,), 5), torch.tensor(uv[:, 0], dtype=torch.float32),
                            torch.tensor(uv[:, 1], dtype=torch.float32))
    T_model = norm.pose_to_model(c.T_world_cam)
    o_ref, d_ref = cv.camera_rays(c.fx, c.fy, c.cx, c.cy, T_model, uv, c.distortion)
    np.testing.assert_allclose(o.numpy(), o_ref, atol=1e-5)
    np.testing.assert_allclose(d.numpy(), d_ref, atol=1e-5)
    # the corner ray differs from the pinhole ray by pixels, not by rounding
    _, d_pin = cv.camera_rays(c.fx, c.fy, c.cx, c.cy, T_model, uv)
    through_pinhole, _ = cv.project_points(c.K, T_model, o_ref + d_ref)
    assert np.linalg.norm(through_pinhole[0] - uv[0]) > 1.0
    assert not np.allclose(d.numpy()[:2], d_pin[:2], atol=1e-4)
    np.testing.assert_allclose(d.numpy()[2], d_pin[2], atol=1e-6)  # the principal point has no distortion


def test_training_batches_use_the_lens():
    class Cache:
        offsets = np.array([0, 48, 96])
        pixels = np.zeros((96, 3), np.uint8)
        depth = None

    lens = Distortion("opencv", [-0.2, 0.05, 0.01, -0.01])
    cams = [CameraView(f"im{i}.png", None, "train", 8, 6, 5.0, 5.5, 4.2, 2.9, cv.make_T(np.eye(3), [i, 0, 0]),
                       0.1, 10.0, distortion=lens if i else None) for i in range(2)]
    batcher = RayBatcher(Cache(), cams, [0, 1], Normalization(np.zeros(3), 1.0), batch_size=96)
    batch = batcher.batch(0, 0)
    pix = batcher.pixel_indices(0, 0, 0)
    k = np.searchsorted(batcher.starts, pix, side="right") - 1
    local = pix - batcher.starts[k]
    uv = np.stack([local % 8 + 0.5, local // 8 + 0.5], -1)
    for i, c in enumerate(cams):
        rows = batch.image_ids.numpy() == i
        _, d = cv.camera_rays(c.fx, c.fy, c.cx, c.cy, c.T_world_cam, uv[rows], c.distortion)
        np.testing.assert_allclose(batch.rays_d.numpy()[rows], d, atol=1e-6)


def test_rays_outside_the_lens_domain_fall_back_to_pinhole_and_warn_once():
    lens = Distortion("opencv", [-0.6])  # invertible only for distorted radius < 0.497
    cam = CameraView("a.png", None, "train", 20, 20, 10.0, 10.0, 10.0, 10.0, np.eye(4), 0.1, 10.0, distortion=lens)
    with pytest.warns(RuntimeWarning, match="outside their lens model's invertible domain"):
        table = CameraTable([cam], Normalization(np.zeros(3), 1.0))
    uv = torch.tensor([[0.5, 0.5], [10.5, 10.5], [12.0, 10.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # already warned: no second warning
        _, d, _, _ = table.rays(torch.zeros(3, dtype=torch.long), uv[:, 0], uv[:, 1])
    assert table.outside_domain == 1
    np.testing.assert_allclose(d[0].numpy(), [-0.95, -0.95, 1.0], atol=1e-6)  # the pinhole direction
    np.testing.assert_allclose(d[1:, :2].numpy(), cv.undistort(lens, (uv[1:].numpy() - 10.0) / 10.0), atol=1e-6)


def test_training_never_uses_pixels_outside_the_lens_domain():
    """A lens that folds inside its image (k1 = -0.6: no ray beyond a distorted radius of 0.497 focal lengths):
    every batch pixel of that image lies inside the domain, its colour is the colour of the pixel its ray goes
    through, the choice is the same on every call, and a warning says how many pixels are left out. An image
    with a regular lens keeps every pixel, in the same order as without the folding image."""

    class Cache:
        offsets = np.array([0, 400, 800])
        pixels = np.arange(800 * 3, dtype=np.int64).reshape(800, 3).astype(np.uint8)  # colour = a pixel's id
        depth = None

    Cache.pixels[:, 0], Cache.pixels[:, 1] = np.arange(800) % 256, np.arange(800) // 256  # id in two channels
    folding = Distortion("opencv", [-0.6])
    cams = [CameraView(f"im{i}.png", None, "train", 20, 20, 10.0, 10.0, 10.0, 10.0, cv.make_T(np.eye(3), [i, 0, 0]),
                       0.1, 10.0, distortion=folding if i == 0 else Distortion("opencv", [-0.05])) for i in range(2)]
    norm = Normalization(np.zeros(3), 1.0)
    with pytest.warns(RuntimeWarning, match=r"(\d+) pixels of 1 training image\(s\) lie outside") as record:
        batcher = RayBatcher(Cache(), cams, [0, 1], norm, batch_size=200)
    u, v = np.meshgrid(np.arange(20) + 0.5, np.arange(20) + 0.5)
    xy_d = np.stack([(u.ravel() - 10) / 10, (v.ravel() - 10) / 10], -1)
    outside = np.hypot(xy_d[:, 0], xy_d[:, 1]) > 0.497  # the fold of 1 - 0.6 r^2, as a distorted radius
    assert f"{int(outside.sum())} pixels" in str(record[0].message)
    seen = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no per-batch pinhole warning: no batch meets such a pixel
        for step in range(batcher.steps_per_epoch):
            batch = batcher.batch(0, step)
            ids = batch.rgb.numpy() * 255
            pixel = np.round(ids[:, 0] + 256 * ids[:, 1]).astype(np.int64)  # the cache pixel each colour came from
            image = batch.image_ids.numpy()
            assert np.array_equal(image, (pixel >= 400).astype(np.int64))
            in_image0 = pixel[image == 0]
            assert not outside[in_image0].any()
            seen.append(pixel)
            # the ray is the lens model's ray of that very pixel
            rows = image == 0
            _, d = cv.camera_rays(10.0, 10.0, 10.0, 10.0, cams[0].T_world_cam,
                                  np.stack([u.ravel()[in_image0], v.ravel()[in_image0]], -1), folding)
            np.testing.assert_allclose(batch.rays_d.numpy()[rows], d, atol=1e-5)
    assert batcher.table.outside_domain == 0
    seen = np.concatenate(seen)
    assert np.array_equal(np.sort(seen[seen >= 400]), np.arange(400, 800))  # the regular image: each pixel once
    assert set(seen[seen < 400]) <= set(np.flatnonzero(~outside))
    with pytest.warns(RuntimeWarning):
        again = RayBatcher(Cache(), cams, [0, 1], norm, batch_size=200)  # another process (rank) or a resumed run
    assert np.array_equal(again.batch(0, 1).rgb.numpy(), batcher.batch(0, 1).rgb.numpy())


def write_cambridge(root: Path, radials=(0.05, -0.03), focals=(20.0, 22.0)) -> Path:
    (root / "seq1").mkdir(parents=True)
    header = "Visual Landmark Dataset V1\nImageFile, Camera Position [X Y Z W P Q R]\n\n"
    lines = [f"seq1/frame0000{i + 1}.png {i} 0 0 1 0 0 0" for i in range(2)]
    (root / "dataset_train.txt").write_text(header + "\n".join(lines) + "\n")
    for i in range(2):
        Image.new("RGB", (16, 12), (90, 60, 30)).save(root / "seq1" / f"frame0000{i + 1}.png")
    cams = [f"seq1/frame0000{i + 1}.jpg {focals[i]} 1 0 0 0 {i} 0 0 {radials[i]} 0" for i in range(2)]
    (root / "reconstruction.nvm").write_text("NVM_V3\n\n2\n" + "\n".join(cams) + "\n\n0\n")
    return root


def test_cambridge_nvm_radial_per_image(tmp_path):
    root = write_cambridge(tmp_path / "Shop")
    scene = load_scene(root)
    assert [c.distortion for c in scene.cameras] == [Distortion("nvm", [0.05]), Distortion("nvm", [-0.03])]
    # normalised coordinates do not change with the image size
    assert [c.distortion for c in load_scene(root, img_downscale=2).cameras] == [c.distortion for c in scene.cameras]
    # --focal: the coefficient follows the focal, so the undistortion is the same in pixels
    forced = load_scene(root, focal=40.0)
    assert forced.cameras[0].distortion == Distortion("nvm", [0.05 * (40 / 20) ** 2])
    uv = np.array([[0.5, 0.5], [15.5, 11.5]])
    for a, b in zip(scene.cameras, forced.cameras):
        pa = cv.pixels_to_normalized(a.fx, a.fy, a.cx, a.cy, uv, a.distortion) * a.fx
        pb = cv.pixels_to_normalized(b.fx, b.fy, b.cx, b.cy, uv, b.distortion) * b.fx
        np.testing.assert_allclose(pa, pb, atol=1e-9)


@needs_realdata
def test_llff_takes_the_distortion_of_the_colmap_model_beside_it():
    """The real 'beer' capture: poses_bounds.npy + sparse/0 with one SIMPLE_RADIAL camera per image."""
    root = REALDATA / "beer"
    scene = load_scene(root)
    cams, images = colmap.read_cameras_and_images(root / "sparse" / "0")
    ordered = sorted(images.values(), key=lambda im: im.name)
    assert scene.format == "llff" and len(scene.cameras) == len(ordered) == 71
    for view, im in zip(scene.cameras, ordered):
        assert view.distortion == Distortion("opencv", [cams[im.camera_id].params[3]])
    # LLFF's imgs2poses writes the first camera's focal into every row; the per-image focal differs by up to 4.5 %
    assert any("focal" in w and "--dataset colmap" in w for w in scene.warnings)


def write_sparse_text(folder: Path, names: list[str], ks: list[float]) -> None:
    folder.mkdir(parents=True)
    (folder / "cameras.txt").write_text("".join(f"{i + 1} SIMPLE_RADIAL 4032 3024 3260 2016 1512 {k}\n"
                                                for i, k in enumerate(ks)))
    lines = []
    for i in reversed(range(len(names))):  # file order is not name order
        lines += [f"{i + 1} 1 0 0 0 0 0 0 {i + 1} {names[i]}", ""]
    (folder / "images.txt").write_text("\n".join(lines) + "\n")


@needs_realdata
def test_llff_colmap_distortion_order_and_count_mismatch(tmp_path):
    root = tmp_path / "fern"
    shutil.copytree(REALDATA / "llff_fern", root)
    names = [f"IMG_{4026 + i}.JPG" for i in range(20)]
    ks = [0.01 * (i + 1) for i in range(20)]
    write_sparse_text(root / "sparse" / "0", names, ks)
    scene = load_scene(root, img_downscale=8)
    assert [c.distortion for c in scene.cameras] == [Distortion("opencv", [k]) for k in ks]
    shutil.rmtree(root / "sparse")
    write_sparse_text(root / "sparse" / "0", names[:19], ks[:19])
    scene = load_scene(root, img_downscale=8)
    assert all(c.distortion is None for c in scene.cameras)
    assert any("19 registered images but poses_bounds.npy has 20 rows" in w for w in scene.warnings)


# ----------------------------------------------------------------------------- export round trips
def colmap_scene(tmp_path: Path, camera_line: str) -> Path:
    if not REALDATA.is_dir():
        pytest.skip(f"shared real data not found at {REALDATA}")
    root = tmp_path / "m"
    shutil.copytree(REALDATA / "colmap_maupertuis_kapture", root)
    (root / "reconstruction" / "cameras.txt").write_text(camera_line + "\n")
    return root


@pytest.mark.parametrize("camera_line,nerfstudio_model", [
    ("1 OPENCV 1919 1079 1800 1790 959.5 539.5 -0.12 0.03 0.001 -0.002", "OPENCV"),
    ("1 OPENCV_FISHEYE 1919 1079 1000 1001 959.5 539.5 0.05 -0.01 0.002 -0.0004", "OPENCV_FISHEYE"),
    ("1 FULL_OPENCV 1919 1079 1800 1790 959.5 539.5 -0.2 0.04 0.001 -0.002 0.003 0.1 -0.01 0.002", None),
])
def test_export_round_trip_keeps_the_lens(tmp_path, camera_line, nerfstudio_model):
    scene = load_scene(colmap_scene(tmp_path, camera_line))
    out = write_transforms(scene, tmp_path / "exp" / "transforms.json")
    back = load_scene(tmp_path / "exp")
    assert [c.distortion for c in back.cameras] == [c.distortion for c in scene.cameras]
    assert scene.cameras[0].distortion is not None
    meta = json.loads(out.read_text())
    frame = meta["frames"][0]
    assert frame["nerfw_distortion"] == scene.cameras[0].distortion.to_dict()
    if nerfstudio_model is None:  # rational OpenCV: nerfstudio has no such keys
        assert not any(k in frame for k in ("k1", "k2", "p1", "p2"))
        return
    assert meta["camera_model"] == nerfstudio_model
    # nerfstudio's own keys alone describe the same lens
    for f in meta["frames"]:
        del f["nerfw_distortion"]
        f["file_path"] = str((out.parent / f["file_path"]).resolve())
    (tmp_path / "ns").mkdir()
    (tmp_path / "ns" / "transforms.json").write_text(json.dumps(meta))
    assert [c.distortion for c in load_scene(tmp_path / "ns").cameras] == [c.distortion for c in scene.cameras]


@needs_realdata
def test_export_round_trip_real_fox_and_nvm(tmp_path):
    for source in (REALDATA / "fox", write_cambridge(tmp_path / "Shop")):
        scene = load_scene(source)
        out_dir = tmp_path / f"exp_{source.name}"
        write_transforms(scene, out_dir / "transforms.json")
        back = load_scene(out_dir)
        assert [c.distortion for c in back.cameras] == [c.distortion for c in scene.cameras]
        assert all(c.distortion is not None for c in back.cameras)


# ----------------------------------------------------------------------------- render
def test_render_writes_pinhole_images_unless_keep_distortion(tmp_path):
    from helpers import trained_like_model

    from nerfw.cli.render import build_parser
    from nerfw.outputs.render import render_all

    model = trained_like_model()
    seen = []
    original = model.render_chunked

    def spy(o, d, *args, **kwargs):
        seen.append(d.detach().cpu().numpy().copy())
        return original(o, d, *args, **kwargs)

    model.render_chunked = spy
    lens = Distortion("opencv", [-0.25, 0.05])
    T = cv.make_T(np.eye(3), [0.0, 0.0, -2.0])
    cams = [CameraView(f"{s}.png", Path(f"{s}.png"), s, 8, 6, 6.0, 6.0, 4.0, 3.0, T, 0.5, 4.0, distortion=lens)
            for s in ("train", "test")]
    scene = SceneData("colmap", tmp_path, cams)
    run = types.SimpleNamespace(scene=scene, image_names=[c.name for c in cams], model=model,
                                normalization=Normalization(np.zeros(3), 1.0))
    uv = cv.pixel_centers(8, 6)
    _, pinhole = cv.camera_rays(6.0, 6.0, 4.0, 3.0, T, uv)
    _, through_lens = cv.camera_rays(6.0, 6.0, 4.0, 3.0, T, uv, lens)
    for flags, expected in (([], pinhole), (["--keep_distortion"], through_lens)):
        seen.clear()
        args = build_parser().parse_args(["--run", "r", "--out", str(tmp_path / "out"), "--split", "test",
                                          "--no_video", "--quality", "full", *flags])
        render_all(run, args, log=lambda m: None)
        assert len(seen) == 1
        np.testing.assert_allclose(seen[0], expected, atol=1e-6)
    assert not np.allclose(pinhole, through_lens, atol=1e-3)


def test_pixel_centre_tables_give_the_lens_models_rays(monkeypatch):
    """Training rays read undistorted pixel centres from per-lens tables: the same rays (and the same count of
    pixels outside the lens domain) as running the lens model on each batch, for several lenses and image sizes."""
    import nerfw.cameras.pixels as rb

    lenses = [Distortion("opencv", [-0.6]), Distortion("opencv", [0.1, -0.02, 0.003, -0.002]),
              Distortion("fisheye", [0.05, 0.01]), Distortion("nvm", [0.02])]
    cams = [CameraView(f"im{i}.png", None, "train", 20 + 3 * (i % 2), 14, 10.0 + i, 11.0, 10.5, 7.0,
                       cv.make_T(np.eye(3), [i, 0, 0]), 0.1, 10.0, distortion=lenses[i % 4]) for i in range(6)]
    g = np.random.default_rng(0)
    ids = torch.from_numpy(g.integers(0, 6, 400))
    widths = torch.tensor([c.width for c in cams])[ids]
    u = torch.from_numpy(g.integers(0, 20, 400)).float() % widths + 0.5
    v = torch.from_numpy(g.integers(0, 14, 400)).float() + 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fast = CameraTable(cams, Normalization(np.zeros(3), 1.0))
        fast.build_tables(range(6))  # as RayBatcher does for its training images
        monkeypatch.setattr(rb, "LENS_TABLE_MB", 0.0)  # no tables: every batch through the lens model
        slow = CameraTable(cams, Normalization(np.zeros(3), 1.0))
        slow.build_tables(range(6))
        d_slow = slow.rays(ids, u, v)[1]
        monkeypatch.setattr(rb, "LENS_TABLE_MB", 1024.0)
        d_fast = fast.rays(ids, u, v)[1]
    assert np.all(fast.table_offset >= 0) and np.all(slow.table_offset == -1)
    np.testing.assert_allclose(d_fast.numpy(), d_slow.numpy(), atol=1e-7)
    assert fast.outside_domain == slow.outside_domain > 0  # the k1 = -0.6 lens folds inside these images
    for i in (1, 2):  # against the lens model directly
        rows = (ids == i).numpy()
        _, d = cv.camera_rays(cams[i].fx, cams[i].fy, cams[i].cx, cams[i].cy, cams[i].T_world_cam,
                              np.stack([u.numpy()[rows], v.numpy()[rows]], -1), cams[i].distortion)
        np.testing.assert_allclose(d_fast.numpy()[rows], d, atol=1e-6)
    # coordinates off the pixel centres go through the lens model
    d_off = fast.rays(ids[:5], u[:5] + 0.25, v[:5])[1]
    _, d = cv.camera_rays(cams[int(ids[0])].fx, cams[int(ids[0])].fy, cams[int(ids[0])].cx, cams[int(ids[0])].cy,
                          cams[int(ids[0])].T_world_cam, np.array([[float(u[0]) + 0.25, float(v[0])]]),
                          cams[int(ids[0])].distortion)
    if int(ids[0]) % 4 != 0:  # (the folding lens gives the pinhole direction outside its domain)
        np.testing.assert_allclose(d_off[0].numpy(), d[0], atol=1e-6)


def test_pixel_centre_tables_are_built_only_where_they_pay_off():
    from nerfw.cameras.pixels import TABLE_PIXELS_PER_LENS, tables_pay_off

    assert tables_pay_off(80, 80 * 240 * 180)  # a collection: every image its own lens
    assert not tables_pay_off(1, 1920 * 1080)  # one lens on big frames: one Newton call a batch is cheaper
    assert not tables_pay_off(2000, 2000 * 200_000)  # 6.8 GB: over LENS_TABLE_MB
    lens = Distortion("opencv", [0.05])
    big = [CameraView(f"im{i}.png", None, "train", 1920, 1080, 1500.0, 1500.0, 960.0, 540.0, np.eye(4), 0.1, 10.0,
                      distortion=lens) for i in range(3)]
    table = CameraTable(big, Normalization(np.zeros(3), 1.0))
    table.build_tables(range(3))
    assert np.all(table.table_offset == -1) and 1920 * 1080 > TABLE_PIXELS_PER_LENS
