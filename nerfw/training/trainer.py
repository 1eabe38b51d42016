"""The training loop: one function per concern, DDP-aware through nerfw.training.distributed only."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from nerfw.data.framing import choose_framing, content_report, detail_note, parse_scene_box
from nerfw.data.orientation import orient_scene
from nerfw.data.scene import Normalization, SceneData
from nerfw.errors import NerfwError
from nerfw.model.nerfw_model import build_model
from nerfw.training import distributed as ddp
from nerfw.training.checkpoint import (load_checkpoint_file, load_latest_checkpoint, rng_state,
                                       save_checkpoint)
from nerfw.training.config import Config, auto_batch_size, auto_transient_warmup, default_lr
from nerfw.training.cpu_memory import keep_freed_blocks_in_heap
from nerfw.training.logger import TrainLogger
from nerfw.training.ray_batches import RayBatcher


# ----------------------------------------------------------------------------- data
def load_training_data(cfg: Config, save_cache: bool):
    """Scene description + image cache, as every rank needs them."""
    from nerfw.data.cli import load_from_args
    from nerfw.data.image_cache import ImageCache

    t = cfg.train
    scene = load_from_args(t)
    if not scene.split("train"):
        raise NerfwError(f"{scene.root}: the dataset has no training images")
    cache = ImageCache.load_or_build(scene, cache_dir=cache_dir_for(scene, cfg), use_cache=t.use_cache,
                                     save_cache=save_cache, progress=False)
    return scene, cache


def cache_dir_for(scene: SceneData, cfg: Config) -> Path:
    """<scene>/cache like the seed when the dataset folder is writable, else inside the run folder."""
    preferred = Path(scene.root) / "cache"
    return preferred if os.access(scene.root, os.W_OK) else cfg.train.run_dir / "cache"


def train_ids(scene: SceneData) -> list[int]:
    return [i for i, c in enumerate(scene.cameras) if c.split == "train"]


# ----------------------------------------------------------------------------- model + optimiser
class TrainStep(nn.Module):
    """Wraps the model so that DDP sees one forward that returns the loss terms."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, rays_o, rays_d, near, far, image_ids, rgb, depth=None):
        out = self.model(rays_o, rays_d, near, far, image_ids)
        terms = self.model.loss(out, rgb, depth)
        terms["mse"] = torch.mean((out.rgb.detach().float() - rgb) ** 2)
        terms["beta"] = out.beta.detach().float().mean()
        # How much of the training pixels the transient head explains (monitoring only, not in the loss):
        # the mean transient opacity, and the share of pixels whose colour is mostly transient.
        transient = out.transient_opacity.detach().float()
        terms["transient_share"] = transient.mean()
        terms["transient_pixels"] = (transient > 0.5).float().mean()
        return terms


def transient_gate(step: int, warmup: int) -> float:
    """Factor on the transient density: 0 for the first `warmup` steps, then a linear ramp to 1 over as many steps
    again. Opening it at once was measured to kill the head: its untrained density (softplus of ~0, i.e. 0.69 per
    unit, everywhere) occludes every pixel, Adam drives the density down everywhere within ~50 steps and it never
    comes back (demo: transient mask IoU 0.0, static vs clean 22.4 dB). A small gate first lets only the pixels the
    static field cannot explain pull it up."""
    if warmup <= 0:
        return 1.0
    return float(min(max((step - warmup) / warmup, 0.0), 1.0))


def total_steps(cfg: Config, steps_per_epoch: int) -> int:
    steps = cfg.train.epochs * steps_per_epoch
    return min(steps, cfg.train.max_steps) if cfg.train.max_steps > 0 else steps


class LearningRateSchedule:
    """Learning-rate factor by run progress: 1 until the last ``tail`` share of the run, then an exponential decay
    to ``final_ratio`` (a constant-then-decay schedule; tail=1 is a plain exponential decay over the run).

    Progress is the larger of steps done / ``n_total`` and ``time_fraction``, the share of a --max_minutes budget
    used, which the trainer updates every step. Before this (2026-12-02) a time-limited run kept the schedule of
    its 20 epochs and stopped with the rate barely decayed; decaying over the whole budget instead was measured
    worse (the run spends most of its steps at a low rate). Decaying only at the end keeps the fast start and
    still settles Adam's step noise: docs/model.md "Learning-rate schedule" has the measurements."""

    def __init__(self, n_total: int, final_ratio: float, tail: float):
        self.n_total, self.final_ratio, self.tail = max(n_total, 1), final_ratio, tail
        self.time_fraction = 0.0

    def progress(self, step: int) -> float:
        return min(max(step / self.n_total, self.time_fraction), 1.0)

    def factor(self, step: int) -> float:
        into_tail = (self.progress(step) - (1.0 - self.tail)) / self.tail
        return self.final_ratio ** min(max(into_tail, 0.0), 1.0)


def make_optimizer(model: nn.Module, cfg: Config, n_total: int, world_size: int = 1):
    """Adam and its LambdaLR scheduler driven by a :class:`LearningRateSchedule` (returned third, for the
    trainer to update its time fraction)."""
    params = list(model.parameters())
    # Fused Adam: one kernel per step instead of several passes over every parameter (CPU and CUDA, torch >= 2.4).
    # The grid's dense plane gradients make Adam a fixed cost of every step: for its 8.6 M parameters on 2 CPU
    # cores 3-4 ms per step instead of 14-27 ms.
    fused = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
    eps = 1e-15 if cfg.model.field == "grid" else 1e-8
    optimizer = torch.optim.Adam(params, lr=default_lr(cfg, world_size), eps=eps, fused=fused)
    # (The seed's StepLR(2 epochs, 0.9) had no saved state, so its schedule restarted on resume; this one's step
    # count is saved in every checkpoint. The schedule itself is a lambda, so it is not: a resumed run uses the
    # options it was resumed with.)
    schedule = LearningRateSchedule(n_total, cfg.train.lr_final_ratio, cfg.train.lr_decay_tail)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: schedule.factor(s))
    return optimizer, scheduler, schedule


# ----------------------------------------------------------------------------- resume
@dataclass
class Progress:
    step: int = 0
    bad_steps: int = 0
    skipped_steps: int = 0


def find_resume_checkpoint(cfg: Config, log) -> tuple[Path, dict] | None:
    t = cfg.train
    explicit = t.ckpt or t.ckpt_path
    if explicit:
        return Path(explicit), load_checkpoint_file(Path(explicit))
    if t.resume or t.last_epoch > 0:
        found = load_latest_checkpoint(t.run_dir, log=log)
        if found is None:
            log(f"no checkpoint in {t.run_dir / 'checkpoints'}; starting from scratch")
        return found
    return None


def checkpoint_payload(model, optimizer, scheduler, progress: Progress, epoch: int, cfg: Config,
                       normalization: Normalization, scene: SceneData) -> dict:
    return {
        "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
        "step": progress.step, "epoch": epoch, "skipped_steps": progress.skipped_steps, "rng": rng_state(),
        "config": cfg.to_dict(), "normalization": normalization.to_dict(),
        "image_names": [c.name for c in scene.cameras], "format": scene.format, "nerfw_checkpoint": 1,
    }


def fit_normalization(scene: SceneData, cfg: Config) -> tuple[Normalization, list[str]]:
    """The model frame of a new run: the content ball chosen by --framing / --scene_box becomes the unit ball,
    turned by --orient. Returns the normalisation and lines for the log (the framing; for the grid field, its finest detail)."""
    framing = choose_framing(scene, cfg.train.framing, parse_scene_box(cfg.train.scene_box), cfg.model.grid_max_res)
    orientation = orient_scene(scene, framing, cfg.train.orient)
    notes = [framing.describe(), orientation.describe()]
    if cfg.model.field == "grid":
        train = scene.split("train") or scene.cameras
        notes.append(detail_note(train, framing.center, framing.radius, cfg.model.grid_max_res))
        notes += [line for line in content_report(train, framing, cfg.model.grid_max_res) if line]
    return Normalization.from_framing(framing, rotation=orientation.rotation), notes


# ----------------------------------------------------------------------------- the loop
def step_seed(seed: int, rank: int, step: int) -> int:
    """Sampling randomness of a step depends only on (seed, rank, step): resuming replays it exactly."""
    return (seed * 1_000_003 + rank * 7_919 + step) % (2**63 - 1)


def cpu_threads(requested: int, world_size: int) -> int:
    """Threads per process: the flag, else $OMP_NUM_THREADS, else the cores shared among the processes
    (oversubscribing a small CPU makes every step many times slower)."""
    if requested > 0:
        return requested
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    return max(1, (os.cpu_count() or 1) // world_size)


def run_worker(rank: int, world_size: int, backend, init_method, device_kind: str, cfg_dict: dict) -> None:
    cfg = Config.from_dict(cfg_dict)
    ddp.init_group(rank, world_size, backend, init_method)
    try:
        if device_kind == "cpu":
            torch.set_num_threads(cpu_threads(cfg.train.threads, world_size))
            keep_freed_blocks_in_heap()
        _train(rank, world_size, device_kind, cfg)
    finally:
        ddp.close_group()


def _train(rank: int, world_size: int, device_kind: str, cfg: Config) -> None:
    device = ddp.local_rank_device(rank, device_kind, cfg.train.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    is_main = rank == 0
    logger = TrainLogger(cfg, enabled=is_main)
    scene, cache = load_training_data(cfg, save_cache=cfg.train.if_save_cache and is_main)
    resume = find_resume_checkpoint(cfg, logger.info)
    framing_notes = ["framing: kept from the resumed checkpoint"]
    if resume:
        normalization = Normalization.from_dict(resume[1]["normalization"])
    else:
        normalization, framing_notes = fit_normalization(scene, cfg)
    batcher = RayBatcher(cache, scene.cameras, train_ids(scene), normalization, cfg.train.batch_size,
                         world_size, cfg.train.seed)
    n_total = total_steps(cfg, batcher.steps_per_epoch)
    cfg = auto_transient_warmup(cfg, batcher.steps_per_epoch)  # checkpoints keep the resolved step count

    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg.model, n_images=len(scene.cameras)).to(device)
    model.mark_trained(train_ids(scene))
    optimizer, scheduler, lr_schedule = make_optimizer(model, cfg, n_total, world_size)
    progress = Progress()
    if resume:
        path, state = resume
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        progress.step, progress.skipped_steps = int(state["step"]), int(state.get("skipped_steps", 0))
        logger.info(f"resumed from {path} at step {progress.step}")
    step_module = TrainStep(model)
    if world_size > 1:
        step_module = nn.parallel.DistributedDataParallel(
            step_module, device_ids=[device.index] if device.type == "cuda" else None)
    use_amp = device.type == "cuda" and cfg.train.amp == "on"
    base_lr, new_lr = scheduler.base_lrs[0], default_lr(cfg, world_size)  # base_lr: the checkpoint's after a resume
    if resume and abs(base_lr - new_lr) > 1e-12:
        logger.info(f"the resumed run keeps its checkpoint's learning rate {base_lr:.3g} (a new run with these "
                    f"options would start at {new_lr:.3g})")
    logger.start(n_total, progress.step, batcher, scene, world_size, base_lr)
    for line in framing_notes:
        logger.info(line)
    if cfg.model.encode_t:
        logger.info(f"transient head: off for the first {cfg.model.transient_warmup} steps, then ramped in over as "
                    f"many ({cfg.model.transient_warmup / batcher.steps_per_epoch:.3g} epochs each)")
    live = None
    if is_main and cfg.train.viewer:  # `--viewer`: nerfw view's page on a copy refreshed every few seconds
        from nerfw.tools.viewer import LiveViewer

        live = LiveViewer(cfg, scene, normalization, "127.0.0.1", cfg.train.viewer_port, log=logger.info)
        live.start(model, progress.step)
    t0 = time.time()
    stop = False
    while progress.step < n_total and not stop:
        epoch, in_epoch = divmod(progress.step, batcher.steps_per_epoch)
        torch.manual_seed(step_seed(cfg.train.seed, rank, progress.step))
        model.set_transient_gate(transient_gate(progress.step, cfg.model.transient_warmup))
        batch = batcher.batch(epoch, in_epoch, rank).to(device)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
            terms = step_module(batch.rays_o, batch.rays_d, batch.near, batch.far, batch.image_ids, batch.rgb,
                                batch.depth)
        total = terms["total"].float()
        time_used = (time.time() - t0) / 60.0 / cfg.train.max_minutes if cfg.train.max_minutes > 0 else 0.0
        stats = torch.tensor([float(total.detach()), float(terms["mse"]), float(terms["beta"]),
                              0.0 if torch.isfinite(total) else 1.0, time_used if is_main else 0.0],
                             dtype=torch.float64)
        stats = ddp.all_reduce_sum(stats)  # the main process's clock decides for every rank
        lr_schedule.time_fraction = float(stats[4])
        bad = stats[3] > 0
        if bad:  # keep every rank's backward (and DDP's gradient all-reduce) in step, but change nothing
            total = sum(p.sum() * 0.0 for p in model.parameters())
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        if not bad:
            optimizer.step()
            progress.bad_steps = 0
        else:
            progress.bad_steps += 1
            progress.skipped_steps += 1
            logger.info(f"step {progress.step}: non-finite loss, step skipped ({progress.skipped_steps} so far)")
            if progress.bad_steps >= cfg.train.max_bad_steps:
                raise NerfwError(f"{progress.bad_steps} non-finite losses in a row at step {progress.step}; "
                                 "try a lower --lr or check the data")
        scheduler.step()
        progress.step += 1
        stop = bool(stats[4] >= 1.0)
        means = {"loss": stats[0] / world_size, "mse": stats[1] / world_size, "beta": stats[2] / world_size}
        logger.step(progress.step, means, scheduler.get_last_lr()[0], {k: v for k, v in terms.items()})
        if is_main and progress.step % cfg.train.val_freq == 0:
            logger.images(progress.step, model, batcher, scene)
        if live is not None:
            live.maybe_update(model, progress.step, float(means["mse"]))
        if is_main and (progress.step % cfg.train.save_latest_freq == 0 or progress.step == n_total or stop):
            path = save_checkpoint(cfg.train.run_dir, progress.step,
                                   checkpoint_payload(model, optimizer, scheduler, progress, epoch, cfg,
                                                      normalization, scene), keep=cfg.train.keep_ckpts)
            logger.info(f"checkpoint {path}")
    model.set_transient_gate(1.0)
    if stop:
        logger.info(f"stopped after --max_minutes {cfg.train.max_minutes} at step {progress.step}")
    if live is not None:
        live.stop()
        logger.info(f"viewer stopped with training; `nerfw view --run {cfg.train.run_dir}` shows the final model")
    logger.close(progress.step)


def write_resolved_config(cfg: Config) -> Path:
    path = cfg.train.run_dir / "config.json"
    cfg.save(path)
    return path


def train(cfg: Config) -> Path:
    """Train per cfg (spawning DDP processes when asked) and return the run folder."""
    launch = ddp.plan_launch(cfg.train.num_gpus, cfg.train.num_procs, cfg.train.device)
    cfg = auto_batch_size(cfg, launch.device_kind)
    if not launch.torchrun or int(os.environ.get("RANK", "0")) == 0:
        write_resolved_config(cfg)
    if launch.world_size > 1 and not launch.torchrun:
        # Build the image cache once here so the workers only open it.
        load_training_data(cfg, save_cache=cfg.train.if_save_cache)
    ddp.run_processes(run_worker, launch, cfg.to_dict())
    return cfg.train.run_dir
