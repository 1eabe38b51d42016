"""Real captures and the wild built-in preset, with the defaults and one time budget each.

    python benchmarks/real_scenes.py [--minutes 10 | --steps N] [--scenes fox,fern,beer,landmark,flight] [--tag T]
                                     [-- nerfw train options]

For every scene: `nerfw train` (defaults, --max_minutes), `nerfw eval` (NeRF-W protocol: appearance fitted on the
left half of each test image, PSNR/SSIM on the right half), the run's transient share (train_summary.json) and
framing line; on the built-in presets ("landmark": `make-scene --preset collection`, "flight": `--preset flight`,
a drone video as transforms.json) the static render vs the clean ground truth; on "landmark" also how many cells
of the finest plane the landmark's box spans. "landmark_turned" is the same collection with its SfM world turned
by a fixed rotation (as a COLMAP frame can be: any orientation), without ground truth; with the model frame
turned upright (`--orient auto`, the default) it scores what "landmark" scores. "landmark_llff" is the same
collection as LLFF's imgs2poses ships one (poses_bounds.npy beside the COLMAP model), the hidden collection's
layout.

Prints a table and writes benchmarks/results/real_scenes.json, overwriting it: the file docs/benchmarks.md cites.
--tag T writes real_scenes_T.json instead, for a variant or a side-by-side comparison; such a file is kept in the
repository only where docs/benchmarks.md cites it. Real data: ../shared/realdata (the repository's sibling
folder), NERFW_REALDATA, or --realdata.

Targets (issue 14, 10 minutes on the 2-core CPU): landmark-like collection >= 22 dB, drone-like flight >= 27 dB,
fox >= 25 dB, LLFF fern at 504x378 >= 24 dB.
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np

from common import REALDATA, REPO, format_table, log, machine_line, machine, work_dir, write_result  # noqa: F401

TARGETS_DB = {"fox": 25.0, "fern": 24.0, "landmark": 22.0, "landmark_llff": 22.0, "landmark_llff_noimages": 22.0,
              "landmark_llff_nopoints": 22.0, "flight": 27.0}


def scene_specs(realdata: Path, landmark_root: Path, flight_root: Path) -> dict[str, dict]:
    """name -> data root, scene, extra train options (what a user would type: the defaults plus a size)."""
    return {
        "fox": {"data": realdata / "fox", "scene": "", "args": []},  # 1080x1920 / 3 = 360x640
        "fern": {"data": realdata / "llff_fern", "scene": "", "args": ["--img_downscale", "8"]},  # 504x378
        "beer": {"data": realdata / "beer", "scene": "", "args": []},  # 720x1280 / 3 = 240x427
        "landmark": {"data": landmark_root, "scene": "SynthLandmark", "args": ["--img_downscale", "1"]},
        "landmark_turned": {"data": landmark_root.parent / "landmark_turned", "scene": "SynthLandmark",
                            "args": ["--img_downscale", "1"]},
        # the same collection as LLFF's imgs2poses ships it: poses_bounds.npy with the COLMAP model beside it
        "landmark_llff": {"data": landmark_root.parent / "landmark_llff", "scene": "SynthLandmark",
                          "args": ["--img_downscale", "1"]},
        # the same LLFF copy without the model's image list (points checked by projection), and without points
        **{name: {"data": landmark_root.parent / name, "scene": "SynthLandmark", "args": ["--img_downscale", "1"]}
           for name in LLFF_VARIANTS},
        # a drone video as instant-ngp ships it (480x270 = 1280x720 / 2.67, the size `--img_downscale 3` gives)
        "flight": {"data": flight_root, "scene": "SynthFlight", "args": ["--img_downscale", "1"]},
    }


def ensure_preset(preset: str, scene: str, seed: int = 0) -> Path:
    """The built-in preset's dataset under the benchmarks' work folder, generated on first use."""
    from nerfw.synthetic import generate_scene

    root = work_dir() / {"collection": "landmark"}.get(preset, preset)
    marker = root / f".{scene}.seed{seed}.done"
    if not marker.is_file():
        generate_scene(root, preset=preset, seed=seed, overwrite=True)
        marker.write_text("done\n")
    return root


TURN_EULER_XYZ_DEG = (35.0, -50.0, 20.0)  # landmark_turned: the world rotation applied to the collection


def ensure_turned_copy(src: Path, scene: str) -> Path:
    """The collection preset's COLMAP model with its world turned by TURN_EULER_XYZ_DEG (images linked, no
    ground truth: its cameras are in the unturned frame). x' = Q x, so a world-to-camera rotation becomes R Q^T."""
    from scipy.spatial.transform import Rotation

    from nerfw.cameras.conventions import quat_to_rotmat, rotmat_to_quat

    dst = src.parent / "landmark_turned"
    marker = dst / f".{scene}.turned.done"
    if marker.is_file():
        return dst
    Q = Rotation.from_euler("xyz", TURN_EULER_XYZ_DEG, degrees=True).as_matrix()
    sparse = dst / scene / "sparse" / "0"
    sparse.mkdir(parents=True, exist_ok=True)
    if not (dst / scene / "images").exists():
        (dst / scene / "images").symlink_to((src / scene / "images").resolve())
    (sparse / "cameras.txt").write_text((src / scene / "sparse/0/cameras.txt").read_text())
    out, data_lines = [], 0
    for line in (src / scene / "sparse/0/images.txt").read_text().splitlines():
        fields = line.split()
        if not line.startswith("#") and data_lines % 2 == 0:  # IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME
            q = rotmat_to_quat(quat_to_rotmat(np.array([float(v) for v in fields[1:5]])) @ Q.T)
            line = " ".join([fields[0], *(repr(float(v)) for v in q), *fields[5:]])
        data_lines += 0 if line.startswith("#") else 1
        out.append(line)
    (sparse / "images.txt").write_text("\n".join(out) + "\n")
    out = []
    for line in (src / scene / "sparse/0/points3D.txt").read_text().splitlines():
        if not line.startswith("#"):
            fields = line.split()
            X = Q @ np.array([float(v) for v in fields[1:4]])
            line = " ".join([fields[0], *(repr(float(v)) for v in X), *fields[4:]])
        out.append(line)
    (sparse / "points3D.txt").write_text("\n".join(out) + "\n")
    marker.write_text("done\n")
    return dst


def ensure_llff_copy(src: Path, scene: str) -> Path:
    """The collection preset as LLFF's imgs2poses writes a capture: poses_bounds.npy (rows in image-name order,
    each with its photo's size and focal; near/far from the sparse points) beside the COLMAP model in sparse/0
    and the images (linked). Its ground truth is linked too: the frame is the same."""
    from nerfw.cameras.conventions import T_world_cam_to_llff
    from nerfw.data.parsers.colmap import load_colmap

    dst = src.parent / "landmark_llff"
    marker = dst / f".{scene}.llff.done"
    if marker.is_file():
        return dst
    (dst / scene / "sparse").mkdir(parents=True, exist_ok=True)
    for rel in ("images", "sparse/0"):
        if not (dst / scene / rel).exists():
            (dst / scene / rel).symlink_to((src / scene / rel).resolve())
    if not (dst / f"{scene}.groundtruth").exists():
        (dst / f"{scene}.groundtruth").symlink_to((src / f"{scene}.groundtruth").resolve())
    views = load_colmap(src / scene, 1).cameras  # sorted by name, as imgs2poses orders its rows
    rows = [np.concatenate([T_world_cam_to_llff(v.T_world_cam, v.height, v.width, v.fx).ravel(), [v.near, v.far]])
            for v in views]
    np.save(dst / scene / "poses_bounds.npy", np.stack(rows))
    marker.write_text("done\n")
    return dst


LLFF_VARIANTS = {  # name -> the model files kept beside poses_bounds.npy
    "landmark_llff_noimages": ("cameras.txt", "points3D.txt"),  # the internet collection's shape: no image list
    "landmark_llff_nopoints": ("cameras.txt",),  # lenses only: framed without any sparse points
}


def ensure_llff_variant(llff: Path, scene: str, name: str) -> Path:
    """The LLFF copy of the collection with only some of its COLMAP model's files (LLFF_VARIANTS)."""
    dst = llff.parent / name
    marker = dst / f".{scene}.done"
    if marker.is_file():
        return dst
    sparse = dst / scene / "sparse" / "0"
    sparse.mkdir(parents=True, exist_ok=True)
    for rel in ("images", "poses_bounds.npy"):
        if not (dst / scene / rel).exists():
            (dst / scene / rel).symlink_to((llff / scene / rel).resolve())
    for file in LLFF_VARIANTS[name]:
        (sparse / file).write_bytes((llff / scene / "sparse" / "0" / file).read_bytes())
    if not (dst / f"{scene}.groundtruth").exists():
        (dst / f"{scene}.groundtruth").symlink_to((llff / f"{scene}.groundtruth").resolve())
    marker.write_text("done\n")
    return dst


def landmark_cells(run_dir: Path, data_root: Path) -> float | None:
    """Cells of the finest plane spanned by the landmark box's longest side, in the run's model frame."""
    from nerfw.training.run_io import load_run

    box_file = data_root / "SynthLandmark.groundtruth" / "scene.json"
    if not box_file.is_file():
        return None
    bounds = json.loads(box_file.read_text()).get("landmark", {}).get("bounds_world")
    if bounds is None:
        return None
    lo, hi = bounds
    run = load_run(run_dir)
    size = float(np.max(np.asarray(hi) - np.asarray(lo))) * run.normalization.scale  # model units
    # inside the unit ball the contraction is the identity; the planes cover the contracted [-2, 2] cube
    return size * run.cfg.model.grid_max_res / 4.0


def run_scene(name: str, spec: dict, minutes: float, steps: int, run_root: Path, extra: list[str]) -> dict:
    from nerfw.cli.evaluate import main as eval_main
    from nerfw.training.config import parse_config
    from nerfw.training.trainer import train

    argv = ["--data_root_dir", str(spec["data"]), "--root_dir", str(run_root), "--exp_name", name,
            "--max_minutes", str(minutes), "--max_steps", str(steps), "--progress", "log", "--val_freq", "100000000", *spec["args"], *extra]
    if spec["scene"]:
        argv += ["--scene", spec["scene"]]
    shutil.rmtree(run_root / name, ignore_errors=True)  # a fresh run: an earlier one's checkpoints would be evaluated
    t0 = time.time()
    run_dir = train(parse_config(argv))
    train_s = time.time() - t0
    t0 = time.time()
    eval_main(["--run", str(run_dir)])
    eval_s = time.time() - t0
    metrics = json.loads((run_dir / "eval" / "test" / "metrics.json").read_text())
    summary_file = run_dir / "train_summary.json"
    summary = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
    framing = next((line for line in (run_dir / "loss_log.txt").read_text().splitlines()
                    if line.startswith("framing:")), "")
    result = {
        "test_psnr": metrics.get("psnr"), "test_ssim": metrics.get("ssim"), "n_test": metrics.get("n_images"),
        "steps": summary.get("step"), "train_psnr": summary.get("train_psnr"),
        "transient_share": summary.get("transient_share"), "transient_pixels": summary.get("transient_pixels"),
        "train_seconds": round(train_s, 1), "eval_seconds": round(eval_s, 1), "framing": framing,
        "target_db": TARGETS_DB.get(name),
    }
    if result["target_db"] and result["test_psnr"] is not None:
        result["ratio_to_target"] = round(result["test_psnr"] / result["target_db"], 3)
    gt = metrics.get("synthetic_ground_truth")
    if gt:
        result["static_vs_clean_psnr"] = gt.get("static_vs_clean_psnr")
        result["transient_mask_iou"] = gt.get("transient_mask_iou")
    if name.startswith("landmark") and name != "landmark_turned":
        result["landmark_cells"] = landmark_cells(run_dir, spec["data"])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="training budget per scene (wall clock)")
    parser.add_argument("--steps", type=int, default=0,
                        help="budget in steps instead of minutes (0: none), for a loaded machine: quality then does "
                             "not depend on the load (docs/benchmarks.md gives the step counts of the 10-minute runs)")
    parser.add_argument("--scenes", default="landmark,flight,fox,fern,beer", help="comma-separated subset")
    parser.add_argument("--realdata", default=str(REALDATA),
                        help="folder holding fox/, llff_fern/, beer/")
    parser.add_argument("--tag", default="", help="suffix of the result file (e.g. a variant's name)")
    parser.add_argument("train_options", nargs="*", help="extra `nerfw train` options after --, e.g. -- --framing cameras")
    args = parser.parse_args(argv)
    started = time.time()
    wanted = [s for s in args.scenes.split(",") if s]
    specs = scene_specs(Path(args.realdata),
                        ensure_preset("collection", "SynthLandmark")
                        if any(w.startswith("landmark") for w in wanted) else Path("-"),
                        ensure_preset("flight", "SynthFlight") if "flight" in wanted else Path("-"))
    run_root = work_dir() / "runs" / f"real_scenes{('_' + args.tag) if args.tag else ''}"
    figures = {}
    if "landmark_turned" in wanted:
        ensure_turned_copy(ensure_preset("collection", "SynthLandmark"), "SynthLandmark")
    if any(w.startswith("landmark_llff") for w in wanted):
        llff = ensure_llff_copy(ensure_preset("collection", "SynthLandmark"), "SynthLandmark")
        for variant in set(wanted) & set(LLFF_VARIANTS):
            ensure_llff_variant(llff, "SynthLandmark", variant)
    for name in wanted:
        if name not in specs:
            parser.error(f"unknown scene {name!r}; choose from {', '.join(specs)}")
        if not Path(specs[name]["data"]).is_dir():
            log(f"{name}: {specs[name]['data']} not found, skipped")
            continue
        log(f"== {name}")
        minutes = 0.0 if args.steps else args.minutes
        figures[name] = run_scene(name, specs[name], minutes, args.steps, run_root, args.train_options)
        log(json.dumps(figures[name], indent=1))
    rows = [[n, f"{f['test_psnr']:.2f}" if f["test_psnr"] is not None else "-",
             f"{f['target_db']:.0f}" if f.get("target_db") else "-", str(f.get("ratio_to_target", "-")),
             f"{100 * (f['transient_pixels'] or 0):.1f} %", str(f.get("static_vs_clean_psnr", "-")), str(f["steps"])]
            for n, f in figures.items()]
    print(format_table(rows, ["scene", "test PSNR", "target", "ratio", "transient px", "static vs clean", "steps"]))
    name = "real_scenes" + (f"_{args.tag}" if args.tag else "")
    path = write_result(name, figures, settings={"minutes": 0 if args.steps else args.minutes, "steps": args.steps,
                                                      "train_options": args.train_options},
                        started=started)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
