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
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from nerfw.errors import ConfigError
from nerfw.tools import metrics
from nerfw.tools.rendering import camera_rays_model, render_camera

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


def fit_appearance(model, camera, normalization, gt: np.ndarray, image_id: int, init: torch.Tensor,
                   steps: int = 100, lr: float = 0.05, rays_per_step: int = 1024, seed: int = 0) -> torch.Tensor:
    """Optimise an appearance vector on the left part of an image (columns [0, W - W//2)). Returns [a_dim]."""
    device = next(model.parameters()).device
    W, H = camera.width, camera.height
    o, d, near, far = camera_rays_model(camera, normalization, device)
    cols = torch.arange(W * H, device=device) % W
    left = torch.nonzero(cols < W - W // 2).squeeze(-1)
    target = torch.as_tensor(gt.reshape(-1, 3), device=device)
    vec = torch.nn.Parameter(init.detach().clone().to(device))
    optimizer = torch.optim.Adam([vec], lr=lr)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    frozen = [p for p in model.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    was_training = model.training
    model.eval()
    try:
        for _ in range(steps):
            pick = left[torch.randint(len(left), (min(rays_per_step, len(left)),), generator=generator).to(device)]
            ids = torch.full((len(pick),), image_id, dtype=torch.long, device=device)
            out = model(o[pick], d[pick], near[pick], far[pick], ids, appearance=vec, use_transient=False,
                        perturb=False)
            loss = torch.mean((out.rgb - target[pick]) ** 2)
            optimizer.zero_grad()
            loss.backward()
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


def appearance_for(run, camera, image_id: int, gt: np.ndarray, mode: str, fit_steps: int):
    model = run.model
    if mode == "mean":
        return model.appearance_vector(mean=True)
    if mode == "zero":
        return torch.zeros_like(model.appearance_vector(mean=True))
    if mode == "nearest":
        return model.appearance_vector(image_id=nearest_train_id(run, camera))
    return fit_appearance(model, camera, run.normalization, gt, image_id, model.appearance_vector(mean=True),
                          steps=fit_steps)


def panel(gt: np.ndarray, out: dict) -> np.ndarray:
    """ground truth | render | static | transient | depth | beta, as uint8 [H, 6W, 3]."""
    tiles = [gt, out["rgb"], out["rgb_static"], out["rgb_transient"], out["depth_vis"], out["beta_vis"]]
    return (np.clip(np.concatenate(tiles, axis=1), 0, 1) * 255 + 0.5).astype(np.uint8)


def evaluate(run, split: str = "test", mode: str = "fit_left_half", fit_steps: int = 100, chunk: int = 4096,
             out_dir: Path | None = None, max_images: int = 0, write_panels: bool = True, log=print) -> dict:
    """Score every image of a split; write metrics.json, metrics.csv and panels. Returns the metrics dict."""
    cameras = [(i, c) for i, c in enumerate(run.scene.cameras) if c.split == split]
    if not cameras:
        raise ConfigError(f"the dataset has no '{split}' images (splits: {run.scene.split_counts()})")
    if max_images > 0:
        cameras = cameras[:max_images]
    out_dir = Path(out_dir or run.run_dir / "eval" / split)
    (out_dir / "panels").mkdir(parents=True, exist_ok=True)
    rows = []
    for image_id, camera in cameras:
        gt = load_image(camera.image_path, camera.width, camera.height)
        vec = appearance_for(run, camera, image_id, gt, mode, fit_steps)
        out = render_camera(run.model, camera, run.normalization, chunk, appearance=vec, image_id=image_id)
        scored = slice(camera.width // 2, None) if mode == "fit_left_half" else slice(None)
        rows.append({"name": camera.name, "psnr": metrics.psnr(out["rgb"][:, scored], gt[:, scored]),
                     "ssim": metrics.ssim(out["rgb"][:, scored], gt[:, scored])})
        log(f"{camera.name}: PSNR {rows[-1]['psnr']:.2f} dB, SSIM {rows[-1]['ssim']:.4f}")
        if write_panels:
            target = out_dir / "panels" / (Path(camera.name).with_suffix(".png"))
            target.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(panel(gt, out)).save(target)
    result = {
        "psnr": float(np.mean([r["psnr"] for r in rows])),
        "ssim": float(np.mean([r["ssim"] for r in rows])),
        "lpips": None,  # no offline LPIPS weights: reported as unavailable, never estimated
        "protocol": {"appearance": mode, "description": PROTOCOLS[mode], "split": split, "fit_steps": fit_steps,
                     "transient_head": "off", "checkpoint": str(run.checkpoint), "step": run.step},
        "per_image": rows,
    }
    groundtruth = synthetic_ground_truth_scores(run, chunk, log)
    if groundtruth is not None:
        result["synthetic_ground_truth"] = groundtruth
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
        mask_path = gt_dir / "masks" / Path(camera.name).with_suffix(".png")
        if camera.split != "train" or not mask_path.is_file() or len(static_psnr) >= max_images:
            continue
        with Image.open(mask_path) as m:
            mask = np.asarray(m.convert("L").resize((camera.width, camera.height), Image.NEAREST)) > 127
        if not mask.any():
            continue
        clean = truth.render(camera.T_world_cam, camera.fx, camera.fy, camera.cx, camera.cy, camera.width,
                             camera.height, appearance=truth.appearance(camera.name))["rgb"]
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


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="nerfw eval", description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, help="run folder (<root_dir>/<exp_name>)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--appearance", default="fit_left_half", choices=sorted(PROTOCOLS),
                        help="how held-out images get an appearance (default: the NeRF-W protocol)")
    parser.add_argument("--fit_steps", type=int, default=100, help="Adam steps of the left-half fit")
    parser.add_argument("--chunk", type=int, default=8192)
    parser.add_argument("--max_images", type=int, default=0, help="score only the first N images (0: all)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default="", help="output folder (default <run>/eval/<split>)")
    args = parser.parse_args(argv)
    from nerfw.tools.run_io import load_run

    run = load_run(args.run, device=args.device)
    result = evaluate(run, args.split, args.appearance, args.fit_steps, args.chunk,
                      Path(args.out) if args.out else None, args.max_images)
    print(f"{args.split}: PSNR {result['psnr']:.2f} dB, SSIM {result['ssim']:.4f} ({args.appearance}); "
          f"LPIPS unavailable offline")
    return 0
