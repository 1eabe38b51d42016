"""Writers for the on-disk formats, byte-compatible with the real datasets
(see /work/shared/reference/datasets.md): Cambridge split files and NVM_V3, 7-Scenes split/pose/depth files,
COLMAP text models (cameras.txt, images.txt, points3D.txt).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
from PIL import Image

from nerfw.cameras.conventions import (
    T_world_cam_to_cambridge,
    T_world_cam_to_colmap,
    T_world_cam_to_nvm,
    T_world_cam_to_sevenscenes,
)

CAMBRIDGE_HEADER = "Visual Landmark Dataset V1\nImageFile, Camera Position [X Y Z W P Q R]\n\n"


def cambridge_name(seq: int, frame: int) -> str:
    return f"seq{seq}/frame{frame:05d}.png"  # frames from 00001


def sevenscenes_name(seq: int, frame: int) -> str:
    return f"seq-{seq:02d}/frame-{frame:06d}.color.png"  # frames from 000000


def write_png(path: Path, array: np.ndarray) -> None:
    """uint8 [H,W,3] RGB, uint8 [H,W] grey or uint16 [H,W] (16-bit PNG)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format="PNG")


def write_jpg(path: Path, array: np.ndarray, quality: int = 95) -> None:
    """uint8 [H,W,3] RGB as a baseline JPEG (4:2:0, as cameras write them)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format="JPEG", quality=quality)


def write_cambridge_split(path: Path, entries: list[tuple[str, np.ndarray]]) -> None:
    """entries: (image name, T_world_cam [4,4] dataset frame) -> `name X Y Z W P Q R` (centre, w2c quaternion)."""
    lines = []
    for name, T in entries:
        c, q = T_world_cam_to_cambridge(T)
        lines.append(f"{name} " + " ".join(f"{x:.6f}" for x in (*c, *q)) + "\n")
    path.write_text(CAMBRIDGE_HEADER + "".join(lines), newline="\n")


def write_nvm(path: Path, cameras: list[tuple[str, float, np.ndarray]], points: np.ndarray, colors: np.ndarray,
              observations: list[list[tuple[int, int, float, float]]]) -> None:
    """NVM_V3: cameras (name .png -> .jpg, focal, T_world_cam); points [M,3], colours [M,3] uint8,
    observations per point: (camera index, feature index, x, y) with x, y measured from the image centre."""
    out = ["NVM_V3", "", str(len(cameras))]
    for name, focal, T in cameras:
        c, q = T_world_cam_to_nvm(T)
        jpg = re.sub(r"\.png$", ".jpg", name)
        out.append(f"{jpg} {focal:.6f} " + " ".join(f"{x:.9f}" for x in (*q, *c)) + " 0 0")
    out += ["", str(len(points))]
    for X, rgb, obs in zip(points, colors, observations):
        meas = " ".join(f"{i} {f} {x:.4f} {y:.4f}" for i, f, x, y in obs)
        out.append(" ".join(f"{v:.6f}" for v in X) + " " + " ".join(str(int(v)) for v in rgb)
                   + f" {len(obs)} {meas}")
    out.append("")  # the file ends after the points (loaders read by fixed line index)
    path.write_text("\n".join(out), newline="\n")


def sevenscenes_pose_text(T_world_cam: np.ndarray) -> str:
    """4x4 camera-to-world as the originals: '%.7e' with a 3-digit exponent, width 16, TAB after every field, CRLF."""
    M = T_world_cam_to_sevenscenes(T_world_cam)
    rows = []
    for r in M:
        fields = []
        for v in r:
            s = f"{v + 0.0:.7e}"  # + 0.0 turns -0.0 into 0.0
            mant, exp = s.split("e")
            fields.append(f"{mant}e{exp[0]}{int(exp[1:]):03d}".rjust(16) + "\t")
        rows.append("".join(fields) + "\r\n")
    return "".join(rows)


def write_sevenscenes_split(path: Path, seqs: list[int]) -> None:
    path.write_bytes("".join(f"sequence{s}\r\n" for s in seqs).encode())


def depth_to_mm(depth: np.ndarray) -> np.ndarray:
    """z-depth metres float [H,W] (inf = none) -> uint16 millimetres, 0 = invalid."""
    mm = np.where(np.isfinite(depth), np.round(depth * 1000.0), 0)
    return np.where((mm > 0) & (mm < 65535), mm, 0).astype(np.uint16)


def write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1) + "\n")


def _num(x) -> str:
    """Shortest text that reads back as the same float64 (COLMAP writes 17 significant digits)."""
    return repr(float(x))


def write_colmap_text(model_dir: Path, cameras: list[tuple[int, str, int, int, list[float]]],
                      images: list[tuple[int, np.ndarray, int, str, np.ndarray, np.ndarray]],
                      points: list[tuple[int, np.ndarray, np.ndarray, float, list[tuple[int, int]]]]) -> None:
    """A COLMAP text model in model_dir: cameras.txt, images.txt, points3D.txt, with COLMAP's comment headers.

    cameras: (camera id, model name, width, height, params in COLMAP's order).
    images: (image id, T_world_cam [4,4], camera id, name, xys [n,2] pixels (COLMAP = nerfw convention: the
    top-left pixel's centre is (0.5, 0.5)), point3D ids [n] (-1: a keypoint matched to no point)).
    points: (point id, xyz [3], rgb [3] uint8, reprojection error, track [(image id, index into its xys)]).
    """
    model_dir.mkdir(parents=True, exist_ok=True)
    out = ["# Camera list with one line of data per camera:", "#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]",
           f"# Number of cameras: {len(cameras)}"]
    out += [f"{cid} {model} {w} {h} " + " ".join(_num(v) for v in params) for cid, model, w, h, params in cameras]
    (model_dir / "cameras.txt").write_text("\n".join(out) + "\n", newline="\n")
    n_obs = sum(int((ids >= 0).sum()) for *_, ids in images)
    out = ["# Image list with two lines of data per image:",
           "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME",
           "#   POINTS2D[] as (X, Y, POINT3D_ID)",
           f"# Number of images: {len(images)}, mean observations per image: {n_obs / max(len(images), 1):.6g}"]
    for iid, T, cid, name, xys, ids in images:
        q, t = T_world_cam_to_colmap(T)
        out.append(f"{iid} " + " ".join(_num(v) for v in (*q, *t)) + f" {cid} {name}")
        out.append(" ".join(f"{_num(x)} {_num(y)} {int(i)}" for (x, y), i in zip(xys, ids)))
    (model_dir / "images.txt").write_text("\n".join(out) + "\n", newline="\n")
    mean_track = sum(len(p[4]) for p in points) / max(len(points), 1)
    out = ["# 3D point list with one line of data per point:",
           "#   POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[] as (IMAGE_ID, POINT2D_IDX)",
           f"# Number of points: {len(points)}, mean track length: {mean_track:.6g}"]
    for pid, X, rgb, err, track in points:
        out.append(f"{pid} " + " ".join(_num(v) for v in X) + " " + " ".join(str(int(c)) for c in rgb)
                   + f" {_num(err)} " + " ".join(f"{i} {k}" for i, k in track))
    (model_dir / "points3D.txt").write_text("\n".join(out) + "\n", newline="\n")
