"""LENS views against exact renders: how close `nerfw synthesize`'s novel views are to the truth.

    python benchmarks/lens_views.py [--scenes demo,flight] [--minutes 5] [--n_novel 24] [--run RUN] [--tag T]

For each built-in scene it trains the grid field with the defaults for --minutes (demo: the demo's own recipe,
SynthSquare at 160x90; flight: the drone preset at its own size), then runs the LENS pipeline as a user would:
`nerfw density`, `select-views` (the defaults) and `synthesize` (appearance "nearest", the fast renderer). Every
synthesized view is then rendered EXACTLY by the scene's generator at the same pose and intrinsics, with the
lighting of the training photo whose embedding the view took (appearance.json's images), no transients,
and scored: PSNR / SSIM of the synthesized PNG against that exact render.

Target (issue 29): >= 22 dB from a 5-minute model. Writes benchmarks/results/lens_views.json (lens_views_<tag>.json
with --tag). --run scores an existing run of the demo scene instead of training one.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from common import DEMO_SCENE, format_table, log, machine, machine_line, work_dir, write_result

TARGET_DB = 22.0


def train_scene(name: str, minutes: float, root: Path) -> Path:
    """A --minutes run of the built-in scene `name` with the defaults (cached in root/runs/<name>)."""
    from nerfw.training.config import parse_config
    from nerfw.training.trainer import train

    run = root / "runs" / name
    if (run / "checkpoints").is_dir() and any((run / "checkpoints").glob("*.ckpt")):
        log(f"using the trained run {run}")
        return run
    if name == "demo":
        from nerfw.cli.demo import build_scene, train_args

        argv = train_args(build_scene(root, 0), root, minutes, 0)
        argv[argv.index("--exp_name") + 1] = name
    else:
        from real_scenes import ensure_preset

        data = ensure_preset(name, "SynthFlight")
        argv = ["--data_root_dir", str(data), "--scene", "SynthFlight", "--img_downscale", "1", "--root_dir",
                str(root / "runs"), "--exp_name", name, "--max_minutes", str(minutes), "--val_freq", "100000000",
                "--progress", "log"]
    return Path(train(parse_config(argv)))


def ground_truth_of(run) -> "GroundTruth":  # noqa: F821
    from nerfw.evaluation.evaluate import ground_truth_dir
    from nerfw.synthetic.groundtruth import GroundTruth

    gt_dir = ground_truth_dir(run)
    if gt_dir is None:
        raise SystemExit(f"{run.scene.root}: no <scene>.groundtruth folder beside it (not a built-in scene)")
    return GroundTruth.load(gt_dir)


def truth_appearance(truth, source_name: str) -> dict:
    """The generator's lighting of a training photo; names re-packed into folders fall back to the file name."""
    for name in (source_name, Path(source_name).name):
        try:
            return truth.appearance(name)
        except KeyError:
            continue
    raise KeyError(f"no ground-truth appearance for {source_name}")


def score_views(run, synth: Path) -> list[dict]:
    """Each synthesized view against the exact render of its pose, intrinsics and source photo's lighting."""
    from PIL import Image

    from nerfw.data.poses_file import parse_poses_file
    from nerfw.evaluation import metrics

    truth = ground_truth_of(run)
    poses = dict(parse_poses_file(synth / "dataset_synth.txt")) if (synth / "dataset_synth.txt").is_file() else {}
    cameras = {v["name"]: v for v in json.loads((synth / "camera.json").read_text())["views"]}
    record = json.loads((synth / "appearance.json").read_text())
    rows = []
    for view in record["views"]:
        name, cam = view["name"], cameras[view["name"]]
        if len(view["image_ids"]) != 1:
            continue  # an interpolated appearance has no exact lighting to compare with
        exact = truth.render(poses[name], cam["fx"], cam["fy"], cam["cx"], cam["cy"], cam["width"], cam["height"],
                             appearance=truth_appearance(truth, view["images"][0]))["rgb"]
        with Image.open(synth / name) as im:
            rendered = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
        rows.append({"name": name, "source": view["images"][0], "psnr": metrics.psnr(rendered, exact),
                     "ssim": metrics.ssim(rendered, exact)})
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scenes", default="demo,flight", help="built-in scenes: demo, flight")
    p.add_argument("--minutes", type=float, default=5.0, help="training budget of each scene's model")
    p.add_argument("--n_novel", type=int, default=24, help="views synthesized and scored per scene")
    p.add_argument("--run", default="", help="score this run (of the demo scene) instead of training one")
    p.add_argument("--tag", default="")
    args = p.parse_args()
    started = time.time()
    from localization import lens_views

    from nerfw.training.run_io import load_run

    root = work_dir() / "lens_views"
    figures, table = {}, []
    for name in [s for s in args.scenes.split(",") if s]:
        run_dir = Path(args.run) if args.run else train_scene(name, args.minutes, root)
        run = load_run(run_dir)
        out = run_dir / "lens_views" / f"n{args.n_novel}"
        synth = lens_views(run_dir, out, args.n_novel)
        rows = score_views(run, synth)
        psnrs = [r["psnr"] for r in rows]
        fig = {"run": str(run_dir), "step": run.step, "views": len(rows), "psnr_mean": float(np.mean(psnrs)),
               "psnr_min": float(np.min(psnrs)), "psnr_max": float(np.max(psnrs)),
               "ssim_mean": float(np.mean([r["ssim"] for r in rows])), "ratio_to_target":
               float(np.mean(psnrs)) / TARGET_DB, "per_view": rows}
        figures[name] = fig
        table.append([name, str(run.step), str(len(rows)), f"{fig['psnr_mean']:.2f}",
                      f"{fig['psnr_min']:.2f}-{fig['psnr_max']:.2f}", f"{fig['ssim_mean']:.3f}",
                      f"{fig['ratio_to_target']:.3f}"])
        log(f"{name}: {fig['psnr_mean']:.2f} dB over {len(rows)} views (step {run.step})")
    log(format_table(table, ["scene", "steps", "views", "PSNR (dB)", "range", "SSIM", f"ratio to {TARGET_DB:g} dB"]))
    log(machine_line(machine()))
    settings = {"minutes": args.minutes, "n_novel": args.n_novel, "appearance": "nearest", "renderer": "fast",
                "scene_demo": DEMO_SCENE, "protocol": "synthesized PNG vs the generator's exact static render at the "
                "view's pose and intrinsics, lit as the view's source photo"}
    path = write_result("lens_views" + (f"_{args.tag}" if args.tag else ""), figures, settings, started=started)
    log(f"wrote {path}")


if __name__ == "__main__":
    main()
