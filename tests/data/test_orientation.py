"""Scene orientation (nerfw/data/orientation.py) and the rotating normalisation (nerfw/data/scene.py)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from nerfw.cameras.conventions import intrinsics_matrix, make_T, project_points
from nerfw.data.framing import Framing
from nerfw.data.orientation import choose_orientation, estimate_up, horizontal_axes, orient_scene
from nerfw.data.scene import CameraView, Normalization, SceneData

Z = np.array([0.0, 0.0, 1.0])


def camera_rotation(yaw: float, pitch: float, roll: float = 0.0) -> np.ndarray:
    """R_world_cam (OpenCV axes) in a z-up world: looking along `yaw` (deg from +x), `pitch` up, `roll` about the
    optical axis."""
    yaw, pitch, roll = np.radians([yaw, pitch, roll])
    forward = np.array([np.cos(yaw) * np.cos(pitch), np.sin(yaw) * np.cos(pitch), np.sin(pitch)])
    right = np.cross(forward, Z)
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    R = np.stack([right, down, forward], axis=1)
    return R @ Rotation.from_rotvec([0.0, 0.0, roll]).as_matrix()


def view(R: np.ndarray, center, split: str = "train") -> CameraView:
    return CameraView("img.png", Path("img.png"), split, 200, 100, 100.0, 100.0, 100.0, 50.0,
                      make_T(R, np.asarray(center, float)), 0.5, 20.0)


def angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.degrees(np.arccos(np.clip(a @ b / np.linalg.norm(a) / np.linalg.norm(b), -1, 1))))


def tilted_collection(Q: np.ndarray, seed: int = 0, n: int = 40) -> list[CameraView]:
    """Upright photos of a landmark at the origin (pitch -20..40 deg, roll jitter 3 deg), world turned by Q."""
    rng = np.random.default_rng(seed)
    cams = []
    for _ in range(n):
        yaw = rng.uniform(0, 360)
        pitch, roll = rng.uniform(-20, 40), rng.normal(0, 3)
        R = camera_rotation(yaw + 180, pitch, roll)  # look back towards the landmark
        center = 5 * np.array([np.cos(np.radians(yaw)), np.sin(np.radians(yaw)), 0.2])
        cams.append(view(Q @ R, Q @ center))
    return cams


def test_normalization_rotation_round_trips_and_matches_a_hand_computed_point():
    # model x = dataset y, model y = -dataset x, model z = dataset z (90 deg about z)
    norm = Normalization(center=np.array([1.0, 2.0, 3.0]), scale=2.0,
                         rotation=np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]))
    # (2, 2, 3) - centre = (1, 0, 0); turned: (0, -1, 0); scaled: (0, -2, 0)
    assert np.allclose(norm.points_to_model([[2.0, 2.0, 3.0]]), [[0.0, -2.0, 0.0]])
    rng = np.random.default_rng(1)
    norm = Normalization(rng.normal(size=3), 0.37, Rotation.random(random_state=2).as_matrix())
    x = rng.normal(size=(20, 3))
    assert np.allclose(norm.points_to_dataset(norm.points_to_model(x)), x, atol=1e-12)
    T = make_T(Rotation.random(random_state=3).as_matrix(), rng.normal(size=3))
    assert np.allclose(norm.pose_to_dataset(norm.pose_to_model(T)), T, atol=1e-12)
    # a point seen by a camera lands on the same pixel in both frames
    K = intrinsics_matrix(300.0, 310.0, 160.0, 120.0)
    X = T[:3, 3] + T[:3, :3] @ np.array([0.3, -0.2, 4.0])
    uv_dataset, z_dataset = project_points(K, T, X[None])
    uv_model, z_model = project_points(K, norm.pose_to_model(T), norm.points_to_model(X[None]))
    assert np.allclose(uv_dataset, uv_model, atol=1e-9)
    assert np.allclose(z_model, z_dataset * norm.scale)  # z-depth scales, never turns


def test_normalization_dicts_of_older_runs_load_with_the_dataset_axes():
    norm = Normalization.from_dict({"center": [1, 2, 3], "scale": 0.5})
    assert np.array_equal(norm.rotation, np.eye(3))
    turned = Normalization(np.zeros(3), 1.0, Rotation.random(random_state=0).as_matrix())
    assert np.allclose(Normalization.from_dict(turned.to_dict()).rotation, turned.rotation)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_up_of_upright_photos_is_found_in_a_turned_world(seed):
    Q = Rotation.random(random_state=10 + seed).as_matrix()
    cams = tilted_collection(Q, seed)
    up, _ = estimate_up(np.stack([c.T_world_cam[:3, :3] for c in cams]))
    assert angle_deg(up, Q @ Z) < 2.0
    orientation = choose_orientation(cams, np.stack([c.center for c in cams]))
    R = orientation.rotation
    assert np.allclose(R @ R.T, np.eye(3), atol=1e-9) and np.linalg.det(R) == pytest.approx(1.0)
    assert angle_deg(R @ (Q @ Z), Z) < 2.0  # the world's up is the model's z


def test_photos_looking_up_at_a_facade_are_not_tilted_by_their_pitch():
    """One-sided views pitched up by 20-40 deg: the mean camera up leans ~30 deg towards the facade; the x axes
    (horizontal whatever the pitch) give the true up."""
    rng = np.random.default_rng(2)
    Q = Rotation.random(random_state=4).as_matrix()
    cams = [view(Q @ camera_rotation(90 + rng.uniform(-30, 30), rng.uniform(20, 40), rng.normal(0, 2)),
                 Q @ [rng.uniform(-5, 5), rng.uniform(-12, -8), 1.6]) for _ in range(25)]
    up, _ = estimate_up(np.stack([c.T_world_cam[:3, :3] for c in cams]))
    mean_up = -np.mean([c.T_world_cam[:3, 1] for c in cams], axis=0)
    assert angle_deg(mean_up, Q @ Z) > 20.0
    assert angle_deg(up, Q @ Z) < 2.0


def test_nadir_drone_photos_get_up_pointing_away_from_the_ground():
    rng = np.random.default_rng(0)
    Q = Rotation.random(random_state=5).as_matrix()
    cams = [view(Q @ camera_rotation(rng.uniform(0, 360), -90 + rng.uniform(0, 3)), Q @ [x, 0.0, 10.0])
            for x in np.linspace(-5, 5, 30)]
    up, why = estimate_up(np.stack([c.T_world_cam[:3, :3] for c in cams]))
    assert angle_deg(up, Q @ Z) < 3.0, why


def test_drone_flying_lines_to_and_fro_looks_down():
    """Nadir photos along parallel lines flown in both directions: the x axes share one line and the cameras' ups
    cancel out; up is against the view."""
    Q = Rotation.random(random_state=6).as_matrix()
    cams = [view(Q @ camera_rotation(90 + 180 * (k % 2), -89.0), Q @ [10.0 * (k % 2), k, 30.0]) for k in range(20)]
    up, why = estimate_up(np.stack([c.T_world_cam[:3, :3] for c in cams]))
    assert angle_deg(up, Q @ Z) < 2.0, why


def test_forward_facing_capture_keeps_the_cameras_up():
    """All photos share one rotation (LLFF): the x axes do not spread, so up is the cameras' own up, and the model
    frame is the camera's frame turned to z-up (x = the camera's x)."""
    R = camera_rotation(30, 10)
    cams = [view(R, [0.1 * i, 0.05 * (i % 3), 0.0]) for i in range(10)]
    orientation = choose_orientation(cams, np.stack([c.center for c in cams]))
    assert np.allclose(orientation.rotation[2], -R[:, 1], atol=1e-9)  # model z = the cameras' up
    assert "do not spread" in orientation.reason


def test_orientation_is_the_same_whatever_the_dataset_axes():
    """A long wall seen by upright photos: the model frame is the same for the scene in two dataset frames
    (R_b = R_a Q^T), and its x or y axis runs along the wall."""
    rng = np.random.default_rng(3)
    wall = np.column_stack([rng.uniform(-4, 4, 500), rng.uniform(-0.2, 0.2, 500), rng.uniform(0, 3, 500)])
    Q = Rotation.random(random_state=7).as_matrix()
    cams_a = tilted_collection(np.eye(3), seed=4)
    cams_b = tilted_collection(Q, seed=4)
    R_a = choose_orientation(cams_a, wall).rotation
    R_b = choose_orientation(cams_b, wall @ Q.T).rotation
    # the same up to the yaw search's 0.5 deg step
    assert Rotation.from_matrix(R_b @ (R_a @ Q.T).T).magnitude() < np.radians(1.0)
    along = [min(angle_deg(axis, np.array([1.0, 0, 0])), angle_deg(-axis, np.array([1.0, 0, 0]))) for axis in R_a[:2]]
    assert min(along) < 1.0  # the model's x or y runs along the wall


def test_walls_at_an_angle_to_the_dataset_axes_are_squared_up():
    """Points on the four walls of a square building turned 30 deg about up: the Manhattan rule finds the yaw
    (a square has no longest axis, so principal axes could not); a round tower has no walls to find."""
    rng = np.random.default_rng(0)
    t = rng.uniform(-1, 1, 800)
    side = rng.integers(0, 4, 800)
    xy = np.where(side[:, None] < 2, np.column_stack([t, np.where(side == 0, -1.0, 1.0)]),
                  np.column_stack([np.where(side == 2, -1.0, 1.0), t]))
    a = np.radians(30)
    turned = xy @ np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])  # rows turned by +30 deg
    points = np.column_stack([turned + rng.normal(0, 0.01, turned.shape), rng.uniform(0, 2, 800)])
    cams = tilted_collection(np.eye(3), seed=1)
    x, why = horizontal_axes(Z, points, np.array([1.0, 0.0, 0.0]))
    yaw = np.degrees(np.arctan2(x[1], x[0])) % 90
    assert abs(yaw - 30) < 1.0 and "walls" in why
    tower = np.column_stack([np.cos(t * np.pi), np.sin(t * np.pi), rng.uniform(0, 2, 800)])
    assert "walls" not in horizontal_axes(Z, tower, np.array([1.0, 0.0, 0.0]))[1]
    assert choose_orientation(cams, points).rotation[2] @ Z > 0.999


def test_orient_none_keeps_the_dataset_axes_and_scenes_use_the_points_in_the_ball():
    Q = Rotation.random(random_state=9).as_matrix()
    cams = tilted_collection(Q)
    scene = SceneData("colmap", Path("."), cams, points=np.zeros((0, 3)))
    framing = Framing(np.zeros(3), 2.0, "points", "test")
    assert np.array_equal(orient_scene(scene, framing, "none").rotation, np.eye(3))
    assert angle_deg(orient_scene(scene, framing).rotation[2], Q @ Z) < 2.0
    with pytest.raises(ValueError):
        choose_orientation(cams, np.zeros((0, 3)), "sideways")


def test_an_upright_dataset_keeps_its_exact_axes_and_a_tilted_one_does_not_snap():
    """Photographers' roll scatters the estimated up by about a degree: a dataset already z-up (with walls along
    its x axis) keeps exactly its axes; one tilted by 5 deg is turned by the estimate, not snapped."""
    rng = np.random.default_rng(5)
    wall = np.column_stack([rng.uniform(-4, 4, 500), rng.uniform(-0.2, 0.2, 500), rng.uniform(0, 3, 500)])
    cams = tilted_collection(np.eye(3), seed=4)
    upright = choose_orientation(cams, wall)
    assert angle_deg(estimate_up(np.stack([c.T_world_cam[:3, :3] for c in cams]))[0], Z) > 0.05  # not exact
    assert np.array_equal(np.abs(upright.rotation), np.eye(3)[[0, 1, 2]]) or \
        np.array_equal(np.abs(upright.rotation), np.eye(3)[[1, 0, 2]])  # x along the wall, or y
    assert np.array_equal(upright.rotation[2], Z) and "up and x snapped" in upright.reason
    Q = Rotation.from_euler("x", 5, degrees=True).as_matrix()
    tilted = choose_orientation(tilted_collection(Q, seed=4), wall @ Q.T)
    assert "snapped" not in tilted.reason and angle_deg(tilted.rotation[2], Q @ Z) < 2.0
    assert angle_deg(tilted.rotation[2], Z) > 3.0
