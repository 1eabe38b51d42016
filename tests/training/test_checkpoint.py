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


def test_new_run_refuses_a_folder_with_an_earlier_runs_checkpoints(tmp_path):
    """A fresh run in a used folder would leave the earlier run's higher-step checkpoint as the newest (evaluated and
    resumed instead of the new one) and prune the new run's own checkpoints as older: training refuses, in one line."""
    import pytest

    from nerfw.errors import NerfwError
    from nerfw.training.config import parse_config
    from nerfw.training.trainer import refuse_stale_checkpoints

    argv = ["--root_dir", str(tmp_path), "--exp_name", "run", "--data_root_dir", str(tmp_path)]
    cfg = parse_config(argv)
    refuse_stale_checkpoints(cfg)  # an empty folder is fine
    save_checkpoint(cfg.train.run_dir, 5000, {"step": 5000})
    with pytest.raises(NerfwError, match=r"step_000005000\.ckpt.*--resume") as err:
        refuse_stale_checkpoints(cfg)
    assert "\n" not in str(err.value)
    refuse_stale_checkpoints(parse_config([*argv, "--resume"]))  # continuing it is what --resume is for
    assert list_checkpoints(cfg.train.run_dir)[-1].name == "step_000005000.ckpt"  # nothing was removed
