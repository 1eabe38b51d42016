"""`nerfw eval`: honest held-out metrics with the NeRF-W appearance protocol.

Protocol (NeRF-W, Sec. 6; as NerfBaselines implements it): a held-out image has no trained appearance
embedding, so one is optimised on the image's left part (columns [0, W - W//2)) with the model frozen and the
transient head off, and PSNR/SSIM are computed on the right half (columns [W//2, W)) only. Alternatives:
``--appearance mean`` (mean training embedding), ``nearest`` (embedding of the nearest training camera),
``zero``; those score the whole image. The protocol used is written into metrics.json.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from nerfw.errors import ConfigError
from nerfw.evaluation import metrics
from nerfw.evaluation.figures import labelled_panel, plot_training
from nerfw.model.appearance_fit import (
    ColourCache,
    FitOptions,
    fit_appearance,
    left_part,
    lens_defined,
    resolve_fit_method,
    scored_part,
)
from nerfw.model.view_rendering import camera_rays_model, colorize, render_camera
from nerfw.synthetic import GroundTruth

PROTOCOLS = {
    "fit_left_half": "NeRF-W: appearance embedding optimised on the left part (width W - W//2) of each held-out "
                     "image with the model frozen and the transient head off; PSNR/SSIM on the right half "
                     "(columns W//2..W)",
    "mean": "mean training appearance embedding, transient head off, whole image scored",
    "nearest": "appearance embedding of the nearest training camera, transient head off, whole image scored",
    "zero": "zero appearance embedding, transient head off, whole image scored",
}


def load_image(path: Path, width: int, height: int) -> np.ndarray:
    """Ground-truth image as float [H, W, 3] in [0, 1], resized like the training cache."""
    with Image.open(path) as im:
        im = im.convert("RGB")
        if im.size != (width, height):
            im = im.resize((width, height), Image.LANCZOS)
        return np.asarray(im, dtype=np.float32) / 255.0


def nearest_train_id(run, camera) -> int:
    train = [i for i, c in enumerate(run.scene.cameras) if c.split == "train"]
    dists = [np.linalg.norm(run.scene.cameras[i].center - camera.center) for i in train]
    return train[int(np.argmin(dists))]


def appearance_for(run, camera, image_id: int, gt: np.ndarray, mode: str, fit: FitOptions | None = None):
    """The appearance a held-out image is rendered with under protocol ``mode`` (see PROTOCOLS)."""
    model = run.model
    if mode == "mean":
        return model.appearance_vector(mean=True)
    if mode == "zero":
        return torch.zeros_like(model.appearance_vector(mean=True))
    if mode == "nearest":
        return model.appearance_vector(image_id=nearest_train_id(run, camera))
    return fit_appearance(model, camera, run.normalization, gt, image_id, model.appearance_vector(mean=True), fit)


def image_outputs(per_ray: dict[str, torch.Tensor], camera, normalization) -> dict:
    """Per-ray outputs (RenderOutput names, row-major pixels) -> the images render_camera returns."""
    H, W = camera.height, camera.width
    img = lambda t: t.detach().float().reshape(H, W, -1).cpu().numpy()  # noqa: E731
    result = {"rgb": img(per_ray["rgb"]), "rgb_static": img(per_ray["rgb_static"]),
              "rgb_transient": img(per_ray["rgb_transient"]),
              "depth": img(per_ray["depth_median"])[..., 0] / normalization.scale,
              "depth_expected": img(per_ray["depth"])[..., 0] / normalization.scale,
              "opacity": img(per_ray["opacity"])[..., 0], "beta": img(per_ray["beta"])[..., 0],
              "transient_opacity": img(per_ray["transient_opacity"])[..., 0]}
    result["depth_vis"] = colorize(result["depth"])
    result["beta_vis"] = colorize(result["beta"])
    return result


def fit_and_render(run, camera, image_id: int, gt: np.ndarray, chunk: int, fit: FitOptions | None = None):
    """The NeRF-W protocol for one image with the cached fit: the left part (columns [0, W - W//2)) is rendered
    once into a ColourCache and the appearance fitted on it through the colour head; then the scored columns
    [W//2, W) are rendered by the model with the fitted appearance and the unscored ones [0, W//2) composited
    from the cache. Every pixel's geometry is computed once. Returns (appearance, render_camera-like images)."""
    model = run.model
    device = next(model.parameters()).device
    o, d, near, far = camera_rays_model(camera, run.normalization, device)
    left = left_part(camera).to(device)
    cache = ColourCache.build(model, o[left], d[left], near[left], far[left], image_id, chunk)
    vec = fit_appearance(model, camera, run.normalization, gt, image_id, model.appearance_vector(mean=True), fit,
                         cache=cache)
    scored = scored_part(camera).to(device)
    ids = torch.full((len(scored),), image_id, dtype=torch.long, device=device)
    out = model.render_chunked(o[scored], d[scored], near[scored], far[scored], ids, chunk=chunk, appearance=vec,
                               use_transient=False, perturb=False)
    from_cache = cache.render(vec)
    per_ray = {}
    for name, value in from_cache.items():
        full = torch.empty((len(o),) + value.shape[1:], dtype=value.dtype, device=device)
        full[left] = value
        full[scored] = getattr(out, name).to(value.dtype)  # the scored columns: the model's own rendering
        per_ray[name] = full
    return vec, image_outputs(per_ray, camera, run.normalization)


def panel(gt: np.ndarray, out: dict, psnr: float | None = None) -> np.ndarray:
    """ground truth | render | static | transient | depth | beta, each named in a strip above it (the render with
    the image's PSNR), as uint8 [H + strip, 6W, 3] (nerfw.evaluation.figures.labelled_panel)."""

    tiles = [gt, out["rgb"], out["rgb_static"], out["rgb_transient"], out["depth_vis"], out["beta_vis"]]
    return labelled_panel(tiles, psnr=psnr)


def default_chunk(device) -> int:
    """Rays per forward pass: small on the CPU (the per-chunk tensors stay in cache; 2-3x faster than 8192
    there), large on a GPU. Results do not depend on it."""
    return 1024 if torch.device(device).type == "cpu" else 8192


def score_image(run, image_id: int, camera, mode: str, fit: FitOptions,
                chunk: int) -> tuple[dict, np.ndarray, dict, str | None]:
    """One held-out image under protocol ``mode`` -> (its row {name, psnr, ssim}, the ground truth, the
    render_camera-like images, the fit method used or None). The NeRF-W protocol scores the right half only."""
    gt = load_image(camera.image_path, camera.width, camera.height)
    method = resolve_fit_method(run.model, camera, fit.method, fit.max_cache_mb) if mode == "fit_left_half" else None
    if method == "cached":
        _, out = fit_and_render(run, camera, image_id, gt, chunk, fit)
    else:
        vec = appearance_for(run, camera, image_id, gt, mode, dataclasses.replace(fit, method="full"))
        out = render_camera(run.model, camera, run.normalization, chunk, appearance=vec, image_id=image_id)
    scored = slice(camera.width // 2, None) if mode == "fit_left_half" else slice(None)
    defined = lens_defined(camera)
    defined = None if defined is None else defined.numpy().reshape(camera.height, camera.width)[:, scored]
    row = {"name": camera.name, **scores(out["rgb"][:, scored], gt[:, scored], defined)}
    return row, gt, out, method


def scores(image: np.ndarray, gt: np.ndarray, defined: np.ndarray | None) -> dict:
    """PSNR and SSIM of a render against its photo, over the pixels that have a ray (defined [H, W] bool, None:
    all). Pixels outside a folding lens's domain are left out of the PSNR and, for the SSIM windows, take the same
    colour in render and photo (the photo's mean over the pixels with a ray); their count is reported."""
    if defined is None or defined.all():
        return {"psnr": metrics.psnr(image, gt), "ssim": metrics.ssim(image, gt)}
    fill = gt[defined].mean(axis=0)
    same = ~defined[..., None]
    ssim = metrics.ssim(np.where(same, fill, image), np.where(same, fill, gt))
    return {"psnr": metrics.psnr(image[defined], gt[defined]), "ssim": ssim,
            "pixels_without_ray": int((~defined).sum())}


def protocol_record(run, split: str, mode: str, fit: FitOptions, methods: set) -> dict:
    """What metrics.json says about how the scores were made."""
    protocol = {"appearance": mode, "description": PROTOCOLS[mode], "split": split, "fit_steps": fit.steps,
                "transient_head": "off", "checkpoint": str(run.checkpoint), "step": run.step}
    if mode == "fit_left_half":
        protocol["fit_method"] = "+".join(sorted(methods))
        protocol["fit_rays_per_step"] = fit.rays_per_step
    return protocol


def write_metrics(out_dir: Path, result: dict, rows: list[dict]) -> None:
    (out_dir / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    with open(out_dir / "metrics.csv", "w", newline="") as fh:
        extra = ["pixels_without_ray"] if any("pixels_without_ray" in r for r in rows) else []
        writer = csv.DictWriter(fh, fieldnames=["name", "psnr", "ssim", *extra])
        writer.writeheader()
        writer.writerows(rows)


def evaluate(run, split: str = "test", mode: str = "fit_left_half", fit: FitOptions | None = None, chunk: int = 0,
             out_dir: Path | None = None, max_images: int = 0, write_panels: bool = True, log=print) -> dict:
    """Score every image of a split; write metrics.json, metrics.csv and panels. Returns the metrics dict.

    fit (fit_left_half only; default FitOptions()): with method "cached" the appearance is fitted through the
    colour head on cached geometry and each pixel's geometry rendered once (fit_and_render); "full" is the
    reference (every fit step through the whole model, then the whole image rendered again); "auto" is cached
    where it applies (ColourCache.nbytes within max_cache_mb). chunk 0: default_chunk of the model's device."""
    fit = fit or FitOptions()
    chunk = chunk if chunk > 0 else default_chunk(next(run.model.parameters()).device)
    cameras = [(i, c) for i, c in enumerate(run.scene.cameras) if c.split == split]
    if not cameras:
        raise ConfigError(f"the dataset has no '{split}' images (splits: {run.scene.split_counts()})")
    cameras = cameras[:max_images] if max_images > 0 else cameras
    out_dir = Path(out_dir or run.run_dir / "eval" / split)
    (out_dir / "panels").mkdir(parents=True, exist_ok=True)
    rows, methods = [], set()
    started = time.perf_counter()
    for image_id, camera in cameras:
        row, gt, out, method = score_image(run, image_id, camera, mode, fit, chunk)
        rows.append(row)
        methods |= {method} - {None}
        log(f"{camera.name}: PSNR {row['psnr']:.2f} dB, SSIM {row['ssim']:.4f}")
        if write_panels:
            target = out_dir / "panels" / (Path(camera.name).with_suffix(".png"))
            target.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(panel(gt, out, row["psnr"])).save(target)
    result = {
        "psnr": float(np.mean([r["psnr"] for r in rows])),
        "ssim": float(np.mean([r["ssim"] for r in rows])),
        "lpips": None,  # no offline LPIPS weights: reported as unavailable, never estimated
        "protocol": protocol_record(run, split, mode, fit, methods),
        "per_image": rows,
    }
    without_ray = sum(r.get("pixels_without_ray", 0) for r in rows)
    if without_ray:  # a lens model that folds inside the images: those pixels have no ray and are not scored
        result["pixels_without_ray"] = without_ray
        log(f"{without_ray} scored pixels lie outside their lens model's domain (no ray): left out of PSNR/SSIM")
    seconds = {"split": time.perf_counter() - started}  # wall time: fits, renders, scores and panels
    started = time.perf_counter()
    groundtruth = synthetic_ground_truth_scores(run, chunk, log)
    if groundtruth is not None:
        result["synthetic_ground_truth"] = groundtruth
        seconds["ground_truth"] = time.perf_counter() - started  # the built-in scene's 6 extra renders
    result["seconds"] = seconds
    training = Path(run.run_dir) / "train_summary.json"
    if training.is_file():  # how much of the training pixels the run explained as transient (its last log window)
        summary = json.loads(training.read_text())
        result["training"] = {k: summary.get(k) for k in ("step", "train_psnr", "transient_share", "transient_pixels")}
    if write_panels:  # and a plot of how training went, with this split's PSNR per image
        plot = plot_training(Path(run.run_dir) / "loss_log.txt", rows, out_dir / "plots.png", run.step, split)
        result["figures"] = {"panels": str(out_dir / "panels"), "plot": str(plot)}
    write_metrics(out_dir, result, rows)
    return result


def ground_truth_dir(run) -> Path | None:
    """The built-in scene's ground truth lies beside the dataset: <scene folder>.groundtruth."""
    root = Path(run.scene.root)
    candidate = root.parent / f"{root.name}.groundtruth"
    return candidate if candidate.is_dir() else None


def synthetic_ground_truth_scores(run, chunk: int, log, max_images: int = 6) -> dict | None:
    """On a built-in scene: static render of training images with transients vs the clean ground truth, and
    transient-mask IoU (transient opacity > 0.5 vs the generator's mask)."""
    gt_dir = ground_truth_dir(run)
    if gt_dir is None:
        return None

    truth = GroundTruth.load(gt_dir)
    static_psnr, ious = [], []
    for image_id, camera in enumerate(run.scene.cameras):
        name = camera.name
        if not (gt_dir / "masks" / Path(name).with_suffix(".png")).is_file():
            name = Path(name).name  # the scene re-packed with its images in a folder (LLFF: images/IMG_0001.jpg)
        mask_path = gt_dir / "masks" / Path(name).with_suffix(".png")
        if camera.split != "train" or not mask_path.is_file() or len(static_psnr) >= max_images:
            continue
        with Image.open(mask_path) as m:
            mask = np.asarray(m.convert("L").resize((camera.width, camera.height), Image.NEAREST)) > 127
        if not mask.any():
            continue
        clean = truth.render(camera.T_world_cam, camera.fx, camera.fy, camera.cx, camera.cy, camera.width,
                             camera.height, appearance=truth.appearance(name),
                             distortion=camera.distortion)["rgb"]  # through the image's lens, as rendered
        out = render_camera(run.model, camera, run.normalization, chunk,
                            appearance=run.model.appearance_vector(image_id=image_id), image_id=image_id,
                            use_transient=True)
        static_psnr.append(metrics.psnr(out["rgb_static"], clean))
        if "transient_opacity" in out:
            iou = metrics.mask_iou(out["transient_opacity"] > 0.5, mask)
            if iou is not None:
                ious.append(iou)
    if not static_psnr:
        return None
    result = {"static_vs_clean_psnr": float(np.mean(static_psnr)), "n_images": len(static_psnr),
              "transient_mask_iou": float(np.mean(ious)) if ious else None}
    log(f"built-in scene: static render vs clean ground truth {result['static_vs_clean_psnr']:.2f} dB, "
        f"transient mask IoU {result['transient_mask_iou']}")
    return result


def cpu_threads() -> int:
    """$OMP_NUM_THREADS if set, else the cores other processes leave idle, at least 1.

    On a small CPU shared with other jobs, intra-op threads that wait for a busy core make every operation
    several times slower (2 threads on a 2-core machine at load 10: 3-6x the wall time of 1 thread for the
    same render). Idle cores are measured over a short window (idle_cores); the 1-minute load average, used
    where /proc/stat is missing, lags: just after a training run it still reads ~2 on an idle 2-core machine,
    and eval then ran on one thread (107 s instead of 74 s on the landmark). Results do not depend on it beyond
    float rounding."""
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    idle = idle_cores(cores)
    if idle is None:
        idle = len(cores) - os.getloadavg()[0]
    return max(1, min(len(cores), int(idle + 0.5)))


def read_cpu_times(path: str = "/proc/stat") -> dict[str, tuple[int, int]]:
    """{"cpu": (idle, total), "cpu0": ..., ...} in clock ticks from a Linux /proc/stat. Idle counts idle and
    iowait; total counts user .. steal (guest time is already inside user)."""
    times = {}
    with open(path) as f:
        for line in f:
            if not line.startswith("cpu"):
                break
            name, *fields = line.split()
            ticks = [int(x) for x in fields[:8]]
            times[name] = (ticks[3] + ticks[4], sum(ticks))
    return times


def idle_share(before: dict, after: dict, cores: list[int]) -> float | None:
    """Idle cores among ``cores`` between two read_cpu_times samples: the sum of each core's idle fraction (the
    all-CPU line scaled to len(cores) where a core's own line is missing). None when no time passed."""
    def fraction(name):
        if name not in before or name not in after:
            return None
        total = after[name][1] - before[name][1]
        return (after[name][0] - before[name][0]) / total if total > 0 else None

    own = [fraction(f"cpu{c}") for c in cores]
    if all(f is not None for f in own):
        return float(sum(own))
    whole = fraction("cpu")
    return None if whole is None else whole * len(cores)


def idle_cores(cores: list[int], window_s: float = 0.25) -> float | None:
    """Cores among ``cores`` left idle by other processes, measured over window_s seconds; None off Linux."""
    try:
        before = read_cpu_times()
        time.sleep(window_s)
        return idle_share(before, read_cpu_times(), cores)
    except (OSError, ValueError, IndexError):
        return None


