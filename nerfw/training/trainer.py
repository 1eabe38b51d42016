"""The training loop: one function per concern, DDP-aware through nerfw.training.distributed only."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from nerfw.data.dataset_options import load_from_args
from nerfw.data.framing import choose_framing, content_report, detail_note, parse_scene_box
from nerfw.data.image_cache import ImageCache
from nerfw.data.orientation import orient_scene
from nerfw.data.photo_points import photo_points_wanted, with_photo_points
from nerfw.data.scene import Normalization, SceneData
from nerfw.errors import NerfwError
from nerfw.fields.encodings import upgrade_plane_optimizer_state
from nerfw.model.nerfw_model import build_model
from nerfw.training import distributed as ddp
from nerfw.training.checkpoint import (list_checkpoints, load_checkpoint_file, load_latest_checkpoint, rng_state,
                                      save_checkpoint)
from nerfw.training.config import Config, auto_batch_size, auto_transient_warmup, default_lr
from nerfw.training.cpu_memory import keep_freed_blocks_in_heap
from nerfw.training.logger import TrainLogger
from nerfw.training.ray_batches import RayBatcher


# ----------------------------------------------------------------------------- data
def load_training_data(cfg: Config, save_cache: bool):
    """Scene description + image cache, as every rank needs them."""

    t = cfg.train
    scene = load_from_args(t)
    if not scene.split("train"):
        raise NerfwError(f"{scene.root}: the dataset has no training images")
    cache = ImageCache.load_or_build(scene, cache_dir=cache_dir_for(scene, cfg), use_cache=t.use_cache,
                                     save_cache=save_cache, progress=False)
    return scene, cache


def cache_dir_for(scene: SceneData, cfg: Config) -> Path:
    """<scene>/cache like NeRFW-pytorch when the dataset folder is writable, else inside the run folder."""
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
    used, which the trainer updates every step. Driven by steps alone, a time-limited run would keep the
    schedule of its 20 epochs and stop with the rate barely decayed; decaying over the whole budget instead was
    measured worse (the run spends most of its steps at a low rate). Decaying only at the end keeps the fast start and
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
    # (NeRFW-pytorch's StepLR(2 epochs, 0.9) had no saved state, so its schedule restarted on resume; this one's step
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


def continues_a_run(cfg: Config) -> bool:
    """Whether this run starts from a checkpoint: --resume, NeRFW-pytorch's --last_epoch, or an explicit file."""
    t = cfg.train
    return bool(t.resume or t.last_epoch > 0 or t.ckpt or t.ckpt_path)


def find_resume_checkpoint(cfg: Config, log) -> tuple[Path, dict] | None:
    t = cfg.train
    explicit = t.ckpt or t.ckpt_path
    if explicit:
        return Path(explicit), load_checkpoint_file(Path(explicit))
    if continues_a_run(cfg):
        found = load_latest_checkpoint(t.run_dir, log=log)
        if found is None:
            log(f"no checkpoint in {t.run_dir / 'checkpoints'}; starting from scratch")
        return found
    return None


def refuse_stale_checkpoints(cfg: Config) -> None:
    """A new run (no --resume, no --ckpt_path) must not start in a folder holding an earlier run's checkpoints: the
    newest checkpoint by step would stay the earlier run's, so `nerfw eval` and a later --resume would load it, and
    pruning would delete the new run's own checkpoints as the older ones."""
    if continues_a_run(cfg):
        return
    found = list_checkpoints(cfg.train.run_dir)
    if found:
        raise NerfwError(f"{found[-1].parent}: holds checkpoints of an earlier run (newest {found[-1].name}); pass "
                         "--resume to continue it, or another --exp_name (or --root_dir) to start a new run")


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
    scene, points_note = with_photo_points(scene, photo_points_wanted(cfg.train.photo_points, cfg.train.framing,
                                                                      cfg.train.scene_box))
    framing = choose_framing(scene, cfg.train.framing, parse_scene_box(cfg.train.scene_box), cfg.model.grid_max_res)
    orientation = orient_scene(scene, framing, cfg.train.orient)
    notes = [*([points_note] if points_note else []), framing.describe(), orientation.describe()]
    if cfg.model.field == "grid":
        train = scene.split("train") or scene.cameras
        notes.append(detail_note(train, framing.center, framing.radius, cfg.model.grid_max_res))
        notes += [line for line in content_report(train, framing, cfg.model.grid_max_res) if line]
    return Normalization.from_framing(framing, rotation=orientation.rotation), notes


def fitted_frame(scene: SceneData, cfg: Config) -> tuple[dict, list[str]]:
    """fit_normalization as plain data (Normalization.to_dict(), the log lines), to hand from one rank to the rest."""
    normalization, notes = fit_normalization(scene, cfg)
    return normalization.to_dict(), notes


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


def run_worker(rank: int, world_size: int, backend, init_method, device_kind: str, cfg_dict: dict,
               live_viewer=None) -> None:
    cfg = Config.from_dict(cfg_dict)
    ddp.init_group(rank, world_size, backend, init_method)
    try:
        if device_kind == "cpu":
            torch.set_num_threads(cpu_threads(cfg.train.threads, world_size))
            keep_freed_blocks_in_heap()
        _train(rank, world_size, device_kind, cfg, live_viewer)
    finally:
        ddp.close_group()


@dataclass
class Training:
    """Everything one rank's loop works with, built by :func:`set_up_training`."""
    cfg: Config
    rank: int
    world_size: int
    device: torch.device
    logger: TrainLogger
    scene: SceneData
    normalization: Normalization
    batcher: RayBatcher
    model: nn.Module
    step_module: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    lr_schedule: LearningRateSchedule
    progress: Progress
    n_total: int
    use_amp: bool

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def set_up_training(rank: int, world_size: int, device_kind: str, cfg: Config) -> tuple[Training, list[str]]:
    """Data, model frame, model, optimiser and resumed state of one rank; the framing lines for the log."""
    device = ddp.local_rank_device(rank, device_kind, cfg.train.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    logger = TrainLogger(cfg, enabled=rank == 0)
    scene, cache = load_training_data(cfg, save_cache=cfg.train.if_save_cache and rank == 0)
    resume = find_resume_checkpoint(cfg, logger.info)
    notes = ["framing: kept from the resumed checkpoint"]
    if resume:
        normalization = Normalization.from_dict(resume[1]["normalization"])
    else:
        frame, notes = ddp.from_main(lambda: fitted_frame(scene, cfg))  # the main process finds it for all
        normalization = Normalization.from_dict(frame)
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
        upgrade_plane_optimizer_state(optimizer)  # a checkpoint written before channels-last planes
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
    return Training(cfg, rank, world_size, device, logger, scene, normalization, batcher, model, step_module,
                    optimizer, scheduler, lr_schedule, progress, n_total, use_amp), notes


def announce(t: Training, framing_notes: list[str]) -> None:
    t.logger.start(t.n_total, t.progress.step, t.batcher, t.scene, t.world_size, t.scheduler.base_lrs[0])
    for line in framing_notes:
        t.logger.info(line)
    if t.cfg.model.encode_t:
        t.logger.info(f"transient head: off for the first {t.cfg.model.transient_warmup} steps, then ramped in "
                      f"over as many ({t.cfg.model.transient_warmup / t.batcher.steps_per_epoch:.3g} epochs each)")


def train_step(t: Training, t0: float) -> tuple[dict, dict, bool]:
    """One optimiser step on every rank -> (the step's loss terms, their means over the ranks, whether the time
    budget is spent). A non-finite loss on any rank skips the update everywhere (every rank still runs backward,
    so DDP's gradient all-reduce stays in step); too many in a row stop training with an error."""
    cfg, progress = t.cfg, t.progress
    epoch, in_epoch = divmod(progress.step, t.batcher.steps_per_epoch)
    torch.manual_seed(step_seed(cfg.train.seed, t.rank, progress.step))
    t.model.set_transient_gate(transient_gate(progress.step, cfg.model.transient_warmup))
    batch = t.batcher.batch(epoch, in_epoch, t.rank).to(t.device)
    with torch.autocast(device_type=t.device.type, dtype=torch.bfloat16, enabled=t.use_amp):
        terms = t.step_module(batch.rays_o, batch.rays_d, batch.near, batch.far, batch.image_ids, batch.rgb,
                              batch.depth)
    total = terms["total"].float()
    time_used = (time.time() - t0) / 60.0 / cfg.train.max_minutes if cfg.train.max_minutes > 0 else 0.0
    stats = torch.tensor([float(total.detach()), float(terms["mse"]), float(terms["beta"]),
                          0.0 if torch.isfinite(total) else 1.0, time_used if t.is_main else 0.0],
                         dtype=torch.float64)
    stats = ddp.all_reduce_sum(stats)  # the main process's clock decides for every rank
    t.lr_schedule.time_fraction = float(stats[4])
    bad = stats[3] > 0
    if bad:  # keep every rank's backward (and DDP's gradient all-reduce) in step, but change nothing
        total = sum(p.sum() * 0.0 for p in t.model.parameters())
    t.optimizer.zero_grad(set_to_none=True)
    total.backward()
    if not bad:
        t.optimizer.step()
        progress.bad_steps = 0
    else:
        skip_step(t)
    t.scheduler.step()
    progress.step += 1
    means = {"loss": stats[0] / t.world_size, "mse": stats[1] / t.world_size, "beta": stats[2] / t.world_size}
    return terms, means, bool(stats[4] >= 1.0)


def skip_step(t: Training) -> None:
    """Count a step whose loss was non-finite; raise after cfg.train.max_bad_steps of them in a row."""
    progress = t.progress
    progress.bad_steps += 1
    progress.skipped_steps += 1
    t.logger.info(f"step {progress.step}: non-finite loss, step skipped ({progress.skipped_steps} so far)")
    if progress.bad_steps >= t.cfg.train.max_bad_steps:
        raise NerfwError(f"{progress.bad_steps} non-finite losses in a row at step {progress.step}; "
                         "try a lower --lr or check the data")


def maybe_checkpoint(t: Training, stop: bool) -> None:
    """The main rank saves every save_latest_freq steps, at the last step and when the time budget stops it."""
    step = t.progress.step
    if t.is_main and (step % t.cfg.train.save_latest_freq == 0 or step == t.n_total or stop):
        epoch = (step - 1) // t.batcher.steps_per_epoch  # the epoch the step just taken belongs to
        path = save_checkpoint(t.cfg.train.run_dir, step,
                               checkpoint_payload(t.model, t.optimizer, t.scheduler, t.progress, epoch, t.cfg,
                                                  t.normalization, t.scene), keep=t.cfg.train.keep_ckpts)
        t.logger.info(f"checkpoint {path}")


def start_live_viewer(t: Training, live_viewer):
    """`--viewer`: the page built by ``live_viewer`` (nerfw.viewer.server.LiveViewer, attached by `nerfw train`) on the
    main rank, or None."""
    if not (t.is_main and t.cfg.train.viewer):
        return None
    if live_viewer is None:
        t.logger.info("--viewer: no live viewer attached (`nerfw train` attaches it; train() from Python takes "
                      "live_viewer=nerfw.viewer.server.LiveViewer)")
        return None
    live = live_viewer(t.cfg, t.scene, t.normalization, "127.0.0.1", t.cfg.train.viewer_port, log=t.logger.info)
    live.start(t.model, t.progress.step)
    return live


def _train(rank: int, world_size: int, device_kind: str, cfg: Config, live_viewer=None) -> None:
    t, framing_notes = set_up_training(rank, world_size, device_kind, cfg)
    announce(t, framing_notes)
    live = start_live_viewer(t, live_viewer)
    t0 = time.time()
    stop = False
    while t.progress.step < t.n_total and not stop:
        terms, means, stop = train_step(t, t0)
        t.logger.step(t.progress.step, means, t.scheduler.get_last_lr()[0], dict(terms))
        if t.is_main and t.progress.step % t.cfg.train.val_freq == 0:
            t.logger.images(t.progress.step, t.model, t.batcher, t.scene)
        if live is not None:
            live.maybe_update(t.model, t.progress.step, float(means["mse"]))
        maybe_checkpoint(t, stop)
    t.model.set_transient_gate(1.0)
    if stop:
        t.logger.info(f"stopped after --max_minutes {t.cfg.train.max_minutes} at step {t.progress.step}")
    if live is not None:
        live.stop()
        t.logger.info(f"viewer stopped with training; `nerfw view --run {t.cfg.train.run_dir}` shows the final model")
    t.logger.close(t.progress.step)


def write_resolved_config(cfg: Config) -> Path:
    path = cfg.train.run_dir / "config.json"
    cfg.save(path)
    return path


def train(cfg: Config, live_viewer=None) -> Path:
    """Train per cfg (spawning DDP processes when asked) and return the run folder. ``live_viewer``: what
    `--viewer` shows, a class built on the main rank as live_viewer(cfg, scene, normalization, host, port, log)
    with start(model, step), maybe_update(model, step, mse) and stop() (`nerfw train` passes
    nerfw.viewer.server.LiveViewer; training does not import the viewer)."""
    launch = ddp.plan_launch(cfg.train.num_gpus, cfg.train.num_procs, cfg.train.device)
    cfg = auto_batch_size(cfg, launch.device_kind)
    refuse_stale_checkpoints(cfg)
    if not launch.torchrun or int(os.environ.get("RANK", "0")) == 0:
        write_resolved_config(cfg)
    if launch.world_size > 1 and not launch.torchrun:
        # Build the image cache once here so the workers only open it.
        load_training_data(cfg, save_cache=cfg.train.if_save_cache)
    ddp.run_processes(run_worker, launch, cfg.to_dict(), live_viewer)
    return cfg.train.run_dir
