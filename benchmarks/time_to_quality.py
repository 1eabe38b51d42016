"""Time to quality: how long the `grid` field takes to reach the test PSNR the `mlp` field reaches in its budget.

    .venv/bin/python benchmarks/time_to_quality.py [--quick] [--mlp_minutes 10] [--grid_minutes 2]

Both fields train on the same built-in scene (SynthSquare, seed 0, 160x90 images: --img_downscale 3), on the
same machine, one after the other in this process, with the trainer's defaults (the mlp is NeRFW-pytorch's
network: N_c 64, N_f 128, batch 1024, lr 5e-4). While each trains, a copy of the model weights is taken at
fixed wall-clock marks (between two steps; the copying time is excluded from the clock). The training clock
starts where the trainer's --max_minutes clock starts: after the scene, image cache, model and logger
(TensorBoard) are set up; that start-up time is reported separately. Afterwards every copy is scored on the test split:

  protocol "mean" (default): mean training appearance embedding, transient head off, whole image scored;
  protocol "fit_left_half": the NeRF-W protocol of `nerfw eval` (appearance fitted on the left half).

The mlp costs ~1.3 MFLOP per point and 256 points per ray (5-10 ms per ray on a 2-core CPU), so whole test
images cannot be scored within the budget: by default the first 6 test images are scored on 512 pixels each,
drawn once with a fixed seed (the same pixels for every copy and both fields; PSNR per image on those pixels,
averaged over images). --eval_pixels 0 --max_images 0 scores every whole test image.

Reported: the mlp's PSNR after its budget (the target), the grid's wall time to reach it (first mark at or
above the target, and the time linearly interpolated between marks), the speed-up, and both PSNRs after equal
budgets. Output: benchmarks/results/time_to_quality.json.
"""
from __future__ import annotations

import argparse
import contextlib
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import common  # noqa: F401  (puts the repository on sys.path)
from common import DEMO_SCENE, ensure_scene, fmt, log, train_argv, work_dir, write_result

GRID_MARKS = (5, 10, 15, 20, 25, 30, 40, 50, 60, 75, 90, 105, 120, 150, 180, 240, 300)  # seconds


@dataclass
class Snapshot:
    step: int
    seconds: float  # training clock at the copy (copy time excluded)
    state: dict


@dataclass
class Recorder:
    """Collects weight copies at wall-clock marks while the trainer runs (single process only)."""

    marks: list[float]
    snapshots: list[Snapshot] = field(default_factory=list)
    model: object = None
    t_start: float = 0.0
    excluded: float = 0.0  # seconds spent copying weights
    t_called: float = 0.0  # when train() was called (startup = t_start - t_called)
    last: tuple[int, float] = (0, 0.0)  # (step, clock) after the latest step

    def clock(self) -> float:
        return time.perf_counter() - self.t_start - self.excluded

    def take(self, step: int) -> None:
        t0 = time.perf_counter()
        seconds = self.clock()
        state = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}
        self.snapshots.append(Snapshot(step, seconds, state))
        self.excluded += time.perf_counter() - t0

    def after_step(self, step: int) -> None:
        if self.model is None:
            return
        self.last = (step, self.clock())
        if not self.marks or self.last[1] < self.marks[0]:
            return
        while self.marks and self.clock() >= self.marks[0]:
            self.marks.pop(0)
        self.take(step)


@contextlib.contextmanager
def recording(recorder: Recorder):
    """Hook the trainer: capture the model when it is built, start the clock where the trainer starts its
    --max_minutes clock (after the logger's start), call the recorder after every step."""
    from nerfw.training import trainer

    original_build, original_logger = trainer.build_model, trainer.TrainLogger

    def build_model(*args, **kwargs):
        recorder.model = original_build(*args, **kwargs)
        return recorder.model

    class Logger(original_logger):
        def start(self, *args, **kwargs):  # the trainer starts its --max_minutes clock right after this
            super().start(*args, **kwargs)
            recorder.t_start = time.perf_counter()

        def step(self, step, *args, **kwargs):
            super().step(step, *args, **kwargs)
            recorder.after_step(step)

    trainer.build_model, trainer.TrainLogger = build_model, Logger
    try:
        yield recorder
    finally:
        trainer.build_model, trainer.TrainLogger = original_build, original_logger


def train_recorded(argv: list[str], marks: list[float]) -> tuple[Path, Recorder, int]:
    """Train in this process with weight copies at `marks` seconds; returns (run folder, recorder, last step)."""
    from nerfw.training.config import parse_config
    from nerfw.training.trainer import train

    cfg = parse_config(argv)
    recorder = Recorder(sorted(marks))
    recorder.t_called = time.perf_counter()
    with recording(recorder):
        run_dir = train(cfg)
    from nerfw.training.run_io import load_run

    final = load_run(run_dir)
    if not recorder.snapshots or recorder.snapshots[-1].step != final.step:  # the final weights always count
        recorder.snapshots.append(Snapshot(final.step, recorder.last[1], final.model.state_dict()))
    return run_dir, recorder, final.step


# ----------------------------------------------------------------------------- scoring
def score(run, args) -> float:
    """Mean test PSNR of run.model over the first args.max_images test images (the protocol code of `nerfw eval`).

    With --eval_pixels K > 0 (and a whole-image protocol) each image is scored on K pixels drawn once with a
    fixed seed - the same pixels for every copy and both fields - so the slow mlp can be scored in seconds.
    """
    import numpy as np
    import torch

    from nerfw.evaluation import metrics
    from nerfw.evaluation.evaluate import appearance_for, load_image
    from nerfw.model.appearance_fit import FitOptions
    from nerfw.model.view_rendering import camera_rays_model, render_camera

    cameras = [(i, c) for i, c in enumerate(run.scene.cameras) if c.split == "test"]
    cameras = cameras[:args.max_images] if args.max_images > 0 else cameras
    device = next(run.model.parameters()).device
    values = []
    for image_id, camera in cameras:
        gt = load_image(camera.image_path, camera.width, camera.height)  # [H, W, 3]
        vec = appearance_for(run, camera, image_id, gt, args.eval_mode, FitOptions(steps=args.fit_steps))
        if args.eval_pixels > 0 and args.eval_mode != "fit_left_half":
            pick = np.random.default_rng([args.seed, image_id]).choice(
                gt.shape[0] * gt.shape[1], min(args.eval_pixels, gt.shape[0] * gt.shape[1]), replace=False)
            rays = camera_rays_model(camera, run.normalization, device)  # o, d [HW, 3]; near, far [HW]
            o, d, near, far = (t[torch.as_tensor(pick, device=device)] for t in rays)
            ids = torch.full((len(pick),), image_id, dtype=torch.long, device=device)
            out = run.model.render_chunked(o, d, near, far, ids, chunk=args.chunk, appearance=vec.to(device),
                                           use_transient=False, perturb=False)
            values.append(metrics.psnr(out.rgb.float().cpu().numpy(), gt.reshape(-1, 3)[pick]))
            continue
        out = render_camera(run.model, camera, run.normalization, args.chunk, appearance=vec, image_id=image_id)
        cols = slice(camera.width // 2, None) if args.eval_mode == "fit_left_half" else slice(None)
        values.append(metrics.psnr(out["rgb"][:, cols], gt[:, cols]))
    return sum(values) / len(values)


def score_snapshots(run_dir: Path, snapshots: list[Snapshot], args, device: str | None = None) -> list[dict]:
    import torch

    from nerfw.training.run_io import load_run

    run = load_run(run_dir, device=device or ("cuda" if torch.cuda.is_available() else "cpu"))
    rows = []
    for snap in snapshots:
        run.model.load_state_dict(snap.state)
        run.model.eval()
        t0 = time.perf_counter()
        psnr = score(run, args)
        rows.append({"step": snap.step, "seconds": round(snap.seconds, 2), "test_psnr": round(psnr, 3)})
        log(f"  {run.cfg.model.field} step {snap.step:6d} at {snap.seconds:7.1f} s: test PSNR {psnr:6.2f} dB "
            f"(scored in {time.perf_counter() - t0:.1f} s)")
    return rows


def render_quality(run_dir: Path, args) -> dict:
    """The final grid weights on the first test images (whole images, mean appearance): PSNR of the full
    renderer and of the fast inference renderer against the images, and of fast against full."""
    import numpy as np

    from nerfw.evaluation import metrics
    from nerfw.evaluation.evaluate import load_image
    from nerfw.model.view_rendering import render_camera
    from nerfw.training.run_io import load_run

    run = load_run(run_dir)
    app = run.model.appearance_vector(mean=True)
    cameras = run.scene.split("test")[:args.max_images or None]
    rows = {"psnr_full": [], "psnr_fast": [], "psnr_fast_vs_full": []}
    for camera in cameras:
        gt = load_image(camera.image_path, camera.width, camera.height)
        full = render_camera(run.model, camera, run.normalization, args.chunk, appearance=app)["rgb"]
        fast = render_camera(run.model, camera, run.normalization, args.chunk, appearance=app, fast=True)["rgb"]
        rows["psnr_full"].append(metrics.psnr(full, gt))
        rows["psnr_fast"].append(metrics.psnr(fast, gt))
        rows["psnr_fast_vs_full"].append(metrics.psnr(fast, full))
    out = {k: round(float(np.mean(v)), 3) for k, v in rows.items()}
    out["images"] = len(cameras)
    # seconds per 640x360 frame of this trained model (the first test camera, intrinsics scaled)
    from throughput import render_camera_640, time_render

    camera = render_camera_640(run.scene)
    for name, fast in (("full", False), ("fast", True)):
        out[f"render_640x360_{name}"] = time_render(run.model, camera, run.normalization, "cpu", 1.0, 4096, fast,
                                                    repeats=3)
    log(f"grid final weights, 640x360 frame: full {out['render_640x360_full']['seconds_per_frame']:.2f} s, "
        f"fast {out['render_640x360_fast']['seconds_per_frame']:.2f} s")
    log(f"grid final weights, {len(cameras)} whole test images (mean appearance): full {out['psnr_full']:.2f} dB, "
        f"fast {out['psnr_fast']:.2f} dB, fast vs full {out['psnr_fast_vs_full']:.2f} dB")
    return out


# ----------------------------------------------------------------------------- analysis
def time_to_reach(curve: list[dict], target: float) -> tuple[float | None, float | None]:
    """(first mark with PSNR >= target, linear interpolation between that mark and the one before)."""
    previous = None
    for row in curve:
        if row["test_psnr"] >= target:
            if previous is None or row["test_psnr"] == previous["test_psnr"]:
                return row["seconds"], row["seconds"]
            frac = (target - previous["test_psnr"]) / (row["test_psnr"] - previous["test_psnr"])
            interp = previous["seconds"] + frac * (row["seconds"] - previous["seconds"])
            return row["seconds"], round(min(max(interp, previous["seconds"]), row["seconds"]), 2)
        previous = row
    return None, None


def copy_at(curve: list[dict], seconds: float) -> dict | None:
    """The copy taken at a mark of `seconds`: the first one at or after it (a copy is taken after the step that
    crosses the mark, so it has slightly more training time than the mark - in that field's favour)."""
    return next((r for r in curve if r["seconds"] >= seconds * 0.99), None)


def summarise(mlp_curve: list[dict], grid_curve: list[dict], args) -> dict:
    target = mlp_curve[-1]["test_psnr"]
    mlp_budget, grid_budget = args.mlp_minutes * 60.0, args.grid_minutes * 60.0
    first_mark, interpolated = time_to_reach(grid_curve, target)
    mlp_equal = copy_at(mlp_curve, grid_budget) or {"test_psnr": None, "seconds": None}
    return {
        "target_psnr_mlp_after_budget": target,
        "mlp_budget_seconds": mlp_budget,
        "mlp_seconds_trained": mlp_curve[-1]["seconds"],
        "grid_seconds_to_target_first_mark": first_mark,
        "grid_seconds_to_target_interpolated": interpolated,
        "speedup_vs_mlp_budget": None if not first_mark else round(mlp_curve[-1]["seconds"] / first_mark, 1),
        "equal_budget_seconds": grid_budget,
        "grid_psnr_after_grid_budget": grid_curve[-1]["test_psnr"],
        "grid_seconds_at_equal_budget": grid_curve[-1]["seconds"],
        "mlp_psnr_after_grid_budget": mlp_equal["test_psnr"],
        "mlp_seconds_at_equal_budget": mlp_equal["seconds"],
        "mlp_curve": mlp_curve,
        "grid_curve": grid_curve,
    }


# ----------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="smoke run: mlp 1 min, grid 0.5 min, 256 pixels of 2 test images")
    p.add_argument("--mlp_minutes", type=float, default=10.0)
    p.add_argument("--grid_minutes", type=float, default=2.0)
    p.add_argument("--mlp_marks", type=int, default=0,
                   help="extra evenly spaced mlp copies besides the equal-budget and final ones (each costs a "
                        "full test-split render with the slow mlp)")
    p.add_argument("--eval_mode", default="mean", choices=["mean", "fit_left_half", "nearest", "zero"])
    p.add_argument("--fit_steps", type=int, default=30, help="appearance-fit steps (fit_left_half only)")
    p.add_argument("--max_images", type=int, default=6, help="score the first N test images (0: all)")
    p.add_argument("--eval_pixels", type=int, default=512,
                   help="score N fixed random pixels per test image (0: whole images); whole-image protocols only")
    p.add_argument("--chunk", type=int, default=8192)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fields", default="mlp,grid", help="comma list; both are needed for the comparison")
    args = p.parse_args(argv)
    if args.quick:
        args.mlp_minutes, args.grid_minutes = min(args.mlp_minutes, 1.0), min(args.grid_minutes, 0.5)
        args.max_images, args.eval_pixels = 2, min(args.eval_pixels or 256, 256)
    return args


def marks_for(field_name: str, args) -> list[float]:
    if field_name == "grid":
        budget = args.grid_minutes * 60.0
        return [m for m in GRID_MARKS if m < budget] + [budget]
    budget = args.mlp_minutes * 60.0
    extra = [budget * (k + 1) / (args.mlp_marks + 1) for k in range(args.mlp_marks)]
    return sorted({min(args.grid_minutes * 60.0, budget), *extra, budget})


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.time()
    data_root = ensure_scene(DEMO_SCENE, seed=args.seed)
    run_root = work_dir() / "runs" / "time_to_quality"
    curves, steps, startup = {}, {}, {}
    for field_name in args.fields.split(","):
        minutes = args.mlp_minutes if field_name == "mlp" else args.grid_minutes
        log(f"training {field_name} for {minutes:g} min ...")
        exp = f"{field_name}_{minutes:g}min_seed{args.seed}"
        argv_train = train_argv(data_root, DEMO_SCENE, run_root, exp, field_name, "--max_minutes", str(minutes),
                                "--save_latest_freq", "1000000000", "--log_freq", "1000000000")
        shutil.rmtree(run_root / exp, ignore_errors=True)  # a fresh run, never a resumed one
        run_dir, recorder, steps[field_name] = train_recorded(argv_train, marks_for(field_name, args))
        startup[field_name] = round(recorder.t_start - recorder.t_called, 2)
        log(f"scoring {len(recorder.snapshots)} copies of the {field_name} weights ({args.eval_mode}) ...")
        curves[field_name] = score_snapshots(run_dir, recorder.snapshots, args)
        if field_name == "grid":
            quality = render_quality(run_dir, args)
    figures = {"steps": steps, "startup_seconds": startup}
    if "grid" in curves:
        figures["grid_render_quality"] = quality
    if "mlp" in curves and "grid" in curves:
        figures.update(summarise(curves["mlp"], curves["grid"], args))
        print_summary(figures, args)
    else:
        figures.update({f"{k}_curve": v for k, v in curves.items()})
    settings = {k: v for k, v in vars(args).items()}
    settings.update({"scene": f"{DEMO_SCENE} seed {args.seed}", "img_downscale": 3,
                     "protocol": args.eval_mode, "split": "test", "clock": "from model built, weight copies excluded"})
    notes = ["trainer defaults for both fields (mlp: N_c 64, N_f 128, batch 1024, lr 5e-4)",
             "fields trained one after the other in one process on the same machine"]
    path = write_result("time_to_quality", figures, settings, notes, started)
    log(f"wrote {path} ({(time.time() - started) / 60:.1f} min in all)")
    return 0


def print_summary(f: dict, args) -> None:
    log("")
    log(f"mlp after {f['mlp_seconds_trained']:.0f} s: test PSNR {f['target_psnr_mlp_after_budget']:.2f} dB "
        f"({args.eval_mode}) = target")
    log(f"grid reaches it after {fmt(f['grid_seconds_to_target_first_mark'], 1)} s (first mark; interpolated "
        f"{fmt(f['grid_seconds_to_target_interpolated'], 1)} s): speed-up {fmt(f['speedup_vs_mlp_budget'], 1)}x")
    log(f"after {f['equal_budget_seconds']:.0f} s each: grid {fmt(f['grid_psnr_after_grid_budget'])} dB "
        f"(copy at {fmt(f['grid_seconds_at_equal_budget'], 1)} s), mlp {fmt(f['mlp_psnr_after_grid_budget'])} dB "
        f"(copy at {fmt(f['mlp_seconds_at_equal_budget'], 1)} s)")


if __name__ == "__main__":
    raise SystemExit(main())
