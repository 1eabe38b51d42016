"""`nerfw synthesize`: render novel views into a dataset that localization code reads unchanged (LENS).

LENS (arXiv 2110.06558) augments a pose regressor's training set with NeRF-W renders at novel poses. Each
view is rendered with the TRANSIENT HEAD OFF (only the static scene: NeRFW-pytorch leaked transient occluders into
its synthetic images) and with one appearance embedding per view:

* ``nearest``: the embedding of the training image whose camera centre is nearest to the view;
* ``interp``: ``(1 - t) a_i + t a_j`` for the two nearest training images i, j, with t uniform in [0, 1]
  drawn from a generator seeded by (--seed, view index), so it does not depend on the number of processes.
  (NeRFW-pytorch computed this interpolation but never used it.)

The choice is written per view to OUT/appearance.json.

Views are split across processes with no overlap and no gap: view k goes to rank ``k % N``
(torch.multiprocessing, one process per GPU with --num_gpus N, else --num_procs N CPU processes). NeRFW-pytorch
rendered every view on every GPU. Rendering is resumable: a view whose files all exist is skipped, and
every file is written to a temporary name and renamed, so a killed run never leaves a half-written frame.

Layouts (chosen from the run's dataset format):

* Cambridge (and every format other than 7-Scenes): OUT/seq_synth/frameNNNNN.png (the names of the poses
  file) and OUT/dataset_synth.txt (3 header lines + ``seq_synth/frameNNNNN.png X Y Z W P Q R``, camera
  centre and world-to-camera quaternion in the dataset frame and units). So that Cambridge loaders
  (nerfw's included) read OUT as a scene, the same lines are written to OUT/dataset_train.txt and the
  focal length (+ the dataset's sparse points, for near/far) to OUT/reconstruction.nvm.
* 7-Scenes: OUT/seq-<sequence>/frame-NNNNNN.color.png, .depth.png (rendered z-depth, uint16 millimetres,
  0 where invalid: opacity < 0.5) and .pose.txt (4x4 camera-to-world); with a numeric --sequence N the
  folder is seq-NN and OUT/TrainSplit.txt lists ``sequenceN`` as 7-Scenes does.

Files that existed before and were not written by ``nerfw synthesize`` (e.g. OUT is a real dataset folder)
are never overwritten; the ones written are listed in OUT/.nerfw/manifest.json.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from nerfw.cameras.conventions import T_world_cam_to_nvm
from nerfw.data.poses_file import HEADER, format_pose_line
from nerfw.errors import ConfigError, NerfwError
from nerfw.model.view_rendering import render_camera
from nerfw.novel_views.selection import TrainCameras, novel_camera
from nerfw.training.run_io import load_run

DEPTH_MIN_OPACITY = 0.5  # rendered depth is invalid (0) where the accumulated opacity is lower
DEPTH_MM_MAX = 65534  # 65535 marks invalid depth in 7-Scenes files; 0 too
STATE_DIR = ".nerfw"
MAX_NVM_POINTS = 200_000  # sparse points copied into the output reconstruction.nvm


@dataclass
class SynthJob:
    """Everything a worker needs (picklable)."""

    run_dir: str
    out: str
    layout: str  # "cambridge" | "7scenes"
    sequence: str  # 7-Scenes sequence folder suffix ("synth" -> seq-synth, "9" -> seq-09)
    views: list[dict] = field(default_factory=list)  # {"index", "name", "out_name", "T", "appearance"}
    chunk: int = 4096
    quality: str = "fast"  # "fast" (nerfw.model.fast_render) | "full" (the renderer as trained)
    device_kind: str = "cpu"  # "cpu" | "cuda"
    progress: bool = True


# ----------------------------------------------------------------------------- planning (parent process)
def layout_for(fmt: str) -> str:
    return "7scenes" if fmt == "7scenes" else "cambridge"


def sequence_folder(sequence: str) -> str:
    return f"seq-{int(sequence):02d}" if sequence.isdigit() else f"seq-{sequence}"


def output_name(layout: str, sequence: str, index: int, name: str) -> str:
    """Relative path of view `index`'s colour image in the output dataset."""
    if layout == "7scenes":
        return f"{sequence_folder(sequence)}/frame-{index:06d}.color.png"
    rel = Path(name.replace("\\", "/"))
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise NerfwError(f"view name '{name}' must be a relative path inside the output folder")
    return rel.with_suffix(".png").as_posix()


def view_files(layout: str, out: Path, out_name: str) -> dict[str, Path]:
    """The files of one view; 'color' is written last."""
    color = Path(out) / out_name
    if layout == "7scenes":
        stem = color.name[: -len(".color.png")]
        return {"depth": color.with_name(stem + ".depth.png"), "pose": color.with_name(stem + ".pose.txt"),
                "color": color}
    return {"color": color}


def assign_views(n_views: int, world_size: int, rank: int) -> list[int]:
    """The views of one rank: k with k % world_size == rank (every view exactly once over all ranks)."""
    return list(range(rank, n_views, world_size))


def plan_appearance(run, train: TrainCameras, centers: np.ndarray, mode: str, seed: int) -> list[dict]:
    """Per view: {"mode", "images", "image_ids", "weights"} (weights of the embeddings, summing to 1)."""
    if mode not in ("nearest", "interp"):
        raise ConfigError(f"--appearance must be nearest or interp, got {mode}")
    k = 1 if mode == "nearest" or len(train.ids) < 2 else 2
    _, pos = train.nearest(centers, k=k)
    pos = np.asarray(pos).reshape(len(centers), k)
    plans = []
    for index, row in enumerate(pos):
        ids = [train.ids[int(p)] for p in row]
        if k == 1:
            weights = [1.0]
        else:
            t = float(np.random.default_rng([seed, index]).uniform(0.0, 1.0))
            weights = [1.0 - t, t]
        plans.append({"mode": mode if k == len(ids) else "nearest", "images": [run.image_names[i] for i in ids],
                      "image_ids": ids, "weights": weights})
    return plans


def appearance_tensor(model, plan: dict) -> torch.Tensor:
    """The appearance embedding [a_dim] of a plan entry."""
    ids = plan["image_ids"]
    if len(ids) == 1:
        return model.appearance_vector(image_id=ids[0])
    # interpolate=(i, j, t) is (1 - t) * a_i + t * a_j
    return model.appearance_vector(interpolate=(ids[0], ids[1], plan["weights"][1]))


def output_intrinsics(layout: str, camera, template) -> dict:
    """The intrinsics a view is rendered with, exactly as the written dataset describes them when read back.

    7-Scenes layout: the nearest training camera's (7-Scenes cameras share one model). Cambridge layout: its
    reader takes one image size, fx = fy = the NVM focal and a centred principal point, so every view is rendered
    at the first training camera's size with the nearest camera's horizontal field of view and square pixels
    (on a multi-camera COLMAP model the views' focals then differ, each in its own NVM line)."""
    if layout != "cambridge":
        return {k: getattr(camera, k) for k in ("width", "height", "fx", "fy", "cx", "cy")}
    f = camera.fx * template.width / camera.width
    return {"width": template.width, "height": template.height, "fx": f, "fy": f,
            "cx": template.width / 2.0, "cy": template.height / 2.0}


def make_job(run, views: list[tuple[str, np.ndarray]], out: Path, appearance: str, seed: int,
             sequence: str, chunk: int) -> SynthJob:
    layout = layout_for(run.scene.format)
    train = TrainCameras(run.scene.cameras)
    centers = np.stack([T[:3, 3] for _, T in views]) if views else np.zeros((0, 3))
    plans = plan_appearance(run, train, centers, appearance, seed)
    job = SynthJob(run_dir=str(run.run_dir), out=str(out), layout=layout, sequence=sequence, chunk=chunk)
    template = train.cameras[0]
    for index, ((name, T), plan) in enumerate(zip(views, plans)):
        out_name = output_name(layout, sequence, index, name)
        camera = novel_camera(out_name, np.asarray(T, dtype=np.float64), train)
        job.views.append({"index": index, "name": name, "out_name": out_name,
                          "T": np.asarray(T, dtype=np.float64).tolist(), "appearance": plan,
                          "intrinsics": output_intrinsics(layout, camera, template)})
    names = [v["out_name"] for v in job.views]
    if len(set(names)) != len(names):
        raise NerfwError("the poses file names the same image twice")
    return job


# ----------------------------------------------------------------------------- writing files
def _atomic(path: Path, write) -> None:
    """write(tmp_path) then rename over `path` (atomic on POSIX)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def save_png(path: Path, array: np.ndarray) -> None:
    """uint8 or uint16 array -> PNG, atomically."""
    _atomic(path, lambda tmp: Image.fromarray(array).save(tmp, format="PNG"))


def to_uint8(rgb: np.ndarray) -> np.ndarray:
    return (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def depth_to_mm(depth: np.ndarray, opacity: np.ndarray) -> np.ndarray:
    """z-depth [H, W] (metres) -> uint16 millimetres, 0 where invalid (low opacity, non-finite, out of range)."""
    mm = np.where(np.isfinite(depth), depth * 1000.0, 0.0)
    mm = np.round(mm)
    valid = (opacity >= DEPTH_MIN_OPACITY) & (mm >= 1) & (mm <= DEPTH_MM_MAX)
    return np.where(valid, mm, 0).astype(np.uint16)


def write_pose_txt(path: Path, T_world_cam: np.ndarray) -> None:
    """7-Scenes pose.txt: the 4x4 camera-to-world matrix, one row per line, tab-separated."""
    text = "".join("\t".join(f"{v:.9e}" for v in row) + "\n" for row in np.asarray(T_world_cam))
    _atomic(path, lambda tmp: tmp.write_text(text))


def write_view(layout: str, files: dict[str, Path], T: np.ndarray, out: dict) -> None:
    if layout == "7scenes":
        save_png(files["depth"], depth_to_mm(out["depth"], out["opacity"]))
        write_pose_txt(files["pose"], T)
    save_png(files["color"], to_uint8(out["rgb"]))


def is_finished(files: dict[str, Path]) -> bool:
    return all(p.is_file() for p in files.values())


# ----------------------------------------------------------------------------- rendering (any process)
def render_share(run, job: SynthJob, rank: int, world_size: int) -> tuple[list[int], list[int]]:
    """Render this rank's views (k % world_size == rank); returns (rendered, skipped) view indices."""
    from tqdm import tqdm


    train = TrainCameras(run.scene.cameras)
    mine = [job.views[k] for k in assign_views(len(job.views), world_size, rank)]
    rendered, skipped = [], []
    bar = tqdm(mine, desc=f"synthesize [{rank}/{world_size}]", position=rank, disable=not job.progress,
               dynamic_ncols=True, leave=world_size == 1)
    for view in bar:
        files = view_files(job.layout, Path(job.out), view["out_name"])
        if is_finished(files):
            skipped.append(view["index"])
            continue
        T = np.asarray(view["T"], dtype=np.float64)
        camera = dataclasses.replace(novel_camera(view["out_name"], T, train), **view["intrinsics"])
        vec = appearance_tensor(run.model, view["appearance"])
        out = render_camera(run.model, camera, run.normalization, job.chunk, appearance=vec,
                            image_id=view["appearance"]["image_ids"][0], use_transient=False,
                            fast=job.quality == "fast", distortion=False)  # pinhole, as the files describe it
        write_view(job.layout, files, T, out)
        rendered.append(view["index"])
    bar.close()
    return rendered, skipped


def _worker(rank: int, world_size: int, job: SynthJob) -> None:
    """Entry point of a spawned process: load the run on this rank's device and render its share."""

    if job.device_kind == "cuda":
        device = f"cuda:{rank}"
        torch.cuda.set_device(rank)
    else:
        device = "cpu"
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world_size))
    run = load_run(job.run_dir, device=device)
    rendered, skipped = render_share(run, job, rank, world_size)
    _write_rank_result(Path(job.out), rank, rendered, skipped)


def _write_rank_result(out: Path, rank: int, rendered: list[int], skipped: list[int]) -> None:
    path = out / STATE_DIR / f"rank{rank}.json"
    _atomic(path, lambda tmp: tmp.write_text(json.dumps({"rank": rank, "rendered": rendered,
                                                         "skipped": skipped}) + "\n"))


def _read_rank_results(out: Path, world_size: int) -> dict[int, dict]:
    results = {}
    for rank in range(world_size):
        path = out / STATE_DIR / f"rank{rank}.json"
        if not path.is_file():
            raise NerfwError(f"worker {rank} finished without writing {path}")
        results[rank] = json.loads(path.read_text())
    return results


def launch(run, job: SynthJob, world_size: int) -> dict[int, dict]:
    """Render every view: in this process when world_size == 1, else in world_size spawned processes."""
    out = Path(job.out)
    for stale in (out / STATE_DIR).glob("rank*.json"):
        stale.unlink()
    if world_size == 1 and job.device_kind == "cpu":
        rendered, skipped = render_share(run, job, 0, 1)
        return {0: {"rank": 0, "rendered": rendered, "skipped": skipped}}
    import torch.multiprocessing as mp

    mp.spawn(_worker, args=(world_size, job), nprocs=world_size, join=True)
    return _read_rank_results(out, world_size)


# ----------------------------------------------------------------------------- dataset files (parent)
class Manifest:
    """Files written by nerfw synthesize in OUT (so a rerun may rewrite them, and nothing else)."""

    def __init__(self, out: Path):
        self.path = Path(out) / STATE_DIR / "manifest.json"
        self.files: set[str] = set(json.loads(self.path.read_text())["files"]) if self.path.is_file() else set()
        self.out = Path(out)

    def may_write(self, rel: str) -> bool:
        return rel in self.files or not (self.out / rel).exists()

    def write_text(self, rel: str, text: str, warn) -> bool:
        if not self.may_write(rel):
            warn(f"synthesize: {self.out / rel} exists and was not written by nerfw synthesize; left unchanged")
            return False
        _atomic(self.out / rel, lambda tmp: tmp.write_text(text))
        self.files.add(rel)
        return True

    def save(self) -> None:
        text = json.dumps({"files": sorted(self.files)}, indent=2) + "\n"
        _atomic(self.path, lambda tmp: tmp.write_text(text))


def poses_text(job: SynthJob) -> str:

    lines = HEADER + [format_pose_line(v["out_name"], np.asarray(v["T"])) for v in job.views]
    return "\n".join(lines) + "\n"


def nvm_text(job: SynthJob, points: np.ndarray | None, colors: np.ndarray | None) -> str:
    """NVM_V3 with one camera line per view (focal at the rendered size) and the sparse points (no
    measurements), so the Cambridge parser finds focal lengths and near/far bounds."""

    lines = ["NVM_V3", "", str(len(job.views))]
    for v in job.views:
        center, q = T_world_cam_to_nvm(np.asarray(v["T"]))
        name = Path(v["out_name"]).with_suffix(".jpg").as_posix()  # NVM names .jpg as Cambridge's do
        lines.append(f"{name} {v['intrinsics']['fx']:.9f} " + " ".join(f"{x:.9f}" for x in q) + " "
                     + " ".join(f"{x:.6f}" for x in center) + " 0 0")
    pts = np.zeros((0, 3)) if points is None else np.asarray(points).reshape(-1, 3)
    cols = np.full((len(pts), 3), 128) if colors is None else np.asarray(colors).reshape(-1, 3)
    if len(pts) > MAX_NVM_POINTS:  # a fixed random subset: near/far are percentiles, robust to subsampling
        keep = np.sort(np.random.default_rng(0).choice(len(pts), MAX_NVM_POINTS, replace=False))
        pts, cols = pts[keep], cols[keep]
    lines += ["", str(len(pts))]
    lines += [f"{p[0]:.6f} {p[1]:.6f} {p[2]:.6f} {int(c[0])} {int(c[1])} {int(c[2])} 0" for p, c in zip(pts, cols)]
    return "\n".join(lines) + "\n"


def write_dataset_files(run, job: SynthJob, seed: int, mode: str, warn=print) -> list[str]:
    """Poses file, appearance record, camera intrinsics and the layout's split/reconstruction files."""
    out = Path(job.out)
    manifest = Manifest(out)
    claim_view_files(job, manifest)
    written = []
    record = {"mode": mode, "seed": seed, "run": job.run_dir, "transient": False,
              "views": [{"name": v["out_name"], "source_name": v["name"], **v["appearance"]} for v in job.views]}
    first = job.views[0]["intrinsics"]
    camera = {**first, "frame": "dataset", "format": run.scene.format,
              "views": [{"name": v["out_name"], **v["intrinsics"]} for v in job.views]}
    texts = {"dataset_synth.txt": poses_text(job), "appearance.json": json.dumps(record, indent=2) + "\n",
             "camera.json": json.dumps(camera, indent=2) + "\n"}
    if job.layout == "cambridge":
        texts["dataset_train.txt"] = texts["dataset_synth.txt"]
        texts["reconstruction.nvm"] = nvm_text(job, run.scene.points, run.scene.point_colors)
    elif job.sequence.isdigit():
        texts["TrainSplit.txt"] = f"sequence{int(job.sequence)}\n"
    for rel, text in texts.items():
        if manifest.write_text(rel, text, warn):
            written.append(rel)
    manifest.save()
    return written


def claim_view_files(job: SynthJob, manifest: Manifest) -> None:
    """Record every file of every view in the manifest before rendering (so a rerun may complete them), or
    refuse when one exists that synthesize did not write: images, depth maps and poses of a real dataset are
    never overwritten."""
    out = Path(job.out)
    rels, foreign = [], []
    for v in job.views:
        files = [p.relative_to(out).as_posix() for p in view_files(job.layout, out, v["out_name"]).values()]
        ours = v["out_name"] in manifest.files  # older manifests listed only the colour images
        rels += files
        foreign += [r for r in files if not ours and not manifest.may_write(r)]
    if foreign:
        hint = "another --sequence or --out" if job.layout == "7scenes" else "another --out or other view names"
        raise NerfwError(f"{out}: {len(foreign)} file(s) of the views to render exist and were not written by nerfw "
                         f"synthesize (first: {foreign[0]}); they are never overwritten: choose {hint}")
    manifest.files.update(rels)


# ----------------------------------------------------------------------------- the command
def synthesize(run, views: list[tuple[str, np.ndarray]], out: Path, num_procs: int = 1, num_gpus: int = 0,
               appearance: str = "nearest", seed: int = 0, sequence: str = "synth", chunk: int = 4096,
               progress: bool = True, log=print, quality: str = "fast") -> dict:
    """Render `views` [(name, T_world_cam in the dataset frame)] of a loaded run into OUT. Returns a summary
    with the per-rank lists of rendered and skipped view indices."""
    if num_gpus > 0 and num_procs > 1:
        raise ConfigError("use either --num_gpus or --num_procs, not both")
    if num_gpus > 0 and torch.cuda.device_count() < num_gpus:
        raise ConfigError(f"--num_gpus {num_gpus}: only {torch.cuda.device_count()} GPU(s) visible")
    if not views:
        raise NerfwError("no views to render")
    job = make_job(run, views, Path(out), appearance, seed, sequence, chunk)
    job.device_kind, job.progress, job.quality = ("cuda" if num_gpus > 0 else "cpu"), progress, quality
    world_size = num_gpus if num_gpus > 0 else max(1, num_procs)
    written = write_dataset_files(run, job, seed, appearance, warn=log)
    results = launch(run, job, world_size)
    rendered = sorted(i for r in results.values() for i in r["rendered"])
    skipped = sorted(i for r in results.values() for i in r["skipped"])
    missing = sorted(set(range(len(job.views))) - set(rendered) - set(skipped))
    if missing:
        raise NerfwError(f"{len(missing)} views were not rendered (first: {job.views[missing[0]]['out_name']})")
    log(f"synthesize: {len(rendered)} views rendered, {len(skipped)} already done, into {out} "
        f"({job.layout} layout; wrote {', '.join(written) or 'no dataset files'})")
    return {"layout": job.layout, "n_views": len(job.views), "rendered": rendered, "skipped": skipped,
            "per_rank": results, "names": [v["out_name"] for v in job.views], "dataset_files": written}


