"""`nerfw export --run RUN --format points|mesh` (nerfw/outputs/geometry.py)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from plyfile import PlyData
from scipy.spatial import cKDTree

from nerfw.cameras.conventions import make_T, pixel_centers
from nerfw.data.scene import CameraView
from nerfw.synthetic import geometry
from nerfw.outputs.geometry import (Geometry, MeshOptions, PointOptions, depth_edges, depth_normals,
                                         export_mesh, export_points, keep_large_components, pixel_points,
                                         remove_outliers, voxel_average, write_obj, write_ply)


def exact_scene() -> geometry.Primitives:
    """A ground slab (top face z = 0) and a 1 m box standing on it."""
    p = geometry.Primitives.empty()
    p.box_lo = np.array([[-20, -20, -1], [-0.5, -0.5, 0]], np.float32)
    p.box_hi = np.array([[20, 20, 0], [0.5, 0.5, 1]], np.float32)
    p.box_mat = np.array([0, 1], np.int32)
    return p


def exact_depth(prims, camera: CameraView) -> np.ndarray:
    uv = pixel_centers(camera.width, camera.height)
    d = np.concatenate([(uv - [camera.cx, camera.cy]) / [camera.fx, camera.fy], np.ones((len(uv), 1))], 1)
    d = d @ camera.T_world_cam[:3, :3].T
    hit = geometry.trace(prims, np.broadcast_to(camera.center, d.shape).copy(), d)
    return hit.t.reshape(camera.height, camera.width).astype(np.float64)  # t is the z-depth (camera z = 1)


def oblique_camera() -> CameraView:
    center = np.array([3.0, -2.5, 2.2])
    z = -center / np.linalg.norm(center)
    x = np.cross(z, [0.0, 0.0, 1.0])
    x /= np.linalg.norm(x)
    T = make_T(np.stack([x, np.cross(z, x), z], 1), center)
    return CameraView("c.png", Path("c.png"), "train", 160, 120, 150.0, 150.0, 80.0, 60.0, T, 0.1, 20.0)


def test_exact_depth_lifts_onto_the_true_surfaces_and_edges_are_dropped():
    prims, camera = exact_scene(), oblique_camera()
    depth = exact_depth(prims, camera)
    points = pixel_points(depth, camera)
    edges = depth_edges(depth)
    kept = points[~edges & np.isfinite(depth)]
    distance = np.abs(geometry.signed_distance(prims, kept))
    assert len(kept) > 0.8 * depth.size and np.max(distance) < 1e-3  # float32 tracing
    # the box's silhouette against the ground is a depth jump: those pixels are edges
    box_pixels = np.isclose(geometry.signed_distance(prims, points.reshape(-1, 3)), 0, atol=1e-3)
    assert 0 < edges.sum() < 0.1 * depth.size and box_pixels.all()
    # normals of the ground point up, those of the box's faces along its axes
    normals = depth_normals(points, camera.center)[~edges]
    on_ground = np.abs(kept[:, 2]) < 1e-4
    assert np.median(normals[on_ground, 2]) > 0.999
    assert np.all(np.max(np.abs(normals[~on_ground]), axis=1)[np.all(np.abs(kept[~on_ground]) < 0.49, 1)] > 0.99)


def test_pixels_of_unsure_depth_are_dropped_and_agree_with_nothing(monkeypatch):
    """view_points keeps a pixel only where the middle half of its ray's weight lies within max_depth_spread times
    the framed radius, and its surface map (the agreement test's) shows no depth where the depth is unsure."""
    import torch

    from nerfw.outputs import geometry as geometry_export

    camera = oblique_camera().at_width(16)
    depth = np.full((camera.height, camera.width), 4.0)
    spread = np.zeros_like(depth)
    spread[:, :8] = 0.4  # 4 % of the framed radius (10): unsure at 3 %
    spread[0, 0] = 0.25  # 2.5 %: sure
    out = {"depth": depth, "depth_spread": spread, "opacity": np.ones_like(depth),
           "transient_opacity": np.zeros_like(depth), "rgb_static": np.full(depth.shape + (3,), 0.5)}
    monkeypatch.setattr(geometry_export, "render_camera", lambda *args, **kwargs: out)

    class Run:
        model = type("M", (), {"cfg": type("C", (), {"encode_t": False})})()
        normalization = type("N", (), {"scale": 0.1})()  # a framed radius of 10 dataset units

    part, (_, surface) = geometry_export.view_points(Run(), camera, 0, torch.zeros(1),
                                                     PointOptions(max_depth_spread=0.03))
    sure = spread <= 0.03 * 10
    assert len(part.points) == sure.sum() == depth.size // 2 + 1
    np.testing.assert_array_equal(np.isfinite(surface), sure)
    everything, _ = geometry_export.view_points(Run(), camera, 0, torch.zeros(1), PointOptions())  # the default: off
    assert len(everything.points) == depth.size


def test_voxel_average_merges_points_per_cell():
    g = Geometry(np.array([[0.1, 0.1, 0.1], [0.3, 0.3, 0.3], [1.5, 0.2, 0.2]]),
                 np.array([[0, 0, 0], [200, 100, 50], [9, 9, 9]], np.uint8),
                 np.array([[0, 0, 1.0], [0, 1.0, 0], [1.0, 0, 0]]))
    out = voxel_average(g, 1.0)
    assert len(out.points) == 2
    first = np.argmin(out.points[:, 0])
    np.testing.assert_allclose(out.points[first], [0.2, 0.2, 0.2])
    np.testing.assert_array_equal(out.colors[first], [100, 50, 25])
    np.testing.assert_allclose(out.normals[first], [0, np.sqrt(0.5), np.sqrt(0.5)])


def test_outlier_removal_drops_floaters_and_keeps_the_surface():
    u, v = np.meshgrid(np.linspace(0, 1, 40), np.linspace(0, 1, 40))
    plane = np.stack([u.ravel(), v.ravel(), np.zeros(u.size)], axis=1)  # 1,600 points 2.6 cm apart
    floaters = np.array([[0.5, 0.5, 0.8], [2.0, 2.0, 2.0], [-1.0, 0.3, 0.4]])
    points = np.concatenate([plane, floaters])
    g = Geometry(points, np.zeros((len(points), 3), np.uint8), np.tile([0.0, 0.0, 1.0], (len(points), 1)))
    out = remove_outliers(g, std_ratio=2.0)
    assert len(out.points) == len(plane) and np.all(out.points[:, 2] == 0)  # every floater gone, no plane point
    assert len(out.normals) == len(out.points)
    assert len(remove_outliers(g, std_ratio=0).points) == len(points)  # 0 turns it off


def test_small_pieces_are_removed():
    verts = np.arange(21, dtype=float).reshape(7, 3)
    faces = np.array([[0, 1, 2], [1, 2, 3], [2, 3, 0], [4, 5, 6]])  # a 3-face piece and a 1-face piece
    v, f, used = keep_large_components(verts, faces, min_faces=2)
    assert len(f) == 3 and list(used) == [0, 1, 2, 3] and f.max() == 3


def sparse_points_of(run) -> np.ndarray:
    points = run.scene.points
    return points[np.all(np.isfinite(points), axis=1)]


def test_trained_cloud_lands_on_the_sparse_points_in_the_dataset_frame(tiny_run, tiny_cambridge, tmp_path):
    """The exported cloud is in the dataset's frame: on the dataset's own SfM points and its true surfaces (a frame
    error puts it many framed radii away), and the PLY holds x y z, normals and colours with the frame in its
    header. Measured on this 300-step toy model (24 field samples per ray): 10.7 % of the framed radius to the nearest
    sparse point, 5.4 % to the true surface (median; 6 % and 3.4 % with 48 samples); in the model frame: 19 radii."""
    from nerfw.synthetic import GroundTruth
    from nerfw.training.run_io import load_run

    run = load_run(tiny_run)
    radius = 1.0 / run.normalization.scale
    cloud = export_points(run, PointOptions(width=64, max_views=12))
    sparse = sparse_points_of(run)
    assert len(cloud.points) > 200
    to_sparse = np.median(cKDTree(sparse).query(cloud.points)[0])
    assert to_sparse < 0.15 * radius, to_sparse / radius
    wrong_frame = run.normalization.points_to_model(cloud.points)  # forgetting the inverse normalisation
    assert np.median(cKDTree(sparse).query(wrong_frame)[0]) > 10 * to_sparse
    truth = GroundTruth.load(tiny_cambridge / "Tiny.groundtruth")
    to_surface = np.median(np.abs(truth.signed_distance(cloud.points)))
    assert to_surface < 0.08 * radius, to_surface / radius
    path = write_ply(tmp_path / "cloud.ply", cloud, ["frame: dataset"])
    ply = PlyData.read(str(path))
    names = [p.name for p in ply["vertex"].properties]
    assert names == ["x", "y", "z", "nx", "ny", "nz", "red", "green", "blue"]
    assert ply["vertex"].count == len(cloud.points) and "frame: dataset" in ply.comments


def test_trained_mesh_lies_where_the_renders_put_the_surface(tiny_run, tmp_path):
    from nerfw.training.run_io import load_run

    run = load_run(tiny_run)
    radius = 1.0 / run.normalization.scale
    mesh = export_mesh(run, MeshOptions(resolution=64, min_component=20))
    assert mesh.faces is not None and mesh.faces.max() < len(mesh.points) and len(mesh.faces) > 100
    cloud = export_points(run, PointOptions(width=64, max_views=12))
    assert np.median(cKDTree(mesh.points).query(cloud.points)[0]) < 0.06 * radius
    ply = PlyData.read(str(write_ply(tmp_path / "mesh.ply", mesh, ["frame: dataset"])))
    assert ply["face"].count == len(mesh.faces) and ply["vertex"].count == len(mesh.points)
    obj = write_obj(tmp_path / "mesh.obj", mesh, ["frame: dataset"]).read_text().splitlines()
    assert sum(line.startswith("v ") for line in obj) == len(mesh.points)
    assert sum(line.startswith("f ") for line in obj) == len(mesh.faces)


def test_export_command_errors_are_one_line(tiny_run, tmp_path, capsys):
    from nerfw.cli import main

    assert main(["export", "--run", str(tmp_path / "none"), "--format", "points", "--out", str(tmp_path / "a.ply")]) != 0
    assert main(["export", "--run", str(tiny_run), "--format", "points", "--out", str(tmp_path / "a.txt")]) != 0
    assert main(["export", "--data_root_dir", str(tmp_path), "--format", "mesh", "--out", str(tmp_path / "m.ply")]) != 0
    assert main(["export", "--run", str(tiny_run), "--format", "points", "--min_opacity", "1.5",
                 "--out", str(tmp_path / "b.ply")]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and all(line.startswith("nerfw export: error:") for line in err), err
    assert "no config.json" in err[0] and ".ply" in err[1] and "--run RUN" in err[2] and "--min_opacity" in err[3]
    # every depth of the 300-step toy model is unsure (the middle half of a ray's weight spans 30-190 % of its
    # depth): the error, after the progress bar, names the option that lets them through
    assert main(["export", "--run", str(tiny_run), "--format", "points", "--width", "32", "--max_views", "4",
                 "--max_depth_spread", "0.03", "--out", str(tmp_path / "c.ply")]) != 0
    err = [line for line in capsys.readouterr().err.splitlines() if "view/s" not in line and line.strip()]
    assert len(err) == 1 and err[0].startswith("nerfw export: error: no points to export"), err
    assert "--max_depth_spread" in err[0]


@pytest.mark.parametrize("fmt,suffix", [("points", "ply"), ("mesh", "obj")])
def test_export_command_writes_geometry(tiny_run, tmp_path, capsys, fmt, suffix):
    from nerfw.cli import main

    out = tmp_path / f"scene.{suffix}"
    assert main(["export", "--run", str(tiny_run), "--format", fmt, "--out", str(out), "--width", "48",
                 "--max_views", "6", "--resolution", "48", "--min_component", "10"]) == 0
    assert out.is_file() and "of the static scene (dataset frame)" in capsys.readouterr().out
    import torch

    assert torch.is_grad_enabled()  # the command leaves the caller's autograd switch as it found it


def test_viewer_shows_an_exported_cloud_in_the_model_frame(tiny_run, tmp_path):
    from nerfw.errors import NerfwError
    from nerfw.training.run_io import load_run
    from nerfw.viewer.server import Viewer, read_cloud

    run = load_run(tiny_run)
    cloud = Geometry(np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]), np.array([[255, 0, 0], [0, 255, 0]], np.uint8))
    path = write_ply(tmp_path / "c.ply", cloud, ["frame: dataset"])
    points, colors = read_cloud(path)
    np.testing.assert_allclose(points, cloud.points, rtol=1e-6)
    viewer = Viewer(run, cloud=path)
    viewer._prepare_scene()
    np.testing.assert_allclose(viewer.points[0], run.normalization.points_to_model(cloud.points), rtol=1e-5)
    np.testing.assert_array_equal(viewer.points[1], cloud.colors)
    (tmp_path / "bad.ply").write_text("not a ply\n")
    with pytest.raises(NerfwError, match="bad.ply: expected a PLY with x, y, z vertices"):
        read_cloud(tmp_path / "bad.ply")
