"""`generate_scene`: build, render and write the synthetic "wild" scene as a real dataset ships.

OUT/<scene>/             the dataset, exactly in the Cambridge or 7-Scenes layout (nothing extra inside)
OUT/<scene>.groundtruth/ scene.json, appearance.json, cameras.json, landmarks.json, masks/, depth/, clean/

The "collection" preset (a landmark's photo collection as a COLMAP model) lives in nerfw.synthetic.collection,
the "flight" preset (a drone video over the square as instant-ngp's transforms.json) in nerfw.synthetic.flight.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np

from nerfw.cameras.conventions import invert_T
from nerfw.data import writers
from nerfw.errors import ConfigError
from nerfw.synthetic import geometry, layouts, materials, paths, render
from nerfw.synthetic.collection import generate_collection
from nerfw.synthetic.common import (
    content_bounds_local,
    prepare_dirs,
    transient_images,
    validate_common,
)
from nerfw.synthetic.flight import generate_flight
from nerfw.synthetic.geometry import Primitives

DEFAULTS = {
    "cambridge": {"scene": "SynthSquare", "width": 480, "height": 270, "n_train": 64, "n_test": 12},
    # 640x480 as 7-Scenes ships its colour and depth images; train with --img_downscale as for the real dataset
    "7scenes": {"scene": "synthroom", "width": 640, "height": 480, "n_train": 48, "n_test": 12},
}
LANDMARKS_PER_IMAGE = 40
NVM_SAMPLES_PER_IMAGE = 40
NVM_MAX_OBS = 8


def focal_for(layout: str, width: int) -> float:
    """Cambridge: a phone-like ~58 deg horizontal FOV (f = 0.9 W). 7-Scenes: f = 525 at 640 px, scaled."""
    return 0.9 * width if layout == "cambridge" else 525.0 * width / 640.0


def _validate(layout, scene, width, height, n_train, n_test, transient_share, seed) -> None:
    if layout not in DEFAULTS:
        raise ConfigError(f"unknown layout '{layout}' (choose cambridge or 7scenes)")
    validate_common(scene, (("width", width, 8), ("height", height, 8), ("n_train", n_train, 1), ("n_test", n_test, 0)),
                    transient_share, seed)


def _person(rng, x: float, y: float, base_z: float, k: int, tag: str) -> tuple[Primitives, list[dict]]:
    """A people-sized occluder: body cylinder (~0.5 m wide) + head sphere, random clothing colours."""
    h = float(rng.uniform(1.55, 1.85))
    r = float(rng.uniform(0.2, 0.28))
    upper, lower = rng.uniform(0.05, 0.95, 3), rng.uniform(0.05, 0.6, 3)
    mats = [{"name": f"{tag}_cloth{k}", "kind": "cloth", "color": upper.round(3).tolist(),
             "color2": lower.round(3).tolist(), "split_z": round(base_z + 0.5 * h, 3),
             "striped": int(rng.uniform() < 0.4), "salt": int(rng.integers(1 << 20)), "transient": True},
            {"name": f"{tag}_skin{k}", "kind": "plaster", "color": [0.8, 0.62, 0.5], "color2": [0.6, 0.45, 0.35],
             "salt": 5, "transient": True}]
    p = Primitives.empty()
    p.cyl = np.array([[x, y, r, base_z, base_z + h - 0.24]], np.float32)
    p.sph = np.array([[x, y, base_z + h - 0.12, 0.12]], np.float32)
    p.cyl_mat, p.sph_mat = np.array([0], np.int32), np.array([1], np.int32)  # indices into mats (offset later)
    return p, mats


def _place_transients(rng, lay: layouts.Layout, T_local_cam: np.ndarray, fx: float, width: int, tag: str):
    """1-2 people 2-6 m (outdoor) / 1-3 m (indoor) in front of the camera, visible (not behind static geometry)."""
    indoor = lay.kind == "indoor"
    n_people = 1 + int(rng.uniform() < 0.35)
    half_fov = math.atan(width / 2 / fx)
    fwd = T_local_cam[:3, 2]
    yaw0 = math.atan2(fwd[1], fwd[0])
    c = T_local_cam[:3, 3]
    prims, mats = Primitives.empty(), []
    for k in range(n_people):
        for _ in range(20):
            d = float(rng.uniform(1.0, 3.0) if indoor else rng.uniform(2.0, 6.0))
            a = yaw0 - float(rng.uniform(-0.8, 0.8)) * half_fov  # local yaw (x right of forward is -yaw)
            x, y = c[0] + d * math.cos(a), c[1] + d * math.sin(a)
            torso = np.array([[x, y, 1.0]], np.float32)
            o = c[None].astype(np.float32)
            hit = geometry.trace(lay.prims, o, torso - o)  # t in units of the segment: < 1 means occluded
            if not hit.t[0] < 1.0 and geometry.signed_distance(lay.prims, torso)[0] > 0.3:
                break
        p, m = _person(rng, x, y, 0.0, k, tag)
        p.cyl_mat += len(lay.materials) + len(mats)
        p.sph_mat += len(lay.materials) + len(mats)
        prims, mats = prims.concat(p), mats + m
    return prims, mats


# --------------------------------------------------------------------------- rendering (worker)
def _render_job(job: dict) -> dict:
    """Render one image (+ its clean twin for test views) and write its files. Runs in a worker process."""
    intr = job["intr"]
    args = (intr["fx"], intr["fy"], intr["cx"], intr["cy"], intr["width"], intr["height"])
    out = render.render_image(job["prims"], job["mats"], job["T_local_cam"], *args, job["app"], job["sky"])
    rgb8 = render.to_uint8(out["rgb"])
    data_dir, gt_dir, name = Path(job["data_dir"]), Path(job["gt_dir"]), job["name"]
    writers.write_png(data_dir / name, rgb8)
    if job["layout"] == "7scenes":
        stem = name[: -len(".color.png")]
        writers.write_png(data_dir / f"{stem}.depth.png", writers.depth_to_mm(out["depth"]))
        (data_dir / f"{stem}.pose.txt").write_bytes(writers.sevenscenes_pose_text(job["T_world_cam"]).encode())
    writers.write_png(gt_dir / "masks" / name, out["transient"].astype(np.uint8) * 255)
    depth_path = gt_dir / "depth" / Path(name).with_suffix(".npy")
    depth_path.parent.mkdir(parents=True, exist_ok=True)
    np.save(depth_path, out["depth"])
    if job["split"] == "test":
        clean = render.render_image(job["static_prims"], job["static_mats"], job["T_local_cam"], *args,
                                    job["canonical"], job["sky"])
        writers.write_png(gt_dir / "clean" / name, render.to_uint8(clean["rgb"]))
    return {"name": name, "depth": out["depth"], "transient": out["transient"], "rgb": rgb8}


# --------------------------------------------------------------------------- landmarks and SfM points
def _pixel_rays_local(T_local_cam, intr, uv):
    d_cam = np.stack([(uv[:, 0] - intr["cx"]) / intr["fx"], (uv[:, 1] - intr["cy"]) / intr["fy"], np.ones(len(uv))], -1)
    return T_local_cam[:3, 3], d_cam @ T_local_cam[:3, :3].T


def _project_local(T_local_cam, intr, X):  # X [N,3] local -> uv [N,2], z [N]
    T = invert_T(T_local_cam)
    Xc = X @ T[:3, :3].T + T[:3, 3]
    z = Xc[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = Xc[:, :2] / z[:, None] * [intr["fx"], intr["fy"]] + [intr["cx"], intr["cy"]]
    return uv, z


def _landmarks_for_image(rng, lay, view, res, intr, T_dataset_local) -> list[dict]:
    """Distinctive feature points visible in the image, snapped to the pixel centre where they are drawn.

    The stored point is the surface point seen through that pixel centre, so it projects exactly to
    `pixel` and its z equals the depth map there."""
    W, H = intr["width"], intr["height"]
    cand = np.array([lm["point"] for lm in lay.landmarks], float)
    feats = [lm["feature"] for lm in lay.landmarks]
    uv, z = _project_local(view["T_local_cam"], intr, cand)
    px = np.floor(uv).astype(np.int64) if len(cand) else np.zeros((0, 2), np.int64)
    ok = (z > 0.1) & (px[:, 0] >= 1) & (px[:, 0] < W - 1) & (px[:, 1] >= 1) & (px[:, 1] < H - 1)
    idx = np.flatnonzero(ok)
    depth, trans = res["depth"], res["transient"]
    good = []
    for i in idx:
        u, v = px[i]
        dz = depth[v, u]
        if np.isfinite(dz) and not trans[v, u] and abs(dz - z[i]) < max(0.05, 0.03 * z[i]):
            good.append(i)
    if len(good) > LANDMARKS_PER_IMAGE:
        good = sorted(rng.choice(good, LANDMARKS_PER_IMAGE, replace=False).tolist())
    out = []
    for i in good:
        u, v = px[i]
        centre = np.array([[u + 0.5, v + 0.5]])
        o, d = _pixel_rays_local(view["T_local_cam"], intr, centre)
        X_local = o + float(depth[v, u]) * d[0]
        X_ds = T_dataset_local[:3, :3] @ X_local + T_dataset_local[:3, 3]
        out.append({"image": view["name"], "point_world": [round(float(x), 6) for x in X_ds],
                    "pixel": [u + 0.5, v + 0.5], "depth": round(float(depth[v, u]), 6), "feature": feats[i],
                    "intrinsics": {k: intr[k] for k in ("fx", "fy", "cx", "cy", "width", "height")}})
    return out


def _sfm_points(rng, views, results, intr, T_dataset_local):
    """SfM-like sparse points: surface points seen in one image, kept with their observations in others."""
    W, H = intr["width"], intr["height"]
    pts, cols = [], []
    for view, res in zip(views, results):
        valid = np.isfinite(res["depth"]) & ~res["transient"] & (res["depth"] < 120)
        flat = np.flatnonzero(valid)
        if len(flat) == 0:
            continue
        pick = rng.choice(flat, min(NVM_SAMPLES_PER_IMAGE, len(flat)), replace=False)
        v, u = np.divmod(pick, W)
        o, d = _pixel_rays_local(view["T_local_cam"], intr, np.column_stack([u + 0.5, v + 0.5]))
        pts.append(o + res["depth"][v, u][:, None] * d)
        cols.append(res["rgb"][v, u])
    X = np.concatenate(pts)
    C = np.concatenate(cols)
    obs = [[] for _ in range(len(X))]
    n_feat = [0] * len(views)
    for j, (view, res) in enumerate(zip(views, results)):
        uv, z = _project_local(view["T_local_cam"], intr, X)
        px = np.floor(np.nan_to_num(uv, nan=-1, posinf=-1, neginf=-1)).astype(np.int64)
        inside = (z > 0.05) & (px[:, 0] >= 0) & (px[:, 0] < W) & (px[:, 1] >= 0) & (px[:, 1] < H)
        for i in np.flatnonzero(inside):
            u, v = px[i]
            dz = res["depth"][v, u]
            if len(obs[i]) < NVM_MAX_OBS and not res["transient"][v, u] and abs(dz - z[i]) < 0.02 * z[i] + 0.03:
                obs[i].append((j, n_feat[j], float(uv[i, 0] - W / 2), float(uv[i, 1] - H / 2)))
                n_feat[j] += 1
    keep = [i for i in range(len(X)) if len(obs[i]) >= 2]
    X_ds = X[keep] @ T_dataset_local[:3, :3].T + T_dataset_local[:3, 3]
    return X_ds, C[keep], [obs[i] for i in keep]


# --------------------------------------------------------------------------- main entry point
PRESETS = ("wild", "collection", "flight")


@dataclass(kw_only=True)
class SceneSpec:
    """What `nerfw make-scene` generates (None: the preset's or layout's default)."""

    preset: Literal["wild", "collection", "flight"] = "wild"
    """wild (default: the square or the room, see --layout) | collection (a statue's photo collection as a COLMAP
    model: per-photo sizes, focals and lens distortion, far cameras) | flight (a drone flying over the square,
    transforms.json with an OPENCV lens, moving vehicles)"""
    layout: str | None = None
    """wild preset: cambridge (outdoor square, default) | 7scenes (indoor room)"""
    scene: str | None = None
    """scene folder name (default SynthSquare / synthroom / SynthLandmark / SynthFlight)"""
    seed: int = 0
    """random seed of the scene (layout of objects, people, lighting); another seed gives another scene"""
    width: int | None = None
    """image width in pixels (default 480 cambridge; 640 7scenes, as the real dataset ships, reduced at training
    time with --img_downscale); collection: every photo's long side (default 240); flight 480"""
    height: int | None = None
    """image height (default 270 cambridge, 480 7scenes; not used by collection; flight 270)"""
    n_train: int | None = None
    """training images (default 64 / 48 / 70 / 70)"""
    n_test: int | None = None
    """test images (default 12; collection 10 = every 8th photo by name, as the COLMAP reader holds out; flight 10 =
    every 8th frame)"""
    transient_share: float = 0.5
    """share of training images with transient people, 0..1 (0: a static scene)"""
    workers: int | None = None
    """render processes (default min(2, cpus))"""
    overwrite: bool = False
    """replace existing output folders (otherwise an existing folder is an error)"""


def generate_scene(out_dir, spec: SceneSpec | None = None, **fields) -> dict:
    """Generate a built-in scene under ``out_dir``: ``spec`` with ``fields`` (SceneSpec's) replaced. Returns
    {"dataset_dir", "groundtruth_dir", "scene", "layout", ..., "seconds"} (the presets add their own keys).

    preset "wild" (default): the town square (layout "cambridge", the default) or the room ("7scenes").
    preset "collection": a photo collection of one landmark as a COLMAP model (nerfw.synthetic.collection;
    `layout` must be None or "colmap", `width` is each photo's long side, `height` is not used).
    preset "flight": a drone flight over the square as instant-ngp's transforms.json (nerfw.synthetic.flight)."""
    spec = replace(spec or SceneSpec(), **fields)
    if spec.preset not in PRESETS:
        raise ConfigError(f"unknown preset {spec.preset!r} (choose {' or '.join(PRESETS)})")
    common = dict(scene=spec.scene, seed=spec.seed, width=spec.width, height=spec.height, n_train=spec.n_train,
                  n_test=spec.n_test, transient_share=spec.transient_share, workers=spec.workers,
                  overwrite=spec.overwrite)
    if spec.preset == "flight":
        if spec.layout not in (None, "transforms"):
            raise ConfigError(f"--preset flight writes instant-ngp's transforms.json; --layout {spec.layout} does "
                              "not apply")
        return generate_flight(out_dir, **common)
    if spec.preset == "collection":
        if spec.layout not in (None, "colmap"):
            raise ConfigError(f"--preset collection writes a COLMAP model; --layout {spec.layout} does not apply")
        return generate_collection(out_dir, **common)
    return generate_wild(Path(out_dir), resolved_wild_spec(spec))


def resolved_wild_spec(spec: SceneSpec) -> SceneSpec:
    """The wild preset's spec with its layout's defaults filled in, checked."""
    layout = "cambridge" if spec.layout is None else spec.layout
    d = DEFAULTS.get(layout, {})
    pick = lambda value, key: d.get(key) if value is None else value  # noqa: E731
    spec = replace(spec, layout=layout, scene=pick(spec.scene, "scene"), width=pick(spec.width, "width"),
                   height=pick(spec.height, "height"), n_train=pick(spec.n_train, "n_train"),
                   n_test=pick(spec.n_test, "n_test"),
                   workers=spec.workers if spec.workers is not None else min(2, os.cpu_count() or 1))
    _validate(layout, spec.scene, spec.width, spec.height, spec.n_train, spec.n_test, spec.transient_share, spec.seed)
    return spec


@dataclass
class WildViews:
    """The wild preset's world and cameras: what rendering and the ground truth need."""

    kind: str  # "outdoor" (cambridge) or "indoor" (7scenes)
    lay: layouts.Layout
    T_dataset_local: np.ndarray  # [4, 4] the generator's local frame (metres, z up) -> the dataset's frame
    intr: dict  # fx, fy, cx, cy, width, height
    views: list[dict]  # name, split, seq, T_local_cam, T_world_cam

    @property
    def indoor(self) -> bool:
        return self.kind == "indoor"

    @property
    def focal(self) -> float:
        return self.intr["fx"]


def wild_views(spec: SceneSpec, rng) -> WildViews:
    """The layout (objects, lights) and the camera paths of a resolved wild spec, named as the dataset names
    them. ``rng(k)`` gives the independent random stream of purpose k."""
    kind = "outdoor" if spec.layout == "cambridge" else "indoor"
    lay = layouts.build_outdoor(rng(1)) if kind == "outdoor" else layouts.build_indoor(rng(1))
    cams = paths.make_cameras(kind, rng(2), spec.n_train, spec.n_test)
    T_dataset_local = layouts.dataset_transform(kind, rng(3), cams[0][2][:3, 3])
    f = focal_for(spec.layout, spec.width)
    intr = {"fx": f, "fy": f, "cx": spec.width / 2.0, "cy": spec.height / 2.0, "width": int(spec.width),
            "height": int(spec.height)}
    views, frame_counter = [], {}
    for split, seq, T_local_cam in cams:
        if spec.layout == "cambridge":
            frame_counter[seq] = frame_counter.get(seq, 0) + 1
            name = writers.cambridge_name(seq, frame_counter[seq])
        else:
            frame_counter[seq] = frame_counter.get(seq, -1) + 1
            name = writers.sevenscenes_name(seq, frame_counter[seq])
        views.append({"name": name, "split": split, "seq": seq, "T_local_cam": T_local_cam,
                      "T_world_cam": T_dataset_local @ T_local_cam})
    return WildViews(kind, lay, T_dataset_local, intr, views)


@dataclass
class WildAppearance:
    """Per-image lighting and transient occluders of the wild preset."""

    canonical: dict  # the appearance the clean ground truth is rendered with
    apps: dict  # image name -> its appearance
    with_transients: set  # indices of the training views with transients
    transients: dict  # image name -> {"primitives", "materials"} of its transients


def render_wild(world: WildViews, spec: SceneSpec, rng, data_dir: Path, gt_dir: Path):
    """Render every view (with its appearance and transients) into the dataset and the ground truth.
    Returns (WildAppearance, the render jobs' results)."""
    app_rng, tr_rng = rng(4), rng(5)
    canonical = materials.canonical_appearance(world.indoor)
    apps = {v["name"]: materials.random_appearance(app_rng, world.indoor) for v in world.views}
    train_idx = [i for i, v in enumerate(world.views) if v["split"] == "train"]
    with_transients = transient_images(tr_rng, train_idx, spec.transient_share)
    transients, jobs = {}, []
    lay = world.lay
    for i, v in enumerate(world.views):
        prims, mats = lay.prims, lay.materials
        if i in with_transients:
            tp, tm = _place_transients(tr_rng, lay, v["T_local_cam"], world.focal, spec.width, f"t{i}")
            transients[v["name"]] = {"primitives": tp.to_json(mats + tm), "materials": tm}
            prims, mats = lay.prims.concat(tp), mats + tm
        jobs.append({"name": v["name"], "split": v["split"], "layout": spec.layout, "prims": prims, "mats": mats,
                     "static_prims": lay.prims, "static_mats": lay.materials, "T_local_cam": v["T_local_cam"],
                     "T_world_cam": v["T_world_cam"], "intr": world.intr, "app": apps[v["name"]],
                     "canonical": canonical, "sky": not world.indoor, "data_dir": str(data_dir),
                     "gt_dir": str(gt_dir)})
    results = render.run_jobs(_render_job, jobs, spec.workers)
    return WildAppearance(canonical, apps, with_transients, transients), results


def write_wild_dataset(world: WildViews, spec: SceneSpec, rng, results, data_dir: Path) -> int:
    """The dataset's own files besides the images (Cambridge: split files and an NVM model; 7-Scenes: split
    files). Returns the number of sparse points written."""
    views = world.views
    if spec.layout != "cambridge":
        for split, fname in (("train", "TrainSplit.txt"), ("test", "TestSplit.txt")):
            writers.write_sevenscenes_split(data_dir / fname, sorted({v["seq"] for v in views if v["split"] == split}))
        return 0
    for split, fname in (("train", "dataset_train.txt"), ("test", "dataset_test.txt")):
        writers.write_cambridge_split(data_dir / fname,
                                      [(v["name"], v["T_world_cam"]) for v in views if v["split"] == split])
    X, C, obs = _sfm_points(rng(7), views, results, world.intr, world.T_dataset_local)
    writers.write_nvm(data_dir / "reconstruction.nvm", [(v["name"], world.focal, v["T_world_cam"]) for v in views],
                      X, C, obs)
    return len(X)


def generate_wild(out_dir: Path, spec: SceneSpec) -> dict:
    """The wild preset for a resolved spec (:func:`resolved_wild_spec`)."""
    t_start = time.time()
    data_dir, gt_dir = prepare_dirs(out_dir, spec.scene, spec.overwrite)
    rng = lambda k: np.random.default_rng([spec.seed, k])  # noqa: E731  (one independent stream per purpose)
    world = wild_views(spec, rng)
    look, results = render_wild(world, spec, rng, data_dir, gt_dir)
    t_render = time.time() - t_start
    lm_rng = rng(6)
    landmarks = [lm for v, r in zip(world.views, results)
                 for lm in _landmarks_for_image(lm_rng, world.lay, v, r, world.intr, world.T_dataset_local)]
    n_points = write_wild_dataset(world, spec, rng, results, data_dir)
    write_wild_groundtruth(gt_dir, spec, world, look, landmarks)
    n_train = sum(v["split"] == "train" for v in world.views)
    return {"dataset_dir": str(data_dir), "groundtruth_dir": str(gt_dir), "scene": spec.scene,
            "layout": spec.layout, "focal": world.focal, "width": int(spec.width), "height": int(spec.height),
            "n_train": n_train, "n_test": len(world.views) - n_train,
            "n_transient_images": len(look.with_transients), "n_landmarks": len(landmarks), "n_points": n_points,
            "render_seconds": round(t_render, 2), "seconds": round(time.time() - t_start, 2)}


def write_wild_groundtruth(gt_dir: Path, spec: SceneSpec, world: WildViews, look: WildAppearance,
                           landmarks: list[dict]) -> None:
    """scene.json, appearance.json, cameras.json, landmarks.json (masks/depth/clean are written by workers)."""
    lay, T = world.lay, world.T_dataset_local
    lo, hi = content_bounds_local(lay)
    scene_json = {
        "generator": "nerfw.synthetic", "format_version": 1, "seed": int(spec.seed), "layout": spec.layout,
        "variant": world.kind, "scene": spec.scene, "units": "metres",
        "params": {"width": int(spec.width), "height": int(spec.height), "n_train": int(spec.n_train),
                   "n_test": int(spec.n_test), "transient_share": float(spec.transient_share),
                   "supersample": render.SUPERSAMPLE},
        "intrinsics": world.intr, "focal": world.focal,
        "world": {"T_dataset_local": np.round(T, 12).tolist(),
                  "up_dataset": np.round(T[:3, 2], 12).tolist(),
                  "note": "dataset = T_dataset_local @ local; the generator's local frame is metres with +z up"},
        "sky": not world.indoor,
        "content_bounds_local": [lo.tolist(), hi.tolist()],
        "materials": lay.materials, "primitives": lay.prims.to_json(lay.materials),
        "transients": look.transients,
    }
    writers.write_json(gt_dir / "scene.json", scene_json)
    writers.write_json(gt_dir / "appearance.json", {"canonical": look.canonical, "images": look.apps})
    cams = {v["name"]: {"split": v["split"], "sequence": v["seq"], **world.intr,
                        "T_world_cam": np.round(v["T_world_cam"], 12).tolist(),
                        "has_transients": v["name"] in look.transients} for v in world.views}
    writers.write_json(gt_dir / "cameras.json", {"layout": spec.layout, "focal": world.focal, "images": cams})
    writers.write_json(gt_dir / "landmarks.json", landmarks)


