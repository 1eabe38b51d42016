"""Tests of the synthetic scene generator. Datasets are read here with plain numpy/PIL, following
/work/shared/reference/datasets.md, never through a nerfw loader."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nerfw.errors import ConfigError
from nerfw.synthetic import GroundTruth, generate_scene
from nerfw.cli.make_scene import main as cli_main
from nerfw.data.writers import sevenscenes_pose_text

SMALL = dict(width=64, height=36, n_train=6, n_test=2, workers=1)


@pytest.fixture(scope="module")
def cambridge(tmp_path_factory):
    out = tmp_path_factory.mktemp("camb")
    return generate_scene(out, layout="cambridge", seed=3, transient_share=0.5, **SMALL)


@pytest.fixture(scope="module")
def sevenscenes(tmp_path_factory):
    out = tmp_path_factory.mktemp("7s")
    return generate_scene(out, layout="7scenes", seed=4, width=64, height=48, n_train=6, n_test=2, workers=1)


# --------------------------------------------------------------------------- plain readers (by hand)
def quat_wxyz_to_R(q):
    w, x, y, z = np.asarray(q, float) / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                     [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                     [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])


def read_cambridge_split(path: Path) -> dict:
    lines = path.read_text().split("\n")
    assert lines[0] == "Visual Landmark Dataset V1"
    assert lines[1] == "ImageFile, Camera Position [X Y Z W P Q R]"
    assert lines[2] == ""
    poses = {}
    for line in lines[3:]:
        if line.strip():
            parts = line.split()
            assert len(parts) == 8
            poses[parts[0]] = (np.array(parts[1:4], float), np.array(parts[4:8], float))  # centre, w2c quat
    return poses


def read_nvm_focals(path: Path) -> dict:
    lines = path.read_text().split("\n")
    assert lines[0] == "NVM_V3" and lines[1] == ""
    n = int(lines[2])
    return {ln.split()[0]: float(ln.split()[1]) for ln in lines[3:3 + n]}, lines[3:3 + n], lines[3 + n + 1:]


def project(center, q_w2c, f, cx, cy, X):
    R = quat_wxyz_to_R(q_w2c)  # world -> camera
    Xc = R @ (np.asarray(X) - center)
    return np.array([f * Xc[0] / Xc[2] + cx, f * Xc[1] / Xc[2] + cy]), Xc[2]


# --------------------------------------------------------------------------- Cambridge layout
def test_cambridge_layout_files(cambridge):
    root = Path(cambridge["dataset_dir"])
    assert sorted(p.name for p in root.iterdir()) == ["dataset_test.txt", "dataset_train.txt", "reconstruction.nvm", "seq1", "seq2", "seq3"]
    train, test = read_cambridge_split(root / "dataset_train.txt"), read_cambridge_split(root / "dataset_test.txt")
    assert len(train) == 6 and len(test) == 2 and not set(train) & set(test)
    assert "seq1/frame00001.png" in train
    for name in list(train) + list(test):
        with Image.open(root / name) as im:
            assert im.size == (64, 36) and im.mode == "RGB"
    focals, cam_lines, point_lines = read_nvm_focals(root / "reconstruction.nvm")
    assert set(focals) == {n.replace(".png", ".jpg") for n in list(train) + list(test)}
    assert all(abs(f - 0.9 * 64) < 1e-6 for f in focals.values())
    for ln in cam_lines:  # `name f qw qx qy qz cx cy cz 0 0`, same pose as the split file
        p = ln.split()
        c, q = (train | test)[p[0].replace(".jpg", ".png")]
        assert np.allclose(np.array(p[6:9], float), c, atol=1e-5) and np.allclose(np.array(p[2:6], float), q, atol=1e-5)
        assert p[9:] == ["0", "0"]
    # the world origin is far from the content, as in the real files
    centers = np.array([c for c, _ in train.values()])
    assert np.linalg.norm(centers.mean(0)) > 100


def test_cambridge_nvm_points_project(cambridge):
    """NVM point observations (x, y from the image centre) agree with projecting the point."""
    root = Path(cambridge["dataset_dir"])
    poses = read_cambridge_split(root / "dataset_train.txt") | read_cambridge_split(root / "dataset_test.txt")
    focals, cam_lines, point_lines = read_nvm_focals(root / "reconstruction.nvm")
    names = [ln.split()[0].replace(".jpg", ".png") for ln in cam_lines]
    n_points = int(point_lines[0])
    assert n_points > 10
    for ln in point_lines[1:1 + n_points]:
        p = ln.split()
        X, n_obs = np.array(p[:3], float), int(p[6])
        assert n_obs >= 2 and len(p) == 7 + 4 * n_obs
        for k in range(n_obs):
            img, _feat, x, y = p[7 + 4 * k: 11 + 4 * k]
            c, q = poses[names[int(img)]]
            uv, z = project(c, q, focals[names[int(img)].replace(".png", ".jpg")], 0.0, 0.0, X)
            assert z > 0 and np.allclose(uv, [float(x), float(y)], atol=1e-2)


def test_cambridge_landmarks_project_and_match_pixels(cambridge):
    root, gt_dir = Path(cambridge["dataset_dir"]), Path(cambridge["groundtruth_dir"])
    poses = read_cambridge_split(root / "dataset_train.txt") | read_cambridge_split(root / "dataset_test.txt")
    focals, _, _ = read_nvm_focals(root / "reconstruction.nvm")
    landmarks = json.loads((gt_dir / "landmarks.json").read_text())
    assert len(landmarks) >= 10
    gt = GroundTruth.load(gt_dir)
    renders = {}
    for lm in landmarks:
        name = lm["image"]
        with Image.open(root / name) as im:
            W, H = im.size
            rgb = np.asarray(im)
        c, q = poses[name]
        uv, z = project(c, q, focals[name.replace(".png", ".jpg")], W / 2, H / 2, lm["point_world"])
        assert z > 0 and np.abs(uv - lm["pixel"]).max() < 0.5
        if name not in renders:
            renders[name] = gt.render_image(name)["rgb"]
        u, v = int(np.floor(lm["pixel"][0])), int(np.floor(lm["pixel"][1]))
        assert np.abs(rgb[v, u].astype(float) - renders[name][v, u] * 255).max() <= 1.0


def test_render_matches_dataset_outside_transients(cambridge):
    """GroundTruth.render at an image's pose and appearance reproduces the image wherever no transient is."""
    gt = GroundTruth.load(cambridge["groundtruth_dir"])
    root = Path(cambridge["dataset_dir"])
    for name, cam in gt.cameras.items():
        rgb = np.asarray(Image.open(root / name)).astype(float)
        mask = gt.mask(name)
        out = gt.render(np.array(cam["T_world_cam"]), cam["fx"], cam["fy"], cam["cx"], cam["cy"],
                        cam["width"], cam["height"], appearance=gt.appearance(name))
        diff = np.abs(out["rgb"] * 255 - rgb).max(-1)
        assert diff[~mask].max() <= 0.51
        if mask.any():
            assert diff[mask].mean() > 5  # the occluder really changed those pixels
        assert np.isinf(out["depth"]).any() and np.isfinite(out["depth"]).mean() > 0.5  # sky and ground seen
        if cam["split"] == "test":  # clean render at the canonical appearance
            canon = gt.render(np.array(cam["T_world_cam"]), cam["fx"], cam["fy"], cam["cx"], cam["cy"],
                              cam["width"], cam["height"])["rgb"]
            assert np.abs(gt.clean(name) - canon * 255).max() <= 0.51
            assert np.abs(canon * 255 - rgb).mean() > 0.5  # per-image appearance differs from canonical


def test_transient_masks_share(tmp_path):
    info = generate_scene(tmp_path, layout="cambridge", seed=5, width=48, height=27, n_train=8, n_test=2,
                          transient_share=0.25, workers=1)
    gt = GroundTruth.load(info["groundtruth_dir"])
    train = [n for n, c in gt.cameras.items() if c["split"] == "train"]
    test = [n for n, c in gt.cameras.items() if c["split"] == "test"]
    assert sum(gt.mask(n).any() for n in train) == 2  # round(0.25 * 8)
    assert not any(gt.mask(n).any() for n in test)
    appearances = [gt.appearance(n)["exposure"] for n in train]
    assert len(set(appearances)) == len(train)


def test_determinism(tmp_path):
    def digest(out):
        info = generate_scene(out, layout="cambridge", seed=11, width=48, height=27, n_train=4, n_test=2,
                              workers=2)
        h = hashlib.sha256()
        for base in (Path(info["dataset_dir"]), Path(info["groundtruth_dir"])):
            for p in sorted(base.rglob("*")):
                if p.is_file():
                    h.update(str(p.relative_to(base)).encode() + p.read_bytes())
        return h.hexdigest()

    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    other = generate_scene(tmp_path / "c", layout="cambridge", seed=12, width=48, height=27, n_train=4, n_test=2, workers=1)
    a = np.asarray(Image.open(tmp_path / "a" / "SynthSquare" / "seq1" / "frame00001.png"))
    b = np.asarray(Image.open(Path(other["dataset_dir"]) / "seq1" / "frame00001.png"))
    assert not np.array_equal(a, b)


def test_signed_distance_and_bounds(cambridge):
    gt = GroundTruth.load(cambridge["groundtruth_dir"])
    centers = np.array([c["T_world_cam"] for c in gt.cameras.values()])[:, :3, 3]
    assert (gt.signed_distance(centers) > 0.5).all()
    T = gt.T_dataset_local
    box = gt.scene["primitives"]["boxes"][1]  # the first building
    inside_local = (np.array(box["lo"]) + np.array(box["hi"])) / 2
    inside = T[:3, :3] @ inside_local + T[:3, 3]
    half = (np.array(box["hi"]) - np.array(box["lo"])) / 2
    assert gt.signed_distance(inside[None])[0] == pytest.approx(-half.min(), abs=1e-6)
    lo, hi = gt.bounds()
    assert (centers >= lo).all() and (centers <= hi).all()
    # camera centres sit at eye height above the ground; world up is +z
    assert np.allclose(T[:3, 2], [0, 0, 1])


# --------------------------------------------------------------------------- 7-Scenes layout
def test_sevenscenes_layout_and_landmarks(sevenscenes):
    root, gt_dir = Path(sevenscenes["dataset_dir"]), Path(sevenscenes["groundtruth_dir"])
    assert (root / "TrainSplit.txt").read_bytes() == b"sequence1\r\nsequence2\r\n"
    assert (root / "TestSplit.txt").read_bytes() == b"sequence3\r\n"
    assert sorted(p.name for p in root.iterdir()) == ["TestSplit.txt", "TrainSplit.txt", "seq-01", "seq-02", "seq-03"]
    assert (root / "seq-01" / "frame-000000.color.png").exists()
    pose_bytes = (root / "seq-01" / "frame-000000.pose.txt").read_bytes()
    assert pose_bytes.count(b"\r\n") == 4 and pose_bytes.count(b"\t") == 16
    f = 525.0 * 64 / 640
    landmarks = json.loads((gt_dir / "landmarks.json").read_text())
    assert len(landmarks) >= 10
    for lm in landmarks:
        stem = lm["image"][: -len(".color.png")]
        T = np.loadtxt(root / f"{stem}.pose.txt")  # camera-to-world
        depth = np.asarray(Image.open(root / f"{stem}.depth.png"))
        assert depth.dtype == np.uint16 and depth.shape == (48, 64)
        Xc = T[:3, :3].T @ (np.array(lm["point_world"]) - T[:3, 3])
        uv = np.array([f * Xc[0] / Xc[2] + 32, f * Xc[1] / Xc[2] + 24])
        assert np.abs(uv - lm["pixel"]).max() < 0.5
        u, v = int(uv[0]), int(uv[1])
        assert abs(int(depth[v, u]) - Xc[2] * 1000) <= 2  # millimetres
    # indoor world like a Kinect: y down (up is -y), closed room: every depth valid
    assert np.allclose(GroundTruth.load(gt_dir).T_dataset_local[:3, 2], [0, -1, 0])
    assert (np.asarray(Image.open(root / "seq-01" / "frame-000000.depth.png")) > 0).all()


def test_sevenscenes_pose_text_format():
    T = np.array([[0.93817085, -0.26860735, 0.21809216, -1.4903377], [0.1, 0.2, 0.3, -0.0], [0, 0, 0, 0], [0, 0, 0, 1]])
    text = sevenscenes_pose_text(T)
    assert text.split("\r\n")[0] == "  9.3817085e-001\t -2.6860735e-001\t  2.1809216e-001\t -1.4903377e+000\t"
    assert text.endswith("  1.0000000e+000\t\r\n") and "-0.0000000" not in text
    assert np.allclose(np.loadtxt(text.splitlines()), T)


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize("argv", [
    ["--n_train", "-1"], ["--n_test", "-2"], ["--transient_share", "1.5"], ["--transient_share", "-0.1"],
    ["--layout", "colmap"], ["--width", "0"], ["--bogus"],
])
def test_bad_arguments_raise_config_error(tmp_path, argv):
    with pytest.raises(ConfigError) as exc:
        cli_main(["--out", str(tmp_path)] + argv)
    assert "\n" not in str(exc.value)
    assert not any(tmp_path.iterdir())  # nothing written


def test_refuses_to_overwrite(cambridge):
    out = Path(cambridge["dataset_dir"]).parent
    with pytest.raises(ConfigError, match="overwrite"):
        generate_scene(out, layout="cambridge", seed=3, **SMALL)
