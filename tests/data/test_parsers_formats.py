"""7-Scenes, COLMAP (text + binary), Phototourism, LLFF and transforms.json on real files; export round trip."""
import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from PIL import Image

from nerfw.cameras import conventions as cv
from nerfw.cameras.conventions import Distortion
from nerfw.data.export import write_transforms
from nerfw.data.loader import detect_format, load_scene
from nerfw.data.parsers import colmap, sevenscenes
from nerfw.data.parsers.phototourism import parse_tsv
from nerfw.errors import DatasetError

from helpers import REALDATA as REAL


def real(sub: str) -> Path:
    p = REAL / sub
    if not p.exists():
        pytest.skip(f"{p} not available")
    return p


# ----------------------------------------------------------------------------- 7-Scenes
def test_stairs_crlf_split_jpg_frames_and_depth():
    root = real("sevenscenes_stairs_kapture/stairs")
    scene = load_scene(root)
    assert scene.format == "7scenes" and scene.split_counts() == {"train": 6, "test": 6}
    names = [c.name for c in scene.cameras]
    assert names[:3] == [f"seq-02/frame-00000{i}.color.jpg" for i in range(3)]  # sorted by frame index
    assert names[6] == "seq-01/frame-000000.color.jpg" and scene.cameras[6].split == "test"
    for c in scene.cameras:
        pose_file = root / c.name.replace(".color.jpg", ".pose.txt")
        assert np.allclose(c.T_world_cam, np.loadtxt(pose_file), atol=1e-12)  # MSVC exponents, tabs, CRLF
        assert (c.width, c.height, c.fx, c.fy, c.cx, c.cy) == (640, 480, 525.0, 525.0, 320.0, 240.0)
        assert c.depth_path.name.endswith(".depth.png")
        depth = np.asarray(Image.open(c.depth_path)).astype(float)
        valid = depth[(depth > 0) & (depth < 65535)] / 1000
        if len(valid) > 20:
            assert valid.min() * 0.9 - 1e-6 <= c.near < c.far <= valid.max() * 1.1 + 1e-6


def test_stairs_pose_matches_independent_csv_and_focal_option():
    root = real("sevenscenes_stairs_kapture/stairs")
    rows = (real("sevenscenes_mstransformer_csv") / "abs_7scenes_pose.csv_stairs_test.csv").read_text().splitlines()
    row = next(r.split(",") for r in rows if "seq-01/frame-000002" in r)
    scene = load_scene(root, sevenscenes_focal=585.0, img_downscale=2)
    c = next(c for c in scene.cameras if c.name == "seq-01/frame-000002.color.jpg")
    assert np.allclose(c.center, [float(v) for v in row[4:7]], atol=1e-6)
    assert np.allclose(cv.rotmat_to_quat(c.T_world_cam[:3, :3]), [float(v) for v in row[7:11]], atol=1e-5)
    assert (c.width, c.height, c.fx, c.cx) == (320, 240, 292.5, 160.0)


def test_vreloc_comma_separated_pose():
    root = real("vreloc_7scenes_format")
    T = sevenscenes.read_pose(root / "frame-000000.pose.txt")
    assert np.allclose(T, np.loadtxt(root / "frame-000000.pose.txt", delimiter=","))
    scene = load_scene(root)
    assert scene.format == "7scenes" and len(scene.cameras) == 1 and 0 < scene.cameras[0].near < scene.cameras[0].far


def copy_stairs(tmp_path: Path) -> Path:
    dst = tmp_path / "stairs"
    shutil.copytree(real("sevenscenes_stairs_kapture/stairs"), dst)
    return dst


def test_rendered_depth_preferred_and_split_comments(tmp_path):
    root = copy_stairs(tmp_path)
    (root / "TrainSplit.txt").write_bytes(b"# comment\r\n\r\nsequence2\r\n  Sequence3  \r\n")
    tiff = root / "train" / "depth" / "seq02_frame-000001.pose.depth.tiff"
    tiff.parent.mkdir(parents=True)
    Image.fromarray(np.full((480, 640), 2000, np.uint16)).save(tiff)
    scene = load_scene(root)
    c = next(c for c in scene.cameras if c.name == "seq-02/frame-000001.color.jpg")
    assert c.depth_path == tiff and np.isclose(c.near, 1.8) and np.isclose(c.far, 2.2)


@pytest.mark.parametrize("content,what", [
    ("nan 0 0 0\n0 1 0 0\n0 0 1 0\n0 0 0 1\n", "finite"),
    ("1 0 0 inf\n0 1 0 0\n0 0 1 0\n0 0 0 1\n", "finite"),
    ("1 0 0\n0 1 0 0\n0 0 1 0\n0 0 0 1\n", "4 numbers"),
    ("2 0 0 0\n0 1 0 0\n0 0 1 0\n0 0 0 1\n", "rotation"),
])
def test_bad_7scenes_pose(tmp_path, content, what):
    root = copy_stairs(tmp_path)
    bad = root / "seq-03" / "frame-000001.pose.txt"
    bad.write_text(content)
    with pytest.raises(DatasetError, match=what) as err:
        load_scene(root)
    assert "frame-000001.pose.txt" in str(err.value)


def test_bad_7scenes_split_and_missing_sequence(tmp_path):
    root = copy_stairs(tmp_path)
    (root / "TestSplit.txt").write_text("sequence1\nseq 4\n")
    with pytest.raises(DatasetError, match=r"TestSplit.txt:2: expected 'sequenceN'"):
        load_scene(root)
    (root / "TestSplit.txt").write_text("sequence9\n")
    with pytest.raises(DatasetError, match=r"TestSplit.txt:1: sequence9: folder seq-09 not found"):
        load_scene(root)
    (root / "TestSplit.txt").write_text("# nothing\n\n")
    with pytest.raises(DatasetError, match=r"TestSplit.txt:1: .*empty"):
        load_scene(root)


def tiny_sevenscenes(root: Path, sequences=(1, 2), frames=2) -> Path:
    """A minimal 7-Scenes folder made here (no real data needed): colour, 16-bit depth and pose per frame."""
    for seq in sequences:
        folder = root / f"seq-{seq:02d}"
        folder.mkdir(parents=True)
        for i in range(frames):
            Image.fromarray(np.full((48, 64, 3), 100, np.uint8)).save(folder / f"frame-{i:06d}.color.png")
            Image.fromarray(np.full((48, 64), 1500, np.uint16)).save(folder / f"frame-{i:06d}.depth.png")
            pose = np.eye(4)
            pose[0, 3] = 0.1 * i + seq
            np.savetxt(folder / f"frame-{i:06d}.pose.txt", pose)
    return root


def test_7scenes_splits_may_not_overlap_or_repeat(tmp_path):
    root = tiny_sevenscenes(tmp_path / "s")
    (root / "TrainSplit.txt").write_text("sequence1\n")
    (root / "TestSplit.txt").write_text("sequence2\n")
    assert [c.split for c in load_scene(root).cameras] == ["train", "train", "test", "test"]
    (root / "TestSplit.txt").write_text("sequence2\nsequence1\n")  # test frames would leak into training
    with pytest.raises(DatasetError, match=r"TestSplit.txt:2: sequence1 is already listed in TrainSplit.txt line 1"):
        load_scene(root)
    (root / "TestSplit.txt").write_text("sequence2\n\nsequence2\n")
    with pytest.raises(DatasetError, match=r"TestSplit.txt:3: sequence2 is already listed"):
        load_scene(root)


def test_training_reads_the_dataset_with_the_same_options_as_inspect(tmp_path):
    """--sevenscenes_focal and --test_every reach the scene a run trains on (and eval / render read again)."""
    from nerfw.data.dataset_options import load_from_args
    from nerfw.training.config import parse_config

    root = tiny_sevenscenes(tmp_path / "s", sequences=(1,), frames=4)  # no split files: every N-th frame is test
    cfg = parse_config(["--data_root_dir", str(root), "--img_downscale", "1", "--sevenscenes_focal", "585",
                        "--test_every", "2"])
    scene = load_from_args(cfg.train)
    assert [c.split for c in scene.cameras] == ["test", "train", "test", "train"]
    assert np.isclose(scene.cameras[0].fx, 585 * 64 / 640)  # focal given at 640x480, image 64x48
    with pytest.raises(Exception, match="--test_every must be >= 0"):
        parse_config(["--data_root_dir", str(root), "--test_every", "-1"])
    cfg0 = parse_config(["--data_root_dir", str(root), "--img_downscale", "1", "--test_every", "0"])
    assert [c.split for c in load_from_args(cfg0.train).cameras] == ["train"] * 4  # 0: no test frames
    from nerfw.training.trainer import load_training_data  # what the trainer itself reads

    scene, cache = load_training_data(cfg, save_cache=False)
    assert [c.split for c in scene.cameras] == ["test", "train", "test", "train"] and len(cache.offsets) == 5


def test_7scenes_posed_frame_without_image_is_an_error(tmp_path):
    root = tiny_sevenscenes(tmp_path / "s")
    (root / "seq-02" / "frame-000001.color.png").unlink()
    with pytest.raises(DatasetError, match=r"seq-02.*1 listed colour images of posed frames not found: "
                                           r"seq-02/frame-000001"):
        load_scene(root)


# ----------------------------------------------------------------------------- COLMAP
def test_maupertuis_point_reprojects_to_its_observation():
    root = real("colmap_maupertuis_kapture")
    scene = load_scene(root)
    assert scene.format == "colmap" and len(scene.cameras) == 4 and scene.points.shape == (1039, 3)
    model = colmap.read_model(root / "reconstruction")
    errors = []
    for view in scene.cameras:
        im = next(i for i in model.images.values() if i.name == view.name)
        assert (view.fx, view.cx, view.cy, view.width) == (1847.53, 959.5, 539.5, 1919)
        has = np.flatnonzero(im.point3D_ids >= 0)
        xyz = model.points_by_id(im.point3D_ids[has])
        uv, z = cv.project_points(view.K, view.T_world_cam, xyz)
        assert np.all(z > 0)
        errors.append(np.median(np.linalg.norm(uv - im.xys[has], axis=1)))
        assert view.near <= np.percentile(z, 50) <= view.far
    assert max(errors) < 1.0  # pixels (measured 0.23-0.29): same pixel convention and pose direction as COLMAP
    assert [c.split for c in scene.cameras] == ["test", "train", "train", "train"]  # sorted names, i % 8 == 0


def write_colmap_bin(model: colmap.ColmapModel, folder: Path) -> None:
    """Minimal COLMAP binary writer (test only) to check the binary reader against the text one."""
    folder.mkdir(parents=True)
    with open(folder / "cameras.bin", "wb") as f:
        f.write(struct.pack("<Q", len(model.cameras)))
        for c in model.cameras.values():
            f.write(struct.pack("<iiQQ", c.id, colmap.CAMERA_MODELS[c.model][0], c.width, c.height))
            f.write(np.asarray(c.params, "<f8").tobytes())
    with open(folder / "images.bin", "wb") as f:
        f.write(struct.pack("<Q", len(model.images)))
        for im in model.images.values():
            f.write(struct.pack("<i7di", im.id, *im.qvec, *im.tvec, im.camera_id) + im.name.encode() + b"\0")
            f.write(struct.pack("<Q", len(im.xys)))
            for (x, y), pid in zip(im.xys, im.point3D_ids):
                f.write(struct.pack("<ddq", x, y, pid))
    with open(folder / "points3D.bin", "wb") as f:
        f.write(struct.pack("<Q", len(model.points)))
        for pid, p, c in zip(model.point_ids, model.points, model.colors):
            f.write(struct.pack("<Q3d3BdQ", pid, *p, *c, 0.5, 1) + struct.pack("<ii", 1, 0))


def test_binary_model_in_sparse0_equals_text(tmp_path):
    src = real("colmap_maupertuis_kapture")
    text_scene = load_scene(src)
    root = tmp_path / "maup"
    shutil.copytree(src / "images", root / "images")
    write_colmap_bin(colmap.read_model(src / "reconstruction"), root / "sparse" / "0")
    scene = load_scene(root)
    assert colmap.find_model_dir(root) == root / "sparse" / "0"
    for a, b in zip(text_scene.cameras, scene.cameras):
        assert a.name == b.name and np.allclose(a.T_world_cam, b.T_world_cam) and (a.fx, a.near) == (b.fx, b.near)
    (root / "sparse" / "0" / "images.bin").write_bytes((root / "sparse" / "0" / "images.bin").read_bytes()[:100])
    with pytest.raises(DatasetError, match="truncated"):
        load_scene(root)


@pytest.mark.parametrize("content", [struct.pack("<Q", 10**12) + bytes(200),  # count far beyond the file
                                     b"# 3D point list with one line of data per point:\n1 0.5 0.2 3.0 255 0 0 0.1\n"])
def test_corrupt_binary_point_count_is_a_dataset_error(tmp_path, content):
    """A damaged header count must not allocate terabytes or leak a numpy error: a one-line DatasetError."""
    path = tmp_path / "points3D.bin"
    path.write_bytes(content)
    with pytest.raises(DatasetError, match="points3D.bin.*header says .* points but only"):
        colmap.read_points3d_bin(path)
    path.write_bytes(struct.pack("<Q", 3) + bytes(60))  # 3 cameras need 3 x 24 bytes at least
    with pytest.raises(DatasetError, match="header says 3 cameras"):
        colmap.read_cameras_bin(path)


def test_colmap_distortion_kept_and_bad_lines(tmp_path):
    root = tmp_path / "m"
    shutil.copytree(real("colmap_maupertuis_kapture"), root)
    cams = root / "reconstruction" / "cameras.txt"
    cams.write_text("# c\n1 OPENCV 1919 1079 1800 1790 959.5 539.5 0.01 0 0 0\n")
    scene = load_scene(root)
    assert scene.cameras[0].fy == 1790 and not scene.warnings
    assert scene.cameras[0].distortion == Distortion("opencv", [0.01, 0, 0, 0])
    cams.write_text("# c\n1 PINHOLE 1919 1079 1800 1790 959.5\n")
    with pytest.raises(DatasetError, match=r"cameras.txt:2: expected 4 numbers"):
        load_scene(root)
    cams.write_text("1 OPENCV_FISHEYE 1919 1079 1 1 1 1 0 0 0 0\n")  # zero coefficients: no distortion
    assert load_scene(root).cameras[0].distortion is None
    cams.write_text("1 FOV 1919 1079 1800 1800 959.5 539.5 0.9\n")
    with pytest.raises(DatasetError, match="not supported"):
        load_scene(root)
    (root / "images" / "02.jpg").unlink()
    cams.write_text("1 SIMPLE_PINHOLE 1919 1079 1847.53 959.5 539.5\n")
    with pytest.raises(DatasetError, match="1 listed image files not found: 02.jpg"):
        load_scene(root)


# ----------------------------------------------------------------------------- Phototourism
@pytest.mark.parametrize("name,n_train,n_test", [("brandenburg", 859, 10), ("sacre", 950, 21), ("trevi", 1716, 19)])
def test_phototourism_tsv(name, n_train, n_test):
    rows = parse_tsv(real("phototourism_splits") / f"{name}.tsv")
    assert sum(r.split == "train" for r in rows) == n_train and sum(r.split == "test" for r in rows) == n_test
    assert all(r.filename.endswith(".jpg") for r in rows)
    assert any(r.id is None for r in rows) or name != "brandenburg"
    assert all(r.id is None or r.id >= 0 for r in rows)


def test_phototourism_scene_maps_by_filename(tmp_path):
    src = real("colmap_maupertuis_kapture")
    root = tmp_path / "maup"
    shutil.copytree(src / "images", root / "dense" / "images")
    write_colmap_bin(colmap.read_model(src / "reconstruction"), root / "dense" / "sparse")
    (root / "maup.tsv").write_text("filename\tid\tsplit\tdataset\n00.jpg\t\ttrain\tm\n01.jpg\tnan\ttest\tm\n"
                                   "03.jpg\t77.0\ttrain\tm\nmissing.jpg\t5\ttrain\tm\n")
    scene = load_scene(root)
    assert scene.format == "phototourism"
    assert [(c.name, c.split) for c in scene.cameras] == [("00.jpg", "train"), ("01.jpg", "test"), ("03.jpg", "train")]
    assert any("missing.jpg" in w for w in scene.warnings) and any("1 id(s) differ" in w for w in scene.warnings)
    (root / "maup.tsv").write_text("filename\tid\tsplit\tdataset\n00.jpg\t\tvalidation\tm\n")
    with pytest.raises(DatasetError, match=r"maup.tsv:2: expected split"):
        load_scene(root)


# ----------------------------------------------------------------------------- LLFF
def test_llff_fern():
    root = real("llff_fern")
    pb = np.load(root / "poses_bounds.npy")
    scene = load_scene(root, img_downscale=8)
    assert scene.format == "llff" and len(scene.cameras) == 20 and not scene.warnings
    assert [i for i, c in enumerate(scene.cameras) if c.split == "test"] == [0, 8, 16]
    c = scene.cameras[3]
    P = pb[3, :15].reshape(3, 5)
    assert (c.width, c.height) == (504, 378) and np.isclose(c.fx, P[2, 4] / 8) and np.isclose(c.cx, 252)
    assert (c.near, c.far) == tuple(pb[3, 15:])
    assert np.allclose(c.T_world_cam[:3, 2], -P[:, 2]) and np.allclose(c.T_world_cam[:3, 1], P[:, 0])
    assert c.image_path.parent.name == "images_8" and c.name == "images_8/image003.png"
    scene4 = load_scene(root, img_downscale=4)
    assert scene4.cameras[0].width == 1008 and any("images_8" in w for w in scene4.warnings)


def llff_with_model(root: Path, s: float, R: np.ndarray, t: np.ndarray, n: int = 6) -> np.ndarray:
    """An LLFF capture (40x30 images) whose poses_bounds frame is x' = s R x + t of the COLMAP model beside it
    (cameras on a ring looking at 200 points near the origin); returns the model's points (model frame)."""
    rng = np.random.default_rng(0)
    points = rng.normal(scale=0.3, size=(200, 3))
    (root / "images").mkdir(parents=True)
    sparse = root / "sparse" / "0"
    sparse.mkdir(parents=True)
    (sparse / "cameras.txt").write_text("1 SIMPLE_RADIAL 40 30 35 20 15 -0.05\n")
    lines, rows = [], []
    for i in range(n):
        a = 2 * np.pi * i / n
        centre = np.array([3 * np.cos(a), 3 * np.sin(a), 0.5])
        forward = -centre / np.linalg.norm(centre)
        right = np.cross(forward, [0.0, 0.0, 1.0])
        right /= np.linalg.norm(right)
        T = cv.make_T(np.stack([right, np.cross(forward, right), forward], axis=1), centre)
        q, tv = cv.T_world_cam_to_colmap(T)
        lines += [f"{i + 1} {' '.join(map(str, q.tolist()))} {' '.join(map(str, tv.tolist()))} 1 img{i}.png", ""]
        T_llff = cv.make_T(R @ T[:3, :3], s * R @ centre + t)
        rows.append(np.concatenate([cv.T_world_cam_to_llff(T_llff, 30, 40, 35).ravel(), [1.0, 9.0]]))
        Image.new("RGB", (40, 30)).save(root / "images" / f"img{i}.png")
    (sparse / "images.txt").write_text("\n".join(lines) + "\n")
    (sparse / "points3D.txt").write_text("".join(f"{k + 1} {x} {y} {z} 200 100 50 0.5\n" for k, (x, y, z) in
                                                 enumerate(points)))
    np.save(root / "poses_bounds.npy", np.stack(rows))
    return points


def test_llff_takes_the_sparse_points_of_the_model_beside_it_into_its_frame(tmp_path):
    """imgs2poses keeps COLMAP's world; other tools may move it. The points follow the poses either way: each
    projects to the same pixel through the LLFF camera as through the COLMAP camera."""
    R = cv.axis_angle_to_rotmat(np.array([0.3, -0.5, 0.9]))
    for s, rot, t in [(1.0, np.eye(3), np.zeros(3)), (2.5, R, np.array([10.0, -4.0, 7.0]))]:
        root = tmp_path / f"s{s}"
        points = llff_with_model(root, s, rot, t)
        scene = load_scene(root)
        assert scene.format == "llff" and not scene.warnings
        assert np.allclose(scene.points, s * points @ rot.T + t, atol=1e-9)
        assert np.array_equal(scene.point_colors[0], [200, 100, 50])
        model = colmap.read_model(root / "sparse" / "0")
        for view, im in zip(scene.cameras, sorted(model.images.values(), key=lambda im: im.name)):
            uv_llff, _ = cv.project_points(view.K, view.T_world_cam, scene.points)
            uv_colmap, _ = cv.project_points(view.K, im.T_world_cam, points)
            assert np.allclose(uv_llff, uv_colmap, atol=1e-6)


def test_llff_refuses_the_points_of_a_model_whose_cameras_do_not_match(tmp_path):
    root = tmp_path / "cap"
    llff_with_model(root, 1.0, np.eye(3), np.zeros(3))
    pb = np.load(root / "poses_bounds.npy")
    pb[2, 3], pb[4, 8] = pb[2, 3] + 2.0, pb[4, 8] - 1.5  # two rows' centres moved: another reconstruction
    np.save(root / "poses_bounds.npy", pb)
    scene = load_scene(root)
    assert scene.points is None and scene.cameras[0].distortion is not None
    assert any("do not match poses_bounds.npy's" in w and "sparse points not used" in w for w in scene.warnings)


def test_llff_real_beer_points_land_on_their_keypoints():
    """Real capture: the sparse points taken into the poses_bounds frame project, with the poses nerfw parsed and
    each image's own COLMAP lens, onto the keypoints that observe them."""
    root = real("beer")
    scene = load_scene(root)
    model = colmap.read_model(root / "sparse" / "0")
    assert scene.points is not None and len(scene.points) == len(model.points) > 1000
    by_id = dict(zip(model.point_ids.tolist(), range(len(model.points))))
    ordered = sorted(model.images.values(), key=lambda im: im.name)
    for view, im in list(zip(scene.cameras, ordered))[::10]:
        cam = model.cameras[im.camera_id]
        fx, fy, cx, cy = cam.pinhole(root)
        seen = im.point3D_ids >= 0
        X = scene.points[[by_id[i] for i in im.point3D_ids[seen]]]
        uv, z = cv.project_points(cv.intrinsics_matrix(fx, fy, cx, cy), view.T_world_cam, X, cam.distortion())
        assert (z > 0).all() and np.median(np.linalg.norm(uv - im.xys[seen], axis=1)) < 2.0


@pytest.mark.parametrize("bounds,shown", [((90.0, 73.5), "near 90, far 73.5"), ((-1.0, 73.5), "near -1, far 73.5"),
                                          ((0.0, 0.0), "near 0, far 0")])
def test_llff_bounds_must_be_positive_and_ordered(tmp_path, bounds, shown):
    pose = np.concatenate([np.eye(3)[:, [1, 0, 2]], np.zeros((3, 1)), [[378], [504], [400]]], axis=1)
    rows = np.stack([np.concatenate([pose.ravel(), [1.0, 20.0]])] * 3)
    rows[1, 15:] = bounds
    np.save(tmp_path / "poses_bounds.npy", rows)
    with pytest.raises(DatasetError, match=rf"poses_bounds.npy: expected bounds 0 < near < far.*row 1 has {shown}"):
        load_scene(tmp_path)


# ----------------------------------------------------------------------------- transforms.json
def lego_subset(tmp_path: Path) -> Path:
    src = real("nerf_synthetic_lego")
    root = tmp_path / "lego"
    root.mkdir()
    (root / "train").symlink_to(src / "train")
    meta = json.loads((src / "transforms_train.json").read_text())
    meta["frames"] = meta["frames"][:10]
    (root / "transforms_train.json").write_text(json.dumps(meta))
    return root


def test_lego_train_frames(tmp_path):
    root = lego_subset(tmp_path)
    meta = json.loads((root / "transforms_train.json").read_text())
    scene = load_scene(root)
    assert scene.format == "transforms" and scene.split_counts() == {"train": 10}
    f = 0.5 * 800 / np.tan(0.5 * meta["camera_angle_x"])
    for c, fr in zip(scene.cameras, meta["frames"]):
        assert c.name == fr["file_path"][2:] + ".png" and (c.width, c.height) == (800, 800)
        assert np.isclose(c.fx, f) and (c.cx, c.near, c.far) == (400.0, 2.0, 6.0)
        M = np.array(fr["transform_matrix"])
        assert np.allclose(c.center, M[:3, 3]) and np.allclose(c.T_world_cam[:3, 2], -M[:3, 2])
        # Blender cameras look at the origin: the object projects near the image centre.
        uv, z = cv.project_points(c.K, c.T_world_cam, np.zeros((1, 3)))
        assert z[0] > 0 and np.all(np.abs(uv[0] - 400) < 40)


def test_full_lego_lists_missing_images():
    with pytest.raises(DatasetError, match=r"386 listed image files not found: train/r_10"):
        load_scene(real("nerf_synthetic_lego"))


def test_bad_transforms(tmp_path):
    root = lego_subset(tmp_path)
    p = root / "transforms_train.json"
    p.write_text('{"frames": [\n{"file_path": "./train/r_0",\n')
    with pytest.raises(DatasetError, match=r"transforms_train.json:3: expected valid JSON"):
        load_scene(root)
    meta = {"camera_angle_x": 0.7, "frames": [{"file_path": "./train/r_0", "transform_matrix": [[np.nan] * 4] * 4}]}
    p.write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match="finite transform_matrix"):
        load_scene(root)


def tiny_transforms(root: Path, extra: dict) -> Path:
    root.mkdir(parents=True)
    frames = []
    for i in range(2):
        Image.fromarray(np.full((30, 40, 3), 90, np.uint8)).save(root / f"im{i}.png")
        M = np.eye(4)
        M[0, 3] = i
        frames.append({"file_path": f"im{i}.png", "transform_matrix": M.tolist()})
    (root / "transforms.json").write_text(json.dumps({"fl_x": 50, "fl_y": 50, "w": 40, "h": 30, "near": 0.5,
                                                      "far": 5.0, **extra, "frames": frames}))
    return root


def test_transforms_distortion_is_kept_and_equirectangular_refused(tmp_path):
    plain = load_scene(tiny_transforms(tmp_path / "plain", {"camera_model": "OPENCV", "k1": 0.0}))
    assert not any("distortion" in w for w in plain.warnings) and plain.cameras[0].distortion is None
    distorted = load_scene(tiny_transforms(tmp_path / "dist", {"camera_model": "OPENCV", "k1": 0.2, "p2": 0.01}))
    assert not any("distortion" in w or "k4" in w for w in distorted.warnings)
    assert all(c.distortion == Distortion("opencv", [0.2, 0, 0, 0.01]) for c in distorted.cameras)
    fish = load_scene(tiny_transforms(tmp_path / "fish", {"camera_model": "OPENCV_FISHEYE", "k1": 0.1, "k4": 0.01}))
    assert fish.cameras[1].distortion == Distortion("fisheye", [0.1, 0, 0, 0.01])
    with pytest.raises(DatasetError, match="transforms.json: frame 'im0.png': camera_model EQUIRECTANGULAR is not "
                                           "supported"):
        load_scene(tiny_transforms(tmp_path / "equi", {"camera_model": "EQUIRECTANGULAR"}))


def test_transforms_reads_nerfstudio_sparse_points_and_bounds_from_them(tmp_path):
    """ns-process-data's `ply_file_path`: the points (in the json's frame) and, for frames without near/far, bounds
    from the points in the frame's frustum (OpenGL cameras look down -z: depths 2..4 here)."""
    from plyfile import PlyData, PlyElement

    rng = np.random.default_rng(1)
    xyz = np.column_stack([rng.uniform(-0.3, 1.3, 300), rng.uniform(-0.3, 0.3, 300), rng.uniform(-4, -2, 300)])
    vertex = np.array([(*p, 10, 20, 30) for p in xyz], dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"),
                                                            ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    root = tiny_transforms(tmp_path / "ns", {"ply_file_path": "sparse_pc.ply"})
    PlyData([PlyElement.describe(vertex, "vertex")]).write(str(root / "sparse_pc.ply"))
    scene = load_scene(root)
    assert np.allclose(scene.points, xyz.astype(np.float32)) and np.array_equal(scene.point_colors[5], [10, 20, 30])
    assert not scene.warnings
    for c in scene.cameras:
        assert 2.0 <= c.near < 2.05 and 3.95 < c.far <= 4.0
    missing = load_scene(tiny_transforms(tmp_path / "gone", {"ply_file_path": "sparse_pc.ply"}))
    assert missing.points is None
    assert any("sparse_pc.ply: the sparse points named by ply_file_path are not usable" in w for w in missing.warnings)
    corrupt = tiny_transforms(tmp_path / "bad", {"ply_file_path": "sparse_pc.ply"})
    (corrupt / "sparse_pc.ply").write_text("ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\nend_header\n1\n")
    scene = load_scene(corrupt)
    assert scene.points is None and any("PlyElementParseError" in w for w in scene.warnings)


# ----------------------------------------------------------------------------- export round trip + detection
@pytest.mark.parametrize("sub", ["colmap_maupertuis_kapture", "sevenscenes_stairs_kapture/stairs"])
def test_export_transforms_reads_back_to_the_same_cameras(tmp_path, sub):
    scene = load_scene(real(sub))
    out = write_transforms(scene, tmp_path / "exp" / "transforms.json")
    back = load_scene(tmp_path / "exp")
    assert back.format == "transforms" and len(back.cameras) == len(scene.cameras)
    for a, b in zip(scene.cameras, back.cameras):
        assert a.image_path.resolve() == b.image_path.resolve() and a.split == b.split
        assert np.allclose(a.T_world_cam, b.T_world_cam, atol=1e-9)
        assert np.allclose([a.fx, a.fy, a.cx, a.cy, a.width, a.height, a.near, a.far],
                           [b.fx, b.fy, b.cx, b.cy, b.width, b.height, b.near, b.far])
    frame = json.loads(out.read_text())["frames"][0]
    assert not frame["file_path"].startswith("/")


def test_export_describes_the_files_it_points_at(tmp_path):
    """LLFF fern ships images_8/ only: the export's w, h and intrinsics are those of the 504x378 files, so reading
    it back at downscale 1 gives the source's cameras at downscale 8 (and a reader never rescales wrongly)."""
    root = tmp_path / "fern"
    shutil.copytree(real("llff_fern"), root)
    out = write_transforms(load_scene(root, img_downscale=1), tmp_path / "exp" / "transforms.json")
    frame = json.loads(out.read_text())["frames"][3]
    assert (frame["w"], frame["h"]) == (504, 378)
    for a, b in zip(load_scene(root, img_downscale=8).cameras, load_scene(tmp_path / "exp").cameras):
        assert np.allclose([a.fx, a.fy, a.cx, a.cy, a.width, a.height], [b.fx, b.fy, b.cx, b.cy, b.width, b.height])
        assert np.allclose(a.T_world_cam, b.T_world_cam, atol=1e-9)


def test_unknown_folder_lists_what_was_looked_for(tmp_path):
    with pytest.raises(DatasetError, match="unknown dataset layout; looked for cambridge: dataset_train.txt"):
        detect_format(tmp_path)
    with pytest.raises(DatasetError, match="not found"):
        load_scene(tmp_path, "nope")


@given(st.text(max_size=150))
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_fuzz_text_parsers(tmp_path, text):
    from nerfw.data.parsers.phototourism import parse_tsv as tsv

    for name, fn in (("TrainSplit.txt", sevenscenes.parse_split_file), ("pose.txt", sevenscenes.read_pose),
                     ("cameras.txt", colmap.read_cameras_txt), ("images.txt", colmap.read_images_txt),
                     ("points3D.txt", colmap.read_points3d_txt), ("s.tsv", tsv)):
        p = tmp_path / name
        p.write_bytes(text.encode("utf-8", errors="replace"))
        try:
            fn(p)
        except DatasetError as exc:  # the only error allowed, and it must name the file
            assert str(exc).startswith(str(p)) and "\n" not in str(exc)
