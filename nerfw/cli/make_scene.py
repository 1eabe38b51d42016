"""`nerfw make-scene`: write the built-in synthetic scene in the Cambridge or 7-Scenes layout, (--preset
collection) a landmark's internet photo collection as a COLMAP model, or (--preset flight) a drone video over
the square as instant-ngp's transforms.json."""
from __future__ import annotations

import argparse

from nerfw.cli_args import Parser, add_switch


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="nerfw make-scene", description=__doc__)
    p.add_argument("--out", required=True, help="output folder; writes OUT/<scene>/ and OUT/<scene>.groundtruth/")
    p.add_argument("--preset", default="wild", choices=["wild", "collection", "flight"],
                   help="wild (default: the square or the room, see --layout) | collection (a statue's photo "
                        "collection as a COLMAP model: per-photo sizes, focals and lens distortion, far cameras) | flight (a drone "
                        "flying over the square, transforms.json with an OPENCV lens, moving vehicles)")
    p.add_argument("--layout", default=None, help="wild preset: cambridge (outdoor square, default) | 7scenes "
                                                  "(indoor room)")
    p.add_argument("--scene", default=None, help="scene folder name (default SynthSquare / synthroom / SynthLandmark)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the scene (layout of objects, people, "
                                                       "lighting); another seed gives another scene")
    p.add_argument("--width", type=int, default=None,
                   help="image width in pixels (default 480 cambridge; 640 7scenes, as the real dataset ships, "
                        "reduced at training time with --img_downscale); collection: every photo's long side "
                        "(default 240); flight 480")
    p.add_argument("--height", type=int, default=None, help="image height (default 270 cambridge, 480 7scenes; "
                                                            "not used by collection; flight 270)")
    p.add_argument("--n_train", type=int, default=None, help="training images (default 64 / 48 / 70 / 70)")
    p.add_argument("--n_test", type=int, default=None, help="test images (default 12; collection 10 = every 8th "
                                                            "photo by name, as the COLMAP reader holds out; flight 10 = every 8th frame)")
    p.add_argument("--transient_share", type=float, default=0.5,
                   help="share of training images with transient people, 0..1 (0: a static scene)")
    p.add_argument("--workers", type=int, default=None, help="render processes (default min(2, cpus))")
    add_switch(p, "--overwrite", "replace existing output folders (otherwise an existing folder is an error)")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from nerfw.synthetic.generate import generate_scene

    info = generate_scene(args.out, layout=args.layout, scene=args.scene, seed=args.seed, width=args.width,
                          height=args.height, n_train=args.n_train, n_test=args.n_test,
                          transient_share=args.transient_share, workers=args.workers, overwrite=args.overwrite,
                          preset=args.preset)
    if info.get("preset") == "collection":
        lo, hi = info["landmark_bounds"]
        print(f"dataset:      {info['dataset_dir']} (COLMAP text model in sparse/0, images/*.jpg; {info['n_train']} "
              f"train + {info['n_test']} test = every 8th photo by name; long side {info['width']} px, "
              f"{info['n_up']} looking up at the statue, {info['n_far']} far away)")
        print(f"ground truth: {info['groundtruth_dir']} ({info['n_transient_images']} images with transients, "
              f"{info['n_points']} sparse points)")
        print("landmark box: [" + ", ".join(f"{v:.3f}" for v in lo) + "] .. [" + ", ".join(f"{v:.3f}" for v in hi)
              + "] (world frame)")
        print(f"time:         {info['seconds']:.1f} s")
        return 0
    if info.get("preset") == "flight":
        print(f"dataset:      {info['dataset_dir']} (instant-ngp transforms.json, images/*.jpg; {info['n_train']} "
              f"train + {info['n_test']} test = every 8th frame; {info['width']}x{info['height']}, OPENCV lens)")
        print(f"ground truth: {info['groundtruth_dir']} ({info['n_transient_images']} frames with vehicles / people)")
        print(f"time:         {info['seconds']:.1f} s")
        return 0
    print(f"dataset:      {info['dataset_dir']} ({info['layout']}, {info['n_train']} train + {info['n_test']} test, "
          f"{info['width']}x{info['height']}, focal {info['focal']:g} px, principal point at the image centre)")
    print(f"ground truth: {info['groundtruth_dir']} ({info['n_transient_images']} images with transients, "
          f"{info['n_landmarks']} landmarks, {info['n_points']} SfM points)")
    print(f"time:         {info['seconds']:.1f} s")
    return 0
