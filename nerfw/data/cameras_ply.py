"""`nerfw cameras`: camera frustums (and optionally points) as a binary PLY that MeshLab opens.

Each camera is 5 vertices (centre + the 4 image corners at depth `size`) and 6 triangle faces (4 sides of
the pyramid + the image rectangle as 2 triangles), coloured by split: train red, test blue, synthetic green,
other grey. Points (the dataset's sparse points, or a density probe's occupied cells) are extra vertices
with no faces. Everything is in the dataset's own frame and units.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from plyfile import PlyData, PlyElement

from nerfw.cameras.pixels import lens_normalized
from nerfw.data.scene import CameraView

SPLIT_COLORS = {"train": (220, 40, 40), "test": (40, 90, 230), "synth": (40, 190, 70), "synthetic": (40, 190, 70)}
OTHER_COLOR = (150, 150, 150)
VERTICES_PER_CAMERA = 5
FACES_PER_CAMERA = 6


def frustum_vertices(camera: CameraView, size: float) -> np.ndarray:
    """[5, 3] world points: the centre, then image corners (0,0), (W,0), (W,H), (0,H) at z-depth `size`
    (the corners' rays through the lens model when the camera has one; pinhole where it has no inverse)."""

    corners = np.array([[0, 0], [camera.width, 0], [camera.width, camera.height], [0, camera.height]], float)
    xy, _ = lens_normalized(camera.fx, camera.fy, camera.cx, camera.cy, corners, camera.distortion)
    rays = np.concatenate([xy, np.ones((4, 1))], axis=-1) * size
    T = camera.T_world_cam
    return np.concatenate([T[:3, 3][None], rays @ T[:3, :3].T + T[:3, 3]])


FRUSTUM_FACES = np.array([[0, 1, 2], [0, 2, 3], [0, 3, 4], [0, 4, 1], [1, 3, 2], [1, 4, 3]])


def auto_size(cameras: list[CameraView]) -> float:
    """Frustum depth: a tenth of the median distance between neighbouring camera centres' spread."""
    centers = np.stack([c.center for c in cameras])
    spread = np.linalg.norm(np.percentile(centers, 95, axis=0) - np.percentile(centers, 5, axis=0))
    return float(max(spread, 1e-3) / 40.0)


def write_cameras_ply(path: Path, cameras: list[CameraView], size: float | None = None,
                      points: np.ndarray | None = None, point_colors: np.ndarray | None = None) -> Path:
    if not cameras and points is None:
        raise ValueError("nothing to write")
    size = size or (auto_size(cameras) if cameras else 1.0)
    verts, colors, faces = [], [], []
    for k, cam in enumerate(cameras):
        verts.append(frustum_vertices(cam, size))
        colors.append(np.tile(SPLIT_COLORS.get(cam.split, OTHER_COLOR), (VERTICES_PER_CAMERA, 1)))
        faces.append(FRUSTUM_FACES + k * VERTICES_PER_CAMERA)
    if points is not None and len(points):
        verts.append(np.asarray(points, float).reshape(-1, 3))
        pc = np.full((len(points), 3), 200) if point_colors is None else np.asarray(point_colors).reshape(-1, 3)
        colors.append(pc)
    V = np.concatenate(verts) if verts else np.zeros((0, 3))
    C = np.concatenate(colors).astype(np.uint8)
    vertex = np.empty(len(V), dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"),
                                     ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    vertex["x"], vertex["y"], vertex["z"] = V[:, 0], V[:, 1], V[:, 2]
    vertex["red"], vertex["green"], vertex["blue"] = C[:, 0], C[:, 1], C[:, 2]
    F = np.concatenate(faces) if faces else np.zeros((0, 3), int)
    face = np.empty(len(F), dtype=[("vertex_indices", "i4", (3,)), ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    face["vertex_indices"] = F
    face_colors = np.concatenate([np.tile(SPLIT_COLORS.get(c.split, OTHER_COLOR), (FACES_PER_CAMERA, 1))
                                  for c in cameras]) if cameras else np.zeros((0, 3))
    face["red"], face["green"], face["blue"] = face_colors.T.astype(np.uint8) if len(F) else ([], [], [])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    elements = [PlyElement.describe(vertex, "vertex")]
    if len(F):
        elements.append(PlyElement.describe(face, "face"))
    PlyData(elements, text=False, comments=["nerfw cameras: train red, test blue, synthetic green",
                                              "frame: dataset (OpenCV camera axes)"]).write(str(path))
    return path


