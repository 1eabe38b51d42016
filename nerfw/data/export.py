"""`nerfw export`: write any scene nerfw reads in another layout users' tools expect.

``--format transforms`` (a .json file): nerfstudio / instant-ngp transforms.json, and the sparse points as the PLY it
names by ``ply_file_path`` (as ns-process-data writes sparse_pc.ply). ``--format llff`` (a folder):
poses_bounds.npy as LLFF's imgs2poses writes it (rows in image-name order, the COLMAP model's world), the images
linked as images/NNNNN_<name>, and the lenses and points as a COLMAP text model in sparse/0 (cameras.txt,
points3D.txt; no images.txt, as many LLFF captures ship). ``--format colmap`` (a folder): the images linked
as for llff and a complete COLMAP text model in sparse/0 (points without tracks). One capture written in
every format must train the same (tests/test_format_invariance.py).

Poses go out with OpenGL axes (conventions.T_world_cam_to_opengl) in the dataset's own frame and units;
every frame carries fl_x, fl_y, cx, cy, w, h of the image file it points at, near and far (extra keys other
tools ignore) and file_path relative to the json's folder (or absolute with --absolute_paths). The splits are
written as nerfstudio's train_filenames / val_filenames / test_filenames.

Lens distortion: a distorted frame carries ``nerfw_distortion`` ({"model", "coeffs"}, exact, what nerfw reads
back first) and, where nerfstudio's models express it exactly, nerfstudio's keys too: "opencv" without the
rational terms (k4 = k5 = k6 = 0) as k1 k2 p1 p2 k3 (camera_model OPENCV), "fisheye" as k1 k2 k3 k4
(camera_model OPENCV_FISHEYE). The top-level camera_model is OPENCV_FISHEYE when every distorted frame is fisheye,
else OPENCV; a frame whose model differs says so in its own camera_model. Rational OpenCV and VisualSfM ("nvm")
lenses have no nerfstudio form: only nerfw_distortion is written, and the export says so.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from nerfw.cameras.conventions import Distortion, T_world_cam_to_llff, T_world_cam_to_opengl
from nerfw.data.parsers.common import image_size
from nerfw.data.scene import CameraView, SceneData
from nerfw.data.vertex_ply import write_vertices
from nerfw.data.writers import write_colmap_text
from nerfw.errors import ConfigError


def _file_path(c: CameraView, out_dir: Path, absolute: bool) -> str:
    p = Path(c.image_path).resolve()
    return p.as_posix() if absolute else Path(os.path.relpath(p, out_dir.resolve())).as_posix()


def _intrinsics_of_file(c: CameraView) -> dict:
    """fl_x, fl_y, cx, cy, w, h of the image file the frame points at (the camera scaled per axis to the file's
    size): readers take w, h as the file's size, and LLFF's images_N files are not the size its cameras state."""
    w, h = image_size(c.image_path)
    sx, sy = w / c.width, h / c.height
    return {"fl_x": c.fx * sx, "fl_y": c.fy * sy, "cx": c.cx * sx, "cy": c.cy * sy, "w": w, "h": h}


def lens_keys(distortion: Distortion | None) -> tuple[str, dict]:
    """(nerfstudio camera_model, keys) of a frame's lens: nerfstudio's k / p keys where its models express the
    lens exactly, and always nerfw's exact nerfw_distortion. camera_model "" when nerfstudio has no such lens."""
    if distortion is None or distortion.is_identity:
        return "OPENCV", {}
    keys = {"nerfw_distortion": distortion.to_dict()}
    c = distortion.coeffs
    if distortion.model == "fisheye":
        return "OPENCV_FISHEYE", {**dict(zip(("k1", "k2", "k3", "k4"), c)), **keys}
    if distortion.model == "opencv" and not any(c[5:]):
        return "OPENCV", {**dict(zip(("k1", "k2", "p1", "p2", "k3"), c[:5])), **keys}
    return "", keys


def to_transforms(scene: SceneData, out_dir: Path, absolute: bool = False) -> dict:
    """nerfstudio transforms.json content for a scene."""
    frames, splits = [], {"train": [], "val": [], "test": []}
    lenses = [lens_keys(c.distortion) for c in scene.cameras]
    distorted = [model for (model, keys) in lenses if keys]
    top_model = "OPENCV_FISHEYE" if distorted and all(m == "OPENCV_FISHEYE" for m in distorted) else "OPENCV"
    for c, (model, keys) in zip(scene.cameras, lenses):
        path = _file_path(c, out_dir, absolute)
        own = {"camera_model": model} if model and model != top_model else {}
        frames.append({"file_path": path, "transform_matrix": T_world_cam_to_opengl(c.T_world_cam).tolist(),
                       **_intrinsics_of_file(c), **own, **keys, "near": c.near, "far": c.far})
        splits.setdefault(c.split, []).append(path)
    meta = {"camera_model": top_model, "nerfw_source_format": scene.format, "nerfw_axes": "opengl",
            "frames": frames}
    if scene.points is not None and len(scene.points):
        meta["ply_file_path"] = POINTS_PLY
    meta.update({f"{s}_filenames": names for s, names in splits.items() if names and s in ("train", "val", "test")})
    return meta


POINTS_PLY = "sparse_pc.ply"  # beside transforms.json, as nerfstudio's ns-process-data names it


def write_transforms(scene: SceneData, out: Path, absolute: bool = False) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = to_transforms(scene, out.parent, absolute)
    if "ply_file_path" in meta:
        write_vertices(out.parent / POINTS_PLY, scene.points, scene.point_colors)
    out.write_text(json.dumps(meta, indent=1))
    return out


def colmap_camera(c: CameraView) -> tuple[str, list[float]]:
    """(COLMAP model name, params) of a view's camera at its image file's size (ConfigError for a VisualSfM lens,
    which COLMAP has no model for)."""
    k = _intrinsics_of_file(c)
    f = [k["fl_x"], k["fl_y"], k["cx"], k["cy"]]
    d = c.distortion
    if d is None or d.is_identity:
        return "PINHOLE", f
    if d.model == "fisheye":
        return "OPENCV_FISHEYE", f + list(d.coeffs)
    if d.model == "opencv":
        return ("OPENCV", f + list(d.coeffs[:4])) if not any(d.coeffs[4:]) else ("FULL_OPENCV", f + list(d.coeffs))
    raise ConfigError(f"{c.name}: a VisualSfM (nvm) lens has no COLMAP camera model; undistort the images first")


def _link_images(scene: SceneData, folder: Path) -> list[str]:
    """images/NNNNN_<file name> links to the scene's images, numbered in the scene's order (so sorting the names,
    as LLFF's rows and COLMAP's readers do, keeps it). Returns the names."""
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i, c in enumerate(scene.cameras):
        name = f"{i:05d}_{Path(c.image_path).name}"
        link = folder / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(Path(c.image_path).resolve())
        names.append(name)
    return names


def _colmap_points(scene: SceneData) -> list[tuple]:
    if scene.points is None:
        return []
    colors = scene.point_colors if scene.point_colors is not None else np.full((len(scene.points), 3), 128)
    return [(i + 1, X, rgb, 0.0, []) for i, (X, rgb) in enumerate(zip(scene.points, colors))]


def write_colmap(scene: SceneData, out_dir: Path, with_images_list: bool = True) -> Path:
    """out_dir/images (links) and a COLMAP text model in out_dir/sparse/0 (one camera per image)."""

    out_dir = Path(out_dir)
    names = _link_images(scene, out_dir / "images")
    cameras = []
    for i, c in enumerate(scene.cameras):
        model, params = colmap_camera(c)
        cameras.append((i + 1, model, *image_size(c.image_path), params))
    images = [(i + 1, c.T_world_cam, i + 1, name, np.zeros((0, 2)), np.zeros(0, np.int64))
              for i, (c, name) in enumerate(zip(scene.cameras, names))]
    model = out_dir / "sparse" / "0"
    write_colmap_text(model, cameras, images, _colmap_points(scene))
    if not with_images_list:
        (model / "images.txt").unlink()
    return out_dir


def write_llff(scene: SceneData, out_dir: Path) -> Path:
    """poses_bounds.npy (each row: the pose, the image file's H, W and focal, near, far) + images + sparse/0."""

    out_dir = Path(out_dir)
    write_colmap(scene, out_dir, with_images_list=False)
    rows = []
    for c in scene.cameras:
        k = _intrinsics_of_file(c)
        pose = T_world_cam_to_llff(c.T_world_cam, k["h"], k["w"], k["fl_x"])
        rows.append(np.concatenate([pose.ravel(), [c.near, c.far]]))
    np.save(out_dir / "poses_bounds.npy", np.stack(rows))
    return out_dir


def llff_notes(scene: SceneData) -> list[str]:
    """What poses_bounds.npy cannot hold: fx != fy and off-centre principal points."""
    off = [c.name for c in scene.cameras
           if abs(c.fx / c.fy - 1) > 1e-6 or abs(c.cx - c.width / 2) > 0.5 or abs(c.cy - c.height / 2) > 0.5]
    if not off:
        return []
    return [f"{len(off)} camera(s) have fx != fy or an off-centre principal point, which LLFF rows cannot hold "
            f"(written with fx and the image centre; e.g. {off[0]})"]


