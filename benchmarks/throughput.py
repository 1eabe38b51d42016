"""Throughput: training rays/s and samples/s, and seconds to render a 640x360 frame, for both fields.

    .venv/bin/python benchmarks/throughput.py [--quick]

Training: the trainer's own pieces (RayBatcher batches from the uint8 image cache of the built-in scene at
160x90, TrainStep forward + loss, backward, Adam step, LR scheduler step), batch 1024 rays, default model
options; after warm-up steps, each timed step covers making the batch, moving it to the device, forward,
backward and optimiser step. The figure is the median step time; rays/s = batch / step time.

Samples are counted as points evaluated by the scene networks per ray:
  mlp:  N_c (coarse) + sum_k (N_c + k N_f) over the n_fine fine networks (defaults: 64 + 192 = 256);
  grid: grid_samples points of the tri-plane field (default 24); the tiny proposal network's
        proposal_samples points (default 64) are reported separately ("incl. proposal"), not in the headline.

Rendering: a 640x360 view made from the first test camera of the scene (intrinsics scaled 4x), rendered with
render_chunked under no_grad, transient head off, mean appearance, with the full renderer (what training and
nerfw eval use) and, for the grid, with the fast inference renderer (nerfw render's default; its one-off bake
of the proposal density is reported apart). The grid renders the whole frame; the mlp
renders a fraction of its rays (--mlp_render_fraction, default 1/16) and the time is extrapolated linearly
(the cost per ray is fixed for both fields: the same sample counts for every ray); --quick extrapolates the
grid from 1/8 of the frame as well. Output: benchmarks/results/throughput.json.
"""
from __future__ import annotations

import argparse
import time

import common  # noqa: F401  (puts the repository on sys.path)
from common import DEMO_SCENE, devices, ensure_scene, fmt, format_table, log, median, sync, train_argv, \
    work_dir, write_result

RENDER_W, RENDER_H = 640, 360


def samples_per_ray(model_cfg) -> dict:
    """Points evaluated per ray: {"field": by the scene network(s), "proposal": by the proposal network}."""
    if model_cfg.field == "mlp":
        n_fine = model_cfg.n_fine if model_cfg.N_f > 0 else 0
        field_points = model_cfg.N_c + sum(model_cfg.N_c + k * model_cfg.N_f for k in range(1, n_fine + 1))
        return {"field": field_points, "proposal": 0}
    return {"field": model_cfg.grid_samples, "proposal": model_cfg.proposal_samples}


def setup(field_name: str, device: str, batch_size: int, seed: int = 0):
    """Config, scene, normalisation, batcher, model, step module and optimiser, as the trainer builds them."""
    import torch

    from nerfw.data.scene import Normalization
    from nerfw.model.nerfw_model import build_model
    from nerfw.training.config import parse_config
    from nerfw.training.ray_batches import RayBatcher
    from nerfw.training.trainer import TrainStep, load_training_data, make_optimizer, train_ids

    if device == "cpu":  # as the trainer's CPU workers do
        from nerfw.training.cpu_memory import keep_freed_blocks_in_heap

        keep_freed_blocks_in_heap()
    data_root = ensure_scene(DEMO_SCENE, seed=seed)
    cfg = parse_config(train_argv(data_root, DEMO_SCENE, work_dir() / "runs" / "throughput", field_name,
                                  field_name, "--batch_size", str(batch_size), "--device", device))
    scene, cache = load_training_data(cfg, save_cache=True)
    normalization = Normalization.fit(scene)
    batcher = RayBatcher(cache, scene.cameras, train_ids(scene), normalization, batch_size, 1, seed)
    torch.manual_seed(seed)
    model = build_model(cfg.model, n_images=len(scene.cameras)).to(device)
    optimizer, scheduler, _ = make_optimizer(model, cfg, n_total=100_000)
    return cfg, scene, normalization, batcher, model, TrainStep(model), optimizer, scheduler


def train_steps(step_module, optimizer, scheduler, batcher, device: str, first: int, count: int,
                amp: bool) -> list[float]:
    """Run `count` full training steps; returns each step's wall time in seconds."""
    import torch

    times = []
    for i in range(first, first + count):
        sync(device)
        t0 = time.perf_counter()
        batch = batcher.batch(0, i % batcher.steps_per_epoch, 0).to(device)
        with torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16, enabled=amp):
            terms = step_module(batch.rays_o, batch.rays_d, batch.near, batch.far, batch.image_ids, batch.rgb,
                                batch.depth)
        optimizer.zero_grad(set_to_none=True)
        terms["total"].float().backward()
        optimizer.step()
        scheduler.step()
        sync(device)
        times.append(time.perf_counter() - t0)
    return times


def render_camera_640(scene):
    """A 640x360 CameraView from the first test camera (else the first camera), intrinsics scaled."""
    import dataclasses

    cams = [c for c in scene.cameras if c.split == "test"] or scene.cameras
    c = cams[0]
    sx, sy = RENDER_W / c.width, RENDER_H / c.height
    return dataclasses.replace(c, width=RENDER_W, height=RENDER_H, fx=c.fx * sx, fy=c.fy * sy, cx=c.cx * sx,
                               cy=c.cy * sy)


def time_render(model, camera, normalization, device: str, fraction: float, chunk: int, fast: bool = False,
                repeats: int = 1) -> dict:
    """Seconds to render the camera's rays (a leading fraction of them, extrapolated) without gradients; the
    median of ``repeats`` renders (each one listed). fast=True: nerfw.model.fast_render (grid only); its
    one-off bake is timed apart and not in the frame time."""
    import torch

    from nerfw.model.view_rendering import camera_rays_model

    model.eval()
    o, d, near, far = camera_rays_model(camera, normalization, device)
    n = len(o)
    k = max(1, int(round(n * fraction)))
    ids = torch.zeros(k, dtype=torch.long, device=device)
    app = model.appearance_vector(mean=True)
    w = min(k, 256)  # warm-up on a few rays
    bake_s = None
    if fast:
        sync(device)
        t0 = time.perf_counter()
        model.fast_renderer().bake()
        sync(device)
        bake_s = round(time.perf_counter() - t0, 3)
    model.render_chunked(o[:w], d[:w], near[:w], far[:w], ids[:w], chunk=chunk, appearance=app,
                         use_transient=False, perturb=False, fast=fast)
    times = []
    for _ in range(max(1, repeats)):
        sync(device)
        t0 = time.perf_counter()
        out = model.render_chunked(o[:k], d[:k], near[:k], far[:k], ids, chunk=chunk, appearance=app,
                                   use_transient=False, perturb=False, fast=fast)
        sync(device)
        times.append(time.perf_counter() - t0)
        assert out.rgb.shape == (k, 3) and bool(torch.isfinite(out.rgb).all())
    model.train()
    seconds = median(times)
    return {"rays_rendered": k, "rays_in_frame": n, "seconds_measured": round(seconds, 3),
            "seconds_all": [round(t, 3) for t in times], "seconds_per_frame": round(seconds * n / k, 3),
            "extrapolated": k < n, "chunk": chunk, "renderer": "fast" if fast else "full", "bake_seconds": bake_s}


def measure(field_name: str, device: str, args, threads: int = 0) -> dict:
    """One field on one device; threads > 0 sets torch's intra-op threads for it (0: leave the default)."""
    import torch

    default_threads = torch.get_num_threads()
    if threads > 0:
        torch.set_num_threads(threads)
    try:
        return _measure(field_name, device, args)
    finally:
        torch.set_num_threads(default_threads)


def _measure(field_name: str, device: str, args) -> dict:
    import torch

    cfg, scene, normalization, batcher, model, step_module, optimizer, scheduler = setup(
        field_name, device, args.batch_size)
    amp = device.startswith("cuda") and cfg.train.amp == "on"
    warmup, steps = (args.warmup, args.steps) if field_name == "grid" else (args.mlp_warmup, args.mlp_steps)
    log(f"{field_name} on {device}, {torch.get_num_threads()} threads: {warmup} warm-up + {steps} timed "
        f"training steps of {args.batch_size} rays ...")
    train_steps(step_module, optimizer, scheduler, batcher, device, 0, warmup, amp)
    times = train_steps(step_module, optimizer, scheduler, batcher, device, warmup, steps, amp)
    step_s = median(times)
    spr = samples_per_ray(cfg.model)
    rays_s = args.batch_size / step_s
    fraction = args.grid_render_fraction if field_name == "grid" else args.mlp_render_fraction
    camera = render_camera_640(scene)
    log(f"{field_name} on {device}: rendering {RENDER_W}x{RENDER_H} ({fraction:g} of the frame) ...")
    repeats = args.render_repeats if field_name == "grid" else 1
    render = time_render(model, camera, normalization, device, fraction, args.chunk, repeats=repeats)
    render_fast = (time_render(model, camera, normalization, device, 1.0, args.chunk, fast=True, repeats=repeats)
                   if field_name == "grid" else None)
    return {
        "field": field_name, "device": device, "amp_bfloat16": amp, "batch_size": args.batch_size,
        "threads": torch.get_num_threads(), "steps_timed": steps, "warmup_steps": warmup,
        "step_seconds_median": round(step_s, 4), "step_seconds_all": [round(t, 4) for t in times],
        "rays_per_s": round(rays_s, 1), "samples_per_ray_field": spr["field"],
        "samples_per_ray_proposal": spr["proposal"], "samples_per_s": round(rays_s * spr["field"], 1),
        "samples_per_s_incl_proposal": round(rays_s * (spr["field"] + spr["proposal"]), 1),
        "params": int(sum(p.numel() for p in model.parameters())),
        "render_640x360": render,
        "render_640x360_fast": render_fast,
    }


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="smoke run: few steps, render fractions 1/8 (grid) and 1/256 (mlp), extrapolated")
    p.add_argument("--fields", default="grid,mlp")
    p.add_argument("--batch_size", type=int, default=1024)
    p.add_argument("--warmup", type=int, default=5, help="grid warm-up steps")
    p.add_argument("--steps", type=int, default=20, help="grid timed steps")
    p.add_argument("--mlp_warmup", type=int, default=2)
    p.add_argument("--mlp_steps", type=int, default=5)
    p.add_argument("--mlp_render_fraction", type=float, default=1 / 16)
    p.add_argument("--grid_render_fraction", type=float, default=1.0)
    p.add_argument("--chunk", type=int, default=4096, help="rays per forward pass when rendering")
    p.add_argument("--render_repeats", type=int, default=3, help="grid frames rendered per renderer (median)")
    p.add_argument("--devices", default="", help="comma list (default: cpu, and cuda when present)")
    p.add_argument("--grid_threads", default="0,1",
                   help="CPU intra-op thread counts to measure the grid with (0: torch's default, which the "
                        "trainer uses); the mlp is measured with the default only")
    args = p.parse_args(argv)
    if args.quick:
        args.warmup, args.steps, args.mlp_warmup, args.mlp_steps, args.render_repeats = 2, 3, 1, 1, 1
        args.mlp_render_fraction = min(args.mlp_render_fraction, 1 / 256)
        args.grid_render_fraction = min(args.grid_render_fraction, 1 / 8)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.time()
    rows = []
    for device in (args.devices.split(",") if args.devices else devices()):
        for field_name in args.fields.split(","):
            counts = [int(t) for t in args.grid_threads.split(",")] if field_name == "grid" else [0]
            for threads in (counts if device == "cpu" else [0]):
                row = measure(field_name, device, args, threads)
                row["threads_setting"] = "default" if threads == 0 else threads
                rows.append(row)
    table = [[r["field"], r["device"], str(r["threads"]), fmt(r["step_seconds_median"], 4), fmt(r["rays_per_s"], 0),
              fmt(r["samples_per_s"], 0), fmt(r["samples_per_s_incl_proposal"], 0),
              fmt(r["render_640x360"]["seconds_per_frame"], 2) + (" (extrap.)" if r["render_640x360"]["extrapolated"]
                                                                 else ""),
              fmt(r["render_640x360_fast"]["seconds_per_frame"], 2) if r["render_640x360_fast"] else "-"]
             for r in rows]
    log(format_table(table, ["field", "device", "threads", "s/step", "rays/s", "samples/s", "incl. proposal",
                             "s per 640x360 (full)", "(fast)"]))
    notes = ["samples = rays x points evaluated by the scene network(s) per ray (see samples_per_ray_*)",
             "render: mlp time extrapolated from a fraction of the frame's rays when 'extrapolated' is true"]
    path = write_result("throughput", {"runs": rows}, vars(args), notes, started)
    log(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
