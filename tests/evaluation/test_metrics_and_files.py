"""Metrics against hand values and an independent SSIM, PLY read back, poses files."""
import numpy as np
import pytest
from plyfile import PlyData

from nerfw.cameras.conventions import axis_angle_to_rotmat, make_T
from nerfw.data.scene import CameraView
from nerfw.errors import DatasetError
from nerfw.evaluation import metrics
from nerfw.data.cameras_ply import FACES_PER_CAMERA, VERTICES_PER_CAMERA, write_cameras_ply
from nerfw.data.poses_file import parse_poses_file, write_poses_file


def test_psnr_by_hand():
    a = np.zeros((4, 4, 3))
    b = np.full((4, 4, 3), 0.1)  # mse 0.01 -> 20 dB
    assert metrics.psnr(a, b) == pytest.approx(20.0)
    assert metrics.psnr(a, a) == float("inf")


def _ssim_reference(x, y):
    """Independent SSIM (Wang et al. 2004) with a 7x7 uniform window, sample covariance, per channel."""
    from scipy.ndimage import uniform_filter

    c1, c2 = 0.01 ** 2, 0.03 ** 2
    out = []
    for ch in range(x.shape[-1]):
        a, b = x[..., ch], y[..., ch]
        n = 49
        f = lambda z: uniform_filter(z, 7)  # noqa: E731
        ma, mb = f(a), f(b)
        va = (f(a * a) - ma * ma) * n / (n - 1)
        vb = (f(b * b) - mb * mb) * n / (n - 1)
        cov = (f(a * b) - ma * mb) * n / (n - 1)
        s = ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma ** 2 + mb ** 2 + c1) * (va + vb + c2))
        out.append(s[3:-3, 3:-3].mean())
    return float(np.mean(out))


def test_ssim_matches_independent_reference():
    rng = np.random.default_rng(0)
    x = rng.random((32, 40, 3))
    y = np.clip(x + rng.normal(0, 0.1, x.shape), 0, 1)
    assert metrics.ssim(x, x) == pytest.approx(1.0)
    assert metrics.ssim(x, y) == pytest.approx(_ssim_reference(x, y), abs=1e-6)


def test_mask_iou():
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    assert metrics.mask_iou(a, b) is None
    a[:2] = True
    b[1:3] = True
    assert metrics.mask_iou(a, b) == pytest.approx(4 / 12)


def cam(split, center):
    return CameraView("x.png", None, split, 40, 30, 35.0, 35.0, 20.0, 15.0, make_T(np.eye(3), center), 0.1, 5.0)


def test_cameras_ply_reads_back(tmp_path):
    cams = [cam("train", [0, 0, 0]), cam("test", [1, 0, 0]), cam("synth", [2, 0, 0])]
    pts = np.random.default_rng(0).normal(size=(7, 3))
    path = write_cameras_ply(tmp_path / "c.ply", cams, size=0.5, points=pts)
    ply = PlyData.read(str(path))
    assert ply["vertex"].count == 3 * VERTICES_PER_CAMERA + 7
    assert ply["face"].count == 3 * FACES_PER_CAMERA
    v = ply["vertex"]
    # first camera: centre at origin, corner (0,0) at depth 0.5 -> ((0-20)/35*0.5, (0-15)/35*0.5, 0.5)
    assert np.allclose([v["x"][1], v["y"][1], v["z"][1]], [-20 / 35 * 0.5, -15 / 35 * 0.5, 0.5], atol=1e-6)
    assert (v["red"][0], v["blue"][5], v["green"][10]) == (220, 230, 190)
    assert max(max(f) for f in ply["face"]["vertex_indices"]) < 3 * VERTICES_PER_CAMERA


def test_poses_file_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    poses = [(f"seq_synth/frame{i:05d}.png", make_T(axis_angle_to_rotmat(rng.normal(size=3)), rng.normal(size=3) * 30))
             for i in range(5)]
    path = write_poses_file(tmp_path / "p.txt", poses)
    back = parse_poses_file(path)
    assert [n for n, _ in back] == [n for n, _ in poses]
    for (_, a), (_, b) in zip(poses, back):
        assert np.allclose(a, b, atol=2e-6)
    path.write_text(path.read_text() + "seq/frame.png 1 2 3 nan 0 0 0\n")
    with pytest.raises(DatasetError, match=r"p.txt:9: expected a finite"):
        parse_poses_file(path)
