"""Checkpoints that survive a kill: atomic writes, the last few kept, safe loading.

A checkpoint is written to a temporary file in the same folder, flushed to disk and renamed over its final
name (``os.replace`` is atomic on POSIX), so a SIGKILL at any moment leaves either the old or the new file,
never half of one. Loading uses ``torch.load(weights_only=True)``; a corrupt newest checkpoint is reported
and the previous one is used.
"""
from __future__ import annotations

import os
import random
import re
import sys
from pathlib import Path

import numpy as np
import torch

from nerfw.errors import NerfwError

CKPT_PATTERN = re.compile(r"^step_(\d{9})\.ckpt$")


def checkpoint_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Checkpoints of a run, oldest first."""
    folder = checkpoint_dir(run_dir)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if CKPT_PATTERN.match(p.name))


def rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "numpy": _numpy_state(), "python": _python_state()}


def restore_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    keys = state["numpy"]["keys"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, int(state["numpy"]["pos"]), 0, 0.0))
    version, internal, gauss = state["python"]["version"], state["python"]["internal"], None
    random.setstate((int(version), tuple(int(v) for v in internal.tolist()), gauss))


def _numpy_state() -> dict:
    _, keys, pos, _, _ = np.random.get_state()
    return {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos)}


def _python_state() -> dict:
    version, internal, _ = random.getstate()
    return {"version": version, "internal": torch.tensor(internal, dtype=torch.int64)}


def save_checkpoint(run_dir: Path, step: int, payload: dict, keep: int = 3) -> Path:
    """Atomically write <run_dir>/checkpoints/step_<step>.ckpt and prune all but the newest `keep`."""
    folder = checkpoint_dir(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"step_{step:09d}.ckpt"
    tmp = folder / f".{final.name}.tmp.{os.getpid()}"
    with open(tmp, "wb") as fh:
        torch.save(payload, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, final)
    _fsync_dir(folder)
    for old in list_checkpoints(run_dir)[:-keep]:
        old.unlink(missing_ok=True)
    return final


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_checkpoint_file(path: Path, map_location="cpu") -> dict:
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise NerfwError(f"{path}: checkpoint not found") from None
    except Exception as exc:  # a truncated or corrupt file raises many different errors
        raise NerfwError(f"{path}: not a readable nerfw checkpoint ({type(exc).__name__}: {exc})") from None


def load_latest_checkpoint(run_dir: Path, map_location="cpu", log=None) -> tuple[Path, dict] | None:
    """Newest readable checkpoint of a run, skipping (and reporting) corrupt ones. None when there is none."""
    log = log or (lambda msg: print(msg, file=sys.stderr))
    for path in reversed(list_checkpoints(run_dir)):
        try:
            return path, load_checkpoint_file(path, map_location)
        except NerfwError as exc:
            log(f"warning: {exc}; trying the previous checkpoint")
    return None
