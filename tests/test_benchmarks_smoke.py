"""Smoke tests of the benchmark scripts' logic (the benchmarks themselves take minutes and are run by hand)."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from helpers import BENCHMARKS as BENCH  # noqa: E402
sys.path.insert(0, str(BENCH))

import common  # noqa: E402
import distribution  # noqa: E402
import run_all  # noqa: E402
import throughput  # noqa: E402
import time_to_quality as ttq  # noqa: E402


def test_machine_description_has_the_essentials():
    m = common.machine()
    assert m["cores"] >= 1 and m["cpu"] and m["torch"]
    assert isinstance(m["gpus"], list)
    assert "cores" in common.machine_line(m)
    assert common.devices()[0] == "cpu"


def test_write_result_round_trips(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "RESULTS_DIR", tmp_path)
    path = common.write_result("unit", {"x": 1.5, "p": Path("/a")}, {"s": 1}, ["note"])
    data = json.loads(path.read_text())
    assert path == tmp_path / "unit.json"
    assert data["figures"] == {"x": 1.5, "p": "/a"} and data["notes"] == ["note"]
    assert data["machine"]["cores"] >= 1 and data["date"]
    assert common.read_result("unit")["settings"] == {"s": 1}


def test_samples_per_ray_counts_every_network_evaluation():
    from nerfw.fields.config import ModelConfig

    assert throughput.samples_per_ray(ModelConfig(field="mlp")) == {"field": 64 + (64 + 128), "proposal": 0}
    two_fine = ModelConfig(field="mlp", N_c=8, N_f=4, n_fine=2)  # coarse 8, fine 8+4, fine 8+8
    assert throughput.samples_per_ray(two_fine)["field"] == 8 + 12 + 16
    grid = ModelConfig(field="grid")
    assert throughput.samples_per_ray(grid) == {"field": grid.grid_samples, "proposal": grid.proposal_samples}


def test_time_to_reach_interpolates_between_marks():
    curve = [{"seconds": 5, "test_psnr": 10.0}, {"seconds": 10, "test_psnr": 14.0},
             {"seconds": 15, "test_psnr": 16.0}]
    assert ttq.time_to_reach(curve, 12.0) == (10, 7.5)
    assert ttq.time_to_reach(curve, 9.0) == (5, 5)
    assert ttq.time_to_reach(curve, 17.0) == (None, None)
    assert ttq.copy_at(curve, 10)["test_psnr"] == 14.0 and ttq.copy_at(curve, 11)["seconds"] == 15
    assert ttq.copy_at(curve, 20) is None


def test_marks_cover_the_budget():
    args = SimpleNamespace(grid_minutes=0.5, mlp_minutes=10.0, mlp_marks=1)
    assert ttq.marks_for("grid", args) == [5, 10, 15, 20, 25, 30.0]
    assert ttq.marks_for("mlp", args) == [30.0, 300.0, 600.0]


def test_steady_rate_drops_the_warm_up_interval(tmp_path):
    (tmp_path / "loss_log.txt").write_text(
        "training grid field ...\n"
        "step 10 loss 0.1 psnr 10.00 lr 1.00e-02 beta 0.100 1.00 steps/s\n"
        "step 20 loss 0.1 psnr 10.00 lr 1.00e-02 beta 0.100 4.00 steps/s\n"
        "step 30 loss 0.1 psnr 10.00 lr 1.00e-02 beta 0.100 2.00 steps/s\n")
    rows = distribution.rates_from_log(tmp_path)
    assert rows == [(10, 1.0), (20, 4.0), (30, 2.0)]
    assert distribution.steady_rate(rows) == pytest.approx(20 / (10 / 4 + 10 / 2))
    assert distribution.steady_rate(rows[:1]) is None


def test_run_all_figures_compare_with_targets():
    hit = run_all.figure("samples/s", 300_000.0, ">=", 200_000, 0)
    miss = run_all.figure("render s", 3.0, "<=", 2.0)
    assert hit["meets"] is True and hit["ratio"] == pytest.approx(1.5)
    assert miss["meets"] is False and miss["target"] == "<= 2.00"
    assert run_all.figure("info", "a / b", None, None)["meets"] is None


def test_recorder_snapshots_the_real_trainer(tiny_cambridge, tmp_path):
    """The hook into nerfw.training.trainer still works: copies are taken between steps, with the step number."""
    small = ["--grid_levels", "2", "--grid_min_res", "16", "--grid_max_res", "32"]  # a small, fast grid
    argv = common.train_argv(tiny_cambridge, "Tiny", tmp_path, "rec", "grid", "--max_steps", "3", "--batch_size",
                             "64", "--save_latest_freq", "1000", *small, img_downscale=1)
    run_dir, recorder, last_step = ttq.train_recorded(argv, [0.0])
    assert last_step == 3 and (run_dir / "checkpoints").is_dir()
    assert recorder.snapshots[0].step == 1 and recorder.snapshots[-1].step == 3
    assert all(s.seconds >= 0 for s in recorder.snapshots)
    from nerfw.training import trainer  # the hook is removed again
    assert trainer.TrainLogger.__name__ == "TrainLogger"


def test_render_rows_put_the_target_on_both_renderers():
    res = {"figures": {"runs": [{
        "field": "grid", "device": "cpu", "threads": 2, "threads_setting": "default", "samples_per_s": 250_000.0,
        "rays_per_s": 5000.0, "render_640x360": {"seconds_per_frame": 12.0},
        "render_640x360_fast": {"seconds_per_frame": 1.8}}]}}
    rows = {r["figure"]: r for r in run_all.rows_throughput(res)}
    fast = next(r for name, r in rows.items() if "fast renderer" in name)
    full = next(r for name, r in rows.items() if "full renderer" in name)
    assert fast["meets"] is True and full["meets"] is False and full["ratio"] == pytest.approx(6.0)
    quality = run_all.rows_render_quality({"psnr_full": 22.0, "psnr_fast": 21.8, "psnr_fast_vs_full": 36.0})
    assert [r["value"] for r in quality] == ["22.00 / 21.80", 36.0]


def test_gpu_rows_and_config_specs(tmp_path, monkeypatch):
    import gpu

    spec = gpu.parse_config_spec("16384:off:80:plane_tv_weight=1e-4:grid_hidden=128")
    assert spec == {"batch_size": 16384, "amp": "off", "epochs": 80,
                    "extra": ["--plane_tv_weight", "1e-4", "--grid_hidden", "128"]}
    assert gpu.parse_config_spec("8192:on")["epochs"] == 20
    res = {"machine": {"gpus": ["NVIDIA H200"]}, "settings": {"target_psnr": 25.0}, "figures": {
        "training": [{"batch_size": 16384, "amp": "off", "options": "", "seconds_trained": 60.0,
                      "final_test_psnr": 22.0, "seconds_to_target_first_mark": None}],
        "render_640x360": {"fast": {"frames_per_s": 60.0}, "full": {"frames_per_s": 8.0}}}}
    rows = run_all.rows_gpu(res)
    assert rows[0]["meets"] is False and rows[0]["ratio"] == pytest.approx(22.0 / 25.0)
    assert rows[1]["value"] is None and rows[1]["meets"] is None  # never reached: no made-up time
    assert [r["meets"] for r in rows[2:]] == [True, False]
    # kept variants are reported beside the main result; local smoke runs are not
    monkeypatch.setattr(run_all, "RESULTS_DIR", tmp_path)
    for name in ("gpu", "gpu_run1", "gpu_cpu_smoke", "gpuish"):
        (tmp_path / f"{name}.json").write_text("{}")
    assert run_all.result_names("gpu") == ["gpu", "gpu_run1"]
