"""Speed-up against an earlier revision, measured side by side in one run: training steps/s and the fast renderer.

    .venv/bin/python benchmarks/speedup.py [--baseline 54cc14b] [--rounds 3] [--steps 40] [--batch_size 512]

The baseline revision is checked out as a git worktree under the benchmarks' work folder (git-ignored) and both
revisions are measured with their own code (their own benchmarks/throughput.py pieces: the trainer's batches,
TrainStep, backward, Adam, scheduler; then one 640x360 frame with the fast renderer), each measurement in a fresh
child process, the two revisions alternating for --rounds rounds so that the machine's drift hits both alike.
The built-in demo scene at 160x90, the defaults' field, batch 512 rays (what the trainer uses on a CPU).
Reported: median step time and frame time of each revision over all rounds, and their ratios (baseline / today:
above 1 means today is faster). Writes benchmarks/results/speedup.json.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from common import REPO, format_table, log, machine, machine_line, median, work_dir, write_result

TARGET_RATIO = 1.5  # issue 29: >= 1.5x steps/s and fast-render speed


def worktree(rev: str) -> Path:
    """A checkout of `rev` under the work folder (created once; reused while it is at `rev`)."""
    full = subprocess.run(["git", "-C", str(REPO), "rev-parse", rev], check=True, capture_output=True,
                          text=True).stdout.strip()
    path = work_dir() / f"baseline_{full[:10]}"
    if not (path / "nerfw").is_dir():
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "--force", str(path), full],
                       check=True, capture_output=True)
    return path


def child(repo: Path, steps: int, warmup: int, batch_size: int) -> dict:
    """Runs in a child process: `repo`'s own nerfw and benchmark pieces, one training timing and one fast frame."""
    sys.path[:0] = [str(repo), str(repo / "benchmarks")]
    import torch

    import nerfw
    import throughput as tp

    assert Path(nerfw.__file__).resolve().is_relative_to(repo.resolve()), nerfw.__file__
    cfg, scene, normalization, batcher, model, step, optimizer, scheduler = tp.setup("grid", "cpu", batch_size)
    tp.train_steps(step, optimizer, scheduler, batcher, "cpu", 0, warmup, False)
    times = tp.train_steps(step, optimizer, scheduler, batcher, "cpu", warmup, steps, False)
    render = tp.time_render(model, tp.render_camera_640(scene), normalization, "cpu", 1.0, 4096, fast=True,
                            repeats=3)
    return {"step_seconds": median(times), "frame_seconds": render["seconds_per_frame"],
            "threads": torch.get_num_threads()}


def run_child(repo: Path, args) -> dict:
    cmd = [sys.executable, __file__, "--child", str(repo), "--steps", str(args.steps), "--warmup", str(args.warmup),
           "--batch_size", str(args.batch_size)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--baseline", default="54cc14b", help="the revision to compare with (git rev)")
    p.add_argument("--rounds", type=int, default=3, help="alternating measurements of each revision")
    p.add_argument("--steps", type=int, default=40, help="timed training steps per measurement")
    p.add_argument("--warmup", type=int, default=8)
    p.add_argument("--batch_size", type=int, default=512)
    p.add_argument("--child", default="", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(Path(args.child), args.steps, args.warmup, args.batch_size)))
        return 0
    started = time.time()
    sides = {"baseline": worktree(args.baseline), "today": REPO}
    runs: dict[str, list[dict]] = {"baseline": [], "today": []}
    for r in range(args.rounds):
        for name, repo in sides.items():
            runs[name].append(run_child(repo, args))
            log(f"round {r + 1}/{args.rounds} {name}: {runs[name][-1]}")
    figures = {name: {"step_seconds_median": median([x["step_seconds"] for x in rs]),
                      "frame_seconds_median": median([x["frame_seconds"] for x in rs]), "rounds": rs}
               for name, rs in runs.items()}
    base, today = figures["baseline"], figures["today"]
    figures["ratios"] = {
        "steps_per_s": round(base["step_seconds_median"] / today["step_seconds_median"], 3),
        "fast_render": round(base["frame_seconds_median"] / today["frame_seconds_median"], 3)}
    rows = [[name, f"{f['step_seconds_median'] * 1e3:.1f} ms", f"{1 / f['step_seconds_median']:.2f}",
             f"{f['frame_seconds_median']:.2f} s"] for name, f in ((args.baseline, base), ("today", today))]
    print(format_table(rows, ["revision", "s per step", "steps/s", "fast 640x360 frame"]))
    print(f"ratios (target {TARGET_RATIO}x): steps/s {figures['ratios']['steps_per_s']}x, "
          f"fast render {figures['ratios']['fast_render']}x")
    print(machine_line(machine()))
    path = write_result("speedup", figures, settings={**vars(args), "target_ratio": TARGET_RATIO}, started=started)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
