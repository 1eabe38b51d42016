"""`nerfw view`: look at a trained run in a web browser (viser)."""
from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import torch

from nerfw.errors import ConfigError
from nerfw.evaluation.evaluate import cpu_threads
from nerfw.options import build_command_parser, parse_command
from nerfw.viewer import server
from nerfw.viewer.server import Viewer, check_port, load_viewer_run

PROG = "nerfw view"


@dataclass(kw_only=True)
class ViewOptions:
    run: str
    """a training run folder (<root_dir>/<exp_name>) with a checkpoint"""
    port: int = 7007
    """TCP port of the web page; change it when it is busy"""
    host: str = "127.0.0.1"
    """address to listen on: 127.0.0.1 serves this machine only (use an SSH tunnel from elsewhere); 0.0.0.0 serves
    every network interface (anyone who can reach the port)"""
    views: str = ""
    """a Cambridge-format poses file of synthesized views (nerfw select-views) to draw as green frustums (default:
    none)"""
    cloud: str = ""
    """a point cloud or mesh PLY in the dataset's frame (`nerfw export --run RUN --format points`) to show instead of
    the dataset's sparse points (default: the sparse points)"""
    width: int = 0
    """initial width in pixels of the still image (0: 640 on a CPU, 1280 on a GPU); the page has a slider"""
    chunk: int = 16384
    """rays per forward pass; only speed and memory change"""
    device: str = "auto"
    """auto (a GPU if there is one), cpu, cuda or cuda:N"""
    threads: int = 0
    """CPU threads for rendering (0: $OMP_NUM_THREADS if set, else the cores other processes leave idle; on a busy
    2-core machine 1 thread renders 2-3x faster than 2)"""


def build_parser() -> argparse.ArgumentParser:
    return build_command_parser(PROG, server.__doc__, ViewOptions)


def main(argv: list[str]) -> int:
    args = parse_command(argv, PROG, server.__doc__, ViewOptions)
    if not 0 < args.port < 65536:
        raise ConfigError(f"--port must be in 1..65535, got {args.port}")
    if args.width < 0 or args.chunk < 1 or args.threads < 0:
        raise ConfigError("expected --width >= 0, --chunk >= 1 and --threads >= 0")
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        torch.set_num_threads(args.threads if args.threads > 0 else cpu_threads())
    t0 = time.time()
    check_port(args.host, args.port)  # fail before the (slower) model load
    run = load_viewer_run(args.run, device=device)
    viewer = Viewer(run, args.host, args.port, views=args.views or None, width=args.width or None, chunk=args.chunk,
                    cloud=args.cloud or None)
    url = viewer.start()
    print(f"nerfw view: {run.run_dir} (step {run.step}) ready in {time.time() - t0:.1f} s at {url}", flush=True)
    if args.host in ("127.0.0.1", "localhost", "::1"):
        print(f"  from another machine: ssh -L {args.port}:localhost:{args.port} <this host>, then open "
              f"http://localhost:{args.port}", flush=True)
    print("  Ctrl+C stops the viewer", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("nerfw view: stopped", flush=True)
    finally:
        viewer.stop()
    return 0
