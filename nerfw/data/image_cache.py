"""Decoded, downscaled images of a scene stored once as uint8 in one flat memory-mapped .npy.

Replaces NeRFW-pytorch's ray cache (12 float32 per ray, ~16 GB for StMarysChurch at downscale 3, not keyed by
downscale): here 3 bytes per pixel, rays are made on the fly from the camera parameters.

Files in cache_dir, for key = hash of everything that shapes the pixels (file paths, sizes, mtimes,
output sizes, camera order and splits, depth files):
  images_<key>.npy        uint8 [P, 3], P = sum of H*W over cameras, images in camera order, row-major
  images_<key>.depth.npy  float32 [P] z-depth in dataset units, NaN invalid (only when cameras have depth)
  images_<key>.json       offsets [n+1], widths [n], heights [n], names; written LAST, so a cache whose
                          json exists is complete (an interrupted build is never reused).
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from nerfw.data.scene import CameraView, SceneData
from nerfw.errors import DatasetError

CACHE_VERSION = 2  # 2: 16-bit grey images scaled to 8 bits (1 clipped them at 255)
RESAMPLE = Image.Resampling.LANCZOS
INVALID_DEPTH = (0, 65535)


def cache_key(scene: SceneData) -> str:
    """Hex digest of everything that shapes the cached arrays; any changed option gives a new key."""
    h = hashlib.sha256(f"nerfw-image-cache-v{CACHE_VERSION}".encode())
    for c in scene.cameras:
        parts = [str(c.image_path), c.split, str(c.width), str(c.height), _stat(c.image_path)]
        if c.depth_path is not None:
            parts += [str(c.depth_path), _stat(c.depth_path), repr(float(c.depth_scale))]
        h.update(("\x1f".join(parts) + "\x1e").encode())
    return h.hexdigest()[:20]


def _stat(path: Path) -> str:
    try:
        st = os.stat(path)
    except OSError:
        raise DatasetError(path, "image file not found") from None
    return f"{st.st_size}:{st.st_mtime_ns}"


def decode_image(path: Path, width: int, height: int) -> np.ndarray:
    """uint8 [height, width, 3]: PIL RGB decode (alpha dropped), LANCZOS resize when the size differs."""
    try:
        with Image.open(path) as im:
            im = _to_rgb8(im, path)
            if im.size != (width, height):
                im = im.resize((width, height), RESAMPLE)
            return np.asarray(im, dtype=np.uint8)
    except (OSError, ValueError) as exc:
        raise DatasetError(path, f"expected a readable image ({exc})") from None


def _to_rgb8(im: Image.Image, path: Path) -> Image.Image:
    """8-bit RGB. PIL's convert("RGB") clips 16-bit grey ("I;16", "I") at 255 instead of scaling: scale by 1/257."""
    if im.mode.startswith("I;16") or im.mode == "I":
        grey = np.asarray(im).astype(np.float64) / 257.0
        return Image.fromarray(np.clip(np.rint(grey), 0, 255).astype(np.uint8)).convert("RGB")
    if im.mode == "F":
        raise DatasetError(path, "expected an 8- or 16-bit image, got 32-bit floating point pixels")
    return im.convert("RGB")


def decode_depth(path: Path, width: int, height: int, depth_scale: float) -> np.ndarray:
    """float32 [height, width] z-depth in dataset units (NaN where 0 or 65535), nearest-neighbour resized."""
    try:
        with Image.open(path) as im:
            if im.size != (width, height):
                im = im.resize((width, height), Image.Resampling.NEAREST)
            raw = np.asarray(im)
    except (OSError, ValueError) as exc:
        raise DatasetError(path, f"expected a readable 16-bit depth image ({exc})") from None
    d = raw.astype(np.float32)
    d[(raw == INVALID_DEPTH[0]) | (raw == INVALID_DEPTH[1])] = np.nan
    return d / np.float32(depth_scale)


@dataclass
class ImageCache:
    pixels: np.ndarray  # uint8 [P, 3] (np.memmap when on disk)
    offsets: np.ndarray  # int64 [n + 1]: image i is pixels[offsets[i]:offsets[i+1]]
    widths: np.ndarray  # int64 [n]
    heights: np.ndarray  # int64 [n]
    depth: np.ndarray | None = None  # float32 [P] z-depth (dataset units), NaN invalid
    key: str = ""
    path: Path | None = None  # the .npy file when on disk
    built: bool = False  # True when this call decoded the images (False: reused an existing cache)

    def __len__(self) -> int:
        return len(self.widths)

    def image(self, i: int) -> np.ndarray:
        """uint8 [H, W, 3] of camera i."""
        return np.asarray(self.pixels[self.offsets[i]:self.offsets[i + 1]]).reshape(
            int(self.heights[i]), int(self.widths[i]), 3)

    def depth_image(self, i: int) -> np.ndarray | None:
        """float32 [H, W] of camera i, or None."""
        if self.depth is None:
            return None
        return np.asarray(self.depth[self.offsets[i]:self.offsets[i + 1]]).reshape(
            int(self.heights[i]), int(self.widths[i]))

    # ------------------------------------------------------------------ build / load
    @classmethod
    def load_or_build(cls, scene: SceneData, cache_dir: Path | None, use_cache: bool = True,
                      save_cache: bool = True, progress: bool = True) -> "ImageCache":
        """Reuse cache_dir's cache for this exact scene (use_cache), else decode; write it (save_cache).

        With cache_dir None or save_cache False the images are decoded into RAM (still one uint8 array).
        """
        key = cache_key(scene)
        base = Path(cache_dir) / f"images_{key}" if cache_dir is not None else None
        if base is not None and use_cache:
            cached = cls._load(base, key, scene)
            if cached is not None:
                return cached
        return cls._build(scene, key, base if save_cache else None, progress)

    @classmethod
    def _load(cls, base: Path, key: str, scene: SceneData) -> "ImageCache | None":
        meta_path = base.with_suffix(".json")
        if not meta_path.is_file():
            return None
        try:
            meta = json.loads(meta_path.read_text())
            pixels = np.load(base.with_suffix(".npy"), mmap_mode="r")
            depth_path = Path(str(base) + ".depth.npy")
            depth = np.load(depth_path, mmap_mode="r") if meta.get("has_depth") else None
        except (OSError, ValueError):
            return None  # damaged cache: rebuild
        offsets = np.asarray(meta["offsets"], np.int64)
        if meta.get("key") != key or len(offsets) != len(scene.cameras) + 1 or pixels.shape != (offsets[-1], 3):
            return None
        return cls(pixels, offsets, np.asarray(meta["widths"], np.int64), np.asarray(meta["heights"], np.int64),
                   depth, key, base.with_suffix(".npy"), built=False)

    @classmethod
    def _build(cls, scene: SceneData, key: str, base: Path | None, progress: bool) -> "ImageCache":
        cams = scene.cameras
        widths = np.array([c.width for c in cams], np.int64)
        heights = np.array([c.height for c in cams], np.int64)
        offsets = np.concatenate([[0], np.cumsum(widths * heights)]).astype(np.int64)
        has_depth = any(c.depth_path is not None for c in cams)
        pixels, depth = _allocate(base, int(offsets[-1]), has_depth)
        for i, c in enumerate(_progress(cams, progress)):
            # Stream: one decoded image at a time is alive, written straight into the (memmapped) array.
            pixels[offsets[i]:offsets[i + 1]] = decode_image(c.image_path, c.width, c.height).reshape(-1, 3)
            if depth is not None:
                depth[offsets[i]:offsets[i + 1]] = (
                    decode_depth(c.depth_path, c.width, c.height, c.depth_scale).ravel()
                    if c.depth_path is not None else np.nan)
        if base is not None:
            _finish(base, key, pixels, depth, offsets, widths, heights, cams)
            pixels = np.load(base.with_suffix(".npy"), mmap_mode="r")
            depth = np.load(str(base) + ".depth.npy", mmap_mode="r") if has_depth else None
        return cls(pixels, offsets, widths, heights, depth, key,
                   base.with_suffix(".npy") if base is not None else None, built=True)


def _allocate(base: Path | None, n_pixels: int, has_depth: bool):
    """uint8 [P, 3] (+ float32 [P]) arrays: memmapped temporary files when saving, else in RAM."""
    if base is None:
        return np.empty((n_pixels, 3), np.uint8), (np.empty(n_pixels, np.float32) if has_depth else None)
    base.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.lib.format.open_memmap(_tmp(base.with_suffix(".npy")), mode="w+", dtype=np.uint8,
                                       shape=(n_pixels, 3))
    depth = (np.lib.format.open_memmap(_tmp(Path(str(base) + ".depth.npy")), mode="w+", dtype=np.float32,
                                       shape=(n_pixels,)) if has_depth else None)
    return pixels, depth


def _tmp(path: Path) -> Path:
    return path.with_name(path.name + f".tmp{os.getpid()}")


def _finish(base: Path, key: str, pixels, depth, offsets, widths, heights, cams: list[CameraView]) -> None:
    """Flush, move the temporary files into place, then write the json that marks the cache complete."""
    for arr, final in ((pixels, base.with_suffix(".npy")), (depth, Path(str(base) + ".depth.npy"))):
        if arr is not None:
            arr.flush()
            del arr
            os.replace(_tmp(final), final)
    meta = {"version": CACHE_VERSION, "key": key, "offsets": offsets.tolist(), "widths": widths.tolist(),
            "heights": heights.tolist(), "names": [c.name for c in cams], "has_depth": depth is not None}
    tmp = _tmp(base.with_suffix(".json"))
    tmp.write_text(json.dumps(meta))
    os.replace(tmp, base.with_suffix(".json"))


def _progress(items, enabled: bool):
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc="decoding images", unit="img")
