"""Microsoft 7-Scenes (and datasets in its file format, such as vReLoc).

<scene>/{TrainSplit.txt, TestSplit.txt, seq-XX/frame-XXXXXX.{color.png|color.jpg, depth.png, pose.txt}}.
Frames are paired BY INDEX (the frame-XXXXXX prefix) and sorted, never by zipping unsorted globs (a NeRFW-pytorch
bug). pose.txt is a 4x4 camera-to-world matrix (OpenCV axes, metres): conventions.sevenscenes_to_T_world_cam.
Colour intrinsics: f = 525 (or --sevenscenes_focal 585, the depth camera's), principal point (320, 240) at
640x480, scaled to the actual file size. Depth: the DSAC* rendered, RGB-registered
``seqXX_frame-XXXXXX.pose.depth.tiff`` when present, else the raw Kinect depth.png (uint16 mm, 0 and 65535
invalid, not registered to the colour image).
"""
from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from nerfw.cameras.conventions import sevenscenes_to_T_world_cam
from nerfw.data.parsers import common
from nerfw.data.scene import CameraView, SceneData
from nerfw.errors import DatasetError

SPLIT_FILES = {"train": "TrainSplit.txt", "test": "TestSplit.txt"}
REFERENCE_SIZE = (640, 480)  # the intrinsics below refer to this size
REFERENCE_PRINCIPAL = (320.0, 240.0)
DEPTH_MARGIN = (0.9, 1.1)  # near = 0.9 * p0.1, far = 1.1 * p99.9 of valid depth
DEFAULT_BOUNDS = (0.1, 6.0)  # metres, when no frame has valid depth (Kinect range is about 0.5-4 m)
INVALID_DEPTH = (0, 65535)
_FRAME = re.compile(r"^frame-(\d+)\.(color\.png|color\.jpg|depth\.png|pose\.txt)$")
_SEQUENCE = re.compile(r"^sequence\s*-?\s*(\d+)$", re.IGNORECASE)


def read_pose(path: Path) -> np.ndarray:
    """pose.txt -> T_world_cam [4, 4] (tabs, commas, CRLF and MSVC 3-digit exponents are fine)."""
    return common.check_pose(sevenscenes_to_T_world_cam(common.parse_matrix_text(path, 4, 4)), path)


def parse_split_file(path: Path) -> list[tuple[int, int]]:
    """[(sequence number, line)] from 'sequenceN' lines ('#' comments and blank lines skipped)."""
    result = []
    for n, s in common.data_lines(path):
        m = _SEQUENCE.match(s)
        if not m:
            raise DatasetError(path, f"expected 'sequenceN', got {s!r:.40}", line=n)
        result.append((int(m.group(1)), n))
    if not result:
        raise DatasetError(path, "expected at least one 'sequenceN' line (the split is empty)", line=1)
    return result


def list_frames(folder: Path) -> list[tuple[int, dict[str, Path]]]:
    """Sorted [(frame index, {kind: path})] with kinds 'color', 'depth', 'pose'."""
    frames: dict[int, dict[str, Path]] = {}
    for p in folder.iterdir():
        m = _FRAME.match(p.name)
        if m:
            kind = m.group(2).split(".")[0]
            frames.setdefault(int(m.group(1)), {})[kind] = p
    return sorted(frames.items())


def _rendered_depths(root: Path) -> dict[str, Path]:
    """DSAC* rendered depth maps by 'seqXX_frame-XXXXXX' (standard {train,test}/depth, else anywhere)."""
    found = [p for split in ("train", "test") for p in (root / split / "depth").glob("*.pose.depth.tiff")]
    if not found:
        found = list(root.rglob("*.pose.depth.tiff"))
    return {p.name.split(".")[0]: p for p in found}


def read_depth_m(path: Path, scale: float = 1000.0) -> np.ndarray:
    """uint16 depth file -> float32 [H, W] in metres, NaN where invalid (0 or 65535)."""
    with Image.open(path) as im:
        d = np.asarray(im).astype(np.float32)
    d[(d == INVALID_DEPTH[0]) | (d == INVALID_DEPTH[1])] = np.nan
    return d / scale


def _depth_bounds(path: Path | None, scale: float) -> tuple[float, float] | None:
    if path is None:
        return None
    b = common.depth_percentile_bounds(read_depth_m(path, scale)[::2, ::2].ravel())
    return None if b is None else (b[0] * DEPTH_MARGIN[0], b[1] * DEPTH_MARGIN[1])


def _sequences(root: Path, test_every: int) -> tuple[list[tuple[str, Path, int | None]], list[str]]:
    """[(split, folder, sequence number)] from the split files; without them every sequence folder
    (or the scene folder itself) with every test_every-th frame as test (split None here)."""
    present = {s: root / f for s, f in SPLIT_FILES.items() if (root / f).is_file()}
    if present:
        out, listed = [], {}
        for split, path in present.items():
            for seq, line in parse_split_file(path):
                folder = root / f"seq-{seq:02d}"
                if not folder.is_dir():
                    raise DatasetError(path, f"sequence{seq}: folder {folder.name} not found", line=line)
                if seq in listed:  # twice in one split duplicates frames; in both splits leaks test into train
                    raise DatasetError(path, f"sequence{seq} is already listed in {listed[seq]}; a sequence belongs "
                                             "to one split, once", line=line)
                listed[seq] = f"{path.name} line {line}"
                out.append((split, folder, seq))
        return out, []
    folders = sorted(p for p in root.glob("seq-*") if p.is_dir()) or [root]
    warn = [f"no TrainSplit.txt/TestSplit.txt: every {test_every}th frame is a test frame" if test_every > 0
            else "no TrainSplit.txt/TestSplit.txt and --test_every 0: every frame is a training frame"]
    return [("", f, _seq_number(f)) for f in folders], warn


def _seq_number(folder: Path) -> int | None:
    m = re.match(r"seq-(\d+)$", folder.name)
    return int(m.group(1)) if m else None


def load_sevenscenes(root: Path, img_downscale: float = 1, focal: float = 525.0, test_every: int = 8) -> SceneData:
    """Read a 7-Scenes scene folder."""
    root = Path(root)
    sequences, warnings = _sequences(root, test_every)
    rendered = _rendered_depths(root)
    cameras: list[CameraView] = []
    used_raw_depth = False
    for split, folder, seq in sequences:
        frames = list_frames(folder)
        no_pose = [f"{folder.name}/frame-{i:06d}" for i, k in frames if "color" in k and "pose" not in k]
        if no_pose:
            raise common.missing_files_error(folder, no_pose, "pose.txt files for colour frames")
        no_colour = [f"{folder.name}/frame-{i:06d}.color.png" for i, k in frames if "pose" in k and "color" not in k]
        if no_colour:  # a frame with a pose but no image is a damaged copy, not a frame to skip silently
            raise common.missing_files_error(folder, no_colour, "colour images of posed frames")
        colour = [(i, k) for i, k in frames if "color" in k]
        if not colour:
            raise DatasetError(folder, "expected frame-XXXXXX.color.png (or .color.jpg) files")
        for j, (i, kinds) in enumerate(colour):
            frame_split = split or ("test" if test_every > 0 and j % test_every == 0 else "train")
            key = f"seq{seq:02d}_frame-{i:06d}" if seq is not None else None
            depth = rendered.get(key) if key else None
            if depth is None and "depth" in kinds:
                depth, used_raw_depth = kinds["depth"], True
            cameras.append(_view(root, kinds, frame_split, img_downscale, focal, depth))
    if used_raw_depth:
        warnings.append("using raw Kinect depth.png: it is not registered to the colour image (DSAC* rendered "
                        "*.pose.depth.tiff files are used instead when present)")
    _set_bounds(cameras, warnings)
    return SceneData(format="7scenes", root=root, cameras=cameras, warnings=warnings)


def _view(root: Path, kinds: dict[str, Path], split: str, img_downscale: float, focal: float,
          depth: Path | None) -> CameraView:
    w, h = common.image_size(kinds["color"])
    sx, sy = w / REFERENCE_SIZE[0], h / REFERENCE_SIZE[1]
    K = (focal * sx, focal * sy, REFERENCE_PRINCIPAL[0] * sx, REFERENCE_PRINCIPAL[1] * sy)  # at file size
    out = common.downscaled_size(w, h, img_downscale)
    name = kinds["color"].relative_to(root).as_posix()
    return common.make_view(name, kinds["color"], split, read_pose(kinds["pose"]), K, (w, h), out,
                            depth_path=depth, depth_scale=1000.0)


def _set_bounds(cameras: list[CameraView], warnings: list[str]) -> None:
    """Per-frame near/far from valid depth (decoded in threads: PIL releases the GIL while decoding)."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        bounds = list(pool.map(lambda c: _depth_bounds(c.depth_path, c.depth_scale), cameras))
    for c, b in zip(cameras, bounds):
        if b is not None:
            c.near, c.far = b
    common.fill_missing_bounds(cameras, DEFAULT_BOUNDS, warnings, "valid depth")
