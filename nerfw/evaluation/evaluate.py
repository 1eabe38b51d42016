"""`nerfw eval`: honest held-out metrics with the NeRF-W appearance protocol.

Protocol (NeRF-W, Sec. 6; as NerfBaselines implements it): a held-out image has no trained appearance
embedding, so one is optimised on the image's left part (columns [0, W - W//2)) with the model frozen and the
transient head off, and PSNR/SSIM are computed on the right half (columns [W//2, W)) only. Alternatives:
``--appearance mean`` (mean training embedding), ``nearest`` (embedding of the nearest training camera),
``zero``; those score the whole image. The protocol used is written into metrics.json.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from nerfw.errors import ConfigError
from nerfw.tools import metrics
from nerfw.tools.rendering import camera_rays_model, colorize, render_camera

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


# ----------------------------------------------------------------------------- the appearance fit
#
# The appearance embedding enters only the static colour head: with the transient head off, the sample positions
# (stratified / proposal / importance sampling from densities), the densities, the compositing weights, the
# per-sample features fed to the colour head and the view directions are all independent of it. A ray's colour
# is  rest + sum_i w_i sigmoid(colour_mlp(feat_i, [a, PE(d)]))  where rest (the background term) does not
# depend on it either. ColourCache holds those appearance-independent parts for a set of rays, so the fit runs
# the density network and samplers once per ray and then optimises the embedding through the colour head only.


def colour_heads(model):
    """The NeRF-W heads that colour the final samples (grid: the field's; mlp: the last fine network's), or None
    when the cached fit does not apply (no appearance embedding, or heads of another kind)."""
    from nerfw.fields.heads import ConditionedMLP, NeRFWHeads
    from nerfw.model.nerfw_model import GridRenderer, MLPRenderer

    renderer = getattr(model, "renderer", None)
    if isinstance(renderer, GridRenderer):
        heads = renderer.field.heads
    elif isinstance(renderer, MLPRenderer):
        heads = renderer.nets[-1].heads
    else:
        return None
    ok = (isinstance(heads, NeRFWHeads) and heads.appearance is not None and isinstance(heads.color, ConditionedMLP)
          and heads.color.first_cond is not None)
    return heads if ok else None


class ColourCache:
    """Appearance-independent parts of rendering ``n`` rays with the transient head off (see above).

    feat [n, S, F] (or the colour head's first layer applied to it, [n, S, hidden], whichever is narrower),
    weights [n, S], dir_enc [n, C] the encoded view directions, rest [n, 3] the colour coming neither from the
    samples nor from the sky (a constant background), and the per-ray outputs that do not depend on the
    appearance (depths, opacity, beta). With a sky head (whose colour depends on the appearance too) also
    sky_dirs [n, 3] and sky_weight [n, 1], the light the samples let through to it.
    """

    def __init__(self, heads, feat, first_applied: bool, weights, dir_enc, rest, outputs: dict, sky=None,
                 sky_dirs=None, sky_weight=None):
        self.heads, self.feat, self.first_applied = heads, feat, first_applied
        self.weights, self.dir_enc, self.rest, self.outputs = weights, dir_enc, rest, outputs
        self.sky, self.sky_dirs, self.sky_weight = sky, sky_dirs, sky_weight  # sky: the field's sky head or None

    def __len__(self) -> int:
        return self.weights.shape[0]

    @classmethod
    @torch.no_grad()
    def build(cls, model, o, d, near, far, image_id: int, chunk: int = 4096) -> "ColourCache":
        """Run the model once over the rays (no gradients, transient head off) and keep what the colour needs."""
        from nerfw.fields.encodings import positional_encoding
        from nerfw.rendering.compositing import composite

        heads = colour_heads(model)
        if heads is None:
            raise ValueError("the cached appearance fit needs a grid or mlp NeRF-W field with appearance embeddings")
        color = heads.color
        first_applied = color.first.out_features < color.first.in_features  # keep the narrower of the two
        field = getattr(getattr(model, "renderer", None), "field", None)
        sky = getattr(field, "sky", None)  # the grid field's sky head, when it has one
        seen: list[tuple] = []
        hook = heads.register_forward_hook(lambda _m, args, out: seen.append((args[0], args[1], out.rgb)))
        parts: dict[str, list[torch.Tensor]] = {}
        was_training = model.training
        model.eval()
        try:
            probe = model.appearance_vector(mean=True)
            for i in range(0, len(o), chunk):
                sl = slice(i, i + chunk)
                seen.clear()
                ids = torch.full((len(o[sl]),), int(image_id), dtype=torch.long, device=o.device)
                out = model(o[sl], d[sl], near[sl], far[sl], ids, appearance=probe, use_transient=False, perturb=False)
                if len(seen) != 1 or out.weights is None or out.weights.shape != seen[0][2].shape[:2]:
                    raise ValueError("the colour heads did not colour the final samples exactly once: "
                                     "the cached fit does not apply to this model")
                feat, dirs, rgb_samples = seen[0]
                rest = out.rgb - composite(out.weights, rgb_samples)
                if sky is not None:  # behind the samples: sky(dirs, appearance) x the light let through
                    sky_weight = 1 - out.opacity[:, None]
                    rest = rest - sky_weight * field.sky_color(dirs, ids, probe)
                    parts.setdefault("sky_dirs", []).append(dirs.float())
                    parts.setdefault("sky_weight", []).append(sky_weight.float())
                for name, value in (("feat", color.first(feat) if first_applied else feat),
                                    ("weights", out.weights), ("dir_enc", positional_encoding(dirs, heads.n_dir_freq)),
                                    ("rest", rest),
                                    ("depth", out.depth), ("depth_median", out.depth_median), ("opacity", out.opacity),
                                    ("beta", out.beta), ("transient_opacity", out.transient_opacity)):
                    parts.setdefault(name, []).append(value.float() if name != "feat" else value)
        finally:
            hook.remove()
            model.train(was_training)
        cat = {name: torch.cat(values) for name, values in parts.items()}
        outputs = {name: cat.pop(name) for name in ("depth", "depth_median", "opacity", "beta", "transient_opacity")}
        return cls(heads, cat["feat"], first_applied, cat["weights"], cat["dir_enc"], cat["rest"], outputs, sky,
                   cat.get("sky_dirs"), cat.get("sky_weight"))

    def rgb(self, appearance: torch.Tensor, rays: torch.Tensor | slice = slice(None)) -> torch.Tensor:
        """Rendered colour [m, 3] of the cached rays ``rays`` (indices into the cache) for an appearance [a_dim]:
        differentiable in the appearance, exactly the model's colour computation on the cached samples."""
        color, feat = self.heads.color, self.feat[rays]
        n = feat.shape[0]
        codes = self.heads.appearance_codes(torch.zeros(n, dtype=torch.long, device=feat.device), appearance)
        cond = torch.cat([codes, self.dir_enc[rays]], dim=-1)  # [n, a_dim + C], as NeRFWHeads.forward
        h = (feat if self.first_applied else color.first(feat)) + color.first_cond(cond)[:, None, :]
        samples = torch.sigmoid(color.rest(h))  # [n, S, 3]
        rgb = self.rest[rays] + torch.einsum("rs,rsc->rc", self.weights[rays], samples)
        if self.sky is not None:
            rgb = rgb + self.sky_weight[rays] * self.sky(self.sky_dirs[rays], codes)
        return rgb

    @torch.no_grad()
    def render(self, appearance: torch.Tensor, chunk: int = 1024) -> dict[str, torch.Tensor]:
        """Every cached ray's per-ray outputs (as RenderOutput names) for an appearance, without gradients."""
        rgb = torch.cat([self.rgb(appearance, slice(i, i + chunk)) for i in range(0, len(self), chunk)])
        return {"rgb": rgb, "rgb_static": rgb, "rgb_transient": torch.zeros_like(rgb), **self.outputs}

    @staticmethod
    def nbytes(model, n_rays: int) -> int | None:
        """Memory of the cache for n_rays rays (float32), or None when the cached fit does not apply."""
        heads = colour_heads(model)
        if heads is None:
            return None
        cfg = model.cfg
        samples = cfg.grid_samples if cfg.field == "grid" else cfg.N_c + cfg.N_f * cfg.n_fine
        width = min(heads.color.first.in_features, heads.color.first.out_features)
        return 4 * n_rays * samples * (width + 1)


# Left-part pixels per Adam step of the appearance fit. 512 instead of 1024 (until 2026-12-03): half the fit's
# cost; the scores are the same within the spread of the pixel draws (3 seeds each, mean right-half PSNR of the
# 10 test images; 1024 vs 512: landmark 22.15-22.20 vs 22.11-22.19, fox 26.39-26.40 vs 26.38-26.41 dB,
# docs/benchmarks.md "Eval speed").
FIT_RAYS = 512
CPU_PIECE = 256  # rays per forward/backward of the cached fit on the CPU (~1.3x faster than 1024 at once)
MAX_CACHE_MB = 4096.0  # "auto" falls back to the reference fit when the left part's cache would exceed this


def resolve_fit_method(model, camera, method: str, max_cache_mb: float = MAX_CACHE_MB) -> str:
    """Resolve "auto": "cached" when the field has the heads the cache needs and the cache of the image's left part
    fits in max_cache_mb, else "full"; "cached" and "full" as given."""
    if method not in ("auto", "cached", "full"):
        raise ValueError(f"fit method must be auto, cached or full, got {method!r}")
    if method != "auto":
        return method
    size = ColourCache.nbytes(model, camera.height * (camera.width - camera.width // 2))
    return "cached" if size is not None and size <= max_cache_mb * 2**20 else "full"


def pixel_columns(camera) -> torch.Tensor:
    """Column index of every pixel of the camera's image, row-major: [W H]."""
    return torch.arange(camera.width * camera.height) % camera.width


def left_part(camera) -> torch.Tensor:
    """Pixel indices (row-major) of the columns [0, W - W//2) on which the appearance is fitted."""
    return torch.nonzero(pixel_columns(camera) < camera.width - camera.width // 2).squeeze(-1)


def scored_part(camera) -> torch.Tensor:
    """Pixel indices (row-major) of the columns [W//2, W) on which the NeRF-W protocol scores."""
    return torch.nonzero(pixel_columns(camera) >= camera.width // 2).squeeze(-1)


def fit_appearance(model, camera, normalization, gt: np.ndarray, image_id: int, init: torch.Tensor,
                   steps: int = 100, lr: float = 0.05, rays_per_step: int = FIT_RAYS, seed: int = 0,
                   method: str = "auto", cache: ColourCache | None = None, chunk: int = 4096,
                   max_cache_mb: float = MAX_CACHE_MB) -> torch.Tensor:
    """Optimise an appearance vector on the left part of an image (columns [0, W - W//2)). Returns [a_dim].

    Adam, ``steps`` steps of ``rays_per_step`` left-part pixels drawn with replacement from a generator seeded
    with ``seed``; model frozen, transient head off. method "cached" renders the geometry of the left part once
    (ColourCache; ``cache`` may pass one already built over the left-part pixels in left_part() order) and
    optimises through the colour head only; "full" renders every drawn ray through the whole model at every step
    (the reference). Both draw the same pixels and optimise the same function. "auto": cached when the model
    has such heads and the cache fits in ``max_cache_mb``."""
    device = next(model.parameters()).device
    left = left_part(camera).to(device)
    method = "cached" if cache is not None else resolve_fit_method(model, camera, method, max_cache_mb)
    if colour_heads(model) is None and model.appearance_embedding is None:
        return init.detach().clone()  # no appearance embedding: nothing to fit
    o, d, near, far = camera_rays_model(camera, normalization, device)
    if method == "cached" and cache is None:
        cache = ColourCache.build(model, o[left], d[left], near[left], far[left], image_id, chunk)
    target = torch.as_tensor(gt.reshape(-1, 3), device=device)[left]
    vec = torch.nn.Parameter(init.detach().clone().to(device))
    optimizer = torch.optim.Adam([vec], lr=lr)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    piece = CPU_PIECE if device.type == "cpu" else rays_per_step  # on the CPU, pieces that stay in cache
    frozen = [p for p in model.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    was_training = model.training
    model.eval()
    try:
        for _ in range(steps):
            pick = torch.randint(len(left), (min(rays_per_step, len(left)),), generator=generator).to(device)
            optimizer.zero_grad()
            if method == "cached":  # the mean squared error over the pick, summed in pieces (same gradient)
                for i in range(0, len(pick), piece):
                    part = pick[i:i + piece]
                    (torch.sum((cache.rgb(vec, part) - target[part]) ** 2) / (3 * len(pick))).backward()
            else:
                rays = left[pick]
                ids = torch.full((len(pick),), image_id, dtype=torch.long, device=device)
                rgb = model(o[rays], d[rays], near[rays], far[rays], ids, appearance=vec, use_transient=False,
                            perturb=False).rgb
                torch.mean((rgb - target[pick]) ** 2).backward()
            optimizer.step()
    finally:
        for p in frozen:
            p.requires_grad_(True)
        model.train(was_training)
    return vec.detach()


def nearest_train_id(run, camera) -> int:
    train = [i for i, c in enumerate(run.scene.cameras) if c.split == "train"]
    dists = [np.linalg.norm(run.scene.cameras[i].center - camera.center) for i in train]
    return train[int(np.argmin(dists))]


def appearance_for(run, camera, image_id: int, gt: np.ndarray, mode: str, fit_steps: int, **fit_options):
    model = run.model
    if mode == "mean":
        return model.appearance_vector(mean=True)
    if mode == "zero":
        return torch.zeros_like(model.appearance_vector(mean=True))
    if mode == "nearest":
        return model.appearance_vector(image_id=nearest_train_id(run, camera))
    return fit_appearance(model, camera, run.normalization, gt, image_id, model.appearance_vector(mean=True),
                          steps=fit_steps, **fit_options)


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


def fit_and_render(run, camera, image_id: int, gt: np.ndarray, fit_steps: int, chunk: int, **fit_options):
    """The NeRF-W protocol for one image with the cached fit: the left part (columns [0, W - W//2)) is rendered
    once into a ColourCache and the appearance fitted on it through the colour head; then the scored columns
    [W//2, W) are rendered by the model with the fitted appearance and the unscored ones [0, W//2) composited
    from the cache. Every pixel's geometry is computed once. Returns (appearance, render_camera-like images)."""
    model = run.model
    device = next(model.parameters()).device
    o, d, near, far = camera_rays_model(camera, run.normalization, device)
    left = left_part(camera).to(device)
    cache = ColourCache.build(model, o[left], d[left], near[left], far[left], image_id, chunk)
    vec = fit_appearance(model, camera, run.normalization, gt, image_id, model.appearance_vector(mean=True),
                         steps=fit_steps, method="cached", cache=cache, **fit_options)
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
    the image's PSNR), as uint8 [H + strip, 6W, 3] (nerfw.tools.eval_figures.labelled_panel)."""
    from nerfw.tools.eval_figures import labelled_panel

    tiles = [gt, out["rgb"], out["rgb_static"], out["rgb_transient"], out["depth_vis"], out["beta_vis"]]
    return labelled_panel(tiles, psnr=psnr)


def default_chunk(device) -> int:
    """Rays per forward pass: small on the CPU (the per-chunk tensors stay in cache; 2-3x faster than 8192
    there), large on a GPU. Results do not depend on it."""
    return 1024 if torch.device(device).type == "cpu" else 8192


def evaluate(run, split: str = "test", mode: str = "fit_left_half", fit_steps: int = 100, chunk: int = 0,
             out_dir: Path | None = None, max_images: int = 0, write_panels: bool = True, log=print,
             fit_method: str = "auto", **fit_options) -> dict:
    """Score every image of a split; write metrics.json, metrics.csv and panels. Returns the metrics dict.

    fit_method (fit_left_half only): "cached" fits through the colour head on cached geometry and renders each
    pixel's geometry once (fit_and_render), "full" is the reference (every fit step through the whole model, then
    the whole image rendered again), "auto" cached where it applies (ColourCache.nbytes within max_cache_mb).
    chunk 0: default_chunk of the model's device."""
    chunk = chunk if chunk > 0 else default_chunk(next(run.model.parameters()).device)
    cameras = [(i, c) for i, c in enumerate(run.scene.cameras) if c.split == split]
    if not cameras:
        raise ConfigError(f"the dataset has no '{split}' images (splits: {run.scene.split_counts()})")
    if max_images > 0:
        cameras = cameras[:max_images]
    out_dir = Path(out_dir or run.run_dir / "eval" / split)
    (out_dir / "panels").mkdir(parents=True, exist_ok=True)
    rows, methods = [], set()
    started = time.perf_counter()
    for image_id, camera in cameras:
        gt = load_image(camera.image_path, camera.width, camera.height)
        method = None
        if mode == "fit_left_half":
            method = resolve_fit_method(run.model, camera, fit_method,
                                        fit_options.get("max_cache_mb", MAX_CACHE_MB))
            methods.add(method)
        if method == "cached":
            vec, out = fit_and_render(run, camera, image_id, gt, fit_steps, chunk, **fit_options)
        else:
            vec = appearance_for(run, camera, image_id, gt, mode, fit_steps, method="full", **fit_options) \
                if mode == "fit_left_half" else appearance_for(run, camera, image_id, gt, mode, fit_steps)
            out = render_camera(run.model, camera, run.normalization, chunk, appearance=vec, image_id=image_id)
        scored = slice(camera.width // 2, None) if mode == "fit_left_half" else slice(None)
        rows.append({"name": camera.name, "psnr": metrics.psnr(out["rgb"][:, scored], gt[:, scored]),
                     "ssim": metrics.ssim(out["rgb"][:, scored], gt[:, scored])})
        log(f"{camera.name}: PSNR {rows[-1]['psnr']:.2f} dB, SSIM {rows[-1]['ssim']:.4f}")
        if write_panels:
            target = out_dir / "panels" / (Path(camera.name).with_suffix(".png"))
            target.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(panel(gt, out, rows[-1]["psnr"])).save(target)
    protocol = {"appearance": mode, "description": PROTOCOLS[mode], "split": split, "fit_steps": fit_steps,
                "transient_head": "off", "checkpoint": str(run.checkpoint), "step": run.step}
    if mode == "fit_left_half":
        protocol["fit_method"] = "+".join(sorted(methods))
        protocol["fit_rays_per_step"] = fit_options.get("rays_per_step", FIT_RAYS)
    result = {
        "psnr": float(np.mean([r["psnr"] for r in rows])),
        "ssim": float(np.mean([r["ssim"] for r in rows])),
        "lpips": None,  # no offline LPIPS weights: reported as unavailable, never estimated
        "protocol": protocol,
        "per_image": rows,
    }
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
        from nerfw.tools.eval_figures import plot_training

        plot = plot_training(Path(run.run_dir) / "loss_log.txt", rows, out_dir / "plots.png", run.step, split)
        result["figures"] = {"panels": str(out_dir / "panels"), "plot": str(plot)}
    (out_dir / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    with open(out_dir / "metrics.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["name", "psnr", "ssim"])
        writer.writeheader()
        writer.writerows(rows)
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
    from nerfw.synthetic import GroundTruth

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


def build_parser() -> argparse.ArgumentParser:
    from nerfw.cli_args import Parser

    parser = Parser(prog="nerfw eval", description=__doc__)
    parser.add_argument("--run", required=True, help="run folder (<root_dir>/<exp_name>)")
    parser.add_argument("--split", default="test", help="the dataset split to score (test; train to check fitting)")
    parser.add_argument("--appearance", default="fit_left_half", choices=sorted(PROTOCOLS),
                        help="how held-out images get an appearance (default: the NeRF-W protocol)")
    parser.add_argument("--fit_steps", type=int, default=100, help="Adam steps of the left-half fit")
    parser.add_argument("--fit_rays", type=int, default=FIT_RAYS, help="left-part pixels drawn per fit step")
    parser.add_argument("--fit_method", default="auto", choices=["auto", "cached", "full"],
                        help="cached: render each pixel's geometry once and fit through the colour head only; "
                             "full: every fit step through the whole model (the reference, several times slower); "
                             "auto: cached where the field allows it")
    parser.add_argument("--chunk", type=int, default=0,
                        help="rays per forward pass, speed and memory only (0: 1024 on the CPU, 8192 on a GPU)")
    parser.add_argument("--max_images", type=int, default=0, help="score only the first N images (0: all)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N: where the model runs")
    parser.add_argument("--threads", type=int, default=0,
                        help="CPU threads (0: $OMP_NUM_THREADS if set, else the cores other processes leave idle)")
    parser.add_argument("--out", default="", help="output folder (default <run>/eval/<split>)")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.device == "cpu":
        torch.set_num_threads(args.threads if args.threads > 0 else cpu_threads())
    from nerfw.tools.run_io import load_run

    run = load_run(args.run, device=args.device)
    result = evaluate(run, args.split, args.appearance, args.fit_steps, args.chunk,
                      Path(args.out) if args.out else None, args.max_images, fit_method=args.fit_method,
                      rays_per_step=args.fit_rays)
    print(f"{args.split}: PSNR {result['psnr']:.2f} dB, SSIM {result['ssim']:.4f} ({args.appearance}); "
          f"LPIPS unavailable offline")
    figures = result.get("figures") or {}
    if figures:
        print(f"panels (ground truth | render | static | transient | depth | beta, labelled): {figures['panels']}")
        print(f"plot (training loss and PSNR over steps, {args.split} PSNR per image): {figures['plot']}")
    return 0
