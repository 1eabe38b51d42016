"""`nerfw make-scene`: write the built-in synthetic scene in the Cambridge or 7-Scenes layout, (--preset
collection) a landmark's internet photo collection as a COLMAP model, or (--preset flight) a drone video over
the square as instant-ngp's transforms.json."""
from __future__ import annotations

import argparse
from dataclasses import dataclass

from nerfw.options import build_command_parser, parse_command
from nerfw.synthetic.generate import SceneSpec, generate_scene

PROG = "nerfw make-scene"


@dataclass(kw_only=True)
class Output:
    out: str
    """output folder; writes OUT/<scene>/ and OUT/<scene>.groundtruth/"""


def build_parser() -> argparse.ArgumentParser:
    return build_command_parser(PROG, __doc__, Output, SceneSpec)


def main(argv: list[str]) -> int:
    output, spec = parse_command(argv, PROG, __doc__, Output, SceneSpec)
    info = generate_scene(output.out, spec)
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
