"""GPU figures: the demo scene to a test-PSNR target on one GPU, and 640x360 frames per second.

    python benchmarks/gpu.py [--minutes 1] [--configs 16384:off:80,...] [--target_psnr 25] [--quick]

The grid field trains on the demo scene (the data and resolution of `nerfw demo`: SynthSquare seed 0 at
160x90) on one CUDA GPU, once per configuration "batch_size:amp[:epochs[:option=value...]]" (amp on =
bfloat16 autocast, off = float32; extra `nerfw train` options), each for --minutes of wall clock or its
epochs, whichever ends first. Weight copies are taken at fixed marks of the training clock (the clock and the
copies as in time_to_quality.py) and each copy is scored afterwards with the demo's protocol: the NeRF-W
protocol of `nerfw eval` (appearance fitted on the left half of every test image, right half scored), on the
whole test split. Reported: the test-PSNR curve, the first mark at or above --target_psnr, steps and samples/s.

Then the final weights of the best configuration render a 640x360 view (the first test camera, intrinsics
scaled) with the full renderer (as trained) and the fast renderer (`nerfw render`'s default) with bfloat16
MLPs (its default on GPUs with bf16) and with float32 MLPs: median of --render_repeats frames after a warm-up;
frames/s = 1 / that, plus the PSNR of each fast frame against the full one. Output:
benchmarks/results/gpu.json. Without a CUDA GPU it measures nothing and writes nothing (so the GPU figures on
record are never replaced by an empty run); --device cpu runs the same code on the CPU as a smoke test and
writes benchmarks/results/gpu_cpu_smoke.json (git-ignored).
"""
from __future__ import annotations

import argparse
import shutil
import time
from types import SimpleNamespace

import common  # noqa: F401  (puts the repository on sys.path)
from common import DEMO_SCENE, ensure_scene, fmt, format_table, log, sync, train_argv, work_dir, write_result

MARKS = (5, 10, 15, 20, 25, 30, 40, 50, 60, 75, 90, 105, 120, 150, 180)  # seconds of training clock
# (name, fast renderer, bf16 setting of the fast renderer: None = bfloat16 where the hardware has it, its default)
RENDER_VARIANTS = (("full", False, None), ("fast", True, None), ("fast_float32", True, False))


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu for a smoke test")
    p.add_argument("--minutes", type=float, default=1.0, help="training budget per configuration (target: 60 s)")
    p.add_argument("--configs", default="16384:off:80,16384:off:80:plane_tv_weight=1e-4",
                   help="comma list of batch_size:amp[:epochs[:option=value...]] (amp on = bfloat16 autocast, off = "
                        "float32; epochs: the trainer's --epochs, default 20, which sets the learning-rate decay; "
                        "options: more `nerfw train` options, e.g. plane_tv_weight=1e-4)")
    p.add_argument("--target_psnr", type=float, default=25.0)
    p.add_argument("--fit_steps", type=int, default=100,
                   help="appearance-fit steps per test image (as nerfw demo and nerfw eval; gpu.json used 30)")
    p.add_argument("--max_images", type=int, default=0, help="score the first N test images (0: all)")
    p.add_argument("--render_repeats", type=int, default=10)
    p.add_argument("--chunk", type=int, default=65536, help="rays per forward pass when rendering")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="smoke run: one configuration, 15 s, 3 test images")
    args = p.parse_args(argv)
    if args.quick:
        args.minutes, args.configs, args.max_images, args.render_repeats = 0.25, args.configs.split(",")[0], 3, 3
    return args


def parse_config_spec(spec: str) -> dict:
    """ "16384:off:80:plane_tv_weight=1e-4" -> batch 16384, amp off, 80 epochs, extra trainer options."""
    batch, amp, *rest = spec.split(":")
    epochs = int(rest[0]) if rest else 20
    extra = []
    for item in rest[1:]:
        key, value = item.split("=", 1)
        extra += [f"--{key}", value]
    return {"batch_size": int(batch), "amp": amp, "epochs": epochs, "extra": extra}


def train_config(data_root, batch_size: int, amp: str, epochs: int, extra: list[str], args) -> dict:
    """Train one configuration with weight copies at MARKS; score every copy; return the curve and figures."""
    from nerfw.training.config import parse_config
    from throughput import samples_per_ray
    from time_to_quality import score_snapshots, time_to_reach, train_recorded

    run_root = work_dir() / "runs" / "gpu"
    exp = f"grid_b{batch_size}_amp{amp}_e{epochs}_{args.device}" + "".join(extra[1::2])
    shutil.rmtree(run_root / exp, ignore_errors=True)  # a fresh run, never a resumed one
    argv = train_argv(data_root, DEMO_SCENE, run_root, exp, "grid", "--max_minutes", str(args.minutes),
                      "--batch_size", str(batch_size), "--amp", amp, "--epochs", str(epochs),
                      "--device", args.device, *extra,
                      "--save_latest_freq", "1000000000", "--log_freq", "1000000000", seed=args.seed)
    budget = args.minutes * 60.0
    marks = [m for m in MARKS if m < budget] + [budget]
    log(f"training grid on {args.device}, batch {batch_size}, amp {amp}, {epochs} epochs at most, "
        f"{args.minutes:g} min {' '.join(extra)} ...")
    run_dir, recorder, steps = train_recorded(argv, marks)
    trained = recorder.last[1]
    score_args = SimpleNamespace(max_images=args.max_images, eval_mode="fit_left_half", fit_steps=args.fit_steps,
                                 eval_pixels=0, seed=args.seed, chunk=args.chunk)
    log(f"scoring {len(recorder.snapshots)} copies (NeRF-W protocol, {args.fit_steps} fit steps per image) ...")
    curve = score_snapshots(run_dir, recorder.snapshots, score_args, device=args.device)
    first_mark, interpolated = time_to_reach(curve, args.target_psnr)
    samples = steps * batch_size * samples_per_ray(parse_config(argv).model)["field"]
    return {"batch_size": batch_size, "amp": amp, "epochs": epochs, "options": " ".join(extra), "steps": steps,
            "seconds_trained": round(trained, 2),
            "steps_per_s": round(steps / trained, 1) if trained else None,
            "field_samples_per_s": round(samples / trained, 0) if trained else None,
            "startup_seconds": round(recorder.t_start - recorder.t_called, 2),
            "final_test_psnr": curve[-1]["test_psnr"], "best_test_psnr": max(r["test_psnr"] for r in curve),
            "seconds_to_target_first_mark": first_mark, "seconds_to_target_interpolated": interpolated,
            "curve": curve, "run_dir": str(run_dir)}


def render_speed(run_dir, args) -> dict:
    """Frames/s of the final weights at 640x360, full and fast renderers; fast-vs-full PSNR of that frame."""
    import numpy as np

    from nerfw.evaluation import metrics
    from nerfw.model.view_rendering import render_camera
    from nerfw.training.run_io import load_run
    from throughput import render_camera_640, time_render

    run = load_run(run_dir, device=args.device)
    camera = render_camera_640(run.scene)
    out = {"run_dir": str(run_dir)}
    app = run.model.appearance_vector(mean=True)
    fast_settings = run.model.fast_renderer().settings
    images = {}
    try:
        for name, fast, bf16 in RENDER_VARIANTS:
            fast_settings.bf16 = bf16
            r = time_render(run.model, camera, run.normalization, args.device, 1.0, args.chunk, fast,
                            repeats=args.render_repeats)
            r["frames_per_s"] = round(1.0 / r["seconds_per_frame"], 2)
            out[name] = r
            log(f"640x360 {name} renderer on {args.device}: {r['seconds_per_frame'] * 1000:.1f} ms per frame, "
                f"{r['frames_per_s']:.1f} frames/s")
            images[name] = render_camera(run.model, camera, run.normalization, args.chunk, appearance=app,
                                         fast=fast)["rgb"]
    finally:
        fast_settings.bf16 = None  # the default again
    for name in ("fast", "fast_float32"):
        out[f"psnr_{name}_vs_full"] = round(float(metrics.psnr(images[name], images["full"])), 2)
        log(f"{name} vs full frame: {out[f'psnr_{name}_vs_full']:.2f} dB")
    out["finite"] = bool(all(np.isfinite(im).all() for im in images.values()))
    sync(args.device)
    return out


def main(argv: list[str] | None = None) -> int:
    import torch

    args = parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        log("no CUDA GPU here: nothing measured, nothing written (the GPU figures on record stay as they are)")
        return 0
    started = time.time()
    data_root = ensure_scene(DEMO_SCENE, seed=args.seed)
    runs = []
    name = "gpu" if args.device.startswith("cuda") else "gpu_cpu_smoke"
    notes = ["test PSNR: NeRF-W protocol (appearance fitted on the left half, right half scored), all test images",
             "clock from the trainer's start (after data and model set-up), weight copies excluded",
             "field samples/s counts the field's points per ray (48), not the proposal network's (64)"]
    for spec in args.configs.split(","):
        c = parse_config_spec(spec)
        runs.append(train_config(data_root, c["batch_size"], c["amp"], c["epochs"], c["extra"], args))
        write_result(name, {"training": runs, "render_640x360": None}, vars(args), notes, started)  # so far
    best = max(runs, key=lambda r: r["final_test_psnr"])
    render = render_speed(best["run_dir"], args)
    table = [[str(r["batch_size"]), r["amp"], str(r["epochs"]), r["options"] or "-", str(r["steps"]),
              fmt(r["steps_per_s"], 1), fmt(r["field_samples_per_s"], 0), fmt(r["final_test_psnr"]),
              fmt(r["seconds_to_target_first_mark"], 1)] for r in runs]
    log(format_table(table, ["batch", "amp", "epochs", "options", "steps", "steps/s", "field samples/s",
                             "final test PSNR", f"s to {args.target_psnr:g} dB"]))
    path = write_result(name, {"training": runs, "render_640x360": render}, vars(args), notes, started)
    log(f"wrote {path} ({(time.time() - started) / 60:.1f} min in all)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
