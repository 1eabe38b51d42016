"""Shared fixtures: small built-in scenes generated once per test session, and tiny training options."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

# Keep each test process to one thread on a 2-core machine running `pytest -n 2`.
os.environ.setdefault("OMP_NUM_THREADS", "1")

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"

# Options that make a grid-field training step cheap in tests.
TINY_GRID = ["--field", "grid", "--batch_size", "256", "--img_downscale", "1", "--log_freq", "5",
             "--val_freq", "1000000", "--progress", "log"]


@pytest.fixture(scope="session")
def tiny_cambridge(tmp_path_factory) -> Path:
    """A small Cambridge-layout built-in scene (80x45 images). Returns the data root (scene 'Tiny')."""
    from nerfw.synthetic import generate_scene

    root = tmp_path_factory.mktemp("tiny_cambridge")
    generate_scene(root, layout="cambridge", scene="Tiny", seed=1, width=80, height=45, n_train=12, n_test=3)
    return root


def train_argv(data_root: Path, run_root: Path, exp: str, *extra: str) -> list[str]:
    return ["--data_root_dir", str(data_root), "--scene", "Tiny", "--root_dir", str(run_root),
            "--exp_name", exp, *TINY_GRID, *extra]


@pytest.fixture(scope="session")
def tiny_run(tiny_cambridge, tmp_path_factory) -> Path:
    """A briefly trained grid model on the tiny scene (shared by eval/render tests)."""
    from nerfw.training.config import parse_config
    from nerfw.training.trainer import train

    runs = tmp_path_factory.mktemp("runs")
    # The paper's schedule (transient head on from the first step): the 300 steps would otherwise all fall in the
    # default 500-step static warm-up. Measured: with the warm-up the fast renderer's median depth on this tiny
    # model departs more from the full renderer's (relative 0.07-0.11 vs 0.035).
    return train(parse_config(train_argv(tiny_cambridge, runs, "tiny", "--max_steps", "300", "--batch_size", "1024",
                                         "--save_latest_freq", "1000", "--transient_warmup", "0")))


def trained_like_model(field: str = "grid", seed: int = 0, **overrides):
    """A small model with non-trivial weights (random, perturbed beyond the initial spread) and a dense-ish
    grid field, on the CPU, in eval mode."""
    import torch

    from nerfw.model.config import ModelConfig
    from nerfw.model.nerfw_model import build_model

    torch.manual_seed(seed)
    cfg = ModelConfig(**{"field": field, "grid_max_res": 64, "grid_min_res": 16, "proposal_max_res": 32,
                         "proposal_min_res": 16, "density_bias": 0.5, **overrides})
    model = build_model(cfg, n_images=4).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model
