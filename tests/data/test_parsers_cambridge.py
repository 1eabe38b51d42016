"""Cambridge Landmarks split files and NVM: real files, tiny temp scenes, and bad input."""
import csv
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from PIL import Image

from nerfw.cameras import conventions as cv
from nerfw.data.parsers import common
from nerfw.data.parsers.cambridge import load_cambridge, normalise_name, parse_split_file
from nerfw.data.parsers.nvm import parse_nvm
from nerfw.errors import DatasetError

from helpers import REALDATA as REAL
HEADER = "Visual Landmark Dataset V1\nImageFile, Camera Position [X Y Z W P Q R]\n\n"


def real(sub: str) -> Path:
    p = REAL / sub
    if not p.exists():
        pytest.skip(f"{p} not available")
    return p


# ----------------------------------------------------------------------------- real split files
@pytest.mark.parametrize("scene", ["ShopFacade", "KingsCollege"])
@pytest.mark.parametrize("split", ["train", "test"])
def test_split_file_values_equal_the_independent_csv(scene, split):
    entries, warnings = parse_split_file(real("cambridge_reconstructed_from_csv") / scene / f"dataset_{split}.txt")
    csv_path = real("cambridge_mstransformer_csv") / f"abs_cambridge_pose_sorted.csv_{scene}_{split}.csv"
    with open(csv_path) as f:
        rows = {r["img_path"].split("/", 1)[1]: r for r in csv.DictReader(f)}
    assert len(entries) == len(rows) and not warnings
    for e in entries:
        r = rows[e.name]
        assert np.allclose(e.center, [float(r[k]) for k in ("t1", "t2", "t3")], atol=1e-6)
        q = np.array([float(r[k]) for k in ("q1", "q2", "q3", "q4")])
        assert np.allclose(e.q_cam_world, q / np.linalg.norm(q), atol=1e-5)


@pytest.mark.parametrize("scene,n_train,n_test", [("ShopFacade", 231, 103), ("KingsCollege", 1220, 343)])
def test_windows_prefixed_shuffled_split_files_parse(scene, n_train, n_test):
    folder = real("cambridge_v77pt_transformed") / scene
    train, _ = parse_split_file(folder / "dataset_train.txt")
    test, _ = parse_split_file(folder / "dataset_test.txt")
    assert (len(train), len(test)) == (n_train, n_test)
    for e in train + test:
        assert e.name.startswith("seq") and "/" in e.name and ":" not in e.name and e.name.endswith(".png")
    names = {e.name for e in train}
    assert "seq3/frame00008.png" in names or any(n.startswith("seq") for n in names)


def test_name_normalisation():
    assert normalise_name("D:/_git/posenet/PoseNet_Dataset/ShopFacade/seq3/frame00008.png") == "seq3/frame00008.png"
    assert normalise_name("C:\\data\\Street\\img_east\\image_east_0001.png") == "img_east/image_east_0001.png"
    assert normalise_name("/abs/Street/img/image1_000001.png") == "img/image1_000001.png"
    assert normalise_name("./seq1/frame00001.png") == "seq1/frame00001.png"


# ----------------------------------------------------------------------------- tiny temp scene
W, H = 48, 27


def nvm_text(cameras, points):
    """cameras: [(name, f, q, c)], points: [xyz]."""
    lines = ["NVM_V3", "", str(len(cameras))]
    lines += [f"{n} {f} {' '.join(map(str, q))} {' '.join(map(str, c))} 0 0" for n, f, q, c in cameras]
    lines += ["", str(len(points))]
    lines += [f"{p[0]} {p[1]} {p[2]} 10 20 30 1 0 0 1.0 2.0" for p in points]
    return "\n".join(lines) + "\n"


def make_scene(tmp_path: Path, n_train=3, n_test=2, crlf=False, points=True, nvm=True):
    """Copy the first real lines of ShopFacade and write dummy PNGs + a handmade NVM."""
    src = real("cambridge_reconstructed_from_csv") / "ShopFacade"
    root = tmp_path / "ShopFacade"
    root.mkdir()
    chosen = []
    for split, n in (("train", n_train), ("test", n_test)):
        lines = (src / f"dataset_{split}.txt").read_text().splitlines()[3:3 + n]
        text = HEADER + "\n".join(line + "   " for line in lines) + "\n"
        if crlf:
            text = text.replace("\n", "\r\n")
        (root / f"dataset_{split}.txt").write_bytes(text.encode())
        chosen += [(split, line.split()) for line in lines]
    for _, tokens in chosen:
        (root / tokens[0]).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (W, H), (100, 50, 25)).save(root / tokens[0])
    rng = np.random.default_rng(0)
    c0 = np.array([float(v) for v in chosen[0][1][1:4]])
    T0 = cv.cambridge_to_T_world_cam(c0, np.array([float(v) for v in chosen[0][1][4:8]]))
    pts = (T0[:3, :3] @ np.stack([rng.uniform(-1, 1, 200), rng.uniform(-0.5, 0.5, 200),
                                  rng.uniform(4, 10, 200)]) ).T + c0 if points else np.zeros((0, 3))
    if nvm:
        cams = [(t[0].replace(".png", ".jpg"), 40.0 + i, [1, 0, 0, 0], [0, 0, 0]) for i, (_, t) in enumerate(chosen)]
        (root / "reconstruction.nvm").write_text(nvm_text(cams, pts))
    return root, chosen, pts


def test_tiny_scene_poses_intrinsics_and_bounds(tmp_path):
    root, chosen, pts = make_scene(tmp_path, crlf=True)
    scene = load_cambridge(root)
    assert scene.format == "cambridge" and scene.split_counts() == {"train": 3, "test": 2}
    for i, (c, (split, t)) in enumerate(zip(scene.cameras, chosen)):
        v = np.array([float(x) for x in t[1:]])
        assert c.name == t[0] and c.split == split
        assert np.allclose(c.center, v[:3])
        # The split-file quaternion is world-to-camera: R_cam_world = R(q) = T_world_cam[:3,:3]^T.
        assert np.allclose(c.T_world_cam[:3, :3].T, cv.quat_to_rotmat(v[3:]), atol=1e-9)
        assert (c.width, c.height, c.fx, c.cx, c.cy) == (W, H, 40.0 + i, W / 2, H / 2)
    c0 = scene.cameras[0]
    uv, z = cv.project_points(c0.K, c0.T_world_cam, pts)
    inside = (z > 0) & (uv[:, 0] >= 0) & (uv[:, 0] < W) & (uv[:, 1] >= 0) & (uv[:, 1] < H)
    assert np.isclose(c0.near, np.percentile(z[inside], 0.1)) and np.isclose(c0.far, np.percentile(z[inside], 99.9))
    assert 4 <= c0.near < c0.far <= 10


def test_downscale_scales_intrinsics_by_actual_ratio(tmp_path):
    root, _, _ = make_scene(tmp_path)
    c1 = load_cambridge(root).cameras[0]
    c2 = load_cambridge(root, img_downscale=2).cameras[0]
    assert (c2.width, c2.height) == (24, 14)  # round(48/2), round(27/2)=round(13.5)=14 (banker's) -> 14
    assert np.isclose(c2.fx, c1.fx * 24 / 48) and np.isclose(c2.fy, c1.fy * 14 / 27)
    assert np.isclose(c2.cx, 12.0) and np.isclose(c2.cy, 13.5 * 14 / 27)


def test_focal_argument_without_nvm_and_error_without_either(tmp_path):
    root, _, _ = make_scene(tmp_path, nvm=False)
    with pytest.raises(DatasetError, match="reconstruction.nvm"):
        load_cambridge(root)
    scene = load_cambridge(root, focal=33.0)
    assert all(c.fx == 33.0 for c in scene.cameras)
    assert all((c.near, c.far) == (0.1, 100.0) for c in scene.cameras)  # documented no-points default
    assert any("default near=0.1" in w for w in scene.warnings)


def test_cameras_seeing_few_points_get_the_median_bounds():
    def view(name, near, far):
        return common.make_view(name, Path(name), "train", np.eye(4), (1, 1, 1, 1), (2, 2), (2, 2), near, far)

    cams = [view("a", 1.0, 10.0), view("b", 3.0, 30.0), view("c", 2.0, 20.0), view("d", np.nan, np.nan)]
    warnings = []
    common.fill_missing_bounds(cams, (0.1, 100.0), warnings, "points")
    assert (cams[3].near, cams[3].far) == (2.0, 20.0) and "1 camera(s)" in warnings[0] and "(d)" in warnings[0]
    lone = [view("e", np.nan, np.nan)]
    common.fill_missing_bounds(lone, (0.1, 100.0), warnings, "points")
    assert (lone[0].near, lone[0].far) == (0.1, 100.0)


def test_missing_image_is_named(tmp_path):
    root, chosen, _ = make_scene(tmp_path)
    (root / chosen[1][1][0]).unlink()
    with pytest.raises(DatasetError, match=r"1 listed image files not found: " + chosen[1][1][0]):
        load_cambridge(root)


def test_image_of_another_size_is_an_error(tmp_path):
    root, chosen, _ = make_scene(tmp_path)
    Image.new("RGB", (W * 2, H * 2)).save(root / chosen[2][1][0])
    with pytest.raises(DatasetError, match=f"expected every image to be {W}x{H}.*96x54"):
        load_cambridge(root)


def test_outliers_dropped_and_quaternions_normalised(tmp_path):
    p = tmp_path / "dataset_train.txt"
    p.write_text(HEADER + "seq1/frame00001.png 1 2 3 2 0 0 0\nseq5/frame00297.png 3.1e9 1 1 1 0 0 0\n"
                 "seq1/frame00002.png 1 2 3 0.6 0.8 0 0\n")
    entries, warnings = parse_split_file(p)
    assert [e.name for e in entries] == ["seq1/frame00001.png", "seq1/frame00002.png"]
    assert np.allclose(entries[0].q_cam_world, [1, 0, 0, 0])
    assert any("normalised 1 non-unit" in w for w in warnings)
    assert any("seq5/frame00297.png (line 5)" in w for w in warnings)


@pytest.mark.parametrize("text", [
    "Visual Landmark Dataset V1\nImageFile, Camera Position [X Y Z W P Q R]\n",  # the blank third line lost
    "\n\n" + HEADER,  # blank lines before the header
    "",  # no header at all
])
def test_header_recognised_by_content_keeps_every_pose(tmp_path, text):
    p = tmp_path / "dataset_train.txt"
    p.write_text(text + "seq1/frame00001.png 1 2 3 1 0 0 0\nseq1/frame00002.png 4 5 6 1 0 0 0\n")
    entries, _ = parse_split_file(p)
    assert [e.name for e in entries] == ["seq1/frame00001.png", "seq1/frame00002.png"]
    assert np.allclose(entries[0].center, [1, 2, 3])


def test_text_after_the_header_is_an_error(tmp_path):
    p = tmp_path / "dataset_train.txt"
    p.write_text(HEADER + "some note\nanother note\nthird note\nseq1/frame00001.png 1 2 3 1 0 0 0\n")
    with pytest.raises(DatasetError, match="dataset_train.txt:5:"):  # the 4th non-blank line is not a pose
        parse_split_file(p)


@pytest.mark.parametrize("body,line,what", [
    ("seq1/frame00001.png 1 2 3 1 0 0\n", 4, "7 numbers"),
    ("seq1/frame00001.tif 1 2 3 1 0 0\nseq1/frame00002.tif 1 2 3 1 0 0 0\n", 4, "7 numbers"),  # not a header
    ("seq1/frame00001.png 1 2 3 1 0 0 0\nseq1/frame00002.png 1 x 3 1 0 0 0\n", 5, "number"),
    ("seq1/frame00001.png 1 2 nan 1 0 0 0\n", 4, "finite"),
    ("seq1/frame00001.png 1 2 3 0 0 0 0\n", 4, "non-zero quaternion"),
    ("", 3, "image lines"),
])
def test_bad_split_lines_name_file_and_line(tmp_path, body, line, what):
    p = tmp_path / "dataset_train.txt"
    p.write_text(HEADER + body)
    with pytest.raises(DatasetError, match=what) as err:
        parse_split_file(p)
    assert f"dataset_train.txt:{line}:" in str(err.value)


# ----------------------------------------------------------------------------- NVM
def test_aachen_nvm_excerpt():
    m = parse_nvm(real("nvm_aachen_kapture_sample") / "3D-models" / "aachen_cvpr2018_db.nvm", with_observations=True)
    assert [c.name for c in m.cameras] == ["db/1045.jpg", "db/4446.jpg", "db/1135.jpg"]
    assert m.cameras[0].focal == pytest.approx(1084.59)
    assert np.allclose(m.cameras[0].center, [738.038, -6.17486, -41.8371])
    assert m.points.shape == (5, 3) and np.allclose(m.points[0], [769.607, 14.6241, 19.7262])
    assert m.colors[0].tolist() == [64, 57, 51]
    assert [len(o[0]) for o in m.observations] == [4, 4, 3, 3, 13]
    assert all(o[0].max() < 3 for o in m.observations)
    T = m.cameras[1].T_world_cam
    assert np.allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3)) and np.allclose(T[:3, 3], m.cameras[1].center)


@pytest.mark.parametrize("text,what", [
    ("NVM_V2\n1\n", "NVM_V3"),
    ("NVM_V3\n\n2\na.jpg 1 1 0 0 0 0 0 0 0 0\n", "2 camera lines"),
    ("NVM_V3\n1\na.jpg 1 1 0 0 0 0 0 0 0\n", "camera line"),
    ("NVM_V3\n1\na.jpg 1 1 0 0 0 0 0 0 0 0\n1\n1 2 3 4 5 6 2 0 0 1 1\n", "2 measurements"),
])
def test_bad_nvm(tmp_path, text, what):
    p = tmp_path / "r.nvm"
    p.write_text(text)
    with pytest.raises(DatasetError, match=what):
        parse_nvm(p, with_observations=True)


# ----------------------------------------------------------------------------- fuzzing the line parsers
@given(st.text(max_size=200))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_fuzz_split_and_nvm_parsers_raise_only_dataset_error(tmp_path, text):
    for name, fn in (("dataset_train.txt", parse_split_file), ("r.nvm", parse_nvm)):
        p = tmp_path / name
        p.write_bytes(text.encode("utf-8", errors="replace"))
        try:
            fn(p)
        except DatasetError as exc:  # the only error allowed, and it must name the file
            assert str(exc).startswith(str(p)) and "\n" not in str(exc)


@given(st.lists(st.text(max_size=12), max_size=6), st.integers(0, 6))
@settings(max_examples=200, deadline=None)
def test_fuzz_number_helpers(tokens, count):
    for fn in (lambda: common.parse_floats(tokens, count, Path("f"), 1, "x"),
               lambda: common.parse_int(tokens[0] if tokens else "", Path("f"), 1, "x"),
               lambda: common.split_fields(" ".join(tokens))):
        try:
            out = fn()
        except DatasetError as e:
            assert str(e).startswith("f:1:")
            continue
        if isinstance(out, np.ndarray):
            assert out.shape == (count,) and np.all(np.isfinite(out))
