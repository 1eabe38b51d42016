"""Sparse points triangulated from the photos (nerfw/data/photo_points.py) for datasets that ship none."""
from __future__ import annotations

import numpy as np
import pytest

from nerfw.cameras.conventions import make_T
from nerfw.data.framing import MIN_POINTS, choose_framing
from nerfw.data.loader import load_scene
from nerfw.data.orientation import orient_scene
from nerfw.data.photo_points import PhotoView, neighbour_pairs, triangulate_photos, triangulate_rays, with_photo_points


def unit(v):
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def test_rays_through_one_point_meet_there():
    """Hand-computed: cameras at (0,0,0) and (2,0,0) both looking at (1,0,4)."""
    x = np.array([[1.0, 0.0, 4.0]])
    c0, c1 = np.zeros(3), np.array([2.0, 0.0, 0.0])
    points, t0, t1, error = triangulate_rays(c0, unit(x - c0), c1, unit(x - c1))
    np.testing.assert_allclose(points, x, atol=1e-12)
    np.testing.assert_allclose(t0, [np.sqrt(17.0)], rtol=1e-12)
    np.testing.assert_allclose(t1, [np.sqrt(17.0)], rtol=1e-12)
    assert error[0] < 1e-9


def test_skew_rays_give_their_midpoint_and_the_angle_it_is_off():
    """Ray 0 along z from the origin, ray 1 along -x from (3, 0.2, 5): closest points (0,0,5) and (0,0.2,5)."""
    points, t0, t1, error = triangulate_rays(np.zeros(3), unit([[0.0, 0.0, 1.0]]), np.array([3.0, 0.2, 5.0]),
                                             unit([[-1.0, 0.0, 0.0]]))
    np.testing.assert_allclose(points, [[0.0, 0.1, 5.0]], atol=1e-12)
    np.testing.assert_allclose([t0[0], t1[0]], [5.0, 3.0], atol=1e-12)
    np.testing.assert_allclose(error, [np.arctan2(0.1, 3.0)], rtol=1e-9)  # half the gap, seen from the nearer camera


def test_parallel_rays_are_not_triangulated():
    _, t0, t1, _ = triangulate_rays(np.zeros(3), unit([[0.0, 0.0, 1.0]]), np.array([1.0, 0.0, 0.0]),
                                    unit([[0.0, 0.0, 1.0]]))
    assert np.isinf(t0[0]) and np.isinf(t1[0])


def test_neighbours_are_cameras_that_can_share_content():
    """A ring of cameras looking inwards: each pairs with its nearest ring neighbours, never across the ring (the
    axes there are 180 deg apart)."""
    views = []
    for a in np.linspace(0, 2 * np.pi, 12, endpoint=False):
        center = np.array([5 * np.cos(a), 5 * np.sin(a), 0.0])
        z = -center / 5
        x = np.cross(z, [0.0, 0.0, 1.0])
        R = np.stack([x, np.cross(z, x), z], 1)
        views.append(PhotoView(center, R, 100.0, np.zeros((0, 3)), np.zeros((0, 128), np.float32),
                               np.zeros((0, 3), np.uint8)))
    pairs = neighbour_pairs(views, k=2)
    assert {min((j - i) % 12, (i - j) % 12) for i, j in pairs} == {1} and len(pairs) == 12  # the two beside each
    everyone = neighbour_pairs(views, k=11)
    assert max(min((j - i) % 12, (i - j) % 12) for i, j in everyone) <= 2  # axes 90 deg or more apart: never


@pytest.fixture(scope="module")
def square(tmp_path_factory):
    """The built-in wild scene, small, with its exact geometry."""
    from nerfw.synthetic import generate_scene

    out = tmp_path_factory.mktemp("square")
    generate_scene(out, preset="wild", scene="Sq", seed=3, width=160, n_train=12, n_test=2, workers=1)
    return out


def test_photo_points_lie_on_the_true_surfaces(square):
    """Triangulated from the photos of an exact scene: on its surfaces within a small fraction of its size."""
    from nerfw.synthetic.groundtruth import GroundTruth

    scene = load_scene(square / "Sq", img_downscale=1)
    found = triangulate_photos(scene.split("train"))
    assert len(found.points) >= MIN_POINTS and len(found.colors) == len(found.points)
    gt = GroundTruth.load(square / "Sq.groundtruth")
    lo, hi = gt.bounds()
    distance = np.abs(gt.signed_distance(found.points)) / (np.linalg.norm(hi - lo) / 2)
    assert np.median(distance) < 0.02 and np.mean(distance < 0.1) > 0.9, np.percentile(distance, [50, 90])


def test_shipped_points_are_kept_and_the_option_turns_triangulation_off(square):
    scene = load_scene(square / "Sq", img_downscale=1)
    assert len(scene.points) >= MIN_POINTS
    framed, note = with_photo_points(scene)
    assert framed is scene and note is None
    scene.points = None
    framed, note = with_photo_points(scene, enabled=False)
    assert framed is scene and note is None


def test_cameras_among_the_content_keep_their_own_framing(square):
    """The square is photographed from within it: the photos' points are found and reported, but the cameras
    frame the scene (their rules hold the cameras, and were measured better on such captures)."""
    scene = load_scene(square / "Sq", img_downscale=1)
    scene.points = None
    framed, note = with_photo_points(scene)
    assert framed is scene and scene.points is None
    assert "triangulated" in note and "framed by its cameras" in note
    assert choose_framing(framed).method in ("focus", "frustum")


def test_a_collection_without_points_is_framed_near_its_points(tmp_path):
    """The collection preset with its points removed: the photos' points put the content ball near the shipped
    model's (closer than the cameras' focus does: the axes meet at the statue, the points include the plaza), with
    about its size, and the same up."""
    from nerfw.synthetic import generate_scene

    generate_scene(tmp_path, preset="collection", scene="Coll", seed=0, width=240, n_train=28, n_test=4, workers=1)
    scene = load_scene(tmp_path / "Coll", img_downscale=1)
    reference = choose_framing(scene)
    bare = load_scene(tmp_path / "Coll", img_downscale=1)
    bare.points = None
    framed, note = with_photo_points(bare)
    assert "they frame and orient the model" in note
    framing, by_cameras = choose_framing(framed), choose_framing(bare)
    assert framing.method == "points" and "points triangulated from the photos" in framing.reason
    offset = np.linalg.norm(framing.center - reference.center)
    assert offset <= 0.4 * reference.content_radius, framing.describe()
    assert offset < np.linalg.norm(by_cameras.center - reference.center), by_cameras.describe()
    assert framing.content_radius == pytest.approx(reference.content_radius, rel=0.25), framing.describe()
    up = orient_scene(framed, framing).rotation[2] @ orient_scene(scene, reference).rotation[2]
    assert up > np.cos(np.radians(1.0))


def test_inspect_reports_the_photos_points(square, tmp_path, capsys):
    """`nerfw inspect` on a capture whose sparse points were removed prints the `points:` line before the framing,
    and --photo_points False leaves it out."""
    import shutil

    from nerfw.cli.inspect import main

    focal = str(load_scene(square / "Sq", img_downscale=1).cameras[0].fx)  # what the removed NVM said
    root = tmp_path / "Sq"
    shutil.copytree(square / "Sq", root)
    for nvm in root.glob("*.nvm"):
        nvm.unlink()
    assert main(["--data_root_dir", str(root), "--focal", focal]) == 0
    lines = capsys.readouterr().out.splitlines()
    points = [i for i, line in enumerate(lines) if line.startswith("points: the dataset ships no sparse points")]
    framing = [i for i, line in enumerate(lines) if line.startswith("framing:")]
    assert points and framing and points[0] < framing[0], lines
    assert main(["--data_root_dir", str(root), "--focal", focal, "--photo_points", "False"]) == 0
    assert not [line for line in capsys.readouterr().out.splitlines() if line.startswith("points: the dataset")]
