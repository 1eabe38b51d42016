"""Shared fixtures: a small built-in scene generated once per test run and a model trained on it briefly
(plain helpers: helpers.py)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers import train_argv

# Keep each test process to one thread on a 2-core machine running `pytest -n 2`.
os.environ.setdefault("OMP_NUM_THREADS", "1")

@pytest.fixture(scope="session")
def tiny_cambridge(tmp_path_factory) -> Path:
    """A small Cambridge-layout built-in scene (80x45 images). Returns the data root (scene 'Tiny')."""
    from nerfw.synthetic import generate_scene

    root = tmp_path_factory.mktemp("tiny_cambridge")
    generate_scene(root, layout="cambridge", scene="Tiny", seed=1, width=80, height=45, n_train=12, n_test=3)
    return root


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


# Fixtures that train a model: every test using one (directly or through another fixture) is end to end.
TRAINING_FIXTURES = {"tiny_run", "lens_env", "loc_env"}


def pytest_collection_modifyitems(config, items):
    """Mark end-to-end tests (`make test-fast` runs the others): those that use a training fixture; tests that
    train by themselves carry @pytest.mark.e2e."""
    for item in items:
        if TRAINING_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.e2e)
