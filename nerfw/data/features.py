"""Images, SIFT features (pycolmap, CPU, no network weights) and descriptor matching.

Keypoints are continuous pixel coordinates with pixel centres at +0.5 (COLMAP's and nerfw's convention) in the
FEATURE image, which is the reference camera's image resampled by ``scale`` (the reference camera is a
CameraView: a run's camera at its training resolution, or a query camera at its file's size). Descriptors are
RootSIFT (COLMAP's L1_ROOT normalisation), L2-normalised float32 [N, 128].
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from nerfw.errors import ImageError

DEFAULT_MAX_FEATURES = 4096
DEFAULT_RATIO = 0.8  # Lowe's ratio test on L2 distances of unit descriptors


@dataclass
class Features:
    uv: np.ndarray  # [N, 2] float64 keypoints in the feature image (continuous pixels, centres at +0.5)
    desc: np.ndarray  # [N, 128] float32 unit RootSIFT descriptors

    def __len__(self) -> int:
        return len(self.uv)

    def subset(self, keep: np.ndarray) -> "Features":
        return Features(self.uv[keep], self.desc[keep])


def feature_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """Size of the feature image of a reference camera width x height."""
    return max(8, int(round(width * scale))), max(8, int(round(height * scale)))


def _read(path: Path, mode: str, size: tuple[int, int] | None, dtype) -> np.ndarray:
    """The image in PIL `mode` as floats in [0, 1], resampled (Lanczos) to `size` (W, H) when given."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            im = im.convert(mode)
            if size is not None and im.size != tuple(size):
                im = im.resize(tuple(size), Image.Resampling.LANCZOS)
            return np.asarray(im, dtype=dtype) / 255.0
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise ImageError(f"{path}: cannot read the image ({exc.__class__.__name__}: {exc})") from None


def read_grey(path: Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """A grey float32 image [H, W] in [0, 1], resampled to `size` (W, H) when given; ImageError when unreadable."""
    return _read(path, "L", size, np.float32)


def read_rgb(path: Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """An RGB float64 image [H, W, 3] in [0, 1], resampled to `size` (W, H) when given; ImageError when unreadable."""
    return _read(path, "RGB", size, np.float64)


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image file from its header; ImageError when unreadable."""
    try:
        with Image.open(path) as im:
            im.verify()
            return im.size
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
        raise ImageError(f"{path}: cannot read the image ({exc.__class__.__name__}: {exc})") from None


def to_grey(rgb: np.ndarray) -> np.ndarray:
    """[H, W, 3] float RGB in [0, 1] -> [H, W] float32 luma (ITU-R 601, as PIL's "L")."""
    rgb = np.clip(np.asarray(rgb, dtype=np.float32), 0.0, 1.0)
    return np.ascontiguousarray(rgb @ np.array([0.299, 0.587, 0.114], np.float32))


class SiftExtractor:
    """pycolmap's CPU SIFT (DoG keypoints, RootSIFT descriptors), made once and reused."""

    def __init__(self, max_features: int = DEFAULT_MAX_FEATURES, threads: int = 1):
        import pycolmap

        pycolmap.logging.minloglevel = max(int(pycolmap.logging.minloglevel), 1)  # no "Creating SIFT ..." INFO lines
        options = pycolmap.FeatureExtractionOptions()
        options.num_threads = threads
        options.use_gpu = False
        options.sift.max_num_features = int(max_features)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            self._sift = pycolmap.Sift(options, device=pycolmap.Device.cpu)  # returns numpy arrays

    def __call__(self, grey: np.ndarray) -> Features:
        """grey [H, W] float in [0, 1] -> Features (COLMAP keypoints already use centres at +0.5)."""
        kp, desc = self._sift.extract(np.ascontiguousarray(grey, dtype=np.float32))
        desc = np.asarray(desc, dtype=np.float32)
        desc /= np.maximum(np.linalg.norm(desc, axis=1, keepdims=True), 1e-12)
        return Features(np.asarray(kp[:, :2], dtype=np.float64), desc)


def match_descriptors(a: np.ndarray, b: np.ndarray, ratio: float = DEFAULT_RATIO) -> np.ndarray:
    """Mutual nearest neighbours passing Lowe's ratio test (both ways) between unit descriptors a [N, D] and
    b [M, D]: index pairs [K, 2] (row of a, row of b)."""
    if len(a) < 1 or len(b) < 1:
        return np.zeros((0, 2), np.int64)
    ta, tb = torch.from_numpy(np.ascontiguousarray(a, np.float32)), torch.from_numpy(np.ascontiguousarray(b, np.float32))
    d2 = (2.0 - 2.0 * ta @ tb.T).clamp_min(0.0)  # [N, M] squared L2 distances of unit vectors
    k = min(2, d2.shape[1])
    best_ab, idx_ab = torch.topk(d2, k, dim=1, largest=False)  # [N, k]
    idx_ba = torch.argmin(d2, dim=0)  # [M]
    rows = torch.arange(len(ta))
    keep = idx_ba[idx_ab[:, 0]] == rows  # mutual
    if k == 2:
        keep &= best_ab[:, 0] <= (ratio ** 2) * best_ab[:, 1]
    if len(tb) > 1 and len(ta) > 1:  # the ratio test from b's side too
        best_ba = torch.topk(d2.T, 2, dim=1, largest=False).values  # [M, 2]
        ok_b = best_ba[:, 0] <= (ratio ** 2) * best_ba[:, 1]
        keep &= ok_b[idx_ab[:, 0]]
    rows = rows[keep]
    return torch.stack([rows, idx_ab[keep, 0]], dim=1).numpy().astype(np.int64)
