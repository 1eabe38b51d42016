"""One capture written in every layout nerfw reads is framed and trained alike (nerfw/data/export.py writes them).

Users ship the same photos, poses and points in whatever shape their tools wrote: a COLMAP model, Phototourism's
dense/sparse with a split file, LLFF's poses_bounds.npy with or without the model's image list, transforms.json
with or without its point cloud. The framing must not depend on the layout.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nerfw.cameras.conventions import make_T
from nerfw.data.export import write_colmap, write_llff, write_transforms
from nerfw.data.framing import choose_framing, pixel_footprint
from nerfw.data.loader import load_scene
from nerfw.data.scene import CameraView, SceneData


@pytest.fixture(scope="module")
def capture(tmp_path_factory) -> Path:
    """The collection preset, small: per-photo sizes, focals and lens distortion, a COLMAP text model."""
    from nerfw.synthetic import generate_scene

    out = tmp_path_factory.mktemp("capture")
    generate_scene(out, preset="collection", scene="Coll", seed=3, width=96, n_train=14, n_test=2, workers=1)
    return out / "Coll"


def write_phototourism(scene: SceneData, root: Path) -> Path:
    """NeRF-W's layout: dense/images, dense/sparse (a COLMAP model), <scene>.tsv with the splits."""
    write_colmap(scene, root / "dense")
    (root / "dense" / "sparse" / "0").rename(root / "dense" / "sparse_model")
    shutil.rmtree(root / "dense" / "sparse")
    (root / "dense" / "sparse_model").rename(root / "dense" / "sparse")
    names = sorted(p.name for p in (root / "dense" / "images").iterdir())
    rows = [f"{name}\t{i}\t{c.split}\tcoll" for i, (name, c) in enumerate(zip(names, scene.cameras))]
    (root / f"{root.name}.tsv").write_text("filename\tid\tsplit\tdataset\n" + "\n".join(rows) + "\n")
    return root


def layouts(source: SceneData, tmp: Path) -> dict[str, Path]:
    write_colmap(source, tmp / "colmap")
    write_llff(source, tmp / "llff_no_image_list")  # cameras.txt + points3D.txt beside poses_bounds.npy
    write_llff(source, tmp / "llff_with_model")
    shutil.copy(tmp / "colmap" / "sparse" / "0" / "images.txt", tmp / "llff_with_model" / "sparse" / "0")
    write_transforms(source, tmp / "transforms" / "transforms.json")
    write_phototourism(source, tmp / "pt")
    return {"colmap": tmp / "colmap", "llff_no_image_list": tmp / "llff_no_image_list",
            "llff_with_model": tmp / "llff_with_model", "transforms": tmp / "transforms", "phototourism": tmp / "pt"}


def test_one_capture_in_every_layout_is_framed_alike(capture, tmp_path):
    source = load_scene(capture, img_downscale=1)
    reference = choose_framing(source)
    assert reference.method == "points" and len(source.points) > 100
    for name, root in layouts(source, tmp_path).items():
        scene = load_scene(root, img_downscale=1)
        assert scene.points is not None and len(scene.points) == len(source.points), name
        np.testing.assert_allclose(np.sort(scene.points, axis=0), np.sort(source.points, axis=0), atol=1e-9)
        assert [c.distortion for c in scene.cameras] == [c.distortion for c in source.cameras], name
        assert [c.split for c in scene.cameras] == [c.split for c in source.cameras], name
        framing = choose_framing(scene)
        assert np.linalg.norm(framing.center - reference.center) <= 0.05 * reference.radius, name
        assert framing.radius == pytest.approx(reference.radius, rel=0.10), name
        assert not [w for w in scene.warnings if "not used" in w], (name, scene.warnings)


def test_llff_points_without_the_image_list_land_where_the_model_puts_them(capture, tmp_path):
    """poses_bounds.npy is in the model's own world: its points are taken as they are after a projection check,
    and rejected (with a one-line reason) when the poses were moved to another frame."""
    source = load_scene(capture, img_downscale=1)
    root = write_llff(source, tmp_path / "llff")
    assert not (root / "sparse" / "0" / "images.txt").exists()
    scene = load_scene(root, img_downscale=1)
    np.testing.assert_allclose(scene.points, source.points, atol=1e-9)
    np.testing.assert_array_equal(scene.point_colors, source.point_colors)
    # recentred and rescaled poses (as some tools write them): the same points no longer lie in the rows' frame
    pb = np.load(root / "poses_bounds.npy")
    poses = pb[:, :15].reshape(-1, 3, 5)
    poses[:, :, 3] = (poses[:, :, 3] - poses[:, :, 3].mean(0)) * 0.2
    pb[:, :15], pb[:, 15:] = poses.reshape(-1, 15), pb[:, 15:] * 0.2
    np.save(root / "poses_bounds.npy", pb)
    moved = load_scene(root, img_downscale=1)
    assert moved.points is None
    assert any("sparse points not used" in w and "seen by a row's camera" in w for w in moved.warnings)


def test_llff_one_shared_camera_lends_its_lens_to_every_row(capture, tmp_path):
    source = load_scene(capture, img_downscale=1)
    root = write_llff(source, tmp_path / "llff")
    (root / "sparse" / "0" / "cameras.txt").write_text("1 SIMPLE_RADIAL 1200 800 2000 600 400 -0.55\n")
    scene = load_scene(root, img_downscale=1)
    assert {c.distortion.coeffs[0] for c in scene.cameras} == {-0.55}


def tele_collection(tmp: Path, distance: float = 6.0, n: int = 24):
    """A collection shaped like an internet landmark collection: a unit-radius landmark, cameras about `distance`
    landmark radii away with a long lens (the landmark fills the view), tiny images on disk."""
    rng = np.random.default_rng(4)
    (tmp / "img").mkdir(parents=True)
    views = []
    for i in range(n):
        a, h = 2 * np.pi * i / n, rng.uniform(-0.5, 1.5)
        center = np.array([distance * np.cos(a), distance * np.sin(a), h])
        z = -center / np.linalg.norm(center)
        x = np.cross(z, [0.0, 0.0, 1.0])
        x /= np.linalg.norm(x)
        path = tmp / "img" / f"{i:03d}.png"
        Image.fromarray(np.zeros((60, 40, 3), np.uint8)).save(path)
        # f = 40 / 2 / tan: the 40-px short side spans a view 1.1 landmark radii wide at the landmark
        views.append(CameraView(path.name, path, "test" if i % 8 == 0 else "train", 40, 60, 20 * distance / 1.1,
                                20 * distance / 1.1, 20.0, 30.0, make_T(np.stack([x, np.cross(z, x), z], 1), center),
                                distance - 2, distance + 2))
    points = rng.normal(size=(600, 3))
    points = points / np.linalg.norm(points, axis=1, keepdims=True) * rng.uniform(0, 1, (600, 1)) ** (1 / 3)
    return SceneData("colmap", tmp, views, points=points, point_colors=np.full((600, 3), 200, np.uint8))


@pytest.mark.parametrize("layout", ["llff_without_image_list", "llff_without_points", "transforms_without_points"])
def test_distant_landmark_keeps_detail_resolution_in_every_layout(tmp_path, layout):
    """Cameras 6 landmark radii away: the landmark spans at least as many finest-grid cells as its photos have
    pixels across it, with its points and without any."""
    source = tele_collection(tmp_path / "src")
    if layout.startswith("llff"):
        root = write_llff(source, tmp_path / layout)
        if layout == "llff_without_points":
            (root / "sparse" / "0" / "points3D.txt").unlink()
    else:
        root = tmp_path / layout
        write_transforms(SceneData("colmap", source.root, source.cameras), root / "transforms.json")
    scene = load_scene(root, img_downscale=1)
    assert (scene.points is not None) == (layout == "llff_without_image_list")
    train = scene.split("train")
    for grid_max_res in (256, 512):
        framing = choose_framing(scene, grid_max_res=grid_max_res)
        cells = 2.0 / (4.0 * framing.radius / grid_max_res)  # the landmark's diameter in finest cells
        pixels = 2.0 / pixel_footprint(train, np.zeros(3))  # ... and in its photos' pixels
        assert cells >= 0.95 * pixels, (layout, framing.describe(), cells, pixels)
        assert np.linalg.norm(framing.center) < 0.5, framing.describe()


@pytest.mark.e2e
def test_one_capture_trains_alike_from_colmap_and_from_llff_without_image_list(capture, tmp_path):
    """The same steps from two layouts of one capture: the same model frame, and test PSNR within 0.5 dB."""
    import json

    from helpers import TINY_GRID

    from nerfw.cli.evaluate import main as eval_main
    from nerfw.training.config import parse_config
    from nerfw.training.trainer import train

    source = load_scene(capture, img_downscale=1)
    roots = {"colmap": capture, "llff": write_llff(source, tmp_path / "llff")}
    scores, frames = {}, {}
    for name, root in roots.items():
        run = train(parse_config(["--data_root_dir", str(root), "--root_dir", str(tmp_path / "runs"), "--exp_name",
                                  name, *TINY_GRID, "--max_steps", "100", "--seed", "5", "--transient_warmup", "0"]))
        frames[name] = json.loads((run / "normalization.json").read_text()) if (run / "normalization.json").is_file() \
            else [ln for ln in (run / "loss_log.txt").read_text().splitlines() if ln.startswith("framing:")]
        eval_main(["--run", str(run), "--threads", "1"])
        scores[name] = json.loads((run / "eval" / "test" / "metrics.json").read_text())["psnr"]
    assert frames["colmap"] == frames["llff"]
    assert abs(scores["colmap"] - scores["llff"]) < 0.5, scores
