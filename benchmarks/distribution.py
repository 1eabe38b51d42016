"""Distribution: training steps/s with 1 vs 2 gloo processes on the CPU (and 1 vs all GPUs when present).

    .venv/bin/python benchmarks/distribution.py [--quick]

Each configuration is a fresh `nerfw train` run (in this process; DDP workers are spawned by the trainer) on
the built-in scene at 160x90 with the same per-process batch (--batch_size, default 1024 rays), for
--steps steps. Steps/s is read from the trainer's loss_log.txt ("N steps/s" over each --log_freq interval);
the first interval is warm-up and is dropped, the rest are averaged by total steps over total time. Rays/s =
steps/s x batch x processes. With N processes on a C-core CPU the trainer gives each process C // N threads,
so on a 2-core machine 2 processes mostly trade intra-op threads for data parallelism.
Output: benchmarks/results/distribution.json.
"""
from __future__ import annotations

import argparse
import re
import shutil
import time
from pathlib import Path

import common  # noqa: F401  (puts the repository on sys.path)
from common import DEMO_SCENE, ensure_scene, fmt, format_table, log, train_argv, work_dir, write_result

RATE = re.compile(r"^step (\d+) .* ([0-9.]+) steps/s$")


def rates_from_log(run_dir: Path) -> list[tuple[int, float]]:
    """(step, steps/s over the interval ending at step) from a run's loss_log.txt."""
    rows = []
    path = Path(run_dir) / "loss_log.txt"
    for line in path.read_text().splitlines() if path.is_file() else []:
        m = RATE.match(line.strip())
        if m:
            rows.append((int(m.group(1)), float(m.group(2))))
    return rows


def steady_rate(rows: list[tuple[int, float]]) -> float | None:
    """Steps/s after the first (warm-up) interval: total steps / total time of the remaining intervals."""
    if len(rows) < 2:
        return None
    steps = seconds = 0.0
    for (s0, _), (s1, rate) in zip(rows, rows[1:]):
        steps += s1 - s0
        seconds += (s1 - s0) / rate
    return steps / seconds


def run_config(label: str, extra: list[str], n_procs: int, args, data_root: Path) -> dict:
    from nerfw.training.config import parse_config
    from nerfw.training.trainer import train

    run_root = work_dir() / "runs" / "distribution"
    exp = f"{args.field}_{label}"
    shutil.rmtree(run_root / exp, ignore_errors=True)
    cfg = parse_config(train_argv(data_root, DEMO_SCENE, run_root, exp, args.field, "--batch_size",
                                  str(args.batch_size), "--max_steps", str(args.steps), "--log_freq",
                                  str(args.log_freq), "--save_latest_freq", "1000000000", *extra))
    log(f"{label}: {args.steps} steps of {args.batch_size} rays per process ...")
    t0 = time.perf_counter()
    run_dir = train(cfg)
    wall = time.perf_counter() - t0
    rate = steady_rate(rates_from_log(run_dir))
    return {"label": label, "processes": n_procs, "batch_per_process": args.batch_size, "steps": args.steps,
            "steps_per_s": None if rate is None else round(rate, 3),
            "rays_per_s": None if rate is None else round(rate * args.batch_size * n_procs, 1),
            "wall_seconds_incl_startup": round(wall, 1)}


def configurations(args) -> list[tuple[str, list[str], int]]:
    import torch

    configs = [("cpu_1proc", ["--device", "cpu", "--num_gpus", "0", "--num_procs", "1"], 1),
               ("cpu_2proc_gloo", ["--device", "cpu", "--num_gpus", "0", "--num_procs", "2"], 2)]
    n_gpu = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if n_gpu >= 1 and not args.cpu_only:
        configs.append(("cuda_1gpu", ["--num_gpus", "1"], 1))
    if n_gpu >= 2 and not args.cpu_only:
        configs.append((f"cuda_{n_gpu}gpu_nccl", ["--num_gpus", str(n_gpu)], n_gpu))
    return configs


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: 12 steps")
    p.add_argument("--field", default="grid")
    p.add_argument("--batch_size", type=int, default=1024, help="rays per process per step")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--log_freq", type=int, default=10)
    p.add_argument("--cpu_only", action="store_true")
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.log_freq = 12, 4
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.time()
    data_root = ensure_scene(DEMO_SCENE, seed=0)
    rows = [run_config(label, extra, n, args, data_root) for label, extra, n in configurations(args)]
    base = rows[0]["rays_per_s"]
    for r in rows:
        r["rays_per_s_vs_1proc"] = None if not (base and r["rays_per_s"]) else round(r["rays_per_s"] / base, 2)
    log(format_table([[r["label"], r["processes"], fmt(r["steps_per_s"], 2), fmt(r["rays_per_s"], 0),
                       fmt(r["rays_per_s_vs_1proc"], 2)] for r in rows],
                     ["configuration", "procs", "steps/s", "rays/s", "rays/s vs 1 proc"]))
    notes = ["same per-process batch; steps/s from loss_log.txt after the first (warm-up) log interval"]
    path = write_result("distribution", {"runs": rows}, vars(args), notes, started)
    log(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
