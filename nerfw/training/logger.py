"""Progress bar, plain log, loss_log.txt and TensorBoard, all on rank 0 only."""
from __future__ import annotations

import json
import math
import sys
import time

import numpy as np
import torch

from nerfw.model.view_rendering import render_view

TB_SCALARS = ("train/loss", "train/psnr", "train/mse", "train/beta", "train/lr", "train/transient_share",
              "train/transient_pixels")
MONITORED = ("transient_share", "transient_pixels")  # step figures that are not loss terms
TB_IMAGES = ("val/rgb", "val/static", "val/transient", "val/depth", "val/beta")


def psnr_from_mse(mse: float) -> float:
    return -10.0 * math.log10(max(float(mse), 1e-12))


class TrainLogger:
    def __init__(self, cfg, enabled: bool):
        self.cfg, self.enabled = cfg, enabled
        self.bar = self.writer = self.file = None
        self.last_time = time.time()
        self.last_step = 0
        self.window_transient: list[float] = []
        self.window_transient_pixels: list[float] = []
        self.summary: dict | None = None  # the last logged training figures, written to train_summary.json

    def info(self, message: str) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(message)
        else:
            print(message, flush=True)
        if self.file is not None:
            self.file.write(message + "\n")
            self.file.flush()

    def start(self, n_total: int, step: int, batcher, scene, world_size: int, lr: float) -> None:
        if not self.enabled:
            return
        from torch.utils.tensorboard import SummaryWriter

        run_dir = self.cfg.train.run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        self.file = open(run_dir / "loss_log.txt", "a")
        self.writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"))
        mode = self.cfg.train.progress
        if mode == "bar" or (mode == "auto" and sys.stderr.isatty()):
            from tqdm import tqdm

            self.bar = tqdm(total=n_total, initial=step, unit="step", dynamic_ncols=True)
        counts = scene.split_counts()
        self.info(f"training {self.cfg.model.field} field on {scene.format} scene {scene.root} "
                  f"({counts.get('train', 0)} train / {counts.get('test', 0)} test images, "
                  f"{batcher.n_pixels} training rays); {world_size} process(es) x {batcher.batch_size} rays per step; "
                  f"{n_total} steps; lr {lr:.3g}; run folder {run_dir}")
        t = self.cfg.train
        budget = f" or of the {t.max_minutes:g}-minute budget, whichever comes first" if t.max_minutes > 0 else ""
        self.info(f"learning rate: {lr:.3g} for the first {1 - t.lr_decay_tail:.0%} of the run{budget}, then an "
                  f"exponential decay to {lr * t.lr_final_ratio:.3g} at its end (--lr_decay_tail, --lr_final_ratio)")
        self.last_time, self.last_step = time.time(), step

    def step(self, step: int, means: dict, lr: float, terms: dict) -> None:
        if not self.enabled:
            return
        psnr = psnr_from_mse(float(means["mse"]))
        self.window_transient.append(float(terms.get("transient_share", 0.0)))
        self.window_transient_pixels.append(float(terms.get("transient_pixels", 0.0)))
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{float(means['loss']):.4f}", psnr=f"{psnr:.2f}")
        if step % self.cfg.train.log_freq != 0:
            return
        now = time.time()
        rate = (step - self.last_step) / max(now - self.last_time, 1e-9)
        self.last_time, self.last_step = now, step
        scalars = {"train/loss": float(means["loss"]), "train/psnr": psnr, "train/mse": float(means["mse"]),
                   "train/beta": float(means["beta"]), "train/lr": lr}
        for key, value in terms.items():  # this rank's individual loss terms
            if key in MONITORED:
                continue
            if key not in ("total", "mse", "beta"):
                scalars[f"loss_terms/{key}"] = float(value.detach())
        # transient share: averaged over the steps since the last log line (this rank's rays)
        scalars["train/transient_share"] = float(np.mean(self.window_transient))
        scalars["train/transient_pixels"] = float(np.mean(self.window_transient_pixels))
        self.window_transient, self.window_transient_pixels = [], []
        self.summary = {"step": step, "train_psnr": psnr, "transient_share": scalars["train/transient_share"],
                        "transient_pixels": scalars["train/transient_pixels"], "beta": scalars["train/beta"]}
        for key, value in scalars.items():
            self.writer.add_scalar(key, value, step)
        line = (f"step {step} loss {scalars['train/loss']:.5f} psnr {psnr:.2f} lr {lr:.2e} "
                f"beta {scalars['train/beta']:.3f} transient {scalars['train/transient_share']:.1%} "
                f"({scalars['train/transient_pixels']:.1%} of pixels mostly transient) {rate:.2f} steps/s")
        self.file.write(line + "\n")
        self.file.flush()
        if self.bar is None:
            print(line, flush=True)

    @torch.no_grad()
    def images(self, step: int, model, batcher, scene) -> None:
        """A held-out view (the first test image, else the first image): render, static, transient, depth, beta."""
        if not self.enabled:
            return

        test = [i for i, c in enumerate(scene.cameras) if c.split == "test"]
        image_id = test[0] if test else 0
        out = render_view(model, batcher.table, image_id, scene.cameras[image_id], self.cfg.train.chunk,
                          appearance=model.appearance_vector(mean=True))
        for tag, key in zip(TB_IMAGES, ("rgb", "rgb_static", "rgb_transient", "depth_vis", "beta_vis")):
            self.writer.add_image(tag, np.clip(out[key], 0, 1), step, dataformats="HWC")
        self.writer.flush()

    def close(self, step: int) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.close()
        self.info(f"finished at step {step}")
        if self.summary is not None:
            (self.cfg.train.run_dir / "train_summary.json").write_text(json.dumps(self.summary, indent=1))
        if self.writer is not None:
            self.writer.close()
        if self.file is not None:
            self.file.close()
