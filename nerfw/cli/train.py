"""`nerfw train`: NeRFW-pytorch's flags verbatim (see nerfw.training.config), DDP, checkpoints, TensorBoard.

Single process:      nerfw train --data_root_dir D --scene S --exp_name E
CPU DDP (gloo):      nerfw train ... --num_procs 2
GPUs (NCCL):         nerfw train ... --num_gpus 4
torchrun, any nodes: torchrun --nnodes 2 --nproc_per_node 4 --rdzv_backend c10d --rdzv_endpoint HOST:29500 \\
                         -m nerfw train ...
"""
from __future__ import annotations

from nerfw.training.config import build_parser, parse_config

__all__ = ["build_parser", "main"]


def main(argv: list[str]) -> int:
    if any(a in ("-h", "--help") for a in argv):
        build_parser().print_help()
        return 0
    cfg = parse_config(argv)
    from nerfw.training.trainer import train

    live_viewer = None
    if cfg.train.viewer:  # viser is imported only when the page is asked for
        from nerfw.viewer.server import LiveViewer as live_viewer
    run_dir = train(cfg, live_viewer)
    print(f"run folder: {run_dir}")
    return 0
