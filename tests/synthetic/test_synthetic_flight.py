"""Tests of the "flight" preset: a drone video over the square written as instant-ngp's transforms.json.

transforms.json is read by hand here (instant-ngp's documented keys, OpenGL camera-to-world matrices);
`load_scene` and the framing are checked separately."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from nerfw.data.loader import load_scene
from nerfw.cameras.conventions import Distortion, intrinsics_matrix, project_points
from nerfw.data.framing import choose_framing
from nerfw.errors import ConfigError
from nerfw.synthetic import GroundTruth, generate_scene
from nerfw.synthetic.flight import ALTITUDE, TEST_EVERY, racetrack

FLIP_YZ = np.diag([1.0, -1.0, -1.0, 1.0])


@pytest.fixture(scope="module")
def flight(tmp_path_factory):
    out = tmp_path_factory.mktemp("flight")
    info = generate_scene(out, preset="flight", seed=1, width=96, height=54, n_train=14, n_test=2, workers=1)
    info["out"] = out
    info["meta"] = json.loads((out / "SynthFlight" / "transforms.json").read_text())
    info["truth"] = GroundTruth.load(out / "SynthFlight.groundtruth")
    return info


def test_transforms_keys_and_lens(flight):
    meta = flight["meta"]
    assert (meta["w"], meta["h"]) == (96, 54)
    assert meta["fl_x"] != meta["fl_y"]  # drone sensors: non-square pixels as COLMAP estimates them
    assert abs(meta["cx"] - 48) > 0 and abs(meta["cy"] - 27) > 0
    assert meta["k1"] < 0 and meta["k2"] > 0 and meta["p1"] != 0 and meta["p2"] != 0
    assert meta["camera_angle_x"] == pytest.approx(2 * np.arctan(48 / meta["fl_x"]))
    assert "near" not in meta["frames"][0] and "aabb" not in meta  # a capture's file: the reader's fallbacks apply
    assert len(meta["frames"]) == 16
    for f in meta["frames"]:
        assert (flight["out"] / "SynthFlight" / f["file_path"]).is_file()


def test_reader_splits_lens_and_poses(flight):
    scene = load_scene(flight["out"] / "SynthFlight")
    assert scene.format == "transforms"
    tests = [c.name for c in scene.cameras if c.split == "test"]
    assert tests == [f"images/{k + 1:04d}.jpg" for k in range(16) if k % TEST_EVERY == 0]
    meta, truth = flight["meta"], flight["truth"]
    for cam, frame in zip(scene.cameras, meta["frames"]):
        assert cam.distortion == Distortion("opencv", [meta["k1"], meta["k2"], meta["p1"], meta["p2"], 0.0])
        assert (cam.fx, cam.fy, cam.cx, cam.cy) == pytest.approx((meta["fl_x"], meta["fl_y"], meta["cx"], meta["cy"]))
        # OpenGL camera-to-world (x right, y up, z backward) == OpenCV pose with y and z flipped
        np.testing.assert_allclose(cam.T_world_cam, np.asarray(frame["transform_matrix"]) @ FLIP_YZ, atol=1e-9)
        np.testing.assert_allclose(cam.T_world_cam, truth.cameras[cam.name]["T_world_cam"], atol=1e-9)


def test_flight_altitude_and_view_down(flight):
    truth = flight["truth"]
    T = truth.T_local_dataset
    for c in truth.cameras.values():
        T_local_cam = T @ np.asarray(c["T_world_cam"])
        assert ALTITUDE[0] - 1e-6 <= T_local_cam[2, 3] <= ALTITUDE[1] + 1e-6
        assert T_local_cam[2, 2] < -0.4  # optical axis (camera z) points down, 25-55 deg below the horizon
        assert truth.signed_distance(np.asarray(c["T_world_cam"])[:3, 3][None])[0] > 5.0  # in free air


def test_racetrack_is_closed_and_continuous():
    s = np.linspace(0, 1, 2001)
    xy, heading = racetrack(s)
    steps = np.linalg.norm(np.diff(xy, axis=0), axis=1)
    assert steps.max() < 3 * np.median(steps)  # no jumps between legs and turns
    np.testing.assert_allclose(xy[0], xy[-1], atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(heading, axis=1), 1.0, atol=1e-9)


def test_images_match_ground_truth_through_the_lens(flight):
    """A static frame re-rendered from the ground truth through its lens equals the written JPEG (up to JPEG
    error), and the clean test render matches the test frame where no transient is."""
    truth = flight["truth"]
    root = flight["out"] / "SynthFlight"
    static = [n for n, c in truth.cameras.items() if not c["has_transients"] and c["split"] == "train"][0]
    rendered = truth.render_image(static)["rgb"]
    photo = np.asarray(Image.open(root / static)).astype(np.float32) / 255
    assert np.mean(np.abs(rendered - photo)) < 0.03
    test = next(n for n, c in truth.cameras.items() if c["split"] == "test")
    clean = truth.clean(test).astype(np.float32) / 255
    assert np.mean(np.abs(truth.render_image(test, appearance="canonical")["rgb"] - clean)) < 0.01


def test_transients_are_masked_and_on_the_ground(flight):
    truth = flight["truth"]
    moving = [n for n, c in truth.cameras.items() if c["has_transients"]]
    assert len(moving) == 7  # half of the 14 training frames
    scene = truth.scene["transients"]
    for name in moving:
        assert truth.mask(name).any()
        assert set(truth.cameras[name]["transients"]) <= {"vehicle", "person"}
        prims = scene[name]["primitives"]
        for box in prims["boxes"]:
            assert box["lo"][2] >= -1e-6  # standing on the ground, not below it
        for cyl in prims["cylinders"]:
            assert cyl["z0"] >= -1e-6 and 1.3 < cyl["z1"] < 1.9  # people 1.5-1.9 m tall (head sphere on top)
    for name, c in truth.cameras.items():
        if not c["has_transients"]:
            assert not truth.mask(name).any()


def test_projection_of_a_ground_point_hand_checked(flight):
    """The square's centre (local 0, 0, 0) projected through nerfw's conventions with each frame's lens: where it
    lands in the image and no occluder is there, the ground-truth depth at that pixel equals its z in the camera."""
    truth = flight["truth"]
    X = (truth.T_dataset_local @ np.array([0.0, 0.0, 0.0, 1.0]))[:3]
    checked = 0
    for name, c in truth.cameras.items():
        K = intrinsics_matrix(c["fx"], c["fy"], c["cx"], c["cy"])
        uv, z = project_points(K, np.asarray(c["T_world_cam"]), X[None], Distortion.from_dict(c["distortion"]))
        u, v = uv[0]
        if 1 <= u < c["width"] - 1 and 1 <= v < c["height"] - 1 and not truth.mask(name)[int(v), int(u)]:
            assert truth.depth(name)[int(v), int(u)] == pytest.approx(z[0], rel=0.03)
            checked += 1
    assert checked >= 3


def test_framing_holds_the_square(flight):
    scene = load_scene(flight["out"] / "SynthFlight")
    framing = choose_framing(scene)
    truth = flight["truth"]
    centre_of_square = (truth.T_dataset_local @ np.array([0.0, 0.0, 0.0, 1.0]))[:3]
    assert np.linalg.norm(centre_of_square - framing.center) < framing.radius
    train = [c for c in scene.cameras if c.split == "train"]
    inside = np.mean([np.linalg.norm(c.center - framing.center) <= framing.radius + 1e-9 for c in train])
    assert inside >= 0.5


def test_bad_arguments(tmp_path):
    with pytest.raises(ConfigError, match="--layout"):
        generate_scene(tmp_path, preset="flight", layout="cambridge")
    with pytest.raises(ConfigError, match="n_test"):
        generate_scene(tmp_path, preset="flight", n_train=14, n_test=5)
