"""`nerfw view` without a browser: camera conversions, rendering one output, one-line errors.
(The page itself is tested in headless Chromium: tests/test_viewer_browser.py.)"""
from __future__ import annotations

import math
import socket

import numpy as np
import pytest

from nerfw.cli import main
from nerfw.viewer.server import (OUTPUTS, render_image, rotation_to_wxyz, uses_full_renderer, view_camera,
                                wxyz_to_rotation)


def test_quaternion_round_trip():
    from scipy.spatial.transform import Rotation

    R = Rotation.random(5, random_state=0).as_matrix()
    for r in R:
        q = rotation_to_wxyz(r)
        assert abs(np.linalg.norm(q) - 1) < 1e-9
        assert np.allclose(wxyz_to_rotation(q), r, atol=1e-9)
    assert np.allclose(rotation_to_wxyz(np.eye(3)), [1, 0, 0, 0])


def test_view_camera_matches_the_browser_field_of_view():
    cam = view_camera(np.eye(4), fov_y=math.radians(60), aspect=16 / 9, width=320, near=0.1, far=5.0)
    assert (cam.width, cam.height) == (320, 180)
    assert math.isclose(2 * math.atan(0.5 * cam.height / cam.fy), math.radians(60), rel_tol=1e-9)
    assert cam.fx == cam.fy and (cam.cx, cam.cy) == (160, 90)


def test_renderer_choice():
    assert not uses_full_renderer("RGB", False) and uses_full_renderer("RGB", True)
    assert not uses_full_renderer("static", True) and not uses_full_renderer("depth", True)
    assert uses_full_renderer("transient", False) and uses_full_renderer("beta", False)


@pytest.mark.parametrize("output", OUTPUTS)
def test_render_every_output(output):
    from helpers import trained_like_model

    model = trained_like_model()
    T = np.eye(4)
    T[:3, 3] = [0, 0, -2.5]  # looking at the origin along +z
    cam = view_camera(T, math.radians(50), 4 / 3, 24, 0.5, 5.0)
    app = model.appearance_vector(mean=True)
    image = render_image(model, cam, output, app, image_id=1 if output == "RGB" else None, chunk=100)
    assert image.shape == (18, 24, 3) and image.dtype == np.uint8
    assert render_image(model, cam, output, app, None, chunk=100, abort=lambda: True) is None


def test_static_rgb_is_the_fast_render_of_the_static_scene():
    from helpers import trained_like_model

    from nerfw.model.view_rendering import render_camera
    from nerfw.viewer.server import IDENTITY

    model = trained_like_model()
    T = np.eye(4)
    T[:3, 3] = [0, 0, -2.5]
    cam = view_camera(T, math.radians(50), 1.0, 16, 0.5, 5.0)
    app = model.appearance_vector(mean=True)
    ours = render_image(model, cam, "static", app, None)
    ref = render_camera(model, cam, IDENTITY, appearance=app, fast=True, distortion=False)["rgb_static"]
    assert np.abs(ours.astype(float) - np.clip(ref, 0, 1) * 255).max() <= 1.0


def test_missing_run_is_a_one_line_error(tmp_path, capsys):
    assert main(["view", "--run", str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err.strip() == f"nerfw view: error: {tmp_path / 'missing'}: no such run folder"


def test_folder_without_run_or_checkpoint(tmp_path, capsys):
    (tmp_path / "norun").mkdir()
    assert main(["view", "--run", str(tmp_path / "norun")]) == 2
    assert "not a nerfw run folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "config.json").write_text("{}")
    assert main(["view", "--run", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err.strip()
    assert "no checkpoint" in err and "\n" not in err


def test_busy_port_is_a_one_line_error(tmp_path, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["view", "--run", str(tmp_path), "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"nerfw view: error: port {port} on 127.0.0.1 is busy (another viewer?); choose another with --port"


def test_bad_port_number(tmp_path, capsys):
    assert main(["view", "--run", str(tmp_path), "--port", "70000"]) == 2
    assert "--port" in capsys.readouterr().err


def test_framing_ball_is_three_unit_circles():
    from nerfw.viewer.server import ball_segments

    seg = ball_segments(32)
    assert seg.shape == (96, 2, 3)
    np.testing.assert_allclose(np.linalg.norm(seg.reshape(-1, 3), axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(seg[:32, :, 2], 0.0, atol=1e-12)  # one circle in each coordinate plane
    for axis in range(3):
        assert np.sum(np.all(np.abs(seg[..., axis]) < 1e-12, axis=1)) == 32
    np.testing.assert_allclose(seg[1:32, 0], seg[:31, 1])  # consecutive segments join into a closed loop
    np.testing.assert_allclose(seg[31, 1], seg[0, 0], atol=1e-12)
