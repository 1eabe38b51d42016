"""`nerfw localize`: localize query photos against a trained run (the NeRF-W is the map). See docs/localization.md."""
from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

from nerfw.errors import ConfigError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nerfw localize", description=__doc__.split("\n\n")[0])
    p.add_argument("--run", required=True, help="a training run folder")
    q = p.add_argument_group("queries (default: --split test)")
    q.add_argument("--split", default="", help="localize this split of the run's dataset (default test)")
    q.add_argument("--images", default="", help="a folder of query photos (every image file under it)")
    q.add_argument("--poses", default="", help="a Cambridge-format poses file naming the query photos (relative to "
                                               "--images, default the dataset's folder); errors are computed against it")
    q.add_argument("--fx", type=float, default=None, help="query intrinsics in their pixels (default: the dataset's "
                                                          "camera, when all its images share one)")
    q.add_argument("--fy", type=float, default=None, help="vertical focal length in pixels (default --fx)")
    q.add_argument("--cx", type=float, default=None, help="principal point x in pixels (default: the image centre)")
    q.add_argument("--cy", type=float, default=None, help="principal point y in pixels (default: the image centre)")
    q.add_argument("--max_queries", type=int, default=0, help="localize the first N queries only (0: all)")
    m = p.add_argument_group("map")
    m.add_argument("--map_extra", default="", help="a `nerfw synthesize` output whose views join the map (LENS)")
    m.add_argument("--feature_size", type=int, default=0,
                   help="longest side of the images SIFT sees, pixels (0: the run's training resolution; never "
                        "above an image file's own size)")
    m.add_argument("--max_features", type=int, default=4096, help="SIFT keypoints per image at most")
    m.add_argument("--min_opacity", type=float, default=0.9, help="static opacity a map keypoint's ray needs")
    m.add_argument("--max_transient", type=float, default=0.2, help="highest transient share of a map keypoint")
    m.add_argument("--max_depth_spread", type=float, default=0.1,
                   help="drop map keypoints whose neighbouring rays (1 feature pixel away) see depths differing by more "
                        "than this share of theirs (depth edges; 0: keep them)")
    m.add_argument("--clusters", type=int, default=64, help="VLAD vocabulary size")
    s = p.add_argument_group("pose")
    s.add_argument("--top_k", type=int, default=5, help="retrieved map images matched per query")
    s.add_argument("--ratio", type=float, default=0.8, help="Lowe's ratio test")
    s.add_argument("--max_error", type=float, default=4.0, help="RANSAC threshold, pixels of the feature image")
    s.add_argument("--min_inliers", type=int, default=12, help="fewer PnP inliers: the query fails")
    s.add_argument("--refine", type=int, default=3, help="render-and-match rounds at most (0: off)")
    s.add_argument("--photometric", type=int, default=2,
                   help="photometric alignment rounds at most: the query photo aligned to the model's RGB-D render at "
                        "the estimate, every rendered pixel. A round is kept only if the PnP inliers do not "
                        "contradict it (a chi-square test), so it corrects poses from a coarse map (built-in scene at "
                        "160 px: 0.144 -> 0.049 m) and leaves precise ones alone (fox: 0.004 m either way). 0: off, "
                        "faster (docs/localization.md)")
    s.add_argument("--photometric_size", type=int, default=0,
                   help="longest side in pixels of the photometric alignment's render and photo (0: twice the "
                        "feature size, at most the photo's and 1024; larger is more precise and slower)")
    p.add_argument("--name", default="", help="output folder name under RUN/localization (default: from the queries)")
    p.add_argument("--out", default="", help="output folder (default RUN/localization/<name>)")
    p.add_argument("--device", default="cpu", help="torch device of the model (cpu, cuda, cuda:1)")
    p.add_argument("--no_progress", action="store_true", help="no progress bars")
    return p


def check_args(args) -> None:
    if args.split and (args.images or args.poses):
        raise ConfigError("give --split, or --images / --poses, not both")
    if any(v is not None for v in (args.fx, args.fy, args.cx, args.cy)) and not (args.images or args.poses):
        raise ConfigError("--fx/--fy/--cx/--cy apply to --images / --poses queries")
    for name, v, lo in (("top_k", args.top_k, 1), ("min_inliers", args.min_inliers, 4), ("refine", args.refine, 0),
                        ("photometric", args.photometric, 0), ("photometric_size", args.photometric_size, 0),
                        ("max_features", args.max_features, 16), ("clusters", args.clusters, 1),
                        ("feature_size", args.feature_size, 0), ("max_queries", args.max_queries, 0)):
        if v < lo:
            raise ConfigError(f"--{name} must be >= {lo}, got {v}")
    if not 0 < args.ratio <= 1 or args.max_error <= 0:
        raise ConfigError("expected 0 < --ratio <= 1 and --max_error > 0")
    if not 0 <= args.min_opacity <= 1 or not 0 <= args.max_transient <= 1:
        raise ConfigError("expected --min_opacity and --max_transient in [0, 1]")


def default_name(args) -> str:
    if args.images or args.poses:
        base = Path(args.poses).stem if args.poses else Path(args.images).name
        name = f"images_{base}"
    else:
        name = args.split or "test"
    if args.map_extra:
        name += "_extra"
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def localize_run(args, log=print) -> dict:
    """The whole command for parsed args; returns write_all's summary plus the output folder."""
    from tqdm import tqdm

    from nerfw.localization.features import SiftExtractor, image_size
    from nerfw.localization.localize import LocalizeParams, Localizer
    from nerfw.localization.mapping import MapParams, load_or_build_map
    from nerfw.localization.outputs import write_all
    from nerfw.localization.queries import folder_queries, split_queries
    from nerfw.tools.run_io import load_run

    check_args(args)
    run = load_run(args.run, device=args.device)
    if args.images or args.poses:
        intr = {"fx": args.fx, "fy": args.fy, "cx": args.cx, "cy": args.cy}
        queries = folder_queries(run, Path(args.images) if args.images else None,
                                 Path(args.poses) if args.poses else None, intr)
    else:
        queries = split_queries(run, args.split or "test")
        for q in queries:
            image_size(q.path)  # an unreadable image stops the command before any work
    if args.max_queries:
        queries = queries[:args.max_queries]
    progress = not args.no_progress
    map_params = MapParams(args.feature_size, args.max_features, args.min_opacity, args.max_transient,
                           args.max_depth_spread, args.clusters)
    t0 = time.time()
    locmap = load_or_build_map(run, Path(args.map_extra) if args.map_extra else None, map_params, log, progress)
    map_seconds = time.time() - t0
    params = LocalizeParams(args.top_k, args.ratio, args.max_error, args.min_inliers, args.refine,
                            photometric=args.photometric, photometric_size=args.photometric_size)
    localizer = Localizer(run, locmap, params, SiftExtractor(args.max_features))
    results = [localizer.localize(q) for q in tqdm(queries, desc="localize: queries", disable=not progress,
                                                   dynamic_ncols=True)]
    out = Path(args.out) if args.out else Path(run.run_dir) / "localization" / (args.name or default_name(args))
    info = {"run": str(run.run_dir), "step": run.step, "frame": "dataset", "format": run.scene.format,
            "map": {**locmap.stats, "seconds_this_run": map_seconds, "extra": args.map_extra or None},
            "params": {k: v for k, v in vars(args).items()}}
    done = write_all(out, results, {q.name: q for q in queries}, info)
    log(done["text"])
    log(f"wrote {', '.join(str(p) for p in done['files'].values())}")
    return {**done, "out": out, "results": results}


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    localize_run(args)
    return 0


if __name__ == "__main__":  # pragma: no cover
    import sys

    raise SystemExit(main(sys.argv[1:]))
