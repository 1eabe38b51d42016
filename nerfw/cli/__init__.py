"""The `nerfw` command: one subcommand per pipeline stage.

Each subcommand lives in its own module exposing ``main(argv) -> int``; modules are imported only when
their command runs, so `nerfw --help` is instant. User errors (NerfwError) print as one line.
"""
from __future__ import annotations

import importlib
import sys

from nerfw.errors import NerfwError

COMMANDS: dict[str, tuple[str, str]] = {
    "make-scene": ("nerfw.cli.make_scene", "generate the built-in synthetic 'wild' scene (Cambridge or 7-Scenes layout)"),
    "inspect": ("nerfw.cli.inspect", "print what nerfw reads from a dataset (--json for machine-readable)"),
    "export": ("nerfw.cli.export", "a dataset in another layout (transforms, colmap, llff) or a run's geometry (points, mesh)"),
    "train": ("nerfw.cli.train", "train a NeRF-W (NeRFW-pytorch's flags accepted verbatim; DDP with --num_gpus/--num_procs)"),
    "eval": ("nerfw.cli.evaluate", "test-split PSNR/SSIM with the NeRF-W appearance protocol"),
    "render": ("nerfw.cli.render", "render a split, a poses file or a camera path to PNG/MP4"),
    "cameras": ("nerfw.cli.cameras", "write camera frustums (and points) as a PLY for MeshLab"),
    "density": ("nerfw.cli.density", "probe the static density on a 3-D grid (LENS)"),
    "select-views": ("nerfw.cli.select_views", "choose novel camera poses in free space (LENS)"),
    "synthesize": ("nerfw.cli.synthesize", "render novel views into a Cambridge/7-Scenes-format dataset (LENS)"),
    "view": ("nerfw.cli.view", "look at a trained run in a web browser (viser): fly, switch outputs, see cameras"),
    "localize": ("nerfw.cli.localize", "localize query photos with the trained NeRF-W as the map (SIFT, PnP)"),
    "demo": ("nerfw.cli.demo", "build the built-in scene, train, evaluate, render and export cameras"),
}


def _usage() -> str:
    lines = ["usage: nerfw <command> [options]", "", "commands:"]
    lines += [f"  {name:<13} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run `nerfw <command> --help` for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    if argv[0] in ("-V", "--version"):
        from nerfw import __version__

        print(f"nerfw {__version__}")
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"nerfw: error: unknown command '{command}' (choose from {', '.join(COMMANDS)})", file=sys.stderr)
        return 2
    try:
        module = importlib.import_module(COMMANDS[command][0])
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("nerfw"):
            print(f"nerfw {command}: not available yet in this version", file=sys.stderr)
            return 3
        raise
    try:
        return int(module.main(rest) or 0)
    except NerfwError as exc:
        print(f"nerfw {command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"nerfw {command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
