"""`nerfw demo`: the whole pipeline on the built-in synthetic scene, on a laptop CPU, in minutes.

make-scene (cached) -> train (default grid field, a wall-clock budget) -> eval (NeRF-W protocol on the test
split) -> render a short video along the training path -> cameras PLY. Prints the test metrics and where
every output is.
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from nerfw.options import build_command_parser, parse_command

DEMO_SCENE = "SynthSquare"


def build_scene(out: Path, seed: int) -> Path:
    from nerfw.synthetic import generate_scene

    data_root = out / "data"
    marker = data_root / f".{DEMO_SCENE}.seed{seed}.done"
    if marker.is_file():
        print(f"[1/5] built-in scene: cached in {data_root / DEMO_SCENE}")
        return data_root
    t0 = time.time()
    generate_scene(data_root, layout="cambridge", scene=DEMO_SCENE, seed=seed)
    marker.write_text("ok\n")
    print(f"[1/5] built-in scene generated in {time.time() - t0:.0f} s: {data_root / DEMO_SCENE}")
    return data_root


def train_args(data_root: Path, out: Path, minutes: float, seed: int) -> list[str]:
    return ["--data_root_dir", str(data_root), "--scene", DEMO_SCENE, "--root_dir", str(out / "runs"),
            "--exp_name", "demo", "--img_downscale", "3", "--max_minutes", str(minutes), "--seed", str(seed),
            "--save_latest_freq", "500", "--val_freq", "1000000"]  # batch: the trainer's automatic one


@dataclass(kw_only=True)
class DemoOptions:
    out: str = "demo_out"
    """folder where the scene, run and outputs go"""
    minutes: float = 6.0
    """training wall-clock budget in minutes; more gives a sharper model"""
    fit_steps: int = 100
    """Adam steps of the appearance fit per test image (NeRF-W protocol; the same default as `nerfw eval`)"""
    seed: int = 0
    """random seed of the scene and of training"""


def build_parser() -> argparse.ArgumentParser:
    return build_command_parser("nerfw demo", __doc__, DemoOptions)


def main(argv: list[str]) -> int:
    args = parse_command(argv, "nerfw demo", __doc__, DemoOptions)
    out = Path(args.out)
    t_start = time.time()
    data_root = build_scene(out, args.seed)

    from nerfw.training.config import parse_config
    from nerfw.training.trainer import train

    cfg = parse_config(train_args(data_root, out, args.minutes, args.seed))
    if cfg.train.run_dir.exists():  # the demo's own earlier run: a new demo replaces it (training refuses to mix runs)
        print(f"replacing the earlier demo run in {cfg.train.run_dir}")
        shutil.rmtree(cfg.train.run_dir)
    print(f"[2/5] training the default '{cfg.model.field}' field for {args.minutes:g} min ...")
    run_dir = train(cfg)

    from nerfw.evaluation.evaluate import evaluate
    from nerfw.model.appearance_fit import FitOptions
    from nerfw.training.run_io import load_run

    run = load_run(run_dir)
    print(f"[3/5] evaluating on the test split (NeRF-W protocol, {args.fit_steps} fit steps per image) ...")
    metrics = evaluate(run, "test", "fit_left_half", FitOptions(steps=args.fit_steps), log=lambda m: None)

    from nerfw.cli.render import build_parser as render_parser
    from nerfw.outputs.render import render_all

    print("[4/5] rendering a video along the training path ...")
    video_dir = out / "video"
    render_all(run, render_parser().parse_args(["--run", str(run_dir), "--out", str(video_dir), "--path", "interp",
                                                "--n_frames", "24"]), log=lambda m: None)

    from nerfw.data.cameras_ply import write_cameras_ply

    ply = write_cameras_ply(out / "cameras.ply", run.scene.cameras, points=run.scene.points,
                            point_colors=run.scene.point_colors)
    print("[5/5] cameras written")
    summary = {"test_psnr": metrics["psnr"], "test_ssim": metrics["ssim"], "protocol": "fit_left_half",
               "train_steps": run.step, "minutes_total": (time.time() - t_start) / 60.0}
    (out / "demo_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print()
    print(f"test PSNR {metrics['psnr']:.2f} dB, SSIM {metrics['ssim']:.4f} "
          f"(NeRF-W protocol: appearance fitted on the left half, right half scored)")
    if "synthetic_ground_truth" in metrics:
        g = metrics["synthetic_ground_truth"]
        print(f"static render vs clean ground truth: {g['static_vs_clean_psnr']:.2f} dB; "
              f"transient mask IoU: {g['transient_mask_iou']}")
    print(f"scene:        {data_root / DEMO_SCENE} (ground truth beside it)")
    print(f"run:          {run_dir} (checkpoints/, tensorboard/, config.json)")
    print(f"metrics:      {run_dir / 'eval' / 'test' / 'metrics.json'}")
    figures = metrics.get("figures") or {}
    if figures:
        print(f"panels:       {figures['panels']}/ (per test image: ground truth | render | static | transient | "
              "depth | beta, labelled, with its PSNR)")
        print(f"plot:         {figures['plot']} (training loss and PSNR over steps, test PSNR per image)")
    print(f"video:        {video_dir / 'rgb.mp4'} (+ depth.mp4, PNG frames)")
    print(f"cameras:      {ply} (open in MeshLab)")
    print(f"viewer:       nerfw view --run {run_dir}   (then open http://localhost:7007)")
    print(f"total time:   {summary['minutes_total']:.1f} min")
    return 0
