"""Flag parity with NeRFW-pytorch's README, safe value parsing, one-line errors, config round trip."""
import json

import pytest

from nerfw.errors import ConfigError
from nerfw.options import parse_bool, parse_int
from nerfw.training.config import Config, parse_config

SEED_README = ("--root_dir ./runs/nerf --exp_name exp --batch_size 1024 --chunk 4*1024 --epochs 20 --lr 0.0005 "
               "--num_gpus 0 --img_downscale 3 --data_root_dir D --scene StMarysChurch --use_cache False "
               "--if_save_cache True --N_c 64 --N_f 128 --perturb 1.0 --encode_a True --encode_t True --a_dim 48 "
               "--t_dim 16 --beta_min 0.1 --lambda_u 0.01").split()
SEED_OTHERS = ("--last_epoch 0 --ckpt_path x.ckpt --ckpt y.ckpt --save_latest_freq 6750 --log_freq 225 --layers 8 "
               "--W 256 --N_xyz_freq 15 --N_dir_freq 4 --use_disp False").split()
OURS = ("--dataset auto --field mlp --max_steps 10 --max_minutes 1.5 --device cpu --seed 3 --resume True "
        "--num_procs 2").split()


def test_seed_readme_flags_verbatim():
    cfg = parse_config(SEED_README + SEED_OTHERS)
    assert cfg.train.chunk == 4096 and cfg.train.use_cache is False and cfg.train.if_save_cache is True
    assert cfg.model.encode_a is True and cfg.model.a_dim == 48 and cfg.model.beta_min == 0.1
    assert cfg.train.lr == 0.0005 and cfg.model.N_f == 128 and cfg.model.use_disp is False
    assert cfg.train.ckpt == "y.ckpt" and cfg.train.save_latest_freq == 6750 and cfg.model.W == 256


def test_our_flags():
    cfg = parse_config(["--data_root_dir", "D"] + OURS)
    assert cfg.model.field == "mlp" and cfg.train.max_steps == 10 and cfg.train.max_minutes == 1.5
    assert cfg.train.resume is True and cfg.train.num_procs == 2 and cfg.train.seed == 3


@pytest.mark.parametrize("text,value", [("False", False), ("false", False), ("0", False), ("True", True),
                                         ("yes", True)])
def test_bool_strings(text, value):
    assert parse_bool(text) is value


@pytest.mark.parametrize("text,value", [("4*1024", 4096), ("4096", 4096), ("2**12", 4096), ("1024+1024", 2048),
                                         (" 8 * 512 ", 4096)])
def test_integer_arithmetic(text, value):
    assert parse_int(text) == value


@pytest.mark.parametrize("text", ["__import__('os')", "4*x", "1.5", "", "2**1000", "open('f')"])
def test_integer_rejects_code(text):
    with pytest.raises(Exception) as info:
        parse_int(text)
    assert "expected an integer" in str(info.value)


@pytest.mark.parametrize("argv,needle", [
    (["--data_root_dir", "D", "--no_such_flag", "1"], "no_such_flag"),
    (["--data_root_dir", "D", "--use_cache", "maybe"], "True or False"),
    (["--data_root_dir", "D", "--batch_size", "-1"], "batch_size"),
    (["--data_root_dir", "D", "--field", "nope"], "field"),
    (["--batch_size", "8"], "data_root_dir"),
])
def test_bad_flags_are_one_line_errors(argv, needle):
    with pytest.raises(ConfigError) as info:
        parse_config(argv)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_choices_from_a_config_file_are_checked_too(tmp_path):
    """A Literal-typed option read from --config FILE (which the parser's own choice check never sees) must be one
    of its choices; the message names the option and the choices."""
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"train": {"data_root_dir": "D", "framing": "everything"}, "model": {}}))
    with pytest.raises(ConfigError, match="--framing must be one of auto, points, focus, frustum, cameras"):
        parse_config(["--config", str(path)])
    path.write_text(json.dumps({"train": {"data_root_dir": "D"}, "model": {"field": "voxels"}}))
    with pytest.raises(ConfigError, match="--field must be one of grid, mlp, got 'voxels'"):
        parse_config(["--config", str(path)])


def test_gpus_on_machine_without_gpu():
    import torch

    if torch.cuda.is_available():
        pytest.skip("machine has a GPU")
    from nerfw.training.distributed import plan_launch

    with pytest.raises(ConfigError, match="4 requested but this machine has 0"):
        plan_launch(4, 1, "auto")
    assert plan_launch(-1, 1, "auto").device_kind == "cpu"
    assert plan_launch(-1, 2, "auto").backend == "gloo"


def test_config_file_round_trip_and_override(tmp_path):
    cfg = parse_config(SEED_README)
    path = tmp_path / "config.json"
    cfg.save(path)
    again = parse_config(["--config", str(path), "--epochs", "3"])
    assert again.train.epochs == 3 and again.train.chunk == 4096 and again.model.t_dim == 16
    data = json.loads(path.read_text())
    data["train"]["bogus"] = 1
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="bogus"):
        parse_config(["--config", str(path)])
    assert Config.from_dict(cfg.to_dict()) == cfg


def test_cpu_heap_thresholds_set_where_glibc_is():
    import platform

    from nerfw.training.cpu_memory import keep_freed_blocks_in_heap

    assert keep_freed_blocks_in_heap() is (platform.libc_ver()[0] == "glibc")


@pytest.mark.parametrize("flags,world_size,lr", [
    (["--batch_size", "256"], 1, 1e-2),  # never below 1e-2
    (["--batch_size", "1024"], 1, 1e-2),  # the trainer's default batch keeps its tuned rate
    (["--batch_size", "1536"], 1, 1.5e-2),
    (["--batch_size", "1024"], 2, 2e-2),  # all processes' rays together
    (["--batch_size", "4096"], 1, 3e-2),
    (["--batch_size", "16384"], 1, 3e-2),  # capped at the largest rate measured
    (["--batch_size", "16384", "--lr", "5e-3"], 1, 5e-3),  # --lr wins
    (["--batch_size", "4096", "--field", "mlp"], 1, 5e-4),
])
def test_default_learning_rate_follows_the_rays_per_step(flags, world_size, lr):
    from nerfw.training.config import default_lr

    assert default_lr(parse_config(["--data_root_dir", "d", *flags]), world_size) == pytest.approx(lr)


@pytest.mark.parametrize("flags,device_kind,size", [
    ([], "cpu", 512), ([], "cuda", 1024), (["--batch_size", "2048"], "cpu", 2048), (["--batch_size", "64"], "cuda", 64),
])
def test_automatic_batch_size_depends_on_the_device(flags, device_kind, size):
    from nerfw.training.config import auto_batch_size

    cfg = parse_config(["--data_root_dir", "d", *flags])
    resolved = auto_batch_size(cfg, device_kind)
    assert resolved.train.batch_size == size
    assert resolved.train.data_root_dir == cfg.train.data_root_dir and resolved.model == cfg.model


def test_transient_gate_is_off_during_the_warmup_then_ramps_to_one():
    from nerfw.training.trainer import transient_gate

    assert [transient_gate(s, 500) for s in (0, 499, 500)] == [0.0, 0.0, 0.0]
    assert transient_gate(750, 500) == pytest.approx(0.5)
    assert transient_gate(1000, 500) == 1.0 and transient_gate(10_000, 500) == 1.0
    assert transient_gate(0, 0) == 1.0  # the paper's schedule: on from the first step


@pytest.mark.parametrize("flags,steps_per_epoch,warmup", [
    ([], 12_500, 500),  # automatic: 4 % of an epoch (beer: 6.4 M pixels / 512 rays -> ~500 steps)
    ([], 5_000, 200),  # 2.6 M pixels at 512 rays
    ([], 1_800, 100),  # the demo scene's 0.9 M pixels (72 steps): the floor
    ([], 10, 100),  # a tiny scene: the floor (0 is the paper's schedule, only when asked for)
    (["--transient_warmup", "300"], 12_500, 300), (["--transient_warmup", "0"], 12_500, 0),  # explicit: kept
])
def test_automatic_transient_warmup_is_a_share_of_an_epoch(flags, steps_per_epoch, warmup):
    from nerfw.training.config import auto_transient_warmup

    cfg = parse_config(["--data_root_dir", "d", *flags])
    resolved = auto_transient_warmup(cfg, steps_per_epoch)
    assert resolved.model.transient_warmup == warmup
    assert resolved.train == cfg.train and resolved.model.lambda_u == cfg.model.lambda_u


def test_transient_warmup_below_minus_one_is_rejected():
    with pytest.raises(ConfigError, match="transient_warmup"):
        parse_config(["--data_root_dir", "d", "--transient_warmup", "-2"])


def test_learning_rate_stays_then_decays_over_the_tail():
    from nerfw.training.trainer import LearningRateSchedule

    schedule = LearningRateSchedule(n_total=100, final_ratio=0.1, tail=0.2)
    assert [schedule.factor(s) for s in (0, 50, 80)] == [1.0, 1.0, 1.0]
    assert schedule.factor(90) == pytest.approx(0.1 ** 0.5)  # half-way through the tail
    assert schedule.factor(100) == pytest.approx(0.1) and schedule.factor(500) == pytest.approx(0.1)
    whole_run = LearningRateSchedule(n_total=100, final_ratio=0.1, tail=1.0)  # the plain exponential decay
    assert whole_run.factor(50) == pytest.approx(0.1 ** 0.5)


def test_time_limited_run_decays_by_the_share_of_its_budget_used():
    from nerfw.training.trainer import LearningRateSchedule

    schedule = LearningRateSchedule(n_total=1_000_000, final_ratio=0.1, tail=0.2)  # 20 epochs: never reached
    schedule.time_fraction = 0.9
    assert schedule.factor(10) == pytest.approx(0.1 ** 0.5)
    schedule.time_fraction = 1.0
    assert schedule.factor(10) == pytest.approx(0.1)


@pytest.mark.parametrize("tail", ["0", "1.5"])
def test_lr_decay_tail_outside_zero_one_is_refused(tail):
    with pytest.raises(ConfigError, match="--lr_decay_tail"):
        parse_config(["--data_root_dir", "d", "--lr_decay_tail", tail])
