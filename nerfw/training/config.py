"""Training configuration: NeRFW-pytorch's flags verbatim, ours beside them, parsed safely.

Every option is a dataclass field with a docstring-like comment; the command-line parser is built from the
fields of :class:`TrainConfig` and :class:`nerfw.fields.config.ModelConfig`, so there is one list of options.
Values are parsed without eval(): booleans accept True/False/1/0/yes/no (NeRFW-pytorch's ``type=bool`` turned
"False" into True), integers accept products and sums such as NeRFW-pytorch README's ``--chunk 4*1024``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from nerfw.data.dataset_options import DatasetFormat
from nerfw.data.framing import join_scene_box_arg
from nerfw.errors import ConfigError
from nerfw.fields.config import ModelConfig
from nerfw.options import Parser, add_options

# Options NeRFW-pytorch also has say "NeRFW-pytorch flag"; where a default differs from NeRFW-pytorch's, the text
# says "(NeRFW-pytorch: <its default>)".


@dataclass
class TrainConfig:
    """Training options. Each field's docstring is its `nerfw train --help` text (the default is appended)."""

    # --- run folder
    root_dir: str = "./runs/nerf"
    """NeRFW-pytorch flag. Folder for runs: a run's checkpoints, logs and config.json go to <root_dir>/<exp_name>/."""
    exp_name: str = "exp"
    """NeRFW-pytorch flag (NeRFW-pytorch default "test"). The run's name, the folder under --root_dir; reuse it with --resume to
    continue a run."""
    config: str = ""
    """Path of a config.json written by an earlier run: start from its options; flags given on the command line
    override it. Use it to repeat or vary an experiment."""
    # --- data
    data_root_dir: str = ""
    """NeRFW-pytorch flag, required. Folder holding the scene folders (or the scene itself when --scene is empty)."""
    scene: str = ""
    """NeRFW-pytorch flag (NeRFW-pytorch default StMarysChurch). Scene folder name under --data_root_dir, e.g. StMarysChurch or
    chess; empty: --data_root_dir is the scene."""
    dataset: DatasetFormat = "auto"
    """Dataset format: auto|cambridge|7scenes|colmap|phototourism|llff|transforms. auto recognises the format
    from the files; name it only when a folder looks like more than one."""
    img_downscale: int = 3
    """NeRFW-pytorch flag. Integer divisor of the image sides (sizes read from the files): 3 trains Cambridge's 1920x1080
    at 640x360. Larger is faster and coarser; 1 for small images (the built-in scenes)."""
    focal: float = 0.0
    """Focal length in pixels of the original (not downscaled) images, for datasets without one (Cambridge
    without its .nvm); 0: the dataset's own."""
    sevenscenes_focal: float = 525.0
    """7-Scenes colour focal length in pixels at 640x480. 525 is the colour camera's (the default); 585, what
    NeRFW-pytorch used, is the depth camera's."""
    test_every: int = 8
    """COLMAP / LLFF / single transforms.json: every N-th image (by name) is held out as a test image, as the
    NeRF papers do; 0: no test images."""
    framing: Literal["auto", "points", "focus", "frustum", "cameras"] = "auto"
    """How the content ball (the model's unit ball) is found: auto|points|focus|frustum|cameras (docs/datasets.md,
    Framing). auto picks from the sparse points, converging or parallel camera axes; force one if `nerfw inspect`
    shows a poor frame."""
    scene_box: str = ""
    """x0,y0,z0,x1,y1,z1 in dataset units (metres for Cambridge / 7-Scenes): the box holding the content,
    overriding --framing. Give it when the automatic framing cuts off or dilutes the landmark."""
    photo_points: bool = True
    """When the dataset ships no sparse points (transforms.json, LLFF without its COLMAP model): triangulate some from
    the training photos and their known poses (SIFT, a few seconds) and frame and orient the model by them, as by
    a dataset's own points (docs/datasets.md, Framing). False: frame by the cameras alone."""
    orient: Literal["auto", "none"] = "auto"
    """auto|none: turn the model frame so that z is up and x runs along the content (docs/datasets.md,
    Orientation): the field's planes then meet the ground and walls square on, whatever axes the SfM chose.
    none: the dataset's own axes."""
    use_cache: bool = True
    """NeRFW-pytorch flag (NeRFW-pytorch: False, and NeRFW-pytorch read "--use_cache False" as True). Read an existing decoded-image
    cache; it is keyed by a hash of the images and sizes, so it is never stale. False: decode the images again."""
    if_save_cache: bool = True
    """NeRFW-pytorch flag. Write the decoded-image cache (a memory-mapped .npy next to the run) for faster restarts; False
    keeps the images in RAM only."""
    # --- optimisation
    batch_size: int = 0
    """NeRFW-pytorch flag (NeRFW-pytorch: 1024). Rays per process per step (as NeRFW-pytorch: per GPU); 0: 512 on a CPU, 1024 on GPUs
    (`auto_batch_size`). More rays: fewer, smoother steps and more memory; the grid field's learning rate grows
    with it above 1024 rays."""
    chunk: int = 4096
    """NeRFW-pytorch flag (NeRFW-pytorch: 1024). Rays per forward pass when rendering whole images (validation previews); only
    speed and memory change. Arithmetic such as 4*1024 is accepted."""
    epochs: int = 20
    """NeRFW-pytorch flag. Passes over all training rays, unless --max_steps or --max_minutes stop earlier."""
    max_steps: int = 0
    """Stop after this many optimiser steps; 0: no limit. Use it for quick experiments and fixed budgets."""
    max_minutes: float = 0.0
    """Stop after this wall-clock budget in minutes, with a final checkpoint; 0: no limit."""
    lr: float = 0.0
    """NeRFW-pytorch flag (NeRFW-pytorch: 5e-4). Adam learning rate; 0: the field's default (mlp 5e-4 as NeRFW-pytorch; grid 1e-2, rising
    to 3e-2 for batches above 1024 rays). Lower it if the loss diverges."""
    lr_final_ratio: float = 0.1
    """The learning rate decays exponentially from --lr to --lr times this at the last step (a ratio, 0 < r <= 1;
    1: constant). See --lr_decay_tail for when the decay starts."""
    lr_decay_tail: float = 0.2
    """Share of the run (0 < s <= 1) over which the learning rate decays to --lr times --lr_final_ratio; before
    it the rate stays at --lr. 1: decay over the whole run. Progress is counted in steps (--epochs, --max_steps)
    and, with --max_minutes, in time as well, so a time-limited run ends its decay when its budget ends."""
    seed: int = 0
    """Random seed of data order, initialisation and sampling; change it to measure run-to-run spread."""
    # --- devices and processes
    device: str = "auto"
    """auto|cpu|cuda|cuda:N: where a single-process run trains. auto: the first GPU if there is one, else the
    CPU."""
    num_gpus: int = -1
    """NeRFW-pytorch flag (NeRFW-pytorch: 1). DDP processes on GPUs (NCCL), one per GPU; -1: one GPU if present, else the CPU; 0:
    the CPU."""
    num_procs: int = 1
    """DDP processes on the CPU (gloo), for CPU-only machines and tests; each takes --batch_size rays per step."""
    amp: Literal["on", "off", "auto"] = "off"
    """on|off: bfloat16 autocast, CUDA only. Off by default: on an H200 the grid field trained no faster with it
    (56.9 vs 58.0 steps/s at 8192 rays) and reached 1.4 dB lower test PSNR (19.07 vs 20.45 dB; docs/benchmarks.md).
    "auto" (the default of earlier versions, still accepted in config files) means off."""
    threads: int = 0
    """CPU threads per process; 0: $OMP_NUM_THREADS if set, else cores / processes. Lower it to share a
    machine."""
    # --- checkpoints and logging
    save_latest_freq: int = 1000
    """NeRFW-pytorch flag (NeRFW-pytorch: 6750). Steps between checkpoints; lower it when runs may be interrupted."""
    keep_ckpts: int = 3
    """How many of the most recent checkpoints to keep on disk."""
    log_freq: int = 50
    """NeRFW-pytorch flag (NeRFW-pytorch: 225). Steps between loss_log.txt lines and TensorBoard scalars."""
    val_freq: int = 500
    """Steps between TensorBoard preview images of a held-out view (each costs a full-image render)."""
    resume: bool = False
    """Continue from the newest good checkpoint of <root_dir>/<exp_name> (a corrupt newest one is skipped).
    `--resume` alone or `--resume True`."""
    last_epoch: int = 0
    """NeRFW-pytorch flag: a value > 0 resumes, from --ckpt / --ckpt_path if given, else as --resume."""
    ckpt: str = ""
    """NeRFW-pytorch flag (NeRFW-pytorch README's name): checkpoint file to resume from, instead of the run's newest."""
    ckpt_path: str = ""
    """NeRFW-pytorch flag (NeRFW-pytorch code's name for --ckpt): checkpoint file to resume from."""
    max_bad_steps: int = 20
    """Consecutive steps with a non-finite loss (skipped) before the run stops with an error."""
    progress: Literal["auto", "bar", "log"] = "auto"
    """auto|bar|log: a tqdm bar on a terminal, plain log lines otherwise (log for files and CI)."""
    viewer: bool = False
    """Serve `nerfw view`'s web page while training (the newest weights every few seconds, the step and training
    PSNR); it costs render time on the training machine, so leave it off for timed runs."""
    viewer_port: int = 7007
    """TCP port of --viewer's page (on 127.0.0.1; over SSH: ssh -L PORT:localhost:PORT HOST)."""

    @property
    def run_dir(self) -> Path:
        return Path(self.root_dir) / self.exp_name


@dataclass
class Config:
    """Everything a run needs: training options and model options."""

    train: TrainConfig = field(default_factory=TrainConfig)
    model: ModelConfig = field(default_factory=ModelConfig)

    def to_dict(self) -> dict:
        return {"train": dataclasses.asdict(self.train), "model": dataclasses.asdict(self.model)}

    @classmethod
    def from_dict(cls, d: dict, source: str = "config") -> "Config":
        return cls(train=_build(TrainConfig, d.get("train", {}), source),
                   model=_build(ModelConfig, d.get("model", {}), source))

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        tmp.replace(path)


def _build(cls, values: dict, source: str):
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"{source}: unknown option(s) {', '.join(unknown)}")
    return cls(**values)


TRAIN_DESCRIPTION = """Train a NeRF-W. Accepts NeRFW-pytorch's flags verbatim (marked "NeRFW-pytorch flag").

Every option has a default; most runs need only --data_root_dir, --scene and --exp_name (plus --img_downscale
for large images and --max_steps / --max_minutes for a budget). Switches (True|False options) accept `--flag`
(True) as well as NeRFW-pytorch's `--flag True` / `--flag False`. Integers accept arithmetic such as 4*1024.
Options not given on the command line come from --config FILE if given, else from the defaults shown."""


def build_parser(prog: str = "nerfw train") -> argparse.ArgumentParser:
    """The `nerfw train` parser: TrainConfig's and ModelConfig's fields (nerfw.options.add_options). Options not
    given are left out of the parsed namespace, so that parse_config can take them from --config."""
    parser = Parser(prog=prog, description=TRAIN_DESCRIPTION, argument_default=argparse.SUPPRESS,
                    allow_abbrev=False)
    for group_name, cls in (("training", TrainConfig), ("model", ModelConfig)):
        add_options(parser.add_argument_group(f"{group_name} options"), cls, suppress_defaults=True)
    return parser


def parse_config(argv: list[str]) -> Config:
    """Command line (+ optional --config FILE) -> validated Config. Errors are one-line ConfigErrors."""

    given = vars(build_parser().parse_args(join_scene_box_arg(argv)))
    base: dict = {"train": {}, "model": {}}
    if given.get("config"):
        path = Path(given["config"])
        try:
            base = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read config ({exc})") from None
    model_names = {f.name for f in dataclasses.fields(ModelConfig)}
    for key, value in given.items():
        base.setdefault("model" if key in model_names else "train", {})[key] = value
    cfg = Config.from_dict(base, source=str(given.get("config", "command line")))
    validate(cfg)
    return cfg


def check_choices(options) -> None:
    """Every Literal-typed option of a config dataclass holds one of its choices (values from --config files do not
    pass through the parser's own check)."""
    hints = typing.get_type_hints(type(options))
    for f in dataclasses.fields(options):
        if typing.get_origin(hints[f.name]) is typing.Literal:
            choices = typing.get_args(hints[f.name])
            value = getattr(options, f.name)
            if value not in choices:
                raise ConfigError(f"--{f.name} must be one of {', '.join(map(str, choices))}, got {value!r}")


def validate(cfg: Config) -> None:
    check_choices(cfg.train)
    check_choices(cfg.model)

    t, m = cfg.train, cfg.model
    checks = [
        (t.batch_size >= 0, f"--batch_size must be > 0 (0: automatic), got {t.batch_size}"),
        (t.chunk > 0, f"--chunk must be > 0, got {t.chunk}"),
        (t.epochs > 0, f"--epochs must be > 0, got {t.epochs}"),
        (t.max_steps >= 0 and t.max_minutes >= 0, "--max_steps and --max_minutes must be >= 0"),
        (t.lr >= 0, f"--lr must be >= 0, got {t.lr}"),
        (0 < t.lr_final_ratio <= 1, f"--lr_final_ratio must be in (0, 1], got {t.lr_final_ratio}"),
        (0 < t.lr_decay_tail <= 1, f"--lr_decay_tail must be in (0, 1], got {t.lr_decay_tail}"),
        (t.img_downscale >= 1, f"--img_downscale must be >= 1, got {t.img_downscale}"),
        (t.sevenscenes_focal > 0, f"--sevenscenes_focal must be > 0, got {t.sevenscenes_focal}"),
        (t.test_every >= 0, f"--test_every must be >= 0 (0: no test images), got {t.test_every}"),
        (t.num_procs >= 1, f"--num_procs must be >= 1, got {t.num_procs}"),
        (t.num_gpus >= -1, f"--num_gpus must be >= 0, got {t.num_gpus}"),
        (t.save_latest_freq > 0 and t.log_freq > 0 and t.val_freq > 0, "--save_latest_freq, --log_freq and --val_freq must be > 0"),
        (t.keep_ckpts >= 1, "--keep_ckpts must be >= 1"),
        (0 < t.viewer_port < 65536, f"--viewer_port must be in 1..65535, got {t.viewer_port}"),
        (m.N_c > 0 and m.N_f >= 0, "--N_c must be > 0 and --N_f >= 0"),
        (m.beta_min > 0, f"--beta_min must be > 0, got {m.beta_min}"),
        (m.lambda_u >= 0, f"--lambda_u must be >= 0, got {m.lambda_u}"),
        (m.transient_warmup >= -1, f"--transient_warmup must be >= 0 (or -1: automatic), got {m.transient_warmup}"),
        (0 <= m.perturb, f"--perturb must be >= 0, got {m.perturb}"),
        (t.data_root_dir != "", "--data_root_dir is required (the folder holding your scene)"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
    if t.num_gpus > 0 and t.num_procs > 1:
        raise ConfigError("use either --num_gpus (NCCL on GPUs) or --num_procs (gloo on the CPU), not both")


GRID_LR, GRID_LR_RAYS, GRID_LR_MAX = 1e-2, 1024, 3e-2


CPU_BATCH, GPU_BATCH = 512, 1024


def auto_batch_size(cfg: Config, device_kind: str) -> Config:
    """cfg with --batch_size 0 resolved: 512 rays per step on a CPU, 1024 per GPU (NeRFW-pytorch's).

    On a CPU each step has a fixed cost (Adam over every plane parameter), and a time-limited run is far from
    converged, so more, smaller steps win. Measured side by side on the 2-core CPU, 10 minutes, NeRF-W protocol:
    instant-ngp's fox 5,250 steps of 512 rays 26.01 dB vs 2,750 steps of 1024 rays 24.07 dB; the built-in demo
    scene, 3 minutes: 1,879 steps of 512 rays 22.30 dB vs 1,112 of 1024 rays 20.77 dB."""
    if cfg.train.batch_size > 0:
        return cfg
    size = CPU_BATCH if device_kind == "cpu" else GPU_BATCH
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, batch_size=size))


TRANSIENT_WARMUP_EPOCHS, MIN_TRANSIENT_WARMUP = 0.04, 100


def auto_transient_warmup(cfg: Config, steps_per_epoch: int) -> Config:
    """cfg with --transient_warmup -1 resolved: TRANSIENT_WARMUP_EPOCHS of an epoch, in steps, and at least
    MIN_TRANSIENT_WARMUP steps.

    The static field must resolve what every photo shares before the transient head may explain the rest; how
    long that takes grows with the training pixels, not with the steps. Measured at fixed step counts on the 2-core
    CPU (512 rays per step; the warm-up in epochs in brackets): the real beer capture (6.4 M pixels) lost its can
    to the transient head with 150 steps (0.012) and kept it with 500 (0.040): 24.89 vs 27.87 dB; the collection
    preset (2.7 M) lost its statue with none (16.45 dB) and kept it with 150 (0.028) or 500 (0.095); the demo scene
    (0.9 M), whose passers-by the static field bakes in while the head is off, scored 23.79 / 23.00 / 22.21 dB
    with 0 / 150 (0.083) / 500 (0.28). One fixed step count cannot serve all three; 0.04 epochs does.
    The floor: on a tiny scene (a few thousand pixels) 0.04 epochs is 2 steps, the static field has learnt
    nothing yet, and the head took every pixel (100 % "mostly transient" at step 10; static test render 3 dB
    below a flat grey image). The demo's 72 steps (23.36 dB) and 150 (23.00) bracket the floor's 100."""
    if cfg.model.transient_warmup >= 0:
        return cfg
    steps = max(MIN_TRANSIENT_WARMUP, round(TRANSIENT_WARMUP_EPOCHS * steps_per_epoch))
    return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, transient_warmup=steps))


def default_lr(cfg: Config, world_size: int = 1) -> float:
    """--lr, else the field's default: mlp 5e-4 (NeRFW-pytorch's); grid 1e-2 up to 1024 rays per step (all processes
    together), growing in proportion to the rays above that (less gradient noise per step allows longer steps),
    up to 3e-2. Measured on the demo scene (2-core CPU, constant rate, test PSNR under the NeRF-W protocol):
    4096 rays per step, 400 steps: 1e-2 18.64 / 19.83 dB (seeds 0 / 1), 2e-2 19.43 (seed 0), 3e-2 20.52 / 21.73;
    8192 rays, 200 steps: 1e-2 18.48, 3e-2 20.22 (seed 0);
    512 rays, 1500 steps: 1e-2 21.87 / 23.06 dB, 2e-2 20.96, 4e-2 20.78 (seed 0). The rule leaves every batch up
    to 1024 (the trainer's and the demo's) at the rate they were tuned with; the cap is the best rate measured."""
    if cfg.train.lr > 0:
        return cfg.train.lr
    if cfg.model.field == "mlp":
        return 5e-4
    rays = (cfg.train.batch_size or GPU_BATCH) * max(1, world_size)
    return min(max(GRID_LR * rays / GRID_LR_RAYS, GRID_LR), GRID_LR_MAX)
