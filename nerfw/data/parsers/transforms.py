"""transforms.json scenes (nerfstudio, instant-ngp, NeRF Blender synthetic).

Poses are camera-to-world with OpenGL axes (x right, y up, z backward): conventions.opengl_to_T_world_cam.
Intrinsics: fl_x / fl_y / cx / cy / w / h (per frame or top level; per frame wins), else camera_angle_x
(and camera_angle_y): f = 0.5 W / tan(0.5 angle). A missing principal point is the image centre; missing
w / h are read from the image file. file_path is relative to the json's folder (or absolute), with or
without an extension (Blender lists './train/r_0').

Splits: Blender transforms_{train,val,test}.json give them by file; a single transforms.json uses its
train_filenames / val_filenames / test_filenames lists (nerfstudio) when present, else every
`test_every`-th frame is test.
Lens distortion (per frame or top level; per frame wins) becomes the view's conventions.Distortion:
* camera_model OPENCV (nerfstudio), a pinhole name, or none (instant-ngp without is_fisheye): k1 k2 p1 p2 k3
  -> "opencv" [k1, k2, p1, p2, k3]. nerfstudio's radial factor is 1 + k1 r^2 + k2 r^4 + k3 r^6 + k4 r^8, so k3 is
  OpenCV's k3 exactly; its r^8 term k4 has no counterpart in OpenCV's rational model and is dropped with a
  warning that gives the largest shift it causes at the image corners, in pixels.
* camera_model OPENCV_FISHEYE, or instant-ngp's is_fisheye: k1 k2 k3 k4 -> "fisheye" (p1, p2 unused, warned).
* EQUIRECTANGULAR / FISHEYE / FISHEYE624 / omnidirectional-stereo / VR180 cameras are refused.
* nerfw_distortion ({"model", "coeffs"} of conventions.Distortion, written by `nerfw export`) wins over the
  keys above: it also holds the lenses nerfstudio has no keys for (rational OpenCV, VisualSfM radial).
All-zero coefficients give no distortion (None).

Sparse points: nerfstudio's ns-process-data names a PLY of the COLMAP points in the json's own frame
(`ply_file_path`, e.g. sparse_pc.ply); its vertices (x, y, z and red, green, blue when present) become the
scene's points, which frame and orient it as for a COLMAP folder. A missing or unreadable PLY is a warning.

Bounds: Blender scenes near 2, far 6 (the NeRF paper's); else per-frame `near` / `far` keys (nerfw's
export writes them), else the sparse points in the frame's frustum (0.1 / 99.9 depth percentiles), else the
z-range of the `aabb` corners, else a fallback from the camera spread
(near = 0.01 R, far = 3 R with R the largest distance of a camera centre from their mean; R = 1 for one
camera).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from nerfw.cameras.conventions import Distortion, opengl_to_T_world_cam
from nerfw.data.parsers import common
from nerfw.data.scene import CameraView, SceneData
from nerfw.data.vertex_ply import read_vertices
from nerfw.errors import DatasetError

BLENDER_SPLITS = ("train", "val", "test")
BLENDER_BOUNDS = (2.0, 6.0)


def read_json(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DatasetError(path, "file not found") from None
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DatasetError(path, f"expected valid JSON ({exc.msg})", line=exc.lineno) from None
    if not isinstance(meta, dict) or not isinstance(meta.get("frames"), list):
        raise DatasetError(path, "expected a JSON object with a 'frames' list")
    return meta


def _number(d: dict, key: str, path: Path, where: str) -> float | None:
    if key not in d:
        return None
    try:
        value = float(d[key])
    except (TypeError, ValueError):
        raise DatasetError(path, f"{where}: expected '{key}' to be a number, got {d[key]!r:.40}") from None
    if not math.isfinite(value):
        raise DatasetError(path, f"{where}: expected a finite '{key}'")
    return value


def _intrinsics(meta: dict, frame: dict, path: Path, where: str, file_size: tuple[int, int]):
    """((fx, fy, cx, cy), (w, h)) of one frame; the frame's keys override the top level."""
    get = lambda k: _number(frame, k, path, where) if k in frame else _number(meta, k, path, where)  # noqa: E731
    w, h = get("w") or file_size[0], get("h") or file_size[1]
    fx, fy = get("fl_x"), get("fl_y")
    ax, ay = get("camera_angle_x"), get("camera_angle_y")
    if fx is None and ax is not None:
        fx = 0.5 * w / math.tan(0.5 * ax)
    if fy is None and ay is not None:
        fy = 0.5 * h / math.tan(0.5 * ay)
    fx, fy = fx or fy, fy or fx
    if fx is None:
        raise DatasetError(path, f"{where}: expected fl_x/fl_y or camera_angle_x")
    cx, cy = get("cx"), get("cy")
    return (fx, fy, w / 2.0 if cx is None else cx, h / 2.0 if cy is None else cy), (w, h)


def _pose(frame: dict, path: Path, where: str) -> np.ndarray:
    try:
        M = np.asarray(frame["transform_matrix"], dtype=np.float64)
    except (KeyError, TypeError, ValueError):
        raise DatasetError(path, f"{where}: expected a 'transform_matrix' (4x4 list of numbers)") from None
    if M.shape not in ((4, 4), (3, 4)):
        raise DatasetError(path, f"{where}: expected a 4x4 transform_matrix, got shape {M.shape}")
    if not np.all(np.isfinite(M)):
        raise DatasetError(path, f"{where}: expected a finite transform_matrix (found NaN or inf)")
    return common.check_pose(opengl_to_T_world_cam(M), path)


def _frames(root: Path, test_every: int) -> tuple[list[tuple[dict, dict, str, Path]], bool]:
    """[(meta, frame, split, json path)] and whether this is a Blender split layout."""
    blender = [root / f"transforms_{s}.json" for s in BLENDER_SPLITS]
    if any(p.is_file() for p in blender):
        out = []
        for split, p in zip(BLENDER_SPLITS, blender):
            if p.is_file():
                meta = read_json(p)
                out += [(meta, f, split, p) for f in meta["frames"]]
        return out, True
    path = root / "transforms.json"
    meta = read_json(path)
    lists = {s: set(map(_norm, meta.get(f"{s}_filenames") or [])) for s in BLENDER_SPLITS}
    out = []
    for i, f in enumerate(meta["frames"]):
        name = _norm(str(f.get("file_path", "")) if isinstance(f, dict) else "")
        split = next((s for s in BLENDER_SPLITS if name in lists[s]), None)
        if split is None:
            split = "test" if test_every > 0 and i % test_every == 0 and not any(lists.values()) else "train"
        out.append((meta, f, split, path))
    return out, False


def _norm(p: str) -> str:
    p = p.replace("\\", "/")
    while p.startswith("./"):
        p = p[2:]
    return p


def load_transforms(root: Path, img_downscale: float = 1, test_every: int = 8) -> SceneData:
    root = Path(root)
    frames, blender = _frames(root, test_every)
    if not frames:
        raise DatasetError(root / "transforms.json", "expected at least one frame")
    resolved, missing = [], []
    for meta, f, split, path in frames:
        if not isinstance(f, dict) or not isinstance(f.get("file_path"), str):
            raise DatasetError(path, "expected every frame to have a 'file_path' string")
        image = common.find_image(path.parent, _norm(f["file_path"]))
        if image is None:
            missing.append(_norm(f["file_path"]))
        resolved.append(image)
    if missing:
        raise common.missing_files_error(root, missing)
    notes = _LensNotes()
    cameras = [_view(root, meta, f, split, path, image, img_downscale, notes)
               for (meta, f, split, path), image in zip(frames, resolved)]
    warnings = notes.warnings()
    points, colors = read_ply_points(frames[0][0], frames[0][3], warnings)
    _set_bounds(cameras, frames, blender, warnings, points)
    return SceneData(format="transforms", root=root, cameras=cameras, points=points, point_colors=colors,
                     warnings=warnings)


def read_ply_points(meta: dict, path: Path, warnings: list[str]):
    """(points [N, 3], colours [N, 3] uint8 or None) of the PLY named by `ply_file_path`, or (None, None)."""
    name = meta.get("ply_file_path")
    if name is None:
        return None, None
    if not isinstance(name, str):
        raise DatasetError(path, f"expected 'ply_file_path' to be a file name, got {name!r}")
    ply = (path.parent / _norm(name)) if not Path(name).is_absolute() else Path(name)
    from plyfile import PlyParseError


    try:
        points, colors = read_vertices(ply)
    except (OSError, KeyError, ValueError, IndexError, PlyParseError) as exc:
        warnings.append(f"{ply}: the sparse points named by ply_file_path are not usable ({type(exc).__name__}: "
                        f"{exc}); framing without points")
        return None, None
    keep = np.isfinite(points).all(1)
    return points[keep], (colors[keep] if colors is not None else None)


DISTORTION_KEYS = ("k1", "k2", "k3", "k4", "p1", "p2")
FISHEYE_MODELS = ("OPENCV_FISHEYE",)
REFUSED_MODELS = ("EQUIRECTANGULAR", "FISHEYE", "FISHEYE624", "OMNIDIRECTIONALSTEREO_L",
                  "OMNIDIRECTIONALSTEREO_R", "VR180_L", "VR180_R")


def _flag(value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


class _LensNotes:
    """What the distortion mapping dropped, summarised in one warning each over all frames."""

    def __init__(self):
        self.k4_frames, self.k4_pixels, self.p_frames = 0, 0.0, 0

    def warnings(self) -> list[str]:
        out = []
        if self.k4_frames:
            out.append(f"{self.k4_frames} frame(s): nerfstudio's k4 (the r^8 radial term of camera_model OPENCV) "
                       f"has no counterpart in the OpenCV model and is dropped (up to {self.k4_pixels:.3g} px at "
                       "the image corners)")
        if self.p_frames:
            out.append(f"{self.p_frames} fisheye frame(s): p1/p2 are not part of the fisheye model and are ignored")
        return out


def _distortion(meta: dict, frame: dict, path: Path, where: str, K, size, notes: _LensNotes) -> Distortion | None:
    """The lens distortion of one frame (see the module doc); the frame's keys override the top level."""
    model = str(frame.get("camera_model", meta.get("camera_model", ""))).upper()
    if model in REFUSED_MODELS:
        raise DatasetError(path, f"{where}: camera_model {model} is not supported (pinhole, OPENCV and "
                                 "OPENCV_FISHEYE cameras only; convert the images to a perspective camera first)")
    exact = frame.get("nerfw_distortion", meta.get("nerfw_distortion"))
    if exact is not None:  # written by nerfw's export: the lens exactly, whatever nerfstudio's keys say
        try:
            d = Distortion.from_dict(exact)
        except (TypeError, KeyError, ValueError, AttributeError) as exc:
            raise DatasetError(path, f"{where}: expected nerfw_distortion as {{'model': name, 'coeffs': [numbers]}} "
                                     f"({exc})") from None
        return None if d is None or d.is_identity else d
    get = lambda k: _number(frame, k, path, where) if k in frame else _number(meta, k, path, where)  # noqa: E731
    k1, k2, k3, k4, p1, p2 = (get(k) or 0.0 for k in DISTORTION_KEYS)
    fisheye = model in FISHEYE_MODELS or (not model and _flag(frame.get("is_fisheye", meta.get("is_fisheye"))))
    if fisheye:
        notes.p_frames += bool(p1 or p2)
        d = Distortion("fisheye", [k1, k2, k3, k4])
    else:
        if k4:
            fx, fy, cx, cy = K
            w, h = size
            r = max(np.hypot((u - cx) / fx, (v - cy) / fy) for u in (0, w) for v in (0, h))
            notes.k4_frames += 1
            notes.k4_pixels = max(notes.k4_pixels, abs(k4) * r ** 9 * max(fx, fy))
        d = Distortion("opencv", [k1, k2, p1, p2, k3])
    return None if d.is_identity else d


def _view(root, meta, frame, split, path, image: Path, img_downscale, notes: _LensNotes) -> CameraView:
    where = f"frame {frame['file_path']!r}"
    file_size = common.image_size(image)
    K, ref = _intrinsics(meta, frame, path, where, file_size)
    distortion = _distortion(meta, frame, path, where, K, ref, notes)
    out = common.downscaled_size(file_size[0], file_size[1], img_downscale)
    try:
        name = image.relative_to(root).as_posix()
    except ValueError:
        name = image.as_posix()
    view = common.make_view(name, image, split, _pose(frame, path, where), K, ref, out)
    view.distortion = distortion
    return view


def _set_bounds(cameras: list[CameraView], frames, blender: bool, warnings: list[str],
                points: np.ndarray | None = None) -> None:
    meta = frames[0][0]
    aabb = np.asarray(meta.get("aabb", []), dtype=np.float64) if "aabb" in meta else None
    pending = []  # frames without near/far of their own
    for c, (_, f, _, path) in zip(cameras, frames):
        near, far = _number(f, "near", path, "frame"), _number(f, "far", path, "frame")
        if near is not None and far is not None:
            c.near, c.far = near, far
        elif blender:
            c.near, c.far = BLENDER_BOUNDS
        else:
            pending.append(c)
    for c, from_points in zip(pending, common.frustum_bounds(points, pending)):  # all None without points
        if from_points is not None:
            c.near, c.far = from_points
        elif aabb is not None and aabb.shape == (2, 3):
            corners = np.array([[aabb[i, 0], aabb[j, 1], aabb[k, 2]] for i in (0, 1) for j in (0, 1) for k in (0, 1)])
            z = corners @ np.linalg.inv(c.T_world_cam)[2, :3] + np.linalg.inv(c.T_world_cam)[2, 3]
            c.near, c.far = max(float(z.min()), 1e-3 * float(z.max())), float(z.max())
    lacking = [c for c in cameras if not (np.isfinite(c.near) and np.isfinite(c.far) and c.far > c.near)]
    if lacking:
        centers = np.stack([c.center for c in cameras])
        R = float(np.max(np.linalg.norm(centers - centers.mean(0), axis=1))) if len(cameras) > 1 else 1.0
        R = R if R > 0 else 1.0
        for c in lacking:
            c.near, c.far = 0.01 * R, 3.0 * R
        warnings.append(f"{len(lacking)} frame(s) without bounds: near={0.01 * R:.4g} far={3 * R:.4g} "
                        "from the camera spread")
