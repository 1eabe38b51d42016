"""Memory: peak RSS of loading a scene + its image cache, and of a few training steps, vs the number of images.

    .venv/bin/python benchmarks/memory.py [--quick] [--counts 16,64,256] [--width 480 --height 270]

For each image count a built-in scene (SynthSquare layout, seed 0, Cambridge format) is generated once at the
given size and trained at --img_downscale 1. Every measurement runs in a fresh Python process (peak RSS =
VmHWM of /proc/self/status, which includes the ~200-300 MB of importing torch; "after imports" is reported):

  load, first start:  load_scene + ImageCache.load_or_build with no cache on disk (decodes every image and
                      writes <scene>/cache/images_<key>.npy);
  load, second start: the same with the cache present (memory-mapped, nothing decoded);
  train:              `nerfw train` in-process for a few steps (grid field, batch 1024) with the cache present.

Next to them: the uint8 image bytes (3 per pixel, all images) and the size NeRFW-pytorch's ray cache would have
(12 float32 per training pixel: o, d, near, far, image id, rgb = 48 bytes). Target: peak RSS while loading
<= 1.5 x uint8 bytes + 300 MB. Output: benchmarks/results/memory.json.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import common  # noqa: F401  (puts the repository on sys.path)
from common import (current_rss_mb, emit_child_result, ensure_scene, fmt, format_table, log, peak_rss_mb,
                    run_child, scene_name, train_argv, work_dir, write_result)

SEED_FLOATS_PER_RAY = 12  # NeRFW-pytorch's Rays: o(3) d(3) near far image_id rgb(3), float32


# ----------------------------------------------------------------------------- child processes
def child_load(args) -> dict:
    """Load the scene and its image cache; report time, peak RSS and sizes."""
    import numpy as np  # noqa: F401  (imports counted in the baseline, as in a real start)
    import torch  # noqa: F401

    from nerfw.data.image_cache import ImageCache
    from nerfw.data.loader import load_scene

    base_rss, base_peak = current_rss_mb(), peak_rss_mb()
    t0 = time.perf_counter()
    scene = load_scene(args.data_root, args.scene, img_downscale=1)
    cache = ImageCache.load_or_build(scene, cache_dir=Path(scene.root) / "cache", use_cache=True, save_cache=True,
                                     progress=False)
    seconds = time.perf_counter() - t0
    train_pixels = sum(c.width * c.height for c in scene.cameras if c.split == "train")
    return {"seconds": round(seconds, 3), "built": bool(cache.built), "rss_after_imports_mb": round(base_rss, 1),
            "peak_rss_after_imports_mb": round(base_peak, 1), "peak_rss_mb": round(peak_rss_mb(), 1),
            "n_images": len(scene.cameras), "n_train": len(scene.split("train")),
            "image_size": [scene.cameras[0].width, scene.cameras[0].height],
            "uint8_bytes": int(cache.pixels.nbytes), "train_pixels": int(train_pixels)}


def child_train(args) -> dict:
    """A few training steps through `nerfw train` (in this process); report peak RSS."""
    import torch  # noqa: F401

    from nerfw.training.config import parse_config
    from nerfw.training.trainer import train

    base_rss = current_rss_mb()
    run_root = work_dir() / "runs" / "memory"
    exp = f"{args.scene}_{args.field}"
    shutil.rmtree(run_root / exp, ignore_errors=True)
    cfg = parse_config(train_argv(Path(args.data_root), args.scene, run_root, exp, args.field, "--max_steps",
                                  str(args.steps), "--log_freq", "1000000",
                                  img_downscale=1))
    t0 = time.perf_counter()
    train(cfg)
    return {"seconds": round(time.perf_counter() - t0, 2), "steps": args.steps, "field": args.field,
            "rss_after_imports_mb": round(base_rss, 1), "peak_rss_mb": round(peak_rss_mb(), 1)}


# ----------------------------------------------------------------------------- parent
def measure_count(n: int, args) -> dict:
    name = scene_name(n_train=n, width=args.width)
    data_root = ensure_scene(name, seed=0, width=args.width, height=args.height, n_train=n, n_test=args.n_test)
    shutil.rmtree(data_root / name / "cache", ignore_errors=True)  # first start: no cache
    me = Path(__file__).resolve()
    common_args = ["--data_root", str(data_root), "--scene", name]
    log(f"{n} training images at {args.width}x{args.height}: first start ...")
    first = run_child(me, ["--child", "load", *common_args])
    log(f"{n} training images: second start ...")
    second = run_child(me, ["--child", "load", *common_args])
    log(f"{n} training images: {args.steps} training steps ({args.field}) ...")
    trained = run_child(me, ["--child", "train", "--field", args.field, "--steps", str(args.steps), *common_args])
    uint8_bytes = first["uint8_bytes"]
    target_mb = 1.5 * uint8_bytes / 1e6 + 300.0
    peak_load = max(first["peak_rss_mb"], second["peak_rss_mb"])
    return {
        "n_train": n, "n_images": first["n_images"], "image_size": first["image_size"],
        "uint8_image_mb": round(uint8_bytes / 1e6, 1),
        "seed_ray_cache_mb": round(first["train_pixels"] * SEED_FLOATS_PER_RAY * 4 / 1e6, 1),
        "load_first_start": first, "load_second_start": second, "train_steps": trained,
        "peak_rss_load_mb": peak_load, "target_load_mb": round(target_mb, 1),
        "load_ratio_to_target": round(peak_load / target_mb, 3),
    }


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: 4 and 8 images")
    p.add_argument("--counts", default="16,64,256", help="training image counts")
    p.add_argument("--width", type=int, default=480)
    p.add_argument("--height", type=int, default=270)
    p.add_argument("--n_test", type=int, default=2, help="test images of each scene")
    p.add_argument("--steps", type=int, default=5, help="training steps of the train measurement")
    p.add_argument("--field", default="grid")
    p.add_argument("--child", choices=["load", "train"], help=argparse.SUPPRESS)
    p.add_argument("--data_root", help=argparse.SUPPRESS)
    p.add_argument("--scene", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.counts, args.steps = "4,8", 2
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        emit_child_result(child_load(args) if args.child == "load" else child_train(args))
        return 0
    started = time.time()
    rows = [measure_count(int(n), args) for n in args.counts.split(",")]
    table = [[r["n_train"], f"{r['image_size'][0]}x{r['image_size'][1]}", fmt(r["uint8_image_mb"], 1),
              fmt(r["seed_ray_cache_mb"], 1), fmt(r["load_first_start"]["peak_rss_mb"], 0),
              fmt(r["load_second_start"]["peak_rss_mb"], 0), fmt(r["train_steps"]["peak_rss_mb"], 0),
              fmt(r["target_load_mb"], 0), fmt(r["load_first_start"]["seconds"], 2),
              fmt(r["load_second_start"]["seconds"], 2)] for r in rows]
    log(format_table(table, ["train imgs", "size", "uint8 MB", "NeRFW-pytorch cache MB", "peak load 1st MB",
                             "peak load 2nd MB", "peak train MB", "target MB", "load 1st s", "load 2nd s"]))
    notes = ["MB = 1e6 bytes; peak RSS = VmHWM of a fresh process, imports of torch/numpy included",
             "NeRFW-pytorch ray cache = training pixels x 12 float32 (computed, not measured)"]
    path = write_result("memory", {"rows": rows}, {k: v for k, v in vars(args).items() if k not in
                                                   ("child", "data_root", "scene")}, notes, started)
    log(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
