"""Atomic checkpoints, pruning, and falling back past a corrupt newest file."""
import torch

from nerfw.training.checkpoint import (list_checkpoints, load_latest_checkpoint, restore_rng_state, rng_state,
                                       save_checkpoint)


def test_save_prune_and_load(tmp_path):
    for step in (10, 20, 30, 40):
        save_checkpoint(tmp_path, step, {"step": step, "w": torch.full((3,), float(step))}, keep=3)
    names = [p.name for p in list_checkpoints(tmp_path)]
    assert names == ["step_000000020.ckpt", "step_000000030.ckpt", "step_000000040.ckpt"]
    assert not list((tmp_path / "checkpoints").glob("*.tmp*"))
    path, state = load_latest_checkpoint(tmp_path)
    assert state["step"] == 40 and torch.equal(state["w"], torch.full((3,), 40.0))


def test_corrupt_newest_falls_back(tmp_path):
    save_checkpoint(tmp_path, 1, {"step": 1})
    newest = save_checkpoint(tmp_path, 2, {"step": 2})
    newest.write_bytes(newest.read_bytes()[:20])  # truncated, as after a crash of a non-atomic writer
    messages = []
    path, state = load_latest_checkpoint(tmp_path, log=messages.append)
    assert state["step"] == 1 and "step_000000002" in messages[0]


def test_rng_state_round_trip(tmp_path):
    torch.manual_seed(0)
    state = rng_state()
    save_checkpoint(tmp_path, 1, {"rng": state})
    a = torch.rand(5)
    _, loaded = load_latest_checkpoint(tmp_path)  # weights_only=True must accept the RNG payload
    restore_rng_state(loaded["rng"])
    assert torch.equal(torch.rand(5), a)
