"""What `nerfw localize` writes into RUN/localization/<name>/: poses.txt, results.json, summary.txt, errors.png and
cameras.ply (true frustums blue, estimated orange)."""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np

from nerfw.cameras.conventions import T_world_cam_to_cambridge
from nerfw.data.cameras_ply import FRUSTUM_FACES, auto_size, frustum_vertices
from nerfw.data.poses_file import write_poses_file
from nerfw.localization.localize import QueryResult, errors_of
from nerfw.localization.pose import RECALL_THRESHOLDS, summarize

TRUE_COLOR = (40, 90, 230)  # blue
ESTIMATE_COLOR = (245, 140, 20)  # orange
STAGES = ("retrieval", "map", "refined", "photometric")


def _pose_json(T: np.ndarray | None) -> dict | None:
    if T is None:
        return None
    center, q = T_world_cam_to_cambridge(T)
    return {"T_world_cam": np.asarray(T).tolist(), "center": center.tolist(), "q_wxyz_cam_world": q.tolist()}


def _finite(v: float):
    """JSON for an error: the number; "inf" for a failure (an infinite error); None when unknown (nan)."""
    if math.isnan(v):
        return None
    return v if math.isfinite(v) else "inf"


def result_json(r: QueryResult) -> dict:
    t, rot = errors_of(r)
    out = {"name": r.name, "status": r.status, "reason": r.reason or None, "pose": _pose_json(r.T_world_cam),
           "inliers": r.inliers, "matches": r.matches, "keypoints": r.keypoints,
           "retrieved": [{"name": n, "similarity": s} for n, s in r.retrieved], "seconds": r.seconds,
           "known_pose": r.T_true is not None}
    if r.T_true is not None:
        out["true_pose"] = _pose_json(r.T_true)
        out["translation_error"], out["rotation_error_deg"] = _finite(t), _finite(rot)
    out["stages"] = {}
    for stage, info in r.stages.items():
        entry = {k: v for k, v in info.items() if k != "T_world_cam"}
        entry["pose"] = _pose_json(info.get("T_world_cam"))
        if r.T_true is not None:
            st, sr = errors_of(r, stage)
            entry["translation_error"], entry["rotation_error_deg"] = _finite(st), _finite(sr)
        out["stages"][stage] = entry
    return out


def summaries(results: list[QueryResult]) -> dict:
    """Per stage and for the final poses: median errors and recall over the queries with a known pose."""
    known = [r for r in results if r.T_true is not None]
    out = {"queries": len(results), "failed": sum(r.status != "ok" for r in results),
           "seconds_per_query": float(np.mean([r.seconds for r in results])) if results else 0.0,
           "with_known_pose": len(known)}
    if known:
        out["final"] = summarize(*zip(*[errors_of(r) for r in known]))
        for stage in STAGES:
            if any(stage in r.stages for r in known) or stage == "retrieval":
                out[stage] = summarize(*zip(*[errors_of(r, stage) for r in known]))
    return out


def summary_text(summary: dict, units: str = "m") -> str:
    lines = [f"{summary['queries']} queries, {summary['failed']} failed, "
             f"{summary['seconds_per_query']:.2f} s per query"]
    if "final" not in summary:
        return "\n".join(lines + ["(no true poses: no errors)"])
    header = "stage        median t     median R   " + "  ".join(f"{dt:g}{units}/{dr:g}deg" for dt, dr in RECALL_THRESHOLDS)
    lines.append(header)
    for stage in (*STAGES, "final"):
        if stage not in summary:
            continue
        s = summary[stage]
        recall = "  ".join(f"{100 * s[f'recall_{dt:g}_{dr:g}deg']:>{len(f'{dt:g}{units}/{dr:g}deg')}.1f}"
                           for dt, dr in RECALL_THRESHOLDS)
        lines.append(f"{stage:<11} {s['median_translation']:>9.3f}{units} {s['median_rotation_deg']:>9.2f}deg   "
                     f"{recall}   (recall %)")
    return "\n".join(lines)


def write_poses(path: Path, results: list[QueryResult]) -> Path:

    return write_poses_file(path, [(r.name, r.T_world_cam) for r in results if r.status == "ok"])


def plot_errors(path: Path, results: list[QueryResult], units: str = "m") -> Path | None:
    """Cumulative distributions of the translation and rotation errors of every stage (failures never reach 1)."""
    known = [r for r in results if r.T_true is not None]
    if not known:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for stage in STAGES:
        if stage != "retrieval" and not any(stage in r.stages for r in known):
            continue
        errs = np.array([errors_of(r, stage) for r in known])  # [n, 2]
        for ax, col in zip(axes, (0, 1)):
            e = np.sort(errs[:, col])
            y = np.arange(1, len(e) + 1) / len(e)
            finite = np.isfinite(e)
            ax.step(np.maximum(e[finite], 1e-4), y[finite], where="post", label=stage)
    for ax, (label, lines) in zip(axes, ((f"translation error ({units})", (0.05, 0.25, 0.5, 5.0)),
                                         ("rotation error (deg)", (2.0, 5.0, 10.0)))):
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("share of queries")
        ax.set_ylim(0, 1)
        for v in lines:
            ax.axvline(v, color="grey", lw=0.5, ls=":")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
    fig.suptitle(f"nerfw localize: {len(known)} queries (failed queries never reach the curve's top)")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_frustums(path: Path, results: list[QueryResult], queries: dict, size: float | None = None) -> Path | None:
    """PLY: each query's true frustum (blue, when known) and estimated frustum (orange)."""
    from plyfile import PlyData, PlyElement


    cams, colors = [], []
    for r in results:
        cam = queries[r.name].camera
        if r.T_true is not None:
            cams.append(cam)
            colors.append(TRUE_COLOR)
        if r.status == "ok":
            cams.append(dataclasses.replace(cam, T_world_cam=r.T_world_cam))
            colors.append(ESTIMATE_COLOR)
    if not cams:
        return None
    size = size or auto_size(cams)
    V = np.concatenate([frustum_vertices(c, size) for c in cams])
    C = np.repeat(np.array(colors, np.uint8), 5, axis=0)
    F = np.concatenate([FRUSTUM_FACES + 5 * k for k in range(len(cams))])
    vertex = np.empty(len(V), dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "u1"), ("green", "u1"),
                                     ("blue", "u1")])
    vertex["x"], vertex["y"], vertex["z"] = V.T
    vertex["red"], vertex["green"], vertex["blue"] = C.T
    face = np.empty(len(F), dtype=[("vertex_indices", "i4", (3,)), ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    face["vertex_indices"] = F
    FC = np.repeat(np.array(colors, np.uint8), len(FRUSTUM_FACES), axis=0)
    face["red"], face["green"], face["blue"] = FC.T
    path = Path(path)
    PlyData([PlyElement.describe(vertex, "vertex"), PlyElement.describe(face, "face")], text=False,
            comments=["nerfw localize: true poses blue, estimated orange", "frame: dataset (OpenCV camera axes)"]
            ).write(str(path))
    return path


def write_all(out: Path, results: list[QueryResult], queries: dict, info: dict, units: str = "m") -> dict:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = summaries(results)
    text = summary_text(summary, units)
    files = {"poses": write_poses(out / "poses.txt", results)}
    (out / "summary.txt").write_text(text + "\n")
    files["summary"] = out / "summary.txt"
    doc = {**info, "summary": summary, "queries": [result_json(r) for r in results]}
    (out / "results.json").write_text(json.dumps(doc, indent=2) + "\n")
    files["results"] = out / "results.json"
    png = plot_errors(out / "errors.png", results, units)
    if png:
        files["plot"] = png
    ply = write_frustums(out / "cameras.ply", results, queries)
    if ply:
        files["ply"] = ply
    return {"summary": summary, "text": text, "files": files}
