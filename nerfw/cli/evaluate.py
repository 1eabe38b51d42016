"""`nerfw eval`: test-split PSNR/SSIM of a trained run with the NeRF-W appearance protocol."""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from nerfw.evaluation import evaluate as evaluate_module
from nerfw.evaluation.evaluate import cpu_threads, evaluate
from nerfw.model.appearance_fit import FitOptions
from nerfw.options import build_command_parser, parse_command
from nerfw.training.run_io import load_run

PROG = "nerfw eval"


@dataclass(kw_only=True)
class EvalOptions:
    run: str
    """run folder (<root_dir>/<exp_name>)"""
    split: str = "test"
    """the dataset split to score (test; train to check fitting)"""
    appearance: Literal["fit_left_half", "mean", "nearest", "zero"] = "fit_left_half"
    """how held-out images get an appearance (default: the NeRF-W protocol; see nerfw.evaluation.evaluate.PROTOCOLS)"""
    fit_steps: int = FitOptions.steps
    """Adam steps of the left-half fit"""
    fit_rays: int = FitOptions.rays_per_step
    """left-part pixels drawn per fit step"""
    fit_method: Literal["auto", "cached", "full"] = FitOptions.method
    """cached: render each pixel's geometry once and fit through the colour head only; full: every fit step through
    the whole model (the reference, several times slower); auto: cached where the field allows it"""
    chunk: int = 0
    """rays per forward pass, speed and memory only (0: 1024 on the CPU, 8192 on a GPU)"""
    max_images: int = 0
    """score only the first N images (0: all)"""
    device: str = "cpu"
    """cpu, cuda or cuda:N: where the model runs"""
    threads: int = 0
    """CPU threads (0: $OMP_NUM_THREADS if set, else the cores other processes leave idle)"""
    out: str = ""
    """output folder (default <run>/eval/<split>)"""


def build_parser() -> argparse.ArgumentParser:
    return build_command_parser(PROG, evaluate_module.__doc__, EvalOptions)


def main(argv: list[str]) -> int:
    args = parse_command(argv, PROG, evaluate_module.__doc__, EvalOptions)
    if args.device == "cpu":
        torch.set_num_threads(args.threads if args.threads > 0 else cpu_threads())
    run = load_run(args.run, device=args.device)
    fit = FitOptions(steps=args.fit_steps, rays_per_step=args.fit_rays, method=args.fit_method)
    result = evaluate(run, args.split, args.appearance, fit, args.chunk, Path(args.out) if args.out else None,
                      args.max_images)
    print(f"{args.split}: PSNR {result['psnr']:.2f} dB, SSIM {result['ssim']:.4f} ({args.appearance}); "
          f"LPIPS unavailable offline")
    figures = result.get("figures") or {}
    if figures:
        print(f"panels (ground truth | render | static | transient | depth | beta, labelled): {figures['panels']}")
        print(f"plot (training loss and PSNR over steps, {args.split} PSNR per image): {figures['plot']}")
    return 0
