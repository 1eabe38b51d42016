"""LENS tools: density probe, novel-view selection, synthesis (nerfw/novel_views/{density,selection,synthesis}.py).

One tiny built-in Cambridge-layout scene (64x36 images, 16 training views) and one briefly trained grid model
are shared by every test (session fixtures). Geometry is checked against the GENERATOR's analytic scene
(GroundTruth.signed_distance), never against the model.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nerfw.cameras.conventions import rotation_angle

SCENE = "LensSquare"
TRAIN_STEPS = 60
N_NOVEL = 6
THETA_DEG = 9.0
# Loose: grid models trained for 61-120 steps on 16 tiny images scored a mean of 16.9-18.9 dB on novel views
# against the generator's renders (the same renders at a transposed rotation: ~13.2 dB).
MIN_PSNR_VS_GROUND_TRUTH = 15.0


# ----------------------------------------------------------------------------- shared fixtures
@pytest.fixture(scope="session")
def lens_env(tmp_path_factory):
    """(data root, ground truth, loaded run) for a small generated scene and a briefly trained model."""
    import torch

    from nerfw.synthetic import GroundTruth, generate_scene
    from nerfw.training.run_io import load_run
    from nerfw.training.config import parse_config
    from nerfw.training.trainer import train

    root = tmp_path_factory.mktemp("lens")
    info = generate_scene(root / "data", layout="cambridge", scene=SCENE, seed=3, width=64, height=36,
                          n_train=16, n_test=2, workers=1)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    cfg = parse_config(["--data_root_dir", str(root / "data"), "--scene", SCENE, "--root_dir", str(root / "runs"),
                        "--exp_name", "lens", "--img_downscale", "1", "--max_steps", str(TRAIN_STEPS),
                        "--batch_size", "1024", "--field", "grid", "--grid_samples", "24",
                        "--proposal_samples", "32", "--grid_min_res", "32", "--grid_max_res", "128",
                        "--a_dim", "8", "--t_dim", "8", "--save_latest_freq", "100000", "--val_freq", "100000",
                        "--log_freq", "100000", "--progress", "log", "--seed", "0",
                        # Bounded sampling between the SfM near/far: in so few steps the unbounded sampler
                        # learns a distant backdrop (depth ~400 m where the scene is at ~30 m).
                        "--unbounded", "False",
                        "--transient_warmup", "500"])  # a static model: the probe, not the warm-up, is tested
    run_dir = train(cfg)
    run = load_run(run_dir)
    return {"root": root, "truth": GroundTruth.load(info["groundtruth_dir"]), "run": run}


@pytest.fixture(scope="session")
def density(lens_env):
    """The trained model's density probe (RUN/density/density.npz)."""
    from nerfw.novel_views.density import run_density

    grid, npz = run_density(lens_env["run"], resolution=40, log=lambda m: None)
    return grid, npz


def oracle_density(run, truth, resolution: int = 40):
    """A DensityGrid over the same box whose occupancy is the GENERATOR's geometry (sigma 100 inside solids).

    A model trained for seconds is fog (its density does not separate solids from free space), so the
    selection logic is checked against exact geometry; the model's own probe is tested separately."""
    from nerfw.novel_views.density import DensityGrid, default_threshold, grid_axes, scene_box

    bounds = scene_box(run.scene)
    axes, spacing = grid_axes(bounds, resolution)
    grid = DensityGrid(axes, np.zeros(0, np.float32), bounds, spacing, default_threshold(spacing))
    inside = truth.signed_distance(grid.cell_centers()) < 0
    grid.sigma = np.where(inside, 100.0, 0.0).astype(np.float32).reshape([len(a) for a in axes])
    return grid


def oracle_visibility(run, truth, width: int = 32):
    """VisibilityMaps of the training cameras from the GENERATOR's exact depth (inf where they see the sky)."""
    from nerfw.novel_views.density import VisibilityMaps

    cameras = run.scene.split("train")
    depths = []
    for c in cameras:
        s = c.at_width(width)
        depths.append(truth.render(c.T_world_cam, s.fx, s.fy, s.cx, s.cy, s.width, s.height)["depth"])
    return VisibilityMaps.from_depths(cameras, depths)


@pytest.fixture(scope="session")
def selection(lens_env):
    """Six novel views with the Cambridge defaults (2 m / 6 m / 9 deg), written to a poses file."""
    from nerfw.novel_views.selection import SelectionParams, defaults_for, select_views, write_selection

    run = lens_env["run"]
    grid = oracle_density(run, lens_env["truth"])
    d_scene, d_view, theta = defaults_for(run.scene.format)
    params = SelectionParams(n_novel=N_NOVEL, d_scene=d_scene, d_view=d_view, theta_deg=theta, seed=7,
                             min_opacity=0.3, check_width=16)
    views = select_views(run, grid, params, log=lambda m: None,
                         visibility=oracle_visibility(run, lens_env["truth"]))
    paths = write_selection(views, lens_env["root"] / "novel" / "views.txt", run, params)
    return views, paths, params, grid


@pytest.fixture(scope="session")
def synthesized(lens_env, selection):
    """The selected views synthesized once, in one process."""
    from nerfw.novel_views.synthesis import synthesize

    views, paths, _, _ = selection
    out = lens_env["root"] / "synth1"
    summary = synthesize(lens_env["run"], [(v.name, v.T_world_cam) for v in views], out, num_procs=1,
                         appearance="nearest", progress=False, log=lambda m: None)
    return out, summary


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(-10.0 * np.log10(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2) + 1e-12))


# ----------------------------------------------------------------------------- density
class SphereModel:
    """A stand-in model with an analytic static density: sigma_model inside a ball of the model frame."""

    def __init__(self, center_model, radius_model, sigma_model=50.0):
        import torch

        self.center, self.radius, self.sigma = torch.tensor(center_model), radius_model, sigma_model
        self._p = torch.nn.Parameter(torch.zeros(1))

    def parameters(self):
        return iter([self._p])

    def static_density(self, x):  # [N, 3] model frame -> [N]
        inside = (x - self.center.to(x)).norm(dim=-1) < self.radius
        return inside.float() * self.sigma


def test_probe_maps_dataset_frame_and_units_through_the_normalization():
    from nerfw.data.scene import Normalization
    from nerfw.novel_views.density import default_threshold, probe_density

    norm = Normalization(center=np.array([100.0, -50.0, 3.0]), scale=0.05)  # 1 model unit = 20 m
    ball_dataset, radius_dataset = np.array([104.0, -48.0, 5.0]), 3.0
    model = SphereModel(norm.points_to_model(ball_dataset).tolist(), radius_dataset * norm.scale)
    bounds = np.array([[95.0, -55.0, 0.0], [110.0, -40.0, 10.0]])
    grid = probe_density(model, norm, bounds, resolution=30)
    assert grid.spacing == pytest.approx(0.5)
    assert grid.threshold == pytest.approx(default_threshold(0.5)) == pytest.approx(math.log(2) / 0.5)
    centers = grid.cell_centers()
    inside = np.linalg.norm(centers - ball_dataset, axis=1) < radius_dataset
    np.testing.assert_array_equal(grid.sigma.ravel() > grid.threshold, inside)
    # sigma per dataset unit = sigma per model unit * scale (50 * 0.05)
    np.testing.assert_allclose(grid.sigma.ravel()[inside], 2.5)
    np.testing.assert_allclose(grid.occupied_points.mean(axis=0), ball_dataset, atol=0.3)


def test_density_probe_of_a_trained_run(lens_env, density):
    from nerfw.novel_views.density import content_points, load_density

    grid, npz = density
    run = lens_env["run"]
    back = load_density(npz)
    np.testing.assert_array_equal(back.sigma, grid.sigma)
    np.testing.assert_array_equal(back.occupied_points, grid.occupied_points)
    assert back.threshold == pytest.approx(grid.threshold) and (npz.parent / "occupied.ply").is_file()
    assert np.all(np.isfinite(grid.sigma)) and grid.sigma.min() >= 0
    assert max(len(a) for a in grid.axes) == 40
    # The box (dataset frame) holds every training camera and the bulk of the sparse points.
    centers = np.stack([c.center for c in run.scene.split("train")])
    assert np.all(centers >= grid.bounds[0]) and np.all(centers <= grid.bounds[1])
    pts, how = content_points(run.scene)
    assert how == "sparse points"
    assert np.mean(np.all((pts >= grid.bounds[0]) & (pts <= grid.bounds[1]), axis=1)) > 0.98


def test_sigma_is_converted_to_dataset_units(lens_env):
    from nerfw.data.scene import Normalization
    from nerfw.novel_views.density import static_sigma_dataset

    run = lens_env["run"]
    pts = np.stack([c.center for c in run.scene.split("train")])[:4] + np.array([0.0, 0.0, 1.0])
    base = static_sigma_dataset(run.model, run.normalization, pts)
    # The same model seen through a frame twice as large: points and lengths double, so sigma halves.
    n2 = Normalization(run.normalization.center, run.normalization.scale / 2.0)
    pts2 = n2.points_to_dataset(run.normalization.points_to_model(pts))
    np.testing.assert_allclose(static_sigma_dataset(run.model, n2, pts2), base / 2.0, rtol=1e-5)


# ----------------------------------------------------------------------------- selection
def test_selected_centres_are_in_free_space_near_training_cameras(lens_env, selection):
    from nerfw.data.poses_file import parse_poses_file

    views, paths, params, grid = selection
    run, truth = lens_env["run"], lens_env["truth"]
    poses = parse_poses_file(paths["poses"])
    assert [n for n, _ in poses] == [f"seq_synth/frame{k:05d}.png" for k in range(1, N_NOVEL + 1)]
    centers = np.stack([T[:3, 3] for _, T in poses])
    sdf = truth.signed_distance(centers)  # the generator's analytic geometry
    assert np.all(sdf > 0.0)
    # Occupancy is known at cell centres: a centre is at least d_scene minus half a cell diagonal away.
    assert np.all(sdf > params.d_scene - 0.5 * math.sqrt(3) * grid.spacing)
    train = np.stack([c.center for c in run.scene.split("train")])
    nearest = np.min(np.linalg.norm(centers[:, None] - train[None], axis=-1), axis=1)
    assert np.all(nearest < params.d_view)
    assert len({tuple(np.round(c, 4)) for c in centers}) == N_NOVEL  # no duplicates
    assert all(v.opacity >= params.min_opacity for v in views)
    assert paths["ply"].is_file() and json.loads(paths["json"].read_text())["views"][0]["nearest_image"]
    # The free-space test is not vacuous: within d_view of the cameras there IS solid (the ground).
    rng = np.random.default_rng(0)
    offsets = rng.normal(size=(4000, 3))
    offsets *= (params.d_view * rng.uniform(0, 1, (4000, 1)) ** (1 / 3)) / np.linalg.norm(offsets, axis=1)[:, None]
    around = train[rng.integers(0, len(train), 4000)] + offsets
    assert np.mean(truth.signed_distance(around) < params.d_scene) > 0.05


def test_rotation_is_within_theta_of_the_nearest_training_camera(lens_env, selection):
    from nerfw.data.poses_file import parse_poses_file

    _, paths, params, _ = selection
    train = lens_env["run"].scene.split("train")
    centers = np.stack([c.center for c in train])
    angles = []
    for _, T in parse_poses_file(paths["poses"]):
        ref = train[int(np.argmin(np.linalg.norm(centers - T[:3, 3], axis=1)))]
        angles.append(math.degrees(rotation_angle(ref.T_world_cam[:3, :3].T @ T[:3, :3])))
    assert max(angles) <= params.theta_deg + 1e-3


def test_random_rotation_is_a_proper_bounded_axis_angle():
    from nerfw.novel_views.selection import random_rotation

    rng = np.random.default_rng(0)
    theta = math.radians(THETA_DEG)
    rots, angles, axes = [], [], []
    for _ in range(2000):
        R, angle = random_rotation(rng, theta)
        rots.append(R)
        angles.append(angle)
        w = np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]])
        axes.append(w / np.linalg.norm(w))
    rots = np.stack(rots)
    np.testing.assert_allclose(rots @ rots.transpose(0, 2, 1), np.broadcast_to(np.eye(3), rots.shape), atol=1e-12)
    assert np.allclose(np.linalg.det(rots), 1.0)
    measured = np.array([rotation_angle(R) for R in rots])
    np.testing.assert_allclose(measured, angles, atol=1e-9)
    assert measured.max() <= theta + 1e-12 and measured.max() > 0.97 * theta  # the whole range is used
    assert np.linalg.norm(np.mean(axes, axis=0)) < 0.1  # axes spread over the sphere


def test_selection_is_deterministic_for_a_seed(lens_env, selection):
    from nerfw.novel_views.selection import select_views

    views, _, params, grid = selection
    visibility = oracle_visibility(lens_env["run"], lens_env["truth"])
    again = select_views(lens_env["run"], grid, params, log=lambda m: None, visibility=visibility)
    for a, b in zip(views, again):
        np.testing.assert_array_equal(a.T_world_cam, b.T_world_cam)
    other = select_views(lens_env["run"], grid, dataclasses.replace(params, seed=params.seed + 1),
                         log=lambda m: None, visibility=visibility)
    assert any(not np.array_equal(a.T_world_cam, b.T_world_cam) for a, b in zip(views, other))


def test_free_mask_and_grid_refinement():
    from nerfw.data.scene import CameraView
    from nerfw.novel_views.selection import TrainCameras, candidate_rounds

    cams = [CameraView(f"c{i}", Path("x"), "train", 8, 8, 8.0, 8.0, 4.0, 4.0, np.eye(4), 0.1, 10.0)
            for i in range(2)]
    cams[1].T_world_cam = np.eye(4)
    cams[1].T_world_cam[:3, 3] = [4.0, 0.0, 0.0]
    train = TrainCameras(cams)
    occupied = np.array([[2.0, 0.0, 0.0]])
    lo, hi = np.array([-1.0, -1.0, -1.0]), np.array([5.0, 1.0, 1.0])
    rounds = candidate_rounds(lo, hi, occupied, train, d_scene=1.0, d_view=1.5)
    previous = 0
    for spacing, free in itertools.islice(rounds, 4):
        assert np.all(np.linalg.norm(free - occupied, axis=1) > 1.0)
        assert np.all(np.min(np.linalg.norm(free[:, None] - train.centers[None], axis=-1), axis=1) < 1.5)
        assert len(free) >= previous  # finer grids hold more candidates
        previous = len(free)
    assert previous > 20


def test_visibility_counts_cameras_that_saw_through_a_point():
    from nerfw.data.scene import CameraView
    from nerfw.novel_views.density import VisibilityMaps
    from nerfw.novel_views.selection import TrainCameras, free_mask

    # Two cameras 2 m apart looking along +z at a wall 10 m away (z-depth 10), except the sky in the top half of
    # the second camera's image.
    cams = [CameraView(f"c{i}", Path("x"), "train", 16, 16, 16.0, 16.0, 8.0, 8.0, np.eye(4), 0.1, 100.0)
            for i in range(2)]
    cams[1].T_world_cam = np.eye(4)
    cams[1].T_world_cam[:3, 3] = [2.0, 0.0, 0.0]
    wall = np.full((8, 8), 10.0, np.float32)
    sky = wall.copy()
    sky[:4] = np.inf
    maps = VisibilityMaps.from_depths(cams, [wall, sky])
    assert maps.K[0, 0, 0] == pytest.approx(8.0) and maps.K[0, 0, 2] == pytest.approx(4.0)
    pts = np.array([[1.0, 0.0, 5.0],  # 5 m in front of the wall in both views
                    [1.0, 0.0, 9.0],  # 1 m in front of it: less than the 2 m margin
                    [1.0, 0.0, 12.0],  # behind the wall
                    [1.0, 0.0, -1.0],  # behind both cameras
                    [1.0, -3.0, 9.0],  # up, 1 m before the wall: in the second camera's sky only
                    [30.0, 0.0, 5.0]])  # outside both images
    np.testing.assert_array_equal(maps.seen_through(pts, margin=2.0), [2, 0, 0, 0, 1, 0])
    # along the ray, not along z: 2 m of z-depth before the wall is 2 sqrt(1 + (x/z)^2) m along the ray
    off = np.array([[3.5, 0.0, 8.0]])  # x/z = 0.4375 in camera 0 (2.183 m), 0.1875 in camera 1 (2.035 m)
    assert maps.seen_through(off, margin=2.1)[0] == 1 and maps.seen_through(off, margin=2.0)[0] == 2
    surface = maps.surface_points()
    assert len(surface) == 64 + 32 and np.allclose(surface[:, 2], 10.0)
    train = TrainCameras(cams)
    free = free_mask(pts, None, train, d_scene=2.0, d_view=50.0, visibility=maps, min_views=2)
    np.testing.assert_array_equal(free, [True, False, False, False, False, False])
    np.testing.assert_array_equal(free_mask(pts, None, train, 2.0, 50.0, maps, min_views=0), [True] * 6)


def test_model_probe_selects_centres_outside_the_analytic_geometry(tiny_run, tiny_cambridge, tmp_path):
    """Acceptance (issue 15): a really trained model, its OWN density probe and visibility maps, and the selected
    centres checked against the generator's analytic geometry: none under the ground or inside a solid."""
    from nerfw.synthetic import GroundTruth
    from nerfw.novel_views.density import load_or_render_visibility, run_density
    from nerfw.training.run_io import load_run
    from nerfw.novel_views.selection import SelectionParams, select_views

    run = load_run(tiny_run)
    truth = GroundTruth.load(tiny_cambridge / "Tiny.groundtruth")
    grid, _ = run_density(run, out_dir=tmp_path / "density", resolution=48, log=lambda m: None)
    visibility = load_or_render_visibility(run, 32, cache_dir=tmp_path / "density", log=lambda m: None)
    params = SelectionParams(n_novel=24, d_scene=1.0, d_view=6.0, theta_deg=9.0, seed=0, min_opacity=0.0,
                             min_views=2, visibility_width=32)
    views = select_views(run, grid, params, log=lambda m: None, visibility=visibility)
    centers = np.stack([v.T_world_cam[:3, 3] for v in views])
    sdf = truth.signed_distance(centers)
    height = (centers @ truth.T_local_dataset[:3, :3].T + truth.T_local_dataset[:3, 3])[:, 2]  # above the ground
    print(f"selected: sdf min {sdf.min():.2f} m, height min {height.min():.2f} m")
    assert np.all(sdf > 0) and np.all(height > 0)
    train = np.stack([c.center for c in run.scene.split("train")])
    assert np.all(np.min(np.linalg.norm(centers[:, None] - train[None], axis=-1), axis=1) < params.d_view)
    # Not vacuous: the density rule alone (min_views 0) on the same probe admits centres under the ground.
    box = np.concatenate([train.min(0) - params.d_view, train.max(0) + params.d_view])
    from nerfw.novel_views.selection import TrainCameras, candidate_rounds

    tcams = TrainCameras(run.scene.cameras)
    lo, hi = np.maximum(grid.bounds[0], box[:3]), np.minimum(grid.bounds[1], box[3:])
    _, density_only = next(candidate_rounds(lo, hi, grid.occupied_points, tcams, params.d_scene, params.d_view))
    assert np.any(truth.signed_distance(density_only) < 0)
    # The cache is reused: a second call reads the same maps without rendering.
    again = load_or_render_visibility(run, 32, cache_dir=tmp_path / "density", log=lambda m: pytest.fail(m))
    np.testing.assert_array_equal(again.depth[0], visibility.depth[0])


# ----------------------------------------------------------------------------- synthesis
def test_synthesized_views_match_ground_truth(lens_env, selection, synthesized):
    from nerfw.cameras.conventions import axis_angle_to_rotmat

    views, _, _, _ = selection
    out, summary = synthesized
    truth, run = lens_env["truth"], lens_env["run"]
    record = json.loads((out / "appearance.json").read_text())
    assert record["transient"] is False and len(record["views"]) == N_NOVEL
    cam = run.scene.split("train")[0]
    scores = {"pose": [], "transposed": [], "yaw30": [], "flat": []}
    for view, entry in zip(views, record["views"]):
        assert entry["name"] == view.name and entry["images"] == [run.image_names[view.nearest]]
        img = np.asarray(Image.open(out / view.name).convert("RGB"), np.float64) / 255.0
        assert img.shape == (cam.height, cam.width, 3)
        app = truth.appearance(entry["images"][0])  # the generator's appearance of the nearest image

        def gt(T):
            return truth.render(T, cam.fx, cam.fy, cam.cx, cam.cy, cam.width, cam.height, appearance=app)["rgb"]

        T = view.T_world_cam
        T_transposed, T_yaw = T.copy(), T.copy()
        T_transposed[:3, :3] = T[:3, :3].T  # the classic world-to-camera / camera-to-world mix-up
        T_yaw[:3, :3] = T[:3, :3] @ axis_angle_to_rotmat([0.0, math.radians(30), 0.0])
        reference = gt(T)
        scores["pose"].append(psnr(img, reference))
        scores["transposed"].append(psnr(img, gt(T_transposed)))
        scores["yaw30"].append(psnr(img, gt(T_yaw)))
        scores["flat"].append(psnr(np.broadcast_to(reference.mean(axis=(0, 1)), reference.shape), reference))
    mean = {k: float(np.mean(v)) for k, v in scores.items()}
    print(f"synthesized vs ground truth, mean PSNR: {mean}")
    assert mean["pose"] > MIN_PSNR_VS_GROUND_TRUTH
    # The renders are of THIS pose: they match it clearly better than a wrong rotation.
    assert mean["pose"] > mean["transposed"] + 2.0
    assert mean["pose"] > mean["yaw30"] + 0.5


def test_lens_views_benchmark_scores_the_written_views_against_their_exact_renders(lens_env, selection,
                                                                                   synthesized):
    """benchmarks/lens_views.py reads poses, intrinsics and lighting back from the written files: its scores are
    the PSNRs of the synthesized images against the exact renders of the selected poses, computed here."""
    import sys

    from helpers import BENCHMARKS

    sys.path.insert(0, str(BENCHMARKS))
    import lens_views

    views, _, _, _ = selection
    out, _ = synthesized
    truth, run = lens_env["truth"], lens_env["run"]
    cam = run.scene.split("train")[0]
    rows = {r["name"]: r for r in lens_views.score_views(run, out)}
    assert sorted(rows) == sorted(v.name for v in views)
    for view in views:
        app = truth.appearance(rows[view.name]["source"])
        reference = truth.render(view.T_world_cam, cam.fx, cam.fy, cam.cx, cam.cy, cam.width, cam.height,
                                 appearance=app)["rgb"]
        img = np.asarray(Image.open(out / view.name).convert("RGB"), np.float64) / 255.0
        assert rows[view.name]["psnr"] == pytest.approx(psnr(img, reference), abs=0.01)
        assert rows[view.name]["source"] == run.image_names[view.nearest]


def test_cambridge_output_reads_back_with_nerfw_parser(lens_env, selection, synthesized):
    from nerfw.data.loader import load_scene
    from nerfw.data.poses_file import parse_poses_file

    views, _, _, _ = selection
    out, _ = synthesized
    listed = parse_poses_file(out / "dataset_synth.txt")
    assert [n for n, _ in listed] == [v.name for v in views]
    scene = load_scene(out, dataset="auto")
    assert scene.format == "cambridge" and len(scene.split("train")) == N_NOVEL
    template = lens_env["run"].scene.split("train")[0]
    by_name = {c.name: c for c in scene.cameras}
    for v in views:
        c = by_name[v.name]
        np.testing.assert_allclose(c.T_world_cam, v.T_world_cam, atol=1e-5)
        assert (c.width, c.height) == (template.width, template.height)
        assert c.fx == pytest.approx(template.fx, rel=1e-5) and c.cx == pytest.approx(template.cx)
        assert np.isfinite(c.near) and np.isfinite(c.far)


def test_rerun_skips_finished_frames(lens_env, selection, synthesized):
    from nerfw.novel_views.synthesis import synthesize

    views, _, _, _ = selection
    out, first = synthesized
    assert first["rendered"] == list(range(N_NOVEL)) and first["skipped"] == []
    before = {v.name: (out / v.name).stat().st_mtime_ns for v in views}
    time.sleep(0.01)
    again = synthesize(lens_env["run"], [(v.name, v.T_world_cam) for v in views], out, progress=False,
                       log=lambda m: None)
    assert again["rendered"] == [] and again["skipped"] == list(range(N_NOVEL))
    assert {v.name: (out / v.name).stat().st_mtime_ns for v in views} == before
    assert not list(out.rglob("*.tmp"))  # no temporary files left behind
    # A lost frame (e.g. killed before its rename) is the only one rendered again.
    (out / views[2].name).unlink()
    third = synthesize(lens_env["run"], [(v.name, v.T_world_cam) for v in views], out, progress=False,
                       log=lambda m: None)
    assert third["rendered"] == [2] and (out / views[2].name).is_file()
    assert all((out / v.name).stat().st_mtime_ns == before[v.name] for k, v in enumerate(views) if k != 2)


def test_two_processes_render_each_view_exactly_once(lens_env, selection):
    from nerfw.novel_views.synthesis import assign_views, synthesize

    views, _, _, _ = selection
    views = views[:5]  # an odd count: the ranks get 3 and 2 views
    out = lens_env["root"] / "synth2"
    summary = synthesize(lens_env["run"], [(v.name, v.T_world_cam) for v in views], out, num_procs=2,
                         progress=False, log=lambda m: None)
    per_rank = [summary["per_rank"][r]["rendered"] for r in (0, 1)]
    assert per_rank == [[0, 2, 4], [1, 3]] == [assign_views(5, 2, 0), assign_views(5, 2, 1)]
    everything = per_rank[0] + per_rank[1]
    assert sorted(everything) == list(range(5)) and len(set(everything)) == len(everything)
    for v in views:
        assert (out / v.name).is_file()
    for n in (1, 3, 7):
        for size in (0, 1, 5, 13):
            shares = [assign_views(size, n, r) for r in range(n)]
            assert sorted(sum(shares, [])) == list(range(size))


def test_poses_file_round_trip_renders_the_same_view(lens_env, selection, synthesized):
    from nerfw.data.poses_file import parse_poses_file
    from nerfw.model.view_rendering import render_camera
    from nerfw.novel_views.selection import TrainCameras, novel_camera

    views, paths, _, _ = selection
    out, _ = synthesized
    run = lens_env["run"]
    train = TrainCameras(run.scene.cameras)
    name, T_file = parse_poses_file(paths["poses"])[0]
    app = run.model.appearance_vector(image_id=views[0].nearest)
    # synthesize renders with the fast renderer by default (--quality fast)
    from_file = render_camera(run.model, novel_camera(name, T_file, train), run.normalization, appearance=app,
                              fast=True)
    in_memory = render_camera(run.model, novel_camera(name, views[0].T_world_cam, train), run.normalization,
                              appearance=app, fast=True)
    np.testing.assert_allclose(from_file["rgb"], in_memory["rgb"], atol=2e-3)
    np.testing.assert_allclose(from_file["depth"], in_memory["depth"], rtol=1e-3, atol=1e-3)
    written = np.asarray(Image.open(out / name).convert("RGB"), np.int32)
    assert np.max(np.abs(written - np.round(np.clip(in_memory["rgb"], 0, 1) * 255))) <= 1


def test_interp_appearance_is_recorded_and_used(lens_env, selection):
    import torch

    from nerfw.novel_views.synthesis import appearance_tensor, plan_appearance
    from nerfw.novel_views.selection import TrainCameras

    views, _, _, _ = selection
    run = lens_env["run"]
    train = TrainCameras(run.scene.cameras)
    centers = np.stack([v.T_world_cam[:3, 3] for v in views])
    plans = plan_appearance(run, train, centers, "interp", seed=5)
    assert plans == plan_appearance(run, train, centers, "interp", seed=5)  # deterministic
    for v, plan in zip(views, plans):
        assert plan["mode"] == "interp" and len(plan["image_ids"]) == 2 and sum(plan["weights"]) == pytest.approx(1)
        assert plan["image_ids"][0] == v.nearest
        i, j = plan["image_ids"]
        expected = plan["weights"][0] * run.model.appearance_vector(image_id=i) + \
            plan["weights"][1] * run.model.appearance_vector(image_id=j)
        torch.testing.assert_close(appearance_tensor(run.model, plan), expected)


def test_sevenscenes_layout_reads_back(lens_env, selection, monkeypatch):
    """A 7-Scenes run writes seq-NN/frame-NNNNNN.{color.png,depth.png,pose.txt} + TrainSplit.txt."""
    from nerfw.data.loader import load_scene
    from nerfw.data.parsers.sevenscenes import read_depth_m
    from nerfw.model.view_rendering import render_camera
    from nerfw.novel_views.selection import TrainCameras, novel_camera
    from nerfw.novel_views.synthesis import synthesize

    views, _, _, _ = selection
    run = lens_env["run"]
    monkeypatch.setattr(run.scene, "format", "7scenes")
    out = lens_env["root"] / "synth7"
    summary = synthesize(run, [(v.name, v.T_world_cam) for v in views[:2]], out, sequence="5", progress=False,
                         log=lambda m: None)
    assert summary["names"] == ["seq-05/frame-000000.color.png", "seq-05/frame-000001.color.png"]
    assert (out / "TrainSplit.txt").read_text() == "sequence5\n"
    scene = load_scene(out, dataset="auto")
    assert scene.format == "7scenes" and [c.name for c in scene.cameras] == summary["names"]
    for c, v in zip(scene.cameras, views):
        np.testing.assert_allclose(c.T_world_cam, v.T_world_cam, atol=1e-7)
    # The files hold exactly the render: colour, and z-depth in mm where the opacity is >= 0.5.
    train = TrainCameras(run.scene.cameras)
    record = json.loads((out / "appearance.json").read_text())
    for c, v, entry in zip(scene.cameras[:1], views, record["views"]):
        depth = read_depth_m(c.depth_path)  # metres, NaN where invalid
        ref = render_camera(run.model, novel_camera(c.name, v.T_world_cam, train), run.normalization,
                            appearance=run.model.appearance_vector(image_id=entry["image_ids"][0]), fast=True)
        valid = ref["opacity"] >= 0.5
        np.testing.assert_array_equal(np.isfinite(depth), valid & (ref["depth"] < 65.5))
        np.testing.assert_allclose(depth[np.isfinite(depth)], ref["depth"][np.isfinite(depth)], atol=6e-4)
        colour = np.asarray(Image.open(out / c.name).convert("RGB"), np.int32)
        assert np.max(np.abs(colour - np.round(np.clip(ref["rgb"], 0, 1) * 255))) <= 1


def test_synthesize_never_overwrites_files_it_did_not_write(lens_env, selection, monkeypatch):
    """OUT = a real 7-Scenes folder whose seq-06 exists: its poses and depth maps must survive, untouched."""
    from nerfw.errors import NerfwError
    from nerfw.novel_views.synthesis import synthesize

    views, _, _, _ = selection
    run = lens_env["run"]
    monkeypatch.setattr(run.scene, "format", "7scenes")
    out = lens_env["root"] / "real7"
    real_pose = out / "seq-06" / "frame-000001.pose.txt"
    real_pose.parent.mkdir(parents=True)
    real_pose.write_text("ground truth\n")
    with pytest.raises(NerfwError, match=r"1 file\(s\) of the views to render exist and were not written by nerfw "
                                         r"synthesize \(first: seq-06/frame-000001.pose.txt\)"):
        synthesize(run, [(v.name, v.T_world_cam) for v in views[:2]], out, sequence="6", progress=False,
                   log=lambda m: None)
    assert real_pose.read_text() == "ground truth\n"
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "seq-06/frame-000001.pose.txt"]  # refused before writing anything
    summary = synthesize(run, [(v.name, v.T_world_cam) for v in views[:2]], out, sequence="7", progress=False,
                         log=lambda m: None)
    assert summary["rendered"] == [0, 1] and real_pose.read_text() == "ground truth\n"
    # A manifest written before the view files were all listed (colour images only) still resumes.
    manifest = out / ".nerfw" / "manifest.json"
    listed = json.loads(manifest.read_text())["files"]
    manifest.write_text(json.dumps({"files": [f for f in listed if not f.endswith((".depth.png", ".pose.txt"))]}))
    again = synthesize(run, [(v.name, v.T_world_cam) for v in views[:2]], out, sequence="7", progress=False,
                       log=lambda m: None)
    assert again["skipped"] == [0, 1]


def test_cambridge_output_of_a_multi_camera_run_reads_back_as_rendered(lens_env, selection, monkeypatch):
    """Views near a camera with another focal and size are rendered at the common size with that camera's field
    of view and square pixels, and the NVM line of each view gives back exactly the focal it was rendered with."""
    import dataclasses

    from nerfw.data.loader import load_scene
    from nerfw.novel_views.selection import TrainCameras
    from nerfw.novel_views.synthesis import synthesize

    views, _, _, _ = selection
    run = lens_env["run"]
    cameras = list(run.scene.cameras)
    train = TrainCameras(cameras)
    template = train.cameras[0]
    _, pos = train.nearest(views[1].T_world_cam[:3, 3])
    k = cameras.index(train.cameras[int(pos[0])])
    assert train.cameras[int(pos[0])] is not template
    other = dataclasses.replace(cameras[k], width=template.width * 2, height=template.height * 2 + 1,
                                fx=template.fx * 3.0, fy=template.fy * 3.1)
    monkeypatch.setattr(run.scene, "cameras", cameras[:k] + [other] + cameras[k + 1:])
    out = lens_env["root"] / "synth_multicam"
    synthesize(run, [(v.name, v.T_world_cam) for v in views[:3]], out, progress=False, log=lambda m: None)
    scene = load_scene(out, dataset="auto")
    by_name = {c.name: c for c in scene.cameras}
    f_other = other.fx * template.width / other.width  # the other camera's horizontal field of view
    for v in views[:3]:
        c = by_name[v.name]
        assert (c.width, c.height) == (template.width, template.height)
        assert Image.open(out / v.name).size == (template.width, template.height)
        nearest = train.cameras[int(train.nearest(v.T_world_cam[:3, 3])[1][0])]
        expected = f_other if cameras.index(nearest) == k else template.fx
        assert c.fx == pytest.approx(expected, rel=1e-6) and c.fy == pytest.approx(expected, rel=1e-6)
    camera = json.loads((out / "camera.json").read_text())
    assert [e["fx"] for e in camera["views"]] == pytest.approx([by_name[v.name].fx for v in views[:3]], rel=1e-6)


def test_depth_to_mm_marks_invalid_pixels():
    from nerfw.novel_views.synthesis import depth_to_mm

    depth = np.array([[1.2345, 0.0004, 70.0, np.nan]])
    opacity = np.array([[1.0, 1.0, 1.0, 1.0]])
    np.testing.assert_array_equal(depth_to_mm(depth, opacity), [[1234, 0, 0, 0]])
    assert depth_to_mm(depth, np.zeros_like(opacity)).max() == 0
    assert depth_to_mm(depth, opacity).dtype == np.uint16


def test_cli_select_views_and_synthesize(lens_env, density):
    from nerfw.cli import main

    run_dir = str(lens_env["run"].run_dir)
    views = lens_env["root"] / "cli" / "views.txt"
    assert main(["select-views", "--run", run_dir, "--n_novel", "2", "--out", str(views), "--min_opacity", "0",
                 "--seed", "3"]) == 0
    assert views.is_file() and views.with_suffix(".ply").is_file()
    out = lens_env["root"] / "cli" / "out"
    assert main(["synthesize", "--run", run_dir, "--views", str(views), "--out", str(out), "--appearance",
                 "interp", "--no_progress"]) == 0
    assert len(list((out / "seq_synth").glob("frame*.png"))) == 2
    assert main(["select-views", "--run", run_dir, "--n_novel", "0", "--out", str(views)]) == 2


def test_synthesize_quality_full_writes_the_full_render(lens_env, selection):
    from nerfw.model.view_rendering import render_camera
    from nerfw.novel_views.selection import TrainCameras, novel_camera
    from nerfw.novel_views.synthesis import synthesize

    views, _, _, _ = selection
    run = lens_env["run"]
    out = lens_env["root"] / "synth_full"
    summary = synthesize(run, [(v.name, v.T_world_cam) for v in views[:1]], out, progress=False,
                         log=lambda m: None, quality="full")
    record = json.loads((out / "appearance.json").read_text())["views"][0]
    camera = novel_camera(summary["names"][0], views[0].T_world_cam, TrainCameras(run.scene.cameras))
    app = run.model.appearance_vector(image_id=record["image_ids"][0])
    full = render_camera(run.model, camera, run.normalization, appearance=app)["rgb"]
    written = np.asarray(Image.open(out / summary["names"][0]).convert("RGB"), np.int32)
    assert np.max(np.abs(written - np.round(np.clip(full, 0, 1) * 255))) <= 1


def test_synthesized_views_of_a_distorted_run_are_pinhole(lens_env, selection, monkeypatch):
    """The training cameras have a strong lens; the poses file / NVM of a novel view describe a pinhole camera, so
    the written image is the pinhole render, not the render through the nearest camera's lens."""
    from nerfw.cameras.conventions import Distortion
    from nerfw.model.view_rendering import render_camera
    from nerfw.novel_views.selection import TrainCameras, novel_camera
    from nerfw.novel_views.synthesis import synthesize

    views, _, _, _ = selection
    run = lens_env["run"]
    lens = Distortion("opencv", [-0.3, 0.1])
    monkeypatch.setattr(run.scene, "cameras", [dataclasses.replace(c, distortion=lens) for c in run.scene.cameras])
    train = TrainCameras(run.scene.cameras)
    camera = novel_camera("v.png", views[0].T_world_cam, train)
    assert camera.distortion is None and train.cameras[0].distortion == lens
    out = lens_env["root"] / "synth_lens"
    summary = synthesize(run, [(v.name, v.T_world_cam) for v in views[:1]], out, progress=False, log=lambda m: None)
    record = json.loads((out / "appearance.json").read_text())["views"][0]
    app = run.model.appearance_vector(image_id=record["image_ids"][0])
    written = np.asarray(Image.open(out / summary["names"][0]).convert("RGB"), np.int32)
    pinhole = render_camera(run.model, camera, run.normalization, appearance=app, fast=True)["rgb"]
    through_lens = render_camera(run.model, dataclasses.replace(camera, distortion=lens), run.normalization,
                                 appearance=app, fast=True)["rgb"]
    to8 = lambda rgb: np.round(np.clip(rgb, 0, 1) * 255)  # noqa: E731
    assert np.max(np.abs(written - to8(pinhole))) <= 1
    assert np.mean(np.abs(written - to8(through_lens))) > 1.0  # the lens would have changed the image
