"""Eval speed: `nerfw eval` (NeRF-W protocol: appearance fitted on the left half) as it was (every fit step
through the whole model) vs now (cached fit), on the same trained model and machine, one after the other.

    .venv/bin/python benchmarks/eval_speed.py [--quick] [--run RUN_DIR] [--train_steps 1000] [--threads N]

Without --run, the built-in scene (SynthSquare, seed 0) is generated at 240x160 with 64 training and 10 test
images, and the grid field trains on it with the trainer's defaults (--img_downscale 1) for --train_steps steps
(kept in benchmarks/.cache for later invocations). Then `nerfw eval` runs on the test split twice, each in a child
process, everything included (loading, 100-step fits, panels, the built-in scene's ground-truth scores, which
metrics.json times apart as seconds.ground_truth):

  old:    --fit_method full --fit_rays 1024 --chunk 8192 --threads <cores>: what `nerfw eval` did first: each of
          the 100 Adam steps renders 1024 left-half rays through the whole model, then the whole image is
          rendered, 8192 rays per pass, with torch's default of one thread per core;
  cached: --fit_rays 1024: the cached fit (the geometry of every pixel rendered once, the embedding optimised
          through the colour head on the cached left-half samples), 1024 rays per pass, threads = the idle cores.
          It draws the same pixels as old at every step and optimises the same function: the PSNRs agree to
          float rounding;
  new:    the defaults: cached, 512 pixels per fit step (half the fit's cost; the draws differ, so the PSNRs
          agree within the spread of the draws' seed, benchmarks/appearance_fit.py --seeds).

Reported: wall seconds, the child's CPU seconds (user + system; steadier than wall time when other jobs share
the machine), the split's own seconds (without the ground-truth renders), PSNR / SSIM of each, the largest
per-image PSNR differences, the speed-ups, the load averages.
Output: benchmarks/results/eval_speed.json. --quick: 3 test images, 300 training steps.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import common  # noqa: F401  (puts the repository on sys.path)
from common import (ensure_scene, fmt, format_table, log, machine, machine_line, scene_name, train_argv, work_dir,
                    write_result)

WIDTH, HEIGHT, N_TEST = 240, 160, 10


def trained_run(train_steps: int) -> Path:
    """A grid model trained with the defaults on the 240x160 built-in scene (cached between invocations)."""
    from nerfw.training.checkpoint import load_latest_checkpoint
    from nerfw.training.config import parse_config
    from nerfw.training.trainer import train

    scene = scene_name(width=WIDTH, n_test=N_TEST)
    data = ensure_scene(scene, width=WIDTH, height=HEIGHT, n_test=N_TEST)
    run_dir = work_dir() / "runs_eval_speed" / f"grid_{train_steps}"
    found = load_latest_checkpoint(run_dir) if (run_dir / "config.json").is_file() else None
    if found is not None and int(found[1]["step"]) >= train_steps:
        return run_dir
    log(f"training the grid field for {train_steps} steps on {data / scene} ({WIDTH}x{HEIGHT})")
    argv = train_argv(data, scene, run_dir.parent, run_dir.name, "grid", "--max_steps", str(train_steps),
                      "--save_latest_freq", str(train_steps), img_downscale=1)
    return Path(train(parse_config(argv)))


def timed_eval(run_dir: Path, out_dir: Path, max_images: int, *flags: str) -> dict:
    """`nerfw eval --run run_dir` in a child process: wall seconds, the child's CPU seconds, metrics.json."""
    import json
    import resource
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "nerfw", "eval", "--run", str(run_dir), "--out", str(out_dir),
           "--max_images", str(max_images), *flags]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = os.getloadavg()[0]
    wall = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=str(common.REPO))
    wall = time.perf_counter() - wall
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    result = json.loads((out_dir / "metrics.json").read_text())
    return {"command": " ".join(["nerfw", *cmd[3:]]), "seconds": wall,
            "cpu_seconds": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
            "load_average_1min_before": load, "load_average_1min_after": os.getloadavg()[0],
            "psnr": result["psnr"], "ssim": result["ssim"], "per_image_psnr": [r["psnr"] for r in result["per_image"]],
            "fit_method": result["protocol"]["fit_method"], "fit_rays": result["protocol"]["fit_rays_per_step"],
            "split_seconds": result.get("seconds", {}).get("split"),
            "ground_truth_seconds": result.get("seconds", {}).get("ground_truth")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", default="", help="an existing run folder to evaluate (default: train one)")
    parser.add_argument("--train_steps", type=int, default=1000)
    parser.add_argument("--max_images", type=int, default=0, help="test images to evaluate (0: all)")
    parser.add_argument("--quick", action="store_true", help="3 test images, 300 training steps")
    parser.add_argument("--threads", type=int, default=0,
                        help="threads of both evals (0: each its own default: old all cores, new nerfw eval's choice)")
    parser.add_argument("--new_flags", default="", help="extra flags of the new eval, e.g. '--fit_rays 512'")
    args = parser.parse_args(argv)
    if args.quick:
        args.train_steps, args.max_images = min(args.train_steps, 300), args.max_images or 3
    started = time.time()
    from nerfw.training.run_io import load_run

    run = load_run(args.run or trained_run(args.train_steps))
    n_test = len(run.scene.split("test"))
    n_test = n_test if args.max_images <= 0 else min(args.max_images, n_test)
    cam = run.scene.split("test")[0]
    log(f"evaluating {n_test} test images at {cam.width}x{cam.height}, model of step {run.step} ({run.run_dir})")
    out = work_dir() / "eval_speed"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    old_threads = ["--threads", str(args.threads or cores)]  # torch's default before: one thread per core
    new_threads = ["--threads", str(args.threads)] if args.threads else []
    evals = {}
    for name, flags in (("old", ["--fit_method", "full", "--fit_rays", "1024", "--chunk", "8192", *old_threads]),
                        ("cached", ["--fit_rays", "1024", *new_threads]),
                        ("new", [*new_threads, *args.new_flags.split()])):
        evals[name] = timed_eval(run.run_dir, out / name, args.max_images, *flags)
        log(f"{name}: {evals[name]['seconds']:.1f} s, PSNR {evals[name]['psnr']:.3f} dB ({evals[name]['command']})")
    old = evals["old"]
    diff = {name: max(abs(a - b) for a, b in zip(old["per_image_psnr"], r["per_image_psnr"]))
            for name, r in evals.items() if name != "old"}
    rows = [[name, r["fit_method"], str(r["fit_rays"]), fmt(r["seconds"], 1), fmt(r["cpu_seconds"], 1),
             fmt(r["split_seconds"], 1), fmt(r["psnr"], 3), fmt(r["ssim"], 4)] for name, r in evals.items()]
    print(format_table(rows, ["eval", "fit", "fit rays", "wall s", "cpu s", "split s", "PSNR dB", "SSIM"]))
    for name in ("cached", "new"):
        r = evals[name]
        print(f"{name}: speed-up {old['seconds'] / r['seconds']:.1f}x wall, "
              f"{old['cpu_seconds'] / r['cpu_seconds']:.1f}x CPU; largest per-image PSNR difference to old "
              f"{diff[name]:.3f} dB")
    print(f"machine: {machine_line(machine())}")
    new = evals["new"]
    figures = {**evals, "speedup": old["seconds"] / new["seconds"],
               "cpu_speedup": old["cpu_seconds"] / new["cpu_seconds"], "max_per_image_psnr_diff": diff,
               "n_test_images": n_test, "image_size": [cam.width, cam.height], "model_step": run.step}
    settings = {"run": str(run.run_dir), "train_steps": args.train_steps, "max_images": args.max_images,
                "quick": args.quick, "fit_steps": 100, "threads": args.threads, "new_flags": args.new_flags}
    path = write_result("eval_speed", figures, settings, started=started,
                        notes=["old = nerfw eval --fit_method full --fit_rays 1024 --chunk 8192 --threads <cores>: "
                               "what nerfw eval did before the cached fit", "cached = --fit_rays 1024 (the same "
                               "pixels as old)", "new = the defaults (512 pixels per fit step)", "each eval is a child process; includes loading, panels "
                               "and the built-in scene's ground-truth scores (6 training renders)"])
    log(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
