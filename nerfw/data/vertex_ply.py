"""Point sets as PLY vertices (x, y, z, optional normals and red, green, blue; optional triangle faces): the one
reader and writer behind transforms.json's `ply_file_path`, `nerfw export` and `nerfw view --cloud`."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def read_vertices(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """(points [N, 3] float64, colours [N, 3] uint8 or None) of a PLY's vertex element. plyfile's errors (and
    KeyError for a file without x, y, z vertices) pass to the caller, which knows what the file was for."""
    from plyfile import PlyData

    vertex = PlyData.read(str(path))["vertex"]
    points = np.stack([np.asarray(vertex[k], dtype=np.float64) for k in ("x", "y", "z")], axis=1)
    names = set(vertex.data.dtype.names)
    colors = (np.stack([np.asarray(vertex[k]) for k in ("red", "green", "blue")], axis=1).astype(np.uint8)
              if {"red", "green", "blue"} <= names else None)
    return points, colors


def write_vertices(path: Path, points: np.ndarray, colors: np.ndarray | None, normals: np.ndarray | None = None,
                   faces: np.ndarray | None = None, comments: list[str] | None = None, float_type: str = "f8") -> Path:
    """A binary PLY of vertices x, y, z (nx, ny, nz with normals), red, green, blue (grey without colours), and a
    face element of triangles [F, 3] when given."""
    from plyfile import PlyData, PlyElement

    fields = [(k, float_type) for k in ("x", "y", "z")]
    if normals is not None:
        fields += [(k, float_type) for k in ("nx", "ny", "nz")]
    fields += [(k, "u1") for k in ("red", "green", "blue")]
    vertex = np.empty(len(points), dtype=fields)
    for k, name in enumerate("xyz"):
        vertex[name] = points[:, k]
    if normals is not None:
        for k, name in enumerate(("nx", "ny", "nz")):
            vertex[name] = normals[:, k]
    rgb = np.full((len(points), 3), 128, np.uint8) if colors is None else np.asarray(colors, np.uint8)
    for k, name in enumerate(("red", "green", "blue")):
        vertex[name] = rgb[:, k]
    elements = [PlyElement.describe(vertex, "vertex")]
    if faces is not None:
        face = np.empty(len(faces), dtype=[("vertex_indices", "i4", (3,))])
        face["vertex_indices"] = faces
        elements.append(PlyElement.describe(face, "face"))
    PlyData(elements, text=False, comments=list(comments or [])).write(str(path))
    return Path(path)
