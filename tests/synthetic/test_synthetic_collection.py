"""Tests of the "collection" preset: a landmark's photo collection written as a COLMAP text model.

The COLMAP files are parsed by hand here (COLMAP's documented text format); `load_scene` is checked separately."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nerfw.cameras.conventions import Distortion, colmap_to_T_world_cam, intrinsics_matrix, pixels_to_normalized, project_points
from nerfw.errors import ConfigError
from nerfw.synthetic import GroundTruth, generate_scene
from nerfw.cli.make_scene import main as cli_main

N_PARAMS = {"SIMPLE_RADIAL": 4, "RADIAL": 5, "OPENCV": 8}


@pytest.fixture(scope="module")
def coll(tmp_path_factory):
    out = tmp_path_factory.mktemp("collection")
    info = generate_scene(out, preset="collection", seed=3, width=96, n_train=14, n_test=2, workers=1)
    info["out"] = out
    return info


def _lines(path: Path) -> list[str]:
    return [ln for ln in path.read_text().split("\n") if not ln.startswith("#")]


def read_colmap(model: Path) -> tuple[dict, dict, dict]:
    cams = {}
    for ln in _lines(model / "cameras.txt"):
        if ln.strip():
            t = ln.split()
            cams[int(t[0])] = {"model": t[1], "width": int(t[2]), "height": int(t[3]), "params": [float(x) for x in t[4:]]}
    lines = _lines(model / "images.txt")
    while lines and not lines[-1]:
        lines.pop()
    assert len(lines) % 2 == 0
    images = {}
    for head, pts in zip(lines[::2], lines[1::2]):
        t = head.split()
        p = np.array(pts.split(), float).reshape(-1, 3)
        images[int(t[0])] = {"q": np.array(t[1:5], float), "t": np.array(t[5:8], float), "camera": int(t[8]),
                             "name": t[9], "xy": p[:, :2], "ids": p[:, 2].astype(np.int64)}
    points = {}
    for ln in _lines(model / "points3D.txt"):
        if ln.strip():
            t = ln.split()
            track = np.array(t[8:], int).reshape(-1, 2)
            points[int(t[0])] = {"X": np.array(t[1:4], float), "rgb": np.array(t[4:7], int), "track": track}
    return cams, images, points


def lens_of(cam: dict) -> tuple[float, float, float, float, Distortion]:
    p = cam["params"]
    if cam["model"] == "SIMPLE_RADIAL":
        return p[0], p[0], p[1], p[2], Distortion("opencv", [p[3]])
    if cam["model"] == "RADIAL":
        return p[0], p[0], p[1], p[2], Distortion("opencv", p[3:5])
    assert cam["model"] == "OPENCV"
    return p[0], p[1], p[2], p[3], Distortion("opencv", p[4:8])


def test_colmap_files(coll):
    root = Path(coll["dataset_dir"])
    assert sorted(p.name for p in root.iterdir()) == ["images", "sparse"]
    cams, images, points = read_colmap(root / "sparse" / "0")
    assert len(images) == len(cams) == 16 and {im["camera"] for im in images.values()} == set(cams)  # one camera per image
    names = [images[i]["name"] for i in sorted(images)]
    assert names == sorted(names) and names[0] == "IMG_0001.jpg"
    sizes, focals = set(), set()
    for iid, im in images.items():
        cam = cams[im["camera"]]
        assert len(cam["params"]) == N_PARAMS[cam["model"]]
        fx, fy, cx, cy, lens = lens_of(cam)
        assert (cx, cy) == (cam["width"] / 2, cam["height"] / 2) and fx == fy
        assert 0.7 - 1e-6 <= fx / cam["width"] <= 1.6 + 1e-6
        assert -0.3 <= lens.coeffs[0] <= 0.05 and -0.03 <= lens.coeffs[1] <= 0.08 and not any(lens.coeffs[2:])
        with Image.open(root / "images" / im["name"]) as f:
            assert f.format == "JPEG" and f.size == (cam["width"], cam["height"])
        sizes.add((cam["width"], cam["height"]))
        focals.add(fx)
        # track entries and POINTS2D point back at each other
        for k, pid in enumerate(im["ids"]):
            if pid >= 0:
                assert [iid, k] in points[pid]["track"].tolist()
    assert len(focals) == len(images)  # every photo has its own intrinsics
    assert any(w > h for w, h in sizes) and any(w < h for w, h in sizes)  # landscape and portrait
    assert len(points) > 50
    for pid, p in points.items():
        assert len(p["track"]) >= 2
        for iid, k in p["track"]:
            assert images[iid]["ids"][k] == pid
    assert sum((im["ids"] == -1).sum() for im in images.values()) > 0  # unmatched keypoints, as real models


def test_load_scene_splits_and_intrinsics(coll):
    from nerfw.data.loader import load_scene

    scene = load_scene(coll["out"], "SynthLandmark")
    assert scene.format == "colmap"
    gt = GroundTruth.load(coll["groundtruth_dir"])
    names = sorted(gt.cameras)
    assert [c.name for c in scene.cameras] == names
    assert [c.name for c in scene.split("test")] == names[::8]  # the COLMAP reader's test_every = 8
    assert all(gt.cameras[c.name]["split"] == c.split for c in scene.cameras)
    for c in scene.cameras:
        g = gt.cameras[c.name]
        assert (c.width, c.height, c.fx, c.fy, c.cx, c.cy) == (g["width"], g["height"], g["fx"], g["fy"], g["cx"], g["cy"])
        assert np.allclose(c.T_world_cam, g["T_world_cam"], atol=1e-9)
        if getattr(c, "distortion", None) is not None:  # readers that attach the lens give exactly ours
            assert c.distortion == Distortion.from_dict(g["distortion"])


def test_points_project_onto_observations_landmark_and_depth(coll):
    root = Path(coll["dataset_dir"])
    cams, images, points = read_colmap(root / "sparse" / "0")
    gt = GroundTruth.load(coll["groundtruth_dir"])
    lo, hi = gt.bounds()
    X = np.array([p["X"] for p in points.values()])
    assert (X >= lo - 1e-6).all() and (X <= hi + 1e-6).all()  # on the landmark ...
    assert np.abs(gt.signed_distance(X)).max() < 1e-3  # ... on its surface (float32 ray tracing)
    n_checked = 0
    for iid, im in images.items():
        fx, fy, cx, cy, lens = lens_of(cams[im["camera"]])
        T = colmap_to_T_world_cam(im["q"], im["t"])
        sel = im["ids"] >= 0
        if not sel.any():
            continue
        Xi = np.array([points[p]["X"] for p in im["ids"][sel]])
        uv, z = project_points(intrinsics_matrix(fx, fy, cx, cy), T, Xi, lens)
        assert (z > 0).all() and np.abs(uv - im["xy"][sel]).max() < 1e-6
        depth, landmark, mask = gt.depth(im["name"]), gt.landmark_mask(im["name"]), gt.mask(im["name"])
        u, v = np.floor(uv).astype(int).T
        assert landmark[v, u].all() and not mask[v, u].any()
        assert (np.abs(depth[v, u] - z) < 0.03 * z + 0.01).all()
        n_checked += len(u)
    assert n_checked > 200


def test_lens_covers_every_pixel_and_renders_match(coll):
    gt = GroundTruth.load(coll["groundtruth_dir"])
    root = Path(coll["dataset_dir"])
    for name, c in gt.cameras.items():
        W, H = c["width"], c["height"]
        corners = np.array([[0, 0], [W, 0], [0, H], [W, H]], float)
        lens = Distortion.from_dict(c["distortion"])
        assert np.isfinite(pixels_to_normalized(c["fx"], c["fy"], c["cx"], c["cy"], corners, lens)).all()
        assert not np.isnan(gt.depth(name)).any()
    # the static scene through the same lens reproduces the photo outside its occluders (up to JPEG)
    names = [n for n, c in gt.cameras.items() if c["split"] == "train"][:4]
    names += [n for n, c in gt.cameras.items() if c["has_transients"]][:2]
    for name in names:
        rgb = np.asarray(Image.open(root / "images" / name).convert("RGB")).astype(float)
        out = gt.render_image(name)
        diff = np.abs(out["rgb"] * 255 - rgb).mean(-1)
        mask = gt.mask(name)
        assert diff[~mask].mean() < 3.0
        if mask.sum() > 20:
            assert diff[mask].mean() > 8
    for name in (n for n, c in gt.cameras.items() if c["split"] == "test"):
        c = gt.cameras[name]
        canon = gt.render(np.array(c["T_world_cam"]), c["fx"], c["fy"], c["cx"], c["cy"], c["width"], c["height"],
                          distortion=c["distortion"])["rgb"]
        assert np.abs(gt.clean(name) - canon * 255).max() <= 0.51
        pinhole = gt.render(np.array(c["T_world_cam"]), c["fx"], c["fy"], c["cx"], c["cy"], c["width"], c["height"])
        if abs(c["distortion"]["coeffs"][0]) > 0.05:
            assert np.abs(pinhole["rgb"] - canon).mean() > 1e-3  # the lens really bends the image


def test_far_cameras_look_at_the_landmark(coll):
    gt = GroundTruth.load(coll["groundtruth_dir"])
    centre = np.array(gt.scene["landmark"]["center_world"])
    dist = {n: np.linalg.norm(np.array(c["T_world_cam"])[:3, 3] - centre) for n, c in gt.cameras.items()}
    far = [n for n, c in gt.cameras.items() if c["kind"] == "far"]
    near = [n for n, c in gt.cameras.items() if c["kind"] != "far"]
    assert 1 <= len(far) <= max(1, 0.1 * len(gt.cameras))
    typical = np.median([gt.cameras[n]["distance"] for n in near])
    for n in far:
        assert 5.0 <= gt.cameras[n]["distance"] / typical <= 10.0
        assert dist[n] > 4 * np.median([dist[m] for m in near])
        assert gt.cameras[n]["split"] == "train"
    for n in gt.cameras:  # every photo shows the landmark
        assert gt.landmark_mask(n).any()


def test_sky_fraction(coll):
    gt = GroundTruth.load(coll["groundtruth_dir"])
    lo, hi = gt.scene["params"]["sky_range"]
    assert (lo, hi) == (0.4, 0.7)
    up = [n for n, c in gt.cameras.items() if c["kind"] == "up"]
    assert len(up) >= 0.5 * len(gt.cameras)
    for n in up:
        c = gt.cameras[n]
        assert lo <= c["sky_fraction"] <= hi
        assert c["pitch_deg"] > 0  # looking up
        if not c["has_transients"]:
            assert np.isinf(gt.depth(n)).mean() == pytest.approx(c["sky_fraction"], abs=1e-6)


def test_transients_appearance_and_world(coll):
    gt = GroundTruth.load(coll["groundtruth_dir"])
    train = [n for n, c in gt.cameras.items() if c["split"] == "train"]
    test = [n for n, c in gt.cameras.items() if c["split"] == "test"]
    assert not any(gt.mask(n).any() for n in test)
    with_tr = [n for n in train if gt.cameras[n]["has_transients"]]
    assert len(with_tr) >= 5 and all(gt.mask(n).any() for n in with_tr)
    kinds = {k for n in with_tr for k in gt.cameras[n]["transients"]}
    assert kinds <= {"helicopter", "people"} and kinds
    apps = [gt.appearance(n) for n in gt.cameras]
    assert len({a["exposure"] for a in apps}) == len(apps) and len({a["cloud_offset"][0] for a in apps}) == len(apps)
    assert max(a["exposure"] for a in apps) / min(a["exposure"] for a in apps) > 1.5
    assert gt.appearance("canonical").get("cloud_cover", 0) == 0
    # COLMAP-like world: the reference photo is the identity; up is not a coordinate axis
    ref = gt.scene["world"]["reference_image"]
    assert np.allclose(gt.cameras[ref]["T_world_cam"], np.eye(4), atol=1e-9)
    lo, hi = (np.array(b) for b in gt.scene["landmark"]["bounds_local"])
    assert 0.9 < hi[0] - lo[0] < 1.4 and 1.6 < hi[2] - lo[2] < 2.3 and lo[2] == 0.0


def test_determinism_and_cli(tmp_path):
    def digest(base: Path) -> str:
        h = hashlib.sha256()
        for p in sorted(base.rglob("*")):
            if p.is_file():
                h.update(str(p.relative_to(base)).encode() + p.read_bytes())
        return h.hexdigest()

    small = ["--width", "48", "--n_train", "6", "--workers", "2"]
    assert cli_main(["--out", str(tmp_path / "a"), "--preset", "collection", "--seed", "9", *small]) == 0
    info = generate_scene(tmp_path / "b", preset="collection", seed=9, width=48, n_train=6, workers=1)
    assert info["n_test"] == 1  # ceil(6 / 7): every 8th photo by name
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    other = generate_scene(tmp_path / "c", preset="collection", seed=10, width=48, n_train=6, workers=1)
    a = (tmp_path / "a" / "SynthLandmark" / "sparse" / "0" / "cameras.txt").read_bytes()
    assert a != (Path(other["dataset_dir"]) / "sparse" / "0" / "cameras.txt").read_bytes()


@pytest.mark.parametrize("kwargs", [dict(n_train=14, n_test=5), dict(height=100), dict(layout="7scenes"),
                                    dict(n_test=0), dict(width=10), dict(preset="bogus")])
def test_bad_arguments(tmp_path, kwargs):
    kwargs = {"preset": "collection", **kwargs}
    with pytest.raises(ConfigError):
        generate_scene(tmp_path, **kwargs)
