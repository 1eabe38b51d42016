"""What several test modules share: where the real data is, tiny training options, a small model with trained-like
weights. Fixtures live in conftest.py; plain helpers here (tests import them as `from helpers import ...`)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
# Real public data (../shared/realdata beside the repository, or NERFW_REALDATA); tests that need it skip without it.
REALDATA = Path(os.environ.get("NERFW_REALDATA", REPO_ROOT.parent / "shared" / "realdata"))
needs_realdata = pytest.mark.skipif(not REALDATA.is_dir(), reason=f"shared real data not found at {REALDATA}")
BENCHMARKS = REPO_ROOT / "benchmarks"

# Options that make a grid-field training step cheap in tests.
TINY_GRID = ["--field", "grid", "--batch_size", "256", "--img_downscale", "1", "--log_freq", "5",
             "--val_freq", "1000000", "--progress", "log"]


def train_argv(data_root: Path, run_root: Path, exp: str, *extra: str) -> list[str]:
    """`nerfw train` options for the tiny built-in scene (conftest's tiny_cambridge) with TINY_GRID."""
    return ["--data_root_dir", str(data_root), "--scene", "Tiny", "--root_dir", str(run_root),
            "--exp_name", exp, *TINY_GRID, *extra]


def trained_like_model(field: str = "grid", seed: int = 0, **overrides):
    """A small model with non-trivial weights (random, perturbed beyond the initial spread) and a dense-ish
    grid field, on the CPU, in eval mode."""
    import torch

    from nerfw.fields.config import ModelConfig
    from nerfw.model.nerfw_model import build_model

    torch.manual_seed(seed)
    cfg = ModelConfig(**{"field": field, "grid_max_res": 64, "grid_min_res": 16, "proposal_max_res": 32,
                         "proposal_min_res": 16, "density_bias": 0.5, **overrides})
    model = build_model(cfg, n_images=4).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model
