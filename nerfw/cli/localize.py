"""`nerfw localize`: localize query photos against a trained run (the NeRF-W is the map). See docs/localization.md."""
from __future__ import annotations

import argparse
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from nerfw.errors import ConfigError
from nerfw.data.features import SiftExtractor, image_size
from nerfw.localization.localize import LocalizeParams, Localizer
from nerfw.localization.mapping import MapParams, load_or_build_map
from nerfw.localization.outputs import write_all
from nerfw.localization.queries import folder_queries, split_queries
from nerfw.options import build_command_parser, parse_command
from nerfw.training.run_io import load_run

PROG = "nerfw localize"
DESCRIPTION = __doc__.split("\n\n")[0]
QUERIES, MAP, POSE = "queries (default: --split test)", "map", "pose"


def _in(group: str, default):
    return field(default=default, metadata={"group": group})


@dataclass(kw_only=True)
class LocalizeOptions:
    run: str
    """a training run folder"""
    split: str = _in(QUERIES, "")
    """localize this split of the run's dataset (default test)"""
    images: str = _in(QUERIES, "")
    """a folder of query photos (every image file under it)"""
    poses: str = _in(QUERIES, "")
    """a Cambridge-format poses file naming the query photos (relative to --images, default the dataset's folder);
    errors are computed against it"""
    fx: float | None = _in(QUERIES, None)
    """query intrinsics in their pixels (default: the dataset's camera, when all its images share one)"""
    fy: float | None = _in(QUERIES, None)
    """vertical focal length in pixels (default --fx)"""
    cx: float | None = _in(QUERIES, None)
    """principal point x in pixels (default: the image centre)"""
    cy: float | None = _in(QUERIES, None)
    """principal point y in pixels (default: the image centre)"""
    max_queries: int = _in(QUERIES, 0)
    """localize the first N queries only (0: all)"""
    map_extra: str = _in(MAP, "")
    """a `nerfw synthesize` output whose views join the map (LENS)"""
    feature_size: int = _in(MAP, MapParams.feature_size)
    """longest side of the images SIFT sees, pixels (0: the run's training resolution; never above an image file's
    own size)"""
    max_features: int = _in(MAP, MapParams.max_features)
    """SIFT keypoints per image at most"""
    min_opacity: float = _in(MAP, MapParams.min_opacity)
    """static opacity a map keypoint's ray needs"""
    max_transient: float = _in(MAP, MapParams.max_transient)
    """highest transient share of a map keypoint"""
    max_depth_spread: float = _in(MAP, MapParams.max_depth_spread)
    """drop map keypoints whose neighbouring rays (1 feature pixel away) see depths differing by more than this share
    of theirs (depth edges; 0: keep them)"""
    clusters: int = _in(MAP, MapParams.clusters)
    """VLAD vocabulary size"""
    top_k: int = _in(POSE, LocalizeParams.top_k)
    """retrieved map images matched per query"""
    ratio: float = _in(POSE, LocalizeParams.ratio)
    """Lowe's ratio test"""
    max_error: float = _in(POSE, LocalizeParams.max_error)
    """RANSAC threshold, pixels of the feature image"""
    min_inliers: int = _in(POSE, LocalizeParams.min_inliers)
    """fewer PnP inliers: the query fails"""
    refine: int = _in(POSE, LocalizeParams.refine)
    """render-and-match rounds at most (0: off)"""
    photometric: int = _in(POSE, LocalizeParams.photometric)
    """photometric alignment rounds at most: the query photo aligned to the model's RGB-D render at the estimate,
    every rendered pixel. A round is kept only if the PnP inliers do not contradict it (a chi-square test), so it
    corrects poses from a coarse map and leaves precise ones alone (docs/localization.md has the measurements). 0:
    off, faster"""
    photometric_size: int = _in(POSE, LocalizeParams.photometric_size)
    """longest side in pixels of the photometric alignment's render and photo (0: twice the feature size, at most
    the photo's and 1024; larger is more precise and slower)"""
    name: str = ""
    """output folder name under RUN/localization (default: from the queries)"""
    out: str = ""
    """output folder (default RUN/localization/<name>)"""
    device: str = "cpu"
    """torch device of the model (cpu, cuda, cuda:1)"""
    no_progress: bool = False
    """no progress bars"""


def build_parser() -> argparse.ArgumentParser:
    return build_command_parser(PROG, DESCRIPTION, LocalizeOptions)


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
            "params": dict(vars(args))}
    done = write_all(out, results, {q.name: q for q in queries}, info)
    log(done["text"])
    log(f"wrote {', '.join(str(p) for p in done['files'].values())}")
    return {**done, "out": out, "results": results}


def main(argv: list[str]) -> int:
    localize_run(parse_command(argv, PROG, DESCRIPTION, LocalizeOptions))
    return 0


