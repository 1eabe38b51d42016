"""`nerfw make-scene`: write the built-in synthetic scene in the Cambridge or 7-Scenes layout."""
from __future__ import annotations

import argparse

from nerfw.errors import ConfigError


class _Parser(argparse.ArgumentParser):
    """argparse that raises ConfigError (one line) instead of exiting."""

    def error(self, message):
        raise ConfigError(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="nerfw make-scene", description=__doc__)
    p.add_argument("--out", required=True, help="output folder; writes OUT/<scene>/ and OUT/<scene>.groundtruth/")
    p.add_argument("--layout", default="cambridge", help="cambridge (outdoor square) | 7scenes (indoor room)")
    p.add_argument("--scene", default=None, help="scene folder name (default SynthSquare / synthroom)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--width", type=int, default=None, help="image width (default 480 cambridge, 160 7scenes)")
    p.add_argument("--height", type=int, default=None, help="image height (default 270 cambridge, 120 7scenes)")
    p.add_argument("--n_train", type=int, default=None, help="training images (default 64 / 48)")
    p.add_argument("--n_test", type=int, default=None, help="test images (default 12)")
    p.add_argument("--transient_share", type=float, default=0.5, help="share of training images with people")
    p.add_argument("--workers", type=int, default=None, help="render processes (default min(2, cpus))")
    p.add_argument("--overwrite", action="store_true", help="replace existing output folders")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from nerfw.synthetic.generate import generate_scene

    info = generate_scene(args.out, layout=args.layout, scene=args.scene, seed=args.seed, width=args.width,
                          height=args.height, n_train=args.n_train, n_test=args.n_test,
                          transient_share=args.transient_share, workers=args.workers, overwrite=args.overwrite)
    print(f"dataset:      {info['dataset_dir']} ({info['layout']}, {info['n_train']} train + {info['n_test']} test, "
          f"{info['width']}x{info['height']}, focal {info['focal']:g} px, principal point at the image centre)")
    print(f"ground truth: {info['groundtruth_dir']} ({info['n_transient_images']} images with transients, "
          f"{info['n_landmarks']} landmarks, {info['n_points']} SfM points)")
    print(f"time:         {info['seconds']:.1f} s")
    return 0
