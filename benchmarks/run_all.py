"""Run every benchmark, then print one table: each figure, its target, the ratio to the target, the machine.

    .venv/bin/python benchmarks/run_all.py [--quick] [--only throughput,memory] [--report_only]

Each benchmark runs as its own process (benchmarks/<name>.py) and writes benchmarks/results/<name>.json;
the table is built from those files, so `--report_only` reprints it from earlier runs. The table is also
written to benchmarks/results/summary.json. gpu.py measures only where a CUDA GPU is present (elsewhere the
GPU figures on record are reported as they are). Default: about 35 minutes on a 2-core CPU (time_to_quality ~14,
memory ~10, throughput ~5, distribution ~3); --quick: a few minutes.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import common  # noqa: F401  (puts the repository on sys.path)
from common import RESULTS_DIR, fmt, format_table, log, machine_line, read_result, write_result

BENCHMARKS = ("throughput", "memory", "distribution", "time_to_quality", "gpu")
HERE = Path(__file__).resolve().parent


def _run(field_rows: list[dict], field: str, device: str = "cpu") -> dict | None:
    """The row measured with torch's default threads (what the trainer uses)."""
    rows = [r for r in field_rows if r["field"] == field and r["device"] == device]
    return next((r for r in rows if r.get("threads_setting", "default") == "default"), rows[0] if rows else None)


def rows_throughput(res: dict) -> list[dict]:
    runs = res["figures"]["runs"]
    out = []
    for device in sorted({r["device"] for r in runs}):
        grid, mlp = _run(runs, "grid", device), _run(runs, "mlp", device)
        at_least, at_most = (">=", "<=") if device == "cpu" else (None, None)  # the targets are the CPU's
        if grid:
            out.append(figure(f"training samples/s, grid, {device}, {grid['threads']} threads",
                              grid["samples_per_s"], at_least, 200_000, 0))
            for other in runs:
                if other["field"] == "grid" and other["device"] == device and other is not grid:
                    out.append(figure(f"training samples/s, grid, {device}, {other['threads']} threads",
                                      other["samples_per_s"], None, None, 0))
            out.append(figure(f"training rays/s, grid, {device}, {grid['threads']} threads", grid["rays_per_s"],
                              None, None, 0))
            fast = grid.get("render_640x360_fast")
            if fast:
                out.append(figure(f"render 640x360 s, grid, {device}, fast renderer (nerfw render default)",
                                  fast["seconds_per_frame"], at_most, 2.0, 3))
            out.append(figure(f"render 640x360 s, grid, {device}, full renderer (as trained, nerfw eval)",
                              grid["render_640x360"]["seconds_per_frame"], at_most, 2.0, 3))
        if mlp:
            out.append(figure(f"training samples/s, mlp, {device}", mlp["samples_per_s"], None, None, 0))
            out.append(figure(f"render 640x360 s, mlp, {device} (extrapolated)",
                              mlp["render_640x360"]["seconds_per_frame"], None, None, 1))
    return out


def rows_memory(res: dict) -> list[dict]:
    out = []
    for r in res["figures"]["rows"]:
        size = f"{r['image_size'][0]}x{r['image_size'][1]}"
        out.append(figure(f"peak RSS load MB, {r['n_train']} imgs {size}", r["peak_rss_load_mb"], "<=",
                          r["target_load_mb"], 0))
        out.append(figure(f"peak RSS train MB, {r['n_train']} imgs (seed cache {r['seed_ray_cache_mb']:.0f} MB)",
                          r["train_steps"]["peak_rss_mb"], None, None, 0))
        out.append(figure(f"load s first / second start, {r['n_train']} imgs",
                          f"{r['load_first_start']['seconds']:.2f} / {r['load_second_start']['seconds']:.2f}",
                          None, None))
    return out


def rows_distribution(res: dict) -> list[dict]:
    return [figure(f"steps/s {r['label']} (x{fmt(r['rays_per_s_vs_1proc'])} rays/s)", r["steps_per_s"], None, None)
            for r in res["figures"]["runs"]]


def rows_time_to_quality(res: dict) -> list[dict]:
    f = res["figures"]
    if "target_psnr_mlp_after_budget" not in f:
        return []
    proto = res["settings"].get("protocol", "?")
    budget = f["mlp_seconds_trained"]
    return [
        figure(f"mlp test PSNR after {budget:.0f} s ({proto})", f["target_psnr_mlp_after_budget"], None, None),
        figure("grid s to reach it", f["grid_seconds_to_target_first_mark"], "<=", 30.0, 1),
        figure("speed-up (mlp budget / grid time)", f["speedup_vs_mlp_budget"], ">=", 20.0, 1),
        figure(f"grid / mlp PSNR after {f['equal_budget_seconds']:.0f} s",
               f"{fmt(f['grid_psnr_after_grid_budget'])} / {fmt(f['mlp_psnr_after_grid_budget'])}", None, None),
    ] + rows_render_quality(f.get("grid_render_quality"))


def rows_render_quality(q: dict | None) -> list[dict]:
    if not q:
        return []
    return [figure("grid final, whole test images (mean): PSNR full / fast renderer",
                   f"{fmt(q['psnr_full'])} / {fmt(q['psnr_fast'])}", None, None),
            figure("fast vs full renderer PSNR (same model)", q["psnr_fast_vs_full"], None, None)] + [
        figure(f"render 640x360 s, trained grid, {name} renderer", q[f"render_640x360_{name}"]["seconds_per_frame"],
               "<=", 2.0, 2) for name in ("fast", "full") if f"render_640x360_{name}" in q]


def rows_gpu(res: dict) -> list[dict]:
    """The GPU targets: the demo scene to 25 dB within 60 s; 640x360 at >= 10 frames/s."""
    f, gpu = res["figures"], ", ".join(res["machine"]["gpus"]) or "no GPU"
    target = res["settings"].get("target_psnr", 25.0)
    out = []
    for r in f["training"]:
        label = f"batch {r['batch_size']}, amp {r['amp']}{', ' + r['options'] if r.get('options') else ''}"
        out.append(figure(f"{gpu}: demo test PSNR after {r['seconds_trained']:.0f} s ({label})",
                          r["final_test_psnr"], ">=", target, 2))
        out.append(figure(f"{gpu}: s to {target:g} dB ({label})", r["seconds_to_target_first_mark"], "<=", 60.0, 1))
    render = f.get("render_640x360") or {}
    for name in ("fast", "fast_float32", "full"):
        if name in render:
            out.append(figure(f"{gpu}: 640x360 frames/s, {name} renderer", render[name]["frames_per_s"], ">=", 10.0,
                              1))
    return out


def result_names(name: str) -> list[str]:
    """A benchmark's result and its kept variants (e.g. throughput_cuda.json, gpu_run1.json), smoke runs aside."""
    variants = sorted(p.stem for p in RESULTS_DIR.glob(f"{name}_*.json") if "smoke" not in p.stem)
    return [name] + variants


def figure(name: str, value, op: str | None, target, digits: int = 2) -> dict:
    ok = ratio = None
    if op and isinstance(value, (int, float)) and target:
        ratio = value / target
        ok = value >= target if op == ">=" else value <= target
    return {"figure": name, "value": value, "target": None if op is None else f"{op} {fmt(target, digits)}",
            "ratio": ratio, "meets": ok, "digits": digits}


def report(names: list[str]) -> list[dict]:
    rows, machines = [], set()
    for name, result_name in ((n, r) for n in names for r in result_names(n)):
        res = read_result(result_name)
        if res is None:
            rows.append(figure(f"{result_name}: no result", None, None, None))
            continue
        quick = " --quick" if res["settings"].get("quick") else ""
        machines.add(f"{machine_line(res['machine'])} ({result_name}{quick}, {res['date']})")
        for row in globals()[f"rows_{name}"](res):
            row["figure"] += " [quick]" if quick else ""
            rows.append(row)
    table = [[r["figure"], fmt(r["value"], r["digits"]), r["target"] or "", fmt(r["ratio"], 2) if r["ratio"] else "",
              {True: "yes", False: "NO", None: ""}[r["meets"]]] for r in rows]
    log(format_table(table, ["figure", "value", "target", "ratio", "meets"]))
    for m in sorted(machines):
        log(f"machine: {m}")
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--only", default=",".join(BENCHMARKS))
    p.add_argument("--report_only", action="store_true", help="print the table from existing results")
    args = p.parse_args(argv)
    names = [n for n in args.only.split(",") if n]
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        p.error(f"unknown benchmark(s): {', '.join(unknown)}")
    started = time.time()
    failed = []
    if not args.report_only:
        for name in names:
            log(f"=== {name} ===")
            code = subprocess.call([sys.executable, str(HERE / f"{name}.py"), *(["--quick"] if args.quick else [])])
            if code != 0:
                failed.append(name)
                log(f"{name} failed (exit {code})")
    log("")
    rows = report(names)
    if not args.report_only:
        write_result("summary", {"table": rows, "failed": failed}, {"quick": args.quick, "only": names}, [], started)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
