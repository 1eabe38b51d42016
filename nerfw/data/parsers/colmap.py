"""COLMAP sparse models (text or binary) and the scenes built on them.

cameras.{txt,bin}, images.{txt,bin}, points3D.{txt,bin} are searched for anywhere under the scene folder
(dense/sparse, sparse/0, sparse, reconstruction/, any subfolder), images in an ``images`` folder beside or
above the model. Image poses are world-to-camera (qvec w,x,y,z; tvec): conventions.colmap_to_T_world_cam.
COLMAP's pixel convention (top-left pixel centre at (0.5, 0.5)) is nerfw's, so cx, cy are used as is.
Lens distortion becomes the view's conventions.Distortion, so rays are exact for the distorted images:
SIMPLE_RADIAL (k) and RADIAL (k1 k2) -> "opencv" [k1, k2]; OPENCV (k1 k2 p1 p2) and FULL_OPENCV
(k1 k2 p1 p2 k3 k4 k5 k6) -> "opencv" in the same order; OPENCV_FISHEYE (k1..k4), SIMPLE_RADIAL_FISHEYE (k)
and RADIAL_FISHEYE (k1 k2) -> "fisheye". All-zero coefficients give no distortion (None). FOV and
THIN_PRISM_FISHEYE are refused (undistort with `colmap image_undistorter` first).
near/far per image: 0.1 / 99.9 percentiles of the z-depth of the 3-D points that image observes
(NeRF-W / nerf_pl use the same percentiles).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nerfw.cameras.conventions import Distortion, colmap_to_T_world_cam
from nerfw.data.parsers import common
from nerfw.data.scene import CameraView, SceneData
from nerfw.errors import DatasetError

# model name -> (model id, number of params, index of fx, fy (same as fx for one-focal models), cx, cy)
CAMERA_MODELS = {
    "SIMPLE_PINHOLE": (0, 3, (0, 0, 1, 2)), "PINHOLE": (1, 4, (0, 1, 2, 3)),
    "SIMPLE_RADIAL": (2, 4, (0, 0, 1, 2)), "RADIAL": (3, 5, (0, 0, 1, 2)),
    "OPENCV": (4, 8, (0, 1, 2, 3)), "OPENCV_FISHEYE": (5, 8, (0, 1, 2, 3)), "FULL_OPENCV": (6, 12, (0, 1, 2, 3)),
    "FOV": (7, 5, None), "SIMPLE_RADIAL_FISHEYE": (8, 4, (0, 0, 1, 2)), "RADIAL_FISHEYE": (9, 5, (0, 0, 1, 2)),
    "THIN_PRISM_FISHEYE": (10, 12, None),
}
MODEL_BY_ID = {v[0]: k for k, v in CAMERA_MODELS.items()}
# model name -> (nerfw distortion model, indices of its coefficients in PARAMS, in conventions.Distortion's order)
DISTORTION_PARAMS = {
    "SIMPLE_RADIAL": ("opencv", (3,)), "RADIAL": ("opencv", (3, 4)),
    "OPENCV": ("opencv", (4, 5, 6, 7)), "FULL_OPENCV": ("opencv", (4, 5, 6, 7, 8, 9, 10, 11)),
    "OPENCV_FISHEYE": ("fisheye", (4, 5, 6, 7)), "SIMPLE_RADIAL_FISHEYE": ("fisheye", (3,)),
    "RADIAL_FISHEYE": ("fisheye", (3, 4)),
}
PREFERRED_MODEL_DIRS = ("dense/sparse", "sparse/0", "sparse", "reconstruction", "dense/sparse/0", "")
DEFAULT_BOUNDS = (0.1, 100.0)  # SfM units, when no image sees any point


@dataclass
class ColmapCamera:
    id: int
    model: str
    width: int
    height: int
    params: np.ndarray  # [n_params]

    def pinhole(self, path: Path) -> tuple[float, float, float, float]:
        layout = CAMERA_MODELS[self.model][2]
        if layout is None:
            raise DatasetError(path, f"camera {self.id}: model {self.model} is not supported (expected a pinhole, "
                                     "OpenCV or OpenCV-fisheye model; undistort the images with COLMAP first)")
        return tuple(float(self.params[i]) for i in layout)  # type: ignore[return-value]

    def distortion(self) -> Distortion | None:
        """The lens distortion of this camera (None for pinhole models and all-zero coefficients)."""
        if self.model not in DISTORTION_PARAMS:
            return None
        model, indices = DISTORTION_PARAMS[self.model]
        d = Distortion(model, [float(self.params[i]) for i in indices])
        return None if d.is_identity else d


@dataclass
class ColmapImage:
    id: int
    qvec: np.ndarray  # [4] world-to-camera (w, x, y, z)
    tvec: np.ndarray  # [3]
    camera_id: int
    name: str
    xys: np.ndarray  # [n, 2] observed keypoints (pixels)
    point3D_ids: np.ndarray  # [n] int64, -1 when unmatched

    @property
    def T_world_cam(self) -> np.ndarray:
        return colmap_to_T_world_cam(self.qvec, self.tvec)


@dataclass
class ColmapModel:
    folder: Path
    cameras: dict[int, ColmapCamera]
    images: dict[int, ColmapImage]
    point_ids: np.ndarray  # [M] int64
    points: np.ndarray  # [M, 3]
    colors: np.ndarray  # [M, 3] uint8
    _sorted: tuple[np.ndarray, np.ndarray] | None = None  # (argsort of point_ids, sorted ids), built once

    def points_by_id(self, ids: np.ndarray) -> np.ndarray:
        """World coordinates [n, 3] of the given point ids (ids not in the model are skipped)."""
        if len(self.point_ids) == 0 or len(ids) == 0:
            return np.zeros((0, 3))
        if self._sorted is None:
            order = np.argsort(self.point_ids)
            self._sorted = (order, self.point_ids[order])
        order, sorted_ids = self._sorted
        pos = np.clip(np.searchsorted(sorted_ids, ids), 0, len(sorted_ids) - 1)
        found = sorted_ids[pos] == ids
        return self.points[order[pos[found]]]


# ----------------------------------------------------------------------------- text
def read_cameras_txt(path: Path) -> dict[int, ColmapCamera]:
    cams = {}
    for n, s in common.data_lines(path):
        t = s.split()
        if len(t) < 4 or t[1] not in CAMERA_MODELS:
            raise DatasetError(path, "expected 'CAMERA_ID MODEL WIDTH HEIGHT PARAMS[]' with a COLMAP model name",
                               line=n)
        n_params = CAMERA_MODELS[t[1]][1]
        params = common.parse_floats(t[4:], n_params, path, n, f"{t[1]} parameters")
        cid = common.parse_int(t[0], path, n, "camera id")
        cams[cid] = ColmapCamera(cid, t[1], common.parse_int(t[2], path, n, "width"),
                                 common.parse_int(t[3], path, n, "height"), params)
    return cams


def _points2d(path: Path, n: int, text: str) -> tuple[np.ndarray, np.ndarray]:
    tokens = text.split()
    if len(tokens) % 3:
        raise DatasetError(path, "expected POINTS2D as triples 'X Y POINT3D_ID'", line=n)
    try:
        arr = np.array(tokens, dtype=np.float64).reshape(-1, 3)
    except ValueError:
        raise DatasetError(path, "expected numbers in the POINTS2D line", line=n) from None
    return arr[:, :2], arr[:, 2].astype(np.int64)


def read_images_txt(path: Path) -> dict[int, ColmapImage]:
    """Two lines per image; the POINTS2D line may be empty, so blank lines are kept here."""
    lines = [(n, s) for n, s in common.read_lines(path) if not s.startswith("#")]
    while lines and not lines[-1][1]:
        lines.pop()
    images = {}
    i = 0
    while i < len(lines):
        n, s = lines[i]
        if not s:  # stray blank line between images
            i += 1
            continue
        t = s.split()
        if len(t) < 10:
            raise DatasetError(path, "expected 'IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME'", line=n)
        v = common.parse_floats(t[1:8], 7, path, n, "QW QX QY QZ TX TY TZ")
        xys, ids = _points2d(path, *lines[i + 1]) if i + 1 < len(lines) else (np.zeros((0, 2)), np.zeros(0, np.int64))
        iid = common.parse_int(t[0], path, n, "image id")
        images[iid] = ColmapImage(iid, v[:4], v[4:], common.parse_int(t[8], path, n, "camera id"),
                                  " ".join(t[9:]), xys, ids)
        i += 2
    return images


def read_points3d_txt(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ids, xyz, rgb = [], [], []
    for n, s in common.data_lines(path):
        t = s.split()
        if len(t) < 8:
            raise DatasetError(path, "expected 'POINT3D_ID X Y Z R G B ERROR TRACK[]'", line=n)
        ids.append(common.parse_int(t[0], path, n, "point id"))
        v = common.parse_floats(t[1:7], 6, path, n, "X Y Z R G B")
        xyz.append(v[:3])
        rgb.append(v[3:])
    if not ids:
        return np.zeros(0, np.int64), np.zeros((0, 3)), np.zeros((0, 3), np.uint8)
    return np.array(ids, np.int64), np.array(xyz), np.clip(np.array(rgb), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- binary
class _Reader:
    """Bounds-checked little-endian reader: truncated files give DatasetError, not struct.error."""

    def __init__(self, path: Path):
        self.path, self.data, self.pos = path, path.read_bytes(), 0

    def read(self, fmt: str):
        size = struct.calcsize("<" + fmt)
        if self.pos + size > len(self.data):
            raise DatasetError(self.path, f"unexpected end of file at byte {self.pos} (truncated binary model)")
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += size
        return values

    def array(self, dtype: np.dtype, count: int) -> np.ndarray:
        size = np.dtype(dtype).itemsize * count
        if count < 0 or self.pos + size > len(self.data):
            raise DatasetError(self.path, f"unexpected end of file at byte {self.pos} (truncated binary model)")
        out = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.pos)
        self.pos += size
        return out

    def count(self, record_fmt: str, what: str) -> int:
        """A uint64 record count, checked against the bytes left (each record takes at least record_fmt)."""
        n = self.read("Q")[0]
        left = len(self.data) - self.pos
        if n * struct.calcsize("<" + record_fmt) > left:
            raise DatasetError(self.path, f"header says {n} {what} but only {left} bytes follow "
                                          "(corrupt or truncated binary model)")
        return n

    def cstring(self) -> str:
        end = self.data.find(b"\x00", self.pos)
        if end < 0:
            raise DatasetError(self.path, "expected a NUL-terminated image name")
        s = self.data[self.pos:end].decode("utf-8", errors="replace")
        self.pos = end + 1
        return s


def read_cameras_bin(path: Path) -> dict[int, ColmapCamera]:
    r, cams = _Reader(path), {}
    for _ in range(r.count("iiQQ", "cameras")):
        cid, model_id, w, h = r.read("iiQQ")
        if model_id not in MODEL_BY_ID:
            raise DatasetError(path, f"camera {cid}: unknown COLMAP model id {model_id}")
        model = MODEL_BY_ID[model_id]
        cams[cid] = ColmapCamera(cid, model, int(w), int(h), r.array(np.float64, CAMERA_MODELS[model][1]).copy())
    return cams


def read_images_bin(path: Path) -> dict[int, ColmapImage]:
    r, images = _Reader(path), {}
    for _ in range(r.count("idddddddi", "images")):
        iid, qw, qx, qy, qz, tx, ty, tz, cid = r.read("idddddddi")
        name = r.cstring()
        n = r.read("Q")[0]
        rec = r.array(np.dtype([("x", "<f8"), ("y", "<f8"), ("id", "<i8")]), n)
        xys = np.stack([rec["x"], rec["y"]], axis=-1)
        images[iid] = ColmapImage(iid, np.array([qw, qx, qy, qz]), np.array([tx, ty, tz]), cid, name, xys,
                                  rec["id"].astype(np.int64))
    return images


def read_points3d_bin(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r = _Reader(path)
    n = r.count("QdddBBBdQ", "points")
    ids, xyz, rgb = np.zeros(n, np.int64), np.zeros((n, 3)), np.zeros((n, 3), np.uint8)
    for k in range(n):
        pid, x, y, z, cr, cg, cb, _err, track = r.read("QdddBBBdQ")
        r.array(np.int32, 2 * track)  # skip the track (image id, point2D index)
        ids[k], xyz[k], rgb[k] = pid, (x, y, z), (cr, cg, cb)
    return ids, xyz, rgb


# ----------------------------------------------------------------------------- model discovery
def _model_files(folder: Path) -> dict[str, Path] | None:
    """The three model files in `folder`, binary preferred; None when cameras/images are missing."""
    for ext in (".bin", ".txt"):
        files = {k: folder / f"{k}{ext}" for k in ("cameras", "images", "points3D")}
        if files["cameras"].is_file() and files["images"].is_file():
            return files
    return None


def read_partial_model(folder: Path) -> tuple[dict[int, ColmapCamera], dict[int, ColmapImage] | None,
                                               np.ndarray | None, np.ndarray | None]:
    """What a possibly incomplete model folder holds: (cameras, images or None, points [M, 3] or None, colours
    [M, 3] uint8 or None). Tools that ship poses elsewhere (LLFF's poses_bounds.npy) often keep only
    cameras.bin and points3D.bin beside them; each file is read in the format it has (.bin preferred)."""
    def first(name: str) -> Path | None:
        return next((folder / f"{name}{ext}" for ext in (".bin", ".txt") if (folder / f"{name}{ext}").is_file()), None)

    cam_file, img_file, pts_file = first("cameras"), first("images"), first("points3D")
    if cam_file is None:
        raise DatasetError(folder, "expected cameras.bin or cameras.txt (a COLMAP model)")
    cams = (read_cameras_bin if cam_file.suffix == ".bin" else read_cameras_txt)(cam_file)
    images = None
    if img_file is not None:
        images = (read_images_bin if img_file.suffix == ".bin" else read_images_txt)(img_file)
    points = colors = None
    if pts_file is not None:
        _, points, colors = (read_points3d_bin if pts_file.suffix == ".bin" else read_points3d_txt)(pts_file)
    return cams, images, points, colors


def find_model_dir(root: Path) -> Path | None:
    """The COLMAP model folder under root (preferred locations first, then the shallowest found)."""
    for rel in PREFERRED_MODEL_DIRS:
        if _model_files(root / rel):
            return root / rel
    found = {p.parent for pattern in ("cameras.bin", "cameras.txt") for p in root.rglob(pattern)}
    found = sorted((p for p in found if _model_files(p)), key=lambda p: (len(p.relative_to(root).parts), str(p)))
    return found[0] if found else None


def read_cameras_and_images(folder: Path) -> tuple[dict[int, ColmapCamera], dict[int, ColmapImage]]:
    """The cameras and images of the model in `folder` (not its points), every image's camera checked."""
    files = _model_files(folder)
    if files is None:
        raise DatasetError(folder, "expected cameras.{bin,txt} and images.{bin,txt} (a COLMAP model)")
    binary = files["cameras"].suffix == ".bin"
    cams = (read_cameras_bin if binary else read_cameras_txt)(files["cameras"])
    images = (read_images_bin if binary else read_images_txt)(files["images"])
    for im in images.values():
        if im.camera_id not in cams:
            raise DatasetError(files["images"], f"image {im.id} ({im.name}) refers to camera {im.camera_id}, "
                                                f"which is not in {files['cameras'].name}")
    return cams, images


def read_model(folder: Path) -> ColmapModel:
    cams, images = read_cameras_and_images(folder)
    files = _model_files(folder)
    binary = files["cameras"].suffix == ".bin"
    if files["points3D"].is_file():
        ids, xyz, rgb = (read_points3d_bin if binary else read_points3d_txt)(files["points3D"])
    else:
        ids, xyz, rgb = np.zeros(0, np.int64), np.zeros((0, 3)), np.zeros((0, 3), np.uint8)
    return ColmapModel(folder, cams, images, ids, xyz, rgb)


def find_images_dir(root: Path, model_dir: Path, first_name: str) -> Path:
    """The folder holding the images: `images` beside the model or above it, dense/images, root/images."""
    candidates, d = [], model_dir
    while True:
        candidates.append(d / "images")
        if d == root or root not in d.parents:
            break
        d = d.parent
    candidates += [root / "dense" / "images", root / "images", root]
    for c in candidates:
        if (c / first_name).is_file():
            return c
    raise DatasetError(root, f"expected the image {first_name} in one of: "
                             + ", ".join(str(c.relative_to(root)) if c != root else "." for c in candidates))


# ----------------------------------------------------------------------------- scene
def image_bounds(model: ColmapModel, image: ColmapImage, view: CameraView) -> tuple[float, float] | None:
    """near/far from the z-depth of the points this image observes; else the points in its frustum."""
    seen = model.points_by_id(image.point3D_ids[image.point3D_ids >= 0])  # [n, 3]
    if len(seen):
        T_cam_world = np.linalg.inv(view.T_world_cam)
        z = seen @ T_cam_world[2, :3] + T_cam_world[2, 3]
        b = common.depth_percentile_bounds(z)
        if b is not None:
            return b
    return common.points_bounds(model.points, view.T_world_cam, view.fx, view.fy, view.cx, view.cy,
                                view.width, view.height)


def build_views(model: ColmapModel, root: Path, images: list[ColmapImage], splits: list[str],
                img_downscale: float, warnings: list[str]) -> list[CameraView]:
    """CameraViews for the given images (intrinsics scaled from the COLMAP size to the file size)."""
    img_dir = find_images_dir(root, model.folder, images[0].name)
    missing = [im.name for im in images if not (img_dir / im.name).is_file()]
    if missing:
        raise common.missing_files_error(img_dir, missing)
    views = []
    for im, split in zip(images, splits):
        cam = model.cameras[im.camera_id]
        w, h = common.image_size(img_dir / im.name)
        out = common.downscaled_size(w, h, img_downscale)
        view = common.make_view(im.name, img_dir / im.name, split, im.T_world_cam, cam.pinhole(model.folder),
                                (cam.width, cam.height), out)
        view.distortion = cam.distortion()
        common.check_pose(view.T_world_cam, model.folder)
        b = image_bounds(model, im, view)
        if b is not None:
            view.near, view.far = b
        views.append(view)
    common.fill_missing_bounds(views, DEFAULT_BOUNDS, warnings, "visible 3-D points")
    return views


def load_colmap(root: Path, img_downscale: float = 1, test_every: int = 8) -> SceneData:
    """A COLMAP scene: images sorted by name, every `test_every`-th (index % test_every == 0) is test."""
    root = Path(root)
    model_dir = find_model_dir(root)
    if model_dir is None:
        raise DatasetError(root, "expected a COLMAP model (cameras/images/points3D .bin or .txt) under the folder")
    model = read_model(model_dir)
    images = sorted(model.images.values(), key=lambda im: im.name)
    if not images:
        raise DatasetError(model_dir, "expected at least one registered image in the COLMAP model")
    splits = ["test" if test_every > 0 and i % test_every == 0 else "train" for i in range(len(images))]
    warnings: list[str] = []
    views = build_views(model, root, images, splits, img_downscale, warnings)
    return SceneData(format="colmap", root=root, cameras=views, points=model.points,
                     point_colors=model.colors, warnings=warnings)
