"""Image cache: one flat uint8 memmap keyed by everything that shapes it."""
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nerfw.data.image_cache import ImageCache, cache_key, decode_image
from nerfw.errors import DatasetError
from nerfw.data.parsers.common import make_view
from nerfw.data.scene import SceneData

from helpers import REALDATA as REAL


def tiny_scene(tmp_path: Path, downscale: int = 1, depth: bool = False) -> SceneData:
    rng = np.random.default_rng(0)
    cams = []
    for i, (w, h) in enumerate([(40, 30), (36, 20), (40, 30)]):
        p = tmp_path / f"im{i}.png"
        if not p.exists():
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(p)
        d = None
        if depth:
            d = tmp_path / f"im{i}.depth.png"
            raw = np.full((h, w), 1500, np.uint16)
            raw[0, 0], raw[1, 1] = 0, 65535
            Image.fromarray(raw).save(d)
        out = (round(w / downscale), round(h / downscale))
        cams.append(make_view(p.name, p, "test" if i == 0 else "train", np.eye(4), (10, 10, w / 2, h / 2),
                              (w, h), out, 1.0, 2.0, depth_path=d))
    return SceneData(format="colmap", root=tmp_path, cameras=cams)


def test_pixels_equal_direct_pil_decode_and_second_load_reuses(tmp_path):
    scene = tiny_scene(tmp_path, downscale=2)
    cache = ImageCache.load_or_build(scene, tmp_path / "cache", progress=False)
    assert cache.built and cache.pixels.dtype == np.uint8 and cache.pixels.shape == (20 * 15 + 18 * 10 + 20 * 15, 3)
    assert cache.offsets.tolist() == [0, 300, 480, 780] and cache.depth is None
    for i, c in enumerate(scene.cameras):
        ref = np.asarray(Image.open(c.image_path).convert("RGB").resize((c.width, c.height), Image.LANCZOS))
        assert np.array_equal(cache.image(i), ref)
    again = ImageCache.load_or_build(scene, tmp_path / "cache", progress=False)
    assert not again.built and isinstance(again.pixels, np.memmap)
    assert np.array_equal(np.asarray(again.pixels), np.asarray(cache.pixels))
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 1 and not list((tmp_path / "cache").glob("*.tmp*"))


def test_key_changes_with_downscale_order_split_and_file(tmp_path):
    base = cache_key(tiny_scene(tmp_path))
    assert cache_key(tiny_scene(tmp_path, downscale=2)) != base
    s = tiny_scene(tmp_path)
    s.cameras.reverse()
    assert cache_key(s) != base
    s = tiny_scene(tmp_path)
    s.cameras[1].split = "test"
    assert cache_key(s) != base
    Image.new("RGB", (40, 30)).save(tmp_path / "im2.png")  # same size, new content -> new mtime/size
    assert cache_key(tiny_scene(tmp_path)) != base
    assert cache_key(tiny_scene(tmp_path)) == cache_key(tiny_scene(tmp_path))


def test_use_cache_false_rebuilds_and_no_save_stays_in_ram(tmp_path):
    scene = tiny_scene(tmp_path)
    ImageCache.load_or_build(scene, tmp_path / "c", progress=False)
    rebuilt = ImageCache.load_or_build(scene, tmp_path / "c", use_cache=False, progress=False)
    assert rebuilt.built
    ram = ImageCache.load_or_build(scene, tmp_path / "d", save_cache=False, progress=False)
    assert ram.built and not (tmp_path / "d").exists() and not isinstance(ram.pixels, np.memmap)
    assert ImageCache.load_or_build(scene, None, progress=False).path is None


def test_interrupted_cache_is_not_reused(tmp_path):
    scene = tiny_scene(tmp_path)
    cache = ImageCache.load_or_build(scene, tmp_path / "c", progress=False)
    cache.path.with_suffix(".json").unlink()  # as if the build died before the final json
    assert ImageCache.load_or_build(scene, tmp_path / "c", progress=False).built


def test_depth_nan_for_invalid_and_nearest_resize(tmp_path):
    scene = tiny_scene(tmp_path, depth=True)
    cache = ImageCache.load_or_build(scene, tmp_path / "c", progress=False)
    d = cache.depth_image(0)
    assert cache.depth.dtype == np.float32 and d.shape == (30, 40)
    assert np.isnan(d[0, 0]) and np.isnan(d[1, 1]) and np.nanmin(d) == np.nanmax(d) == 1.5
    small = ImageCache.load_or_build(tiny_scene(tmp_path, downscale=2, depth=True), tmp_path / "c", progress=False)
    assert small.depth_image(1).shape == (10, 18) and np.nanmax(small.depth) == 1.5  # no blended invalid values


def test_grey_and_16_bit_images_scale_to_8_bit(tmp_path):
    grey8 = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (3, 1))  # [3, 64]
    Image.fromarray(grey8).save(tmp_path / "g8.png")
    Image.fromarray(grey8.astype(np.uint16) * 257).save(tmp_path / "g16.png")  # PIL mode I;16
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    for name in ("g8.png", "g16.png"):
        rgb = decode_image(tmp_path / name, 64, 3)
        assert rgb.dtype == np.uint8 and rgb.shape == (3, 64, 3)
        assert np.array_equal(rgb[..., 0], grey8) and np.array_equal(rgb[..., 2], grey8)  # not clipped at 255
    Image.fromarray(np.zeros((3, 4), np.float32)).save(tmp_path / "f.tiff")
    with pytest.raises(DatasetError, match="f.tiff: expected an 8- or 16-bit image"):
        decode_image(tmp_path / "f.tiff", 4, 3)


def test_real_7scenes_depth(tmp_path):
    root = REAL / "sevenscenes_stairs_kapture" / "stairs"
    if not root.exists():
        pytest.skip("realdata absent")
    from nerfw.data.loader import load_scene

    scene = load_scene(root, img_downscale=4)
    cache = ImageCache.load_or_build(scene, tmp_path / "c", progress=False)
    raw = np.asarray(Image.open(scene.cameras[0].depth_path))[2::4, 2::4].astype(np.float32)  # PIL NEAREST samples pixel centres
    d = cache.depth_image(0)
    assert d.shape == (120, 160) and np.array_equal(np.isnan(d), (raw == 0) | (raw == 65535))
    assert np.allclose(d[~np.isnan(d)], raw[~np.isnan(d)] / 1000)
