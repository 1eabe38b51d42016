"""Camera conventions: round trips for every format and projections checked against hand-computed numbers."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from nerfw.cameras import conventions as cv


def random_pose(rng):
    q = rng.normal(size=4)
    R = cv.quat_to_rotmat(q)
    return cv.make_T(R, rng.normal(size=3) * 50)


quats = st.lists(st.floats(-1, 1, allow_nan=False), min_size=4, max_size=4).filter(
    lambda q: np.linalg.norm(q) > 1e-3)


@given(quats)
@settings(max_examples=200, deadline=None)
def test_quaternion_round_trip(q):
    R = cv.quat_to_rotmat(q)
    assert np.allclose(R @ R.T, np.eye(3), atol=1e-9) and np.isclose(np.linalg.det(R), 1.0)
    q2 = cv.rotmat_to_quat(R)
    qn = np.asarray(q) / np.linalg.norm(q)
    assert np.allclose(q2, qn, atol=1e-7) or np.allclose(q2, -qn, atol=1e-7)
    assert q2[0] >= 0


def test_quaternion_is_hamilton():
    # 90 degrees about z: (w, x, y, z) = (cos45, 0, 0, sin45) maps x to y.
    R = cv.quat_to_rotmat([np.cos(np.pi / 4), 0, 0, np.sin(np.pi / 4)])
    assert np.allclose(R @ [1, 0, 0], [0, 1, 0])


def test_cambridge_round_trip_and_meaning():
    rng = np.random.default_rng(0)
    for _ in range(20):
        T = random_pose(rng)
        c, q = cv.T_world_cam_to_cambridge(T)
        assert np.allclose(cv.cambridge_to_T_world_cam(c, q), T)
        # the quaternion is world-to-camera: R(q) @ (X - c) gives camera coordinates
        X = rng.normal(size=3)
        X_cam = cv.invert_T(T) @ np.append(X, 1)
        assert np.allclose(cv.quat_to_rotmat(q) @ (X - c), X_cam[:3])


def test_colmap_round_trip():
    rng = np.random.default_rng(1)
    for _ in range(20):
        T = random_pose(rng)
        q, t = cv.T_world_cam_to_colmap(T)
        assert np.allclose(cv.colmap_to_T_world_cam(q, t), T)
        # COLMAP: X_cam = R X + t, camera centre = -R^T t
        assert np.allclose(-cv.quat_to_rotmat(q).T @ t, T[:3, 3])


def test_sevenscenes_and_nvm_round_trip():
    T = random_pose(np.random.default_rng(2))
    assert np.allclose(cv.T_world_cam_to_sevenscenes(cv.sevenscenes_to_T_world_cam(T)), T)
    c, q = cv.T_world_cam_to_nvm(T)
    assert np.allclose(cv.nvm_to_T_world_cam(c, q), T)


def test_opengl_round_trip_and_axes():
    T = random_pose(np.random.default_rng(3))
    assert np.allclose(cv.opengl_to_T_world_cam(cv.T_world_cam_to_opengl(T)), T)
    # An OpenGL camera looks along its -z: identity OpenGL pose looks down world -z,
    # so the OpenCV forward axis (+z column) must be world -z, and OpenCV "down" world -y.
    T_cv = cv.opengl_to_T_world_cam(np.eye(4)[:3])
    assert np.allclose(T_cv[:3, 2], [0, 0, -1]) and np.allclose(T_cv[:3, 1], [0, -1, 0])


def test_llff_round_trip_and_axes():
    T = random_pose(np.random.default_rng(4))
    P = cv.T_world_cam_to_llff(T, 378, 504, 407.0)
    T2, hwf = cv.llff_to_T_world_cam(P)
    assert np.allclose(T2, T) and hwf == (378.0, 504.0, 407.0)
    # LLFF columns are (down, right, back): OpenCV x (right) is LLFF column 1.
    assert np.allclose(P[:, 1], T[:3, 0]) and np.allclose(P[:, 0], T[:3, 1]) and np.allclose(P[:, 2], -T[:3, 2])


def test_projection_hand_computed():
    # Camera at (1, 2, 3) looking along world +x: OpenCV z = world x, x(right) = world -y, y(down) = world -z.
    # columns of R are the camera axes in world coordinates: x_cam=-y_w, y_cam=-z_w, z_cam=+x_w
    R = np.stack([[0, -1, 0], [0, 0, -1], [1, 0, 0]], axis=1).astype(float)
    T = cv.make_T(R, [1, 2, 3])
    K = cv.intrinsics_matrix(100, 100, 50, 40)
    # Point 10 m ahead, 1 m to the camera's right (world -y), 2 m above (world +z -> up -> negative v).
    X = np.array([[11.0, 1.0, 5.0]])
    uv, z = cv.project_points(K, T, X)
    # x_cam = 1, y_cam = -2, z_cam = 10 -> u = 100*0.1 + 50 = 60, v = 100*(-0.2) + 40 = 20
    assert np.allclose(z, [10.0]) and np.allclose(uv, [[60.0, 20.0]])
    # and the ray through that pixel passes through the point at t = z
    o, d = cv.camera_rays(100, 100, 50, 40, T, uv)
    assert np.allclose(o + 10.0 * d, X)


def test_pixel_centres_at_half():
    uv = cv.pixel_centers(3, 2)
    assert uv.shape == (6, 2) and np.allclose(uv[0], [0.5, 0.5]) and np.allclose(uv[-1], [2.5, 1.5])
    # centre ray of an image with principal point at W/2, H/2 for a 2x2 image goes between pixel centres
    o, d = cv.camera_rays(1.0, 1.0, 1.0, 1.0, np.eye(4), np.array([[1.0, 1.0]]))
    assert np.allclose(d, [[0, 0, 1]])


def test_axis_angle():
    R = cv.axis_angle_to_rotmat([0, 0, np.pi / 2])
    assert np.allclose(R @ [1, 0, 0], [0, 1, 0])
    assert np.isclose(cv.rotation_angle(cv.axis_angle_to_rotmat([0.1, -0.2, 0.05])), np.linalg.norm([0.1, -0.2, 0.05]))


def test_zero_quaternion_rejected():
    with pytest.raises(ValueError):
        cv.quat_to_rotmat([0, 0, 0, 0])
