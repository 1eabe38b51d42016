"""Cambridge Landmarks: dataset_{train,test}.txt poses + reconstruction.nvm intrinsics and points.

Poses come FROM THE SPLIT FILES (camera centre X Y Z and world-to-camera quaternion W P Q R), converted by
conventions.cambridge_to_T_world_cam. The NVM gives the focal length per image (matched by file stem: the
NVM names .jpg where the dataset ships .png) and the 3-D points for near/far. The principal point is the
image centre and the image size is read from the files (header only).
The NVM's per-image radial term r becomes the view's Distortion("nvm", [r]) (VisualSfM: undistorted =
distorted * (1 + r |distorted|^2) in normalised coordinates, so r does not change with --img_downscale). With
--focal overriding the NVM focal f_nvm, r is rescaled to r (focal / f_nvm)^2 so that the undistortion stays the
same in pixels. Images not in the NVM have no distortion.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nerfw.cameras.conventions import Distortion, cambridge_to_T_world_cam
from nerfw.data.parsers import common
from nerfw.data.parsers.nvm import NvmModel, parse_nvm
from nerfw.data.scene import SceneData
from nerfw.errors import DatasetError

SPLIT_FILES = {"train": "dataset_train.txt", "test": "dataset_test.txt"}
MAX_TRANSLATION = 1.0e4  # metres; DSAC* drops poses farther than this (GreatCourt seq5/frame00297: 3.1e9)
QUAT_NORM_TOLERANCE = 1e-3
# Bounds when the NVM has no 3-D points at all (metres): documented in docs/datasets.md.
DEFAULT_BOUNDS = (0.1, 100.0)
_DATASET_PART = re.compile(r"((?:seq\d+/frame\d+|img(?:_[a-z]+)?/[^/]+)\.[A-Za-z]+)$", re.IGNORECASE)


@dataclass
class SplitEntry:
    name: str  # dataset-relative name, e.g. "seq3/frame00001.png"
    center: np.ndarray  # [3] camera centre (metres)
    q_cam_world: np.ndarray  # [4] (w, x, y, z) normalised
    line: int


def normalise_name(raw: str, root: Path | None = None) -> str:
    """Dataset-relative image name from a split-file name with Windows or absolute prefixes.

    'D:\\x\\ShopFacade\\seq3/frame00008.png' -> 'seq3/frame00008.png'. Tries the trailing parts that exist
    under `root` (longest first), then the seqN/frameN or Street img_*/... pattern, then the name as is.
    """
    name = raw.replace("\\", "/")
    while name.startswith("./"):
        name = name[2:]
    parts = [p for p in name.split("/") if p]
    if root is not None:
        for k in range(len(parts)):
            candidate = "/".join(parts[k:])
            if (root / candidate).is_file():
                return candidate
    match = _DATASET_PART.search(name)
    if match:
        return match.group(1)
    return "/".join(parts[-2:]) if (":" in name or name.startswith("/")) and len(parts) >= 2 else "/".join(parts)


MAX_HEADER_LINES = 3  # non-blank lines skipped before the first pose line


def _looks_like_header(text: str) -> bool:
    """A text line without a single number ("Visual Landmark Dataset V1", "ImageFile, Camera Position [X Y Z W P
    Q R]"); a line with numbers is a pose line, right or wrong, and is checked as one."""
    for token in common.split_fields(text):
        try:
            float(token)
            return False
        except ValueError:
            pass
    return True


def parse_split_file(path: Path, root: Path | None = None) -> tuple[list[SplitEntry], list[str]]:
    """Entries of a dataset_{train,test}.txt and warnings (normalised quaternions, dropped outliers)."""
    lines = common.read_lines(path)
    body = [(n, s) for n, s in lines if s]
    # The header (2 text lines + a blank one in the shipped files) is recognised by content, not by counting
    # lines, so a file whose blank line was lost keeps its first pose. Any later non-data line is an error below.
    n_header = 0
    while n_header < min(MAX_HEADER_LINES, len(body)) and _looks_like_header(body[n_header][1]):
        n_header += 1
    body = body[n_header:]
    if not body:
        raise DatasetError(path, "expected image lines 'name X Y Z W P Q R' after the 3 header lines",
                           line=max(len(lines), 1))
    entries, renormalised, outliers = [], 0, []
    for n, s in body:
        tokens = common.split_fields(s)
        if len(tokens) < 8:
            raise DatasetError(path, "expected 'name X Y Z W P Q R' (an image name and 7 numbers)", line=n)
        values = common.parse_floats(tokens[-7:], 7, path, n, "X Y Z W P Q R")
        q = values[3:]
        norm = float(np.linalg.norm(q))
        if norm < 1e-8:
            raise DatasetError(path, "expected a non-zero quaternion W P Q R", line=n)
        if abs(norm - 1.0) > QUAT_NORM_TOLERANCE:
            renormalised += 1
        name = normalise_name(" ".join(tokens[:-7]), root)
        if np.max(np.abs(values[:3])) > MAX_TRANSLATION:
            outliers.append(f"{name} (line {n})")
            continue
        entries.append(SplitEntry(name=name, center=values[:3], q_cam_world=q / norm, line=n))
    warnings = []
    if renormalised:
        warnings.append(f"{path.name}: normalised {renormalised} non-unit quaternion(s)")
    if outliers:
        warnings.append(f"{path.name}: dropped {len(outliers)} outlier pose(s) with |t| > {MAX_TRANSLATION:g} m: "
                        + ", ".join(outliers))
    if not entries:
        raise DatasetError(path, "expected at least one valid image line (all were outliers)", line=body[-1][0])
    return entries, warnings


def _find_nvm(root: Path) -> Path | None:
    preferred = root / "reconstruction.nvm"
    if preferred.is_file():
        return preferred
    found = sorted(root.glob("*.nvm"))
    return found[0] if found else None


def _focal_lookup(model: NvmModel | None) -> dict[str, float]:
    """NVM focal by lower-case file stem (NVM names .jpg, the dataset ships .png)."""
    if model is None:
        return {}
    return {cam.stem.lower(): cam.focal for cam in model.cameras}


def _radial_lookup(model: NvmModel | None) -> dict[str, tuple[float, float]]:
    """(NVM radial distortion, NVM focal) by lower-case file stem."""
    if model is None:
        return {}
    return {cam.stem.lower(): (cam.radial, cam.focal) for cam in model.cameras}


def nvm_distortion(radial: float, nvm_focal: float, focal: float) -> Distortion | None:
    """Distortion("nvm", [r]) of an image whose NVM radial term r refers to nvm_focal, for focal `focal`."""
    if radial == 0 or not nvm_focal:
        return None
    return Distortion("nvm", [radial * (focal / nvm_focal) ** 2])


def _image_sizes(root: Path, entries: list[tuple[str, SplitEntry]], split_path: Path) -> list[tuple[int, int]]:
    missing = [e.name for _, e in entries if not (root / e.name).is_file()]
    if missing:
        raise common.missing_files_error(root, missing)
    sizes = [common.image_size(root / e.name) for _, e in entries]
    reference, _ = Counter(sizes).most_common(1)[0]
    odd = [f"{e.name} ({w}x{h})" for (_, e), (w, h) in zip(entries, sizes) if (w, h) != reference]
    if odd:
        shown = ", ".join(odd[:5]) + (", ..." if len(odd) > 5 else "")
        raise DatasetError(root, f"expected every image to be {reference[0]}x{reference[1]} like the others "
                                 f"(one NVM focal per resolution); {len(odd)} differ: {shown}")
    return sizes


def load_cambridge(root: Path, img_downscale: float = 1, focal: float | None = None) -> SceneData:
    """Read a Cambridge Landmarks scene folder."""
    root = Path(root)
    present = {split: root / f for split, f in SPLIT_FILES.items() if (root / f).is_file()}
    if not present:
        raise DatasetError(root, "expected dataset_train.txt and/or dataset_test.txt (Cambridge Landmarks)")
    warnings: list[str] = []
    entries: list[tuple[str, SplitEntry]] = []
    for split, path in present.items():
        split_entries, split_warnings = parse_split_file(path, root)
        entries += [(split, e) for e in split_entries]
        warnings += split_warnings
    nvm_path = _find_nvm(root)
    model = parse_nvm(nvm_path) if nvm_path else None
    if model is None and focal is None:
        raise DatasetError(root, "expected reconstruction.nvm (for the focal length) or a --focal value")
    if model is not None:
        warnings += model.warnings
    focals = _focal_lookup(model)
    radials = _radial_lookup(model)
    sizes = _image_sizes(root, entries, root)
    cameras, unmatched = [], 0
    median_focal = float(np.median(list(focals.values()))) if focals else None
    for (split, e), (w, h) in zip(entries, sizes):
        stem = Path(e.name).with_suffix("").as_posix().lower()
        f = focal if focal is not None else focals.get(stem)
        if f is None:
            unmatched += 1
            f = median_focal
        T = cambridge_to_T_world_cam(e.center, e.q_cam_world)
        out = common.downscaled_size(w, h, img_downscale)
        cameras.append(common.make_view(e.name, root / e.name, split, T, (f, f, w / 2.0, h / 2.0), (w, h), out))
        if stem in radials:
            cameras[-1].distortion = nvm_distortion(*radials[stem], f)
    if focal is not None and model is not None:
        warnings.append(f"--focal {focal:g} overrides the focal lengths of {nvm_path.name}")
    if unmatched:
        warnings.append(f"{unmatched} image(s) are not in {nvm_path.name}; used its median focal {median_focal:.2f}")
    points = model.points if model is not None else None
    _set_bounds(cameras, points, warnings)
    return SceneData(format="cambridge", root=root, cameras=cameras, points=points,
                     point_colors=model.colors if model is not None else None, warnings=warnings)


def _set_bounds(cameras, points, warnings: list[str]) -> None:
    """Per-camera near/far from the NVM points in its frustum; fallbacks in common.fill_missing_bounds."""
    bounds = common.frustum_bounds(common.subsample_points(points), cameras)
    for c, b in zip(cameras, bounds):
        if b is not None:
            c.near, c.far = b
    common.fill_missing_bounds(cameras, DEFAULT_BOUNDS, warnings, "NVM points in view")
