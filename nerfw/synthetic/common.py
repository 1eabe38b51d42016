"""What every preset of the built-in scenes shares: argument checks, output folders, which images get transients,
the content's bounds."""
from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np

from nerfw.errors import ConfigError
from nerfw.synthetic import layouts


def validate_common(scene, integers: tuple, transient_share, seed) -> None:
    """Checks every preset shares: integers ((name, value, minimum), ...), the transient share, seed and scene name."""
    for name, v, lo in integers:
        if not isinstance(v, (int, np.integer)) or v < lo:
            raise ConfigError(f"--{name} must be an integer >= {lo}, got {v!r}")
    if not (isinstance(transient_share, (int, float)) and 0.0 <= transient_share <= 1.0):
        raise ConfigError(f"--transient_share must be in [0, 1], got {transient_share!r}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"--seed must be a non-negative integer, got {seed!r}")
    if not scene or "/" in scene or "\\" in scene or scene in (".", ".."):
        raise ConfigError(f"--scene must be a plain folder name, got {scene!r}")


def prepare_dirs(out_dir: Path, scene: str, overwrite: bool) -> tuple[Path, Path]:
    data_dir, gt_dir = out_dir / scene, out_dir / f"{scene}.groundtruth"
    for d in (data_dir, gt_dir):
        if d.exists() and any(d.iterdir()):
            if not overwrite:
                raise ConfigError(f"{d} exists and is not empty (pass --overwrite to replace it)")
            shutil.rmtree(d)
    data_dir.mkdir(parents=True, exist_ok=True)
    gt_dir.mkdir(parents=True, exist_ok=True)
    return data_dir, gt_dir


# --------------------------------------------------------------------------- transients
def transient_images(rng: np.random.Generator, train_idx: list[int], share: float) -> set[int]:
    """Indices of the training images that get transients: share x len(train_idx) of them (nearest, halves up),
    drawn without replacement (every preset draws them the same way)."""
    n = int(math.floor(share * len(train_idx) + 0.5))
    return set(rng.choice(train_idx, n, replace=False).tolist()) if n else set()


def content_bounds_local(lay: layouts.Layout) -> tuple[np.ndarray, np.ndarray]:
    """AABB (local) of the scene content: every primitive except the infinite-like ground slab."""
    lo, hi = lay.prims.bounding_boxes()
    names = [lay.materials[m]["name"] for m in np.concatenate([lay.prims.box_mat, lay.prims.cyl_mat, lay.prims.sph_mat])]
    keep = np.array([n != "ground" for n in names])
    lo, hi = lo[keep].min(0).astype(np.float64), hi[keep].max(0).astype(np.float64)
    lo[2] = max(lo[2], 0.0) if lay.kind == "outdoor" else lo[2]
    return np.round(lo, 6), np.round(hi, 6)



TEST_EVERY = 8  # the COLMAP and transforms.json readers' default hold-out: sorted index % 8 == 0 is test
DEFAULT_SPLIT = (70, 10)  # (n_train, n_test) of the collection and flight presets


def split_counts(n_train: int | None, n_test: int | None) -> tuple[int, int]:
    """(n_train, n_test) consistent with every TEST_EVERY-th sorted image being a test image."""
    if n_train is None and n_test is None:
        return DEFAULT_SPLIT
    if n_test is None:
        return n_train, -(-n_train // (TEST_EVERY - 1))
    if n_train is None:
        return (TEST_EVERY - 1) * n_test, n_test
    if n_train + n_test >= 1 and -(-(n_train + n_test) // TEST_EVERY) != n_test:
        lo, hi = (TEST_EVERY - 1) * (n_test - 1) + 1, (TEST_EVERY - 1) * n_test
        raise ConfigError(f"the preset holds out every {TEST_EVERY}th image (the COLMAP reader's "
                          f"test_every): --n_test {n_test} needs --n_train in [{lo}, {hi}] (or omit one of them)")
    return n_train, n_test
