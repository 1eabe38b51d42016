"""Scene framing from content (nerfw/data/framing.py): sparse points, converging axes, forward-facing frusta."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nerfw.cameras.conventions import make_T
from nerfw.data.framing import axes_focus, choose_framing, parse_scene_box
from nerfw.data.scene import CameraView, Normalization, SceneData
from nerfw.errors import ConfigError

from helpers import REALDATA as REAL


def look_at(center, target) -> np.ndarray:
    """T_world_cam (OpenCV axes) of a camera at `center` looking at `target`, world up = +z."""
    z = np.asarray(target, float) - center
    z /= np.linalg.norm(z)
    x = np.cross(z, [0.0, 0.0, 1.0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return make_T(np.stack([x, y, z], axis=1), center)


def view(T, near=0.5, far=20.0, split="train") -> CameraView:
    return CameraView("img.png", Path("img.png"), split, 200, 100, 100.0, 100.0, 100.0, 50.0, T, near, far)


def orbit(target, radius, n, height=0.5):
    angles = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return [view(look_at(np.array([radius * np.cos(a), radius * np.sin(a), height]) + target, target))
            for a in angles]


def test_points_framing_ignores_far_cameras():
    """A 1-unit landmark seen by near cameras plus two cameras 60 units away: the ball is the landmark's."""
    rng = np.random.default_rng(0)
    target = np.array([5.0, -3.0, 1.0])
    cams = orbit(target, 3.0, 20) + [view(look_at(target + [60.0, 0, 5], target)),
                                     view(look_at(target + [0, -60.0, 5], target))]
    points = target + rng.uniform(-0.5, 0.5, (500, 3))
    scene = SceneData("colmap", Path("."), cams, points=np.concatenate([points, [[400.0, 0, 0]]]))
    # 64 cells: a cell (0.07 of the ~0.7 radius) is coarser than a pixel there (3 / 100), so no widening
    framing = choose_framing(scene, grid_max_res=64)
    assert framing.method == "points"
    assert np.linalg.norm(framing.center - target) < 0.1
    assert 0.5 < framing.radius < 0.9  # 90 % of a unit cube's points lie within ~0.7 of its centre
    assert "widened" not in framing.reason
    norm = Normalization.from_framing(framing)
    assert norm.scale == pytest.approx(1.0 / framing.radius)
    # the old camera rule made the landmark tiny: spread ~60 + far 20 -> scale ~1/80
    assert choose_framing(scene, "cameras").radius > 50


def test_points_ball_widens_while_a_cell_stays_within_a_pixel():
    """Cameras 30 units from a 1-unit landmark, fx 100: a pixel covers 0.3 there. A ball of radius r gives cells of
    4 r / grid_max_res, so the ball may grow to 0.3 * grid_max_res / 4 (never past the median camera)."""
    rng = np.random.default_rng(1)
    scene = SceneData("colmap", Path("."), orbit(np.zeros(3), 30.0, 12, height=0.0),
                      points=rng.uniform(-0.5, 0.5, (400, 3)))
    points_only = choose_framing(scene, grid_max_res=8)  # 0.6: no finer than the points' own ball (~0.7)
    assert 0.5 < points_only.radius < 0.9 and "widened" not in points_only.reason
    by_detail = choose_framing(scene, grid_max_res=128)  # 0.3 * 128 / 4
    assert by_detail.radius == pytest.approx(9.6, rel=1e-3) and "matches a pixel" in by_detail.reason
    by_cameras = choose_framing(scene, grid_max_res=512)  # 38.4 would pass the cameras: capped at 30
    assert by_cameras.radius == pytest.approx(30.0, rel=1e-3) and "median camera" in by_cameras.reason
    assert np.linalg.norm(by_cameras.center - points_only.center) < 1e-12  # widening keeps the centre


def test_focus_framing_finds_the_orbit_target():
    target = np.array([1.0, 2.0, 0.3])
    scene = SceneData("transforms", Path("."), orbit(target, 4.0, 16))
    focus, spread, in_front = axes_focus(scene.cameras)
    assert np.linalg.norm(focus - target) < 1e-6 and in_front == 1.0 and spread > 0.3
    framing = choose_framing(scene)
    assert framing.method == "focus"
    # the content radius = distance * half the view on the short side, sqrt(16 + 0.25) * 0.5 * 100 / 100, is then
    # widened to hold the median camera (all 16 sit at sqrt(16.25) from the target)
    assert framing.radius == pytest.approx(np.sqrt(16.25), rel=1e-6)
    assert "widened from 2.016" in framing.reason


def test_widening_keeps_far_cameras_outside():
    """Half the cameras at 2 units, half at 40: the ball holds the near half, not the far one."""
    from nerfw.data.framing import Framing, widen_to_cameras

    cams = orbit(np.zeros(3), 2.0, 10, height=0.0) + orbit(np.zeros(3), 40.0, 9, height=0.0)
    tight = Framing(np.zeros(3), 0.5, "focus", "test")
    assert widen_to_cameras(tight, cams).radius == pytest.approx(2.0)
    wide = Framing(np.zeros(3), 3.0, "focus", "test")
    assert widen_to_cameras(wide, cams) is wide


def test_forward_facing_uses_frusta_in_front_of_the_cameras():
    cams = [view(make_T(np.eye(3), [x, y, 0.0]), near=2.0, far=8.0) for x in (-0.3, 0, 0.3) for y in (-0.2, 0.2)]
    framing = choose_framing(SceneData("llff", Path("."), cams))
    assert framing.method == "frustum"
    # content between z = 2 and sqrt(2 * 8) = 4 straight ahead
    assert 2.0 < framing.center[2] < 4.0 and abs(framing.center[0]) < 0.5
    assert 1.0 < framing.radius < 4.0


def test_scene_box_overrides_and_bad_boxes_fail_clearly():
    scene = SceneData("transforms", Path("."), orbit(np.zeros(3), 4.0, 8))
    framing = choose_framing(scene, scene_box=parse_scene_box("0,0,0,2,4,4"))
    assert framing.method == "scene_box"
    np.testing.assert_allclose(framing.center, [1, 2, 2])
    assert framing.radius == pytest.approx(3.0)
    for bad in ("1,2,3", "0,0,0,1,1,a", "0,0,0,1,-1,1"):
        with pytest.raises(ConfigError, match="scene_box"):
            parse_scene_box(bad)
    with pytest.raises(ConfigError, match="framing"):
        choose_framing(scene, "nonsense")


@pytest.mark.skipif(not (REAL / "fox").is_dir(), reason="shared real data not available")
def test_real_fox_is_framed_on_the_fox():
    """instant-ngp's fox: the cameras orbit the fox head; the ball's centre is in front of every camera and the
    ball holds the median camera (mip-NeRF 360's assumption), not the camera rule's rig + far bound."""
    from nerfw.data.loader import load_scene

    scene = load_scene(REAL / "fox")
    framing = choose_framing(scene)
    assert framing.method == "focus"
    train = scene.split("train")
    for cam in train:
        assert (framing.center - cam.center) @ cam.T_world_cam[:3, 2] > 0
    distances = np.array([np.linalg.norm(c.center - framing.center) for c in train]) / framing.radius
    assert np.median(distances) == pytest.approx(1.0)
    assert 4.0 < framing.radius < 6.0  # the fox head is ~1.9 units across at 4.9 units from the median camera
    assert choose_framing(scene, "cameras").radius > 3 * framing.radius


def test_scene_box_with_negative_corner_parses_on_the_command_line():
    """argparse would read '-1,-2,...' as an option; train and inspect accept it after --scene_box."""
    from nerfw.training.config import parse_config

    cfg = parse_config(["--data_root_dir", "x", "--scene_box", "-1,-2,-3,1,2,3"])
    assert cfg.train.scene_box == "-1,-2,-3,1,2,3"
    np.testing.assert_allclose(parse_scene_box(cfg.train.scene_box), [[-1, -2, -3], [1, 2, 3]])


def test_wild_preset_landmark_is_well_resolved():
    """The built-in photo collection (a statue with a few far cameras): framed by its sparse points, the statue's
    longest side spans at least as many cells of the finest plane (grid_max_res 512 over the contracted [-2, 2]
    cube) as it spans pixels in the median photo, so the field never resolves it coarser than the photos show it;
    the old camera rule left it < 20 cells (the real collection's failure: ~5 x 15 x 10 cells)."""
    import json

    from nerfw.data.loader import load_scene
    from nerfw.fields.config import ModelConfig
    from nerfw.synthetic import generate_scene

    out = Path(__import__("tempfile").mkdtemp())
    generate_scene(out, preset="collection", seed=3, width=96, n_train=14, n_test=2, workers=1)
    scene = load_scene(out, "SynthLandmark")
    lo, hi = np.asarray(json.loads((out / "SynthLandmark.groundtruth" / "scene.json").read_text())
                        ["landmark"]["bounds_world"])
    cells_per_unit = ModelConfig().grid_max_res / 4.0  # inside the unit ball the contraction is the identity

    def cells(framing):
        return float(np.max(hi - lo)) / framing.radius * cells_per_unit

    content = choose_framing(scene)
    assert content.method == "points"
    assert np.all(np.abs(content.center - (lo + hi) / 2) < np.max(hi - lo))  # centred on the statue
    from nerfw.data.framing import pixel_footprint

    pixels = float(np.max(hi - lo)) / pixel_footprint(scene.split("train"), content.center)
    assert pixels > 20 and cells(content) >= 0.999 * pixels
    assert cells(choose_framing(scene, "cameras")) < 20


def test_detail_note_compares_the_finest_cell_with_a_pixel_at_the_content():
    from nerfw.data.framing import detail_note

    # cameras 10 units from the centre with fx = 100 px: a pixel covers 0.1 there; radius 12.8 over 512 cells of
    # the [-2, 2] cube: a cell is 4 * 12.8 / 512 = 0.1 -> one pixel per cell, no hint
    cams = [view(look_at(np.array([10.0 * np.cos(a), 10.0 * np.sin(a), 0.0]), np.zeros(3))) for a in (0.0, 1.0, 2.0)]
    note = detail_note(cams, np.zeros(3), 12.8, 512)
    assert "finest grid cell 0.1 " in note and "a pixel covers 0.1 " in note and ": 1 pixels per cell" in note
    assert "--grid_max_res" not in note
    coarse = detail_note(cams, np.zeros(3), 38.4, 512)  # 3 pixels per cell: the log says what to do
    assert ": 3 pixels per cell" in coarse and "--grid_max_res 1024 keeps more detail" in coarse


def test_content_report_counts_cells_and_pixels_and_warns_when_cells_are_coarser():
    """Cameras 10 units away, fx 100: a pixel covers 0.1 at the content. A content ball of radius 1 spans 20
    pixels; framed alone at 512 cells it spans 2 / (4 / 512) = 256 cells; widened to 40 it spans 6.4 cells."""
    from nerfw.data.framing import Framing, content_report

    cams = [view(look_at(np.array([10.0 * np.cos(a), 10.0 * np.sin(a), 0.0]), np.zeros(3))) for a in (0.0, 1.0, 2.0)]
    line, warning = content_report(cams, Framing(np.zeros(3), 1.0, "points", "test"), 512)
    assert "= 256 cells of the finest grid" in line and "and 20 pixels" in line and warning is None
    widened = Framing(np.zeros(3), 40.0, "focus", "test", content_radius=1.0)
    line, warning = content_report(cams, widened, 512)
    assert "= 6 cells" in line and "20 pixels" in line
    assert warning.startswith("warning: the content spans 3.1x fewer grid cells (6) than its photos have pixels "
                              "across it (20)") and "widened 40x" in warning and "--scene_box" in warning
    _, quiet = content_report(cams, Framing(np.zeros(3), 2.0, "focus", "test", content_radius=1.0), 512)
    assert quiet is None  # 20 pixels over 12.8 cells: 1.6 pixels per cell passes


@pytest.mark.e2e
def test_training_log_reports_the_content_in_cells(tiny_cambridge, tmp_path):
    from helpers import train_argv

    from nerfw.training.config import parse_config
    from nerfw.training.trainer import train

    run = train(parse_config(train_argv(tiny_cambridge, tmp_path, "report", "--max_steps", "1")))
    log = (run / "loss_log.txt").read_text()
    assert "framing: " in log and "content: " in log and " cells of the finest grid (512^3 planes)" in log


def test_too_few_points_say_why_they_are_not_used():
    target = np.array([1.0, 2.0, 0.3])
    scene = SceneData("colmap", Path("."), orbit(target, 4.0, 16), points=target + np.zeros((12, 3)))
    framing = choose_framing(scene)
    assert framing.method == "focus" and "the dataset's 12 sparse points are too few to frame by" in framing.reason
