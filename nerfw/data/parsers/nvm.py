"""VisualSfM NVM_V3 models (Cambridge Landmarks reconstruction.nvm, Aachen Day-Night).

Layout (datasets.md): "NVM_V3" header (optionally with extra tokens such as FixedK), N, N camera lines
``<file> <f> <qw qx qy qz> <Cx Cy Cz> <radial> 0``, M, M point lines ``X Y Z R G B n {img feat x y}*n``.
Blank lines are ignored (loaders that read by fixed line index break on files with extra blank lines;
this one counts only non-blank lines). The quaternion is the world-to-camera rotation (w, x, y, z) and
C the camera centre, exactly as a Cambridge split line: conventions.nvm_to_T_world_cam converts it.
Measurements (x, y) are relative to the image centre, as VisualSfM writes them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nerfw.cameras.conventions import nvm_to_T_world_cam
from nerfw.data.parsers.common import parse_floats, parse_int, read_lines
from nerfw.errors import DatasetError


@dataclass
class NvmCamera:
    name: str  # as written in the file, e.g. "seq1/frame00001.jpg" or "db/1045.jpg"
    focal: float  # pixels, at the resolution VisualSfM used
    q_cam_world: np.ndarray  # [4] (w, x, y, z), as stored (not normalised)
    center: np.ndarray  # [3] camera centre in world
    radial: float  # VisualSfM radial distortion r: undistorted = distorted (1 + r |distorted|^2), normalised

    @property
    def T_world_cam(self) -> np.ndarray:
        return nvm_to_T_world_cam(self.center, self.q_cam_world)

    @property
    def stem(self) -> str:
        return Path(self.name.replace("\\", "/")).with_suffix("").as_posix()


@dataclass
class NvmModel:
    cameras: list[NvmCamera]
    points: np.ndarray  # [M, 3] float64 world
    colors: np.ndarray  # [M, 3] uint8
    # Per point: (camera indices [n] int, image coordinates relative to the centre [n, 2]); only when asked.
    observations: list[tuple[np.ndarray, np.ndarray]] | None = None
    warnings: list[str] = field(default_factory=list)


def _parse_camera(path: Path, line_no: int, text: str) -> NvmCamera:
    tokens = text.split()
    if len(tokens) < 11:
        raise DatasetError(path, "expected an NVM camera line '<file> <f> <qw qx qy qz> <Cx Cy Cz> <radial> 0'",
                           line=line_no)
    name = " ".join(tokens[:-10])  # file names with blanks survive: the 10 numbers are at the end
    values = parse_floats(tokens[-10:], 10, path, line_no, "NVM camera values")
    return NvmCamera(name=name, focal=float(values[0]), q_cam_world=values[1:5], center=values[5:8],
                     radial=float(values[8]))


def _parse_point(path: Path, line_no: int, text: str, with_observations: bool):
    tokens = text.split()
    if len(tokens) < 7:
        raise DatasetError(path, "expected an NVM point line 'X Y Z R G B n {img feat x y}*n'", line=line_no)
    xyz_rgb = parse_floats(tokens[:6], 6, path, line_no, "point X Y Z R G B")
    n = parse_int(tokens[6], path, line_no, "measurement count")
    if n < 0 or len(tokens) != 7 + 4 * n:
        raise DatasetError(path, f"expected {n} measurements of 4 numbers after the point", line=line_no)
    obs = None
    if with_observations:
        m = parse_floats(tokens[7:], 4 * n, path, line_no, "measurements").reshape(n, 4)
        obs = (m[:, 0].astype(np.int64), m[:, 2:4])
    return xyz_rgb, obs


def _count(path: Path, lines: list[tuple[int, str]], i: int, what: str) -> int:
    if i >= len(lines):
        raise DatasetError(path, f"expected the number of {what}, found end of file")
    n, text = lines[i]
    tokens = text.split()
    value = parse_int(tokens[0] if tokens else "", path, n, f"number of {what}")
    if value < 0 or len(tokens) != 1:
        raise DatasetError(path, f"expected the number of {what} alone on the line", line=n)
    return value


def parse_nvm(path: Path, with_observations: bool = False, read_points: bool = True) -> NvmModel:
    """Read the first model of an NVM_V3 file."""
    path = Path(path)
    lines = [(n, s) for n, s in read_lines(path) if s]
    if not lines or not lines[0][1].startswith("NVM_V3"):
        raise DatasetError(path, "expected the header 'NVM_V3' on the first line", line=lines[0][0] if lines else 1)
    n_cams = _count(path, lines, 1, "cameras")
    if len(lines) < 2 + n_cams:
        raise DatasetError(path, f"expected {n_cams} camera lines, the file ends after {len(lines) - 2}",
                           line=lines[-1][0])
    cameras = [_parse_camera(path, n, s) for n, s in lines[2:2 + n_cams]]
    model = NvmModel(cameras=cameras, points=np.zeros((0, 3)), colors=np.zeros((0, 3), np.uint8))
    i = 2 + n_cams
    if not read_points or i >= len(lines):
        if read_points:
            model.warnings.append(f"{path.name}: no 3-D points in the model")
        return model
    n_pts = _count(path, lines, i, "points")
    if len(lines) < i + 1 + n_pts:
        raise DatasetError(path, f"expected {n_pts} point lines, the file ends early", line=lines[-1][0])
    point_lines = lines[i + 1:i + 1 + n_pts]
    if with_observations:
        parsed = [_parse_point(path, n, s, True) for n, s in point_lines]
        arr = np.stack([p[0] for p in parsed]) if parsed else np.zeros((0, 6))
        model.observations = [p[1] for p in parsed]
    else:
        arr = np.array([_fast_point(path, n, s) for n, s in point_lines], dtype=np.float64).reshape(-1, 6)
    model.points, model.colors = arr[:, :3], np.clip(arr[:, 3:], 0, 255).astype(np.uint8)  # [M, 3] each
    return model


def _fast_point(path: Path, line_no: int, text: str) -> list[float]:
    """X Y Z R G B of a point line with plain floats (hundreds of thousands of lines); on any problem the
    checked parser raises the DatasetError."""
    tokens = text.split()
    try:
        values = [float(t) for t in tokens[:6]]
        if len(tokens) == 7 + 4 * int(tokens[6]) and all(map(math.isfinite, values)):
            return values
    except (ValueError, IndexError):
        pass
    _parse_point(path, line_no, text, with_observations=False)
    raise DatasetError(path, "expected a finite NVM point line", line=line_no)
