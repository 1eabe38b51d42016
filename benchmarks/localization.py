"""The LENS experiment, measured: visual localization on the built-in scene with the trained NeRF-W as the map.

    python benchmarks/localization.py [--run RUN] [--minutes 6] [--n_novel 300] [--feature_size 0] [--tag T]
                                       [--layout cambridge|7scenes]

Without --run it generates the built-in Cambridge-layout scene (SynthSquare, seed 0, as `nerfw demo`) and trains
the grid field as the demo does (--img_downscale 3 = 160x90, 512 rays per step on a CPU, --minutes budget).
Then, over the test split (12 queries with known poses):

(a) retrieval only: the pose of the top VLAD match;
(b) map = the training photographs: SIFT -> rendered-depth 3-D points -> matches with the top-5 images -> PnP;
(c) map = training photographs + `--n_novel` LENS views (`nerfw density`, `select-views` with the visibility
    rule, `synthesize`);
(d) (b) + refinement by rendering (render at the estimate, match the query to the render, solve again);
(e) (b) + photometric alignment (the query photo aligned to the model's RGB-D render, every pixel);
(f) (c) + photometric alignment.

--layout 7scenes runs the same on the built-in room in the 7-Scenes layout (SynthRoom, 640x480, trained at 160x120
with the demo's recipe); look at its 5 cm / 5 deg recall.

Reports median translation / rotation errors, recall at 0.25 m / 2 deg, 0.5 m / 5 deg, 5 m / 10 deg, failures,
seconds per query and the map-building time; writes benchmarks/results/localization.json (overwritten: the file
docs/benchmarks.md cites), or localization_<tag>.json with --tag T (a variant, kept in the repository only where
docs/benchmarks.md cites it, e.g. localization_7scenes.json).
Targets (issue 15): median <= 0.10 m and <= 0.3 deg, >= 95 % within 0.5 m / 5 deg, (c) not worse than (b),
map building <= 60 s and <= 3 s per query on the 2-core CPU.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from common import DEMO_SCENE, ensure_scene, format_table, log, machine, machine_line, work_dir, write_result

TARGETS = {"median_translation": 0.10, "median_rotation_deg": 0.3, "recall_0.5_5deg": 0.95,
           "map_seconds": 60.0, "seconds_per_query": 3.0}


ROOM_SCENE = "SynthRoom"  # the built-in room in the 7-Scenes layout (640x480, metres)


def train_demo_model(root: Path, minutes: float, seed: int = 0, layout: str = "cambridge",
                     downscale: int = 0) -> Path:
    """The demo's recipe on the built-in scene of `layout`: Cambridge = the demo itself (SynthSquare, 160x90);
    7scenes = the room (SynthRoom) trained the same way at --img_downscale 4 (160x120). `downscale` > 0 trains at
    that --img_downscale instead (its own run folder)."""
    from nerfw.cli.demo import build_scene, train_args
    from nerfw.training.config import parse_config
    from nerfw.training.trainer import train

    name = "demo" if downscale <= 0 else f"demo_downscale{downscale}"
    run = root / "runs" / name
    if (run / "checkpoints").is_dir() and any((run / "checkpoints").glob("*.ckpt")):
        log(f"using the trained run {run}")
        return run

    def with_options(argv: list[str], scene: str, default_downscale: str) -> list[str]:
        argv[argv.index("--scene") + 1] = scene
        argv[argv.index("--img_downscale") + 1] = str(downscale) if downscale > 0 else default_downscale
        argv[argv.index("--exp_name") + 1] = name
        return argv

    if layout == "cambridge":
        argv = train_args(build_scene(root, seed), root, minutes, seed)
        return Path(train(parse_config(with_options(argv, DEMO_SCENE, "3"))))
    data = ensure_scene(ROOM_SCENE, seed, root / "data", layout="7scenes")
    return Path(train(parse_config(with_options(train_args(data, root, minutes, seed), ROOM_SCENE, "4"))))


def lens_views(run_dir: Path, out: Path, n_novel: int, log_=log) -> Path:
    """density -> select-views (visibility rule, defaults) -> synthesize; cached in `out`."""
    from nerfw.novel_views.density import run_density
    from nerfw.data.poses_file import parse_poses_file
    from nerfw.training.run_io import load_run
    from nerfw.novel_views.selection import SelectionParams, defaults_for, select_views, write_selection
    from nerfw.novel_views.synthesis import synthesize

    synth = out / "synth"
    if (synth / ".nerfw" / "manifest.json").is_file() and len(list((synth / "seq_synth").glob("*.png"))) >= n_novel:
        return synth
    run = load_run(run_dir)
    grid, _ = run_density(run, log=log_)
    d_scene, d_view, theta = defaults_for(run.scene.format)
    params = SelectionParams(n_novel=n_novel, d_scene=d_scene, d_view=d_view, theta_deg=theta, seed=0)
    t0 = time.time()
    views = select_views(run, grid, params, log=log_)
    paths = write_selection(views, out / "views.txt", run, params)
    log_(f"selected {len(views)} views in {time.time() - t0:.0f} s")
    t0 = time.time()
    synthesize(run, parse_poses_file(paths["poses"]), synth, progress=False, log=log_)
    log_(f"synthesized {len(views)} views in {time.time() - t0:.0f} s")
    return synth


def row(label: str, s: dict, seconds: float, map_seconds: float | None) -> list[str]:
    recalls = [f"{100 * s[key]:.0f}" for key in ("recall_0.25_2deg", "recall_0.5_5deg", "recall_5_10deg",
                                                  "recall_0.05_5deg")]
    return [label, f"{s['median_translation']:.3f}", f"{s['median_rotation_deg']:.2f}", *recalls, str(s["failed"]),
            f"{seconds:.2f}", "-" if map_seconds is None else f"{map_seconds:.0f}"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", default="", help="a trained run of the built-in scene (default: train one)")
    p.add_argument("--minutes", type=float, default=6.0)
    p.add_argument("--n_novel", type=int, default=300)
    p.add_argument("--feature_size", type=int, default=0)
    p.add_argument("--tag", default="")
    p.add_argument("--layout", choices=("cambridge", "7scenes"), default="cambridge",
                   help="built-in scene: the demo's square (Cambridge layout) or the room (7-Scenes layout)")
    p.add_argument("--train_downscale", type=int, default=0,
                   help="train the model at this --img_downscale instead of the demo's (e.g. 1: 480x270)")
    args = p.parse_args()
    started = time.time()
    root = work_dir() / ("localization" if args.layout == "cambridge" else "localization_7scenes")
    run_dir = Path(args.run) if args.run else train_demo_model(root, args.minutes, layout=args.layout,
                                                               downscale=args.train_downscale)
    import json

    from nerfw.training.run_io import load_run

    step = load_run(run_dir).step
    out = run_dir / "localization" / f"bench{('_' + args.tag) if args.tag else ''}"
    synth = lens_views(run_dir, out, args.n_novel) if args.n_novel > 0 else None

    def one(name, extra, refine, photometric=0):
        d = localize_run_dir(run_dir, out / name, extra, refine, args.feature_size, photometric)
        log(f"{name}: {json.dumps(d['summary'].get('final'))}")
        return d

    b = one("b_map", None, 0)
    c = one("c_map_synth", synth, 0) if synth else None
    d = one("d_refined", None, 3)
    e = one("e_photometric", None, 0, photometric=2)
    f = one("f_synth_photometric", synth, 0, photometric=2) if synth else None
    figures = {"model_step": step, "n_novel": args.n_novel, "queries": b["summary"]["queries"],
               "a_retrieval": b["summary"]["retrieval"], "b_map": b["summary"]["map"],
               "c_map_synth": c["summary"]["map"] if c else None, "d_refined": d["summary"]["refined"],
               "e_photometric": e["summary"]["photometric"],
               "f_synth_photometric": f["summary"]["photometric"] if f else None,
               "seconds_per_query": {"b": b["seconds_per_query"], "c": c["seconds_per_query"] if c else None,
                                     "d": d["seconds_per_query"], "e": e["seconds_per_query"],
                                     "f": f["seconds_per_query"] if f else None},
               "map_seconds": {"b": b["map_seconds"], "c": c["map_seconds"] if c else None}}
    rows = [row("(a) retrieval only", b["summary"]["retrieval"], b["retrieval_seconds"], None),
            row("(b) map = training images", b["summary"]["map"], b["seconds_per_query"], b["map_seconds"])]
    if c:
        rows.append(row(f"(c) + {args.n_novel} LENS views", c["summary"]["map"], c["seconds_per_query"],
                        c["map_seconds"]))
    rows.append(row("(d) (b) + refinement by rendering", d["summary"]["refined"], d["seconds_per_query"], None))
    rows.append(row("(e) (b) + photometric alignment", e["summary"]["photometric"], e["seconds_per_query"], None))
    if f:
        rows.append(row("(f) (c) + photometric alignment", f["summary"]["photometric"], f["seconds_per_query"], None))
    table = format_table(rows, ["method", "median t (m)", "median R (deg)", "0.25m/2deg %", "0.5m/5deg %",
                                "5m/10deg %", "5cm/5deg %", "failed", "s/query", "map s"])
    m = machine()
    log(machine_line(m))
    log(table)
    path = write_result("localization" + (f"_{args.tag}" if args.tag else ""), figures,
                        {"run": str(run_dir), "feature_size": args.feature_size, "minutes": args.minutes,
                         "train_downscale": args.train_downscale, "layout": args.layout,
                         "scene": DEMO_SCENE if args.layout == "cambridge" else ROOM_SCENE}, [table], started)
    log(f"wrote {path}")


def localize_run_dir(run_dir: Path, out: Path, extra: Path | None, refine: int, feature_size: int,
                     photometric: int = 0) -> dict:
    """One `nerfw localize` run; its summary with the per-stage seconds per query and the map's build time."""
    from nerfw.cli.localize import build_parser, localize_run

    argv = ["--run", str(run_dir), "--out", str(out), "--refine", str(refine), "--feature_size", str(feature_size),
            "--photometric", str(photometric), "--no_progress"]
    if extra:
        argv += ["--map_extra", str(extra)]
    done = localize_run(build_parser().parse_args(argv), log=lambda msg: None)
    results = done["results"]
    import json

    info = json.loads((out / "results.json").read_text())
    stage_seconds = {st: sum(r.stages[st]["seconds"] for r in results if st in r.stages) / max(len(results), 1)
                     for st in ("retrieval", "map", "refined")}
    return {"summary": done["summary"], "seconds_per_query": done["summary"]["seconds_per_query"],
            "retrieval_seconds": stage_seconds["retrieval"],
            "map_seconds": None if info["map"].get("cached") else info["map"]["seconds"]}


if __name__ == "__main__":
    main()
