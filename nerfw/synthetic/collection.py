"""`generate_collection`: the "collection" preset, an internet photo collection of one landmark.

A statue on a plinth (nerfw.synthetic.landmark) photographed from all around by different cameras: every
photo has its own size (portrait, landscape, square), focal length (0.7 to 1.6 x width) and radial lens
distortion (k1 in [-0.3, 0.05], k2 in [-0.03, 0.08]); most photos look up at the statue so that the sky
fills 40 to 70 % of the frame; about 5 % of the photos are taken from 5 to 10 times the typical distance.
The sky at infinity has clouds that change from photo to photo; lighting changes strongly (weather,
exposure, white balance, sun); some training photos have a helicopter in the sky and/or people in front of
the plinth. Written as real collections ship, a COLMAP text model:

OUT/<scene>/images/IMG_NNNN.jpg
OUT/<scene>/sparse/0/{cameras,images,points3D}.txt   one camera per image (SIMPLE_RADIAL, RADIAL or OPENCV)
OUT/<scene>.groundtruth/  scene.json, appearance.json, cameras.json, landmarks.json, masks/, landmark_masks/,
                          depth/, clean/ (per-image files are <stem>.png / <stem>.npy)

The test split is the COLMAP reader's: images sorted by name, every 8th (index % 8 == 0) is a test image.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nerfw.cameras.conventions import (
    Distortion,
    axis_angle_to_rotmat,
    camera_rays,
    intrinsics_matrix,
    invert_T,
    make_T,
    pixels_to_normalized,
    project_points,
)
from nerfw.data import writers
from nerfw.errors import ConfigError
from nerfw.synthetic import geometry, landmark, materials, render
from nerfw.synthetic.common import (
    TEST_EVERY,
    prepare_dirs,
    split_counts,
    transient_images,
    validate_common,
)
from nerfw.synthetic.geometry import Primitives
from nerfw.synthetic.layouts import Layout
from nerfw.synthetic.paths import look_at

DEFAULTS = {"scene": "SynthLandmark", "width": 240, "n_train": 70, "n_test": 10}
ASPECTS = ((2 / 3, 1.0), (1.0, 2 / 3), (5 / 6, 5 / 6), (0.75, 1.0), (1.0, 0.75))  # (W, H) / long side
FOCAL_RANGE = (0.7, 1.6)  # focal / image width
K1_RANGE, K2_RANGE = (-0.3, 0.05), (-0.03, 0.08)
LENS_MODELS = (("SIMPLE_RADIAL", 0.45), ("RADIAL", 0.35), ("OPENCV", 0.2))
MIN_SLOPE = 0.25  # d r_distorted / d r_undistorted stays above this out to the image corners
NEAR_DISTANCE = (2.2, 5.0)  # horizontal distance of ordinary photos from the statue's axis
FAR_SHARE, FAR_FACTOR = 0.05, (5.0, 10.0)  # share of far photos, their distance / median ordinary distance
UP_SHARE = 0.8  # share of ordinary photos aimed so that the sky fills SKY_RANGE of the frame
SKY_RANGE = (0.40, 0.70)  # sky share of an "up" photo (stated in the docs, checked by the tests)
SKY_TARGET = (0.46, 0.64)  # aimed for at low resolution, inside SKY_RANGE
SKY_STRIDE = 4  # low-resolution pixel stride of the sky estimate used to aim the camera
POINTS_PER_IMAGE = 24  # sparse points seeded in each image
UNMATCHED_PER_IMAGE = 8  # keypoints matched to no 3-D point (POINT3D_ID -1), as in real models
JPEG_QUALITY = 95


def _validate(scene, width, height, n_train, n_test, transient_share, seed) -> None:

    if height is not None:
        raise ConfigError("--height does not apply to --preset collection (--width sets every photo's long side)")
    validate_common(scene, (("width", width, 24), ("n_train", n_train, 1), ("n_test", n_test, 1)),
                    transient_share, seed)


# --------------------------------------------------------------------------- cameras
def _lens(rng: np.random.Generator, width: int, height: int) -> dict:
    """Focal, COLMAP model and radial coefficients of one photo. Coefficients are redrawn until the lens
    is invertible with margin (slope of r_d(r) > MIN_SLOPE) out to the image corners, so that every pixel
    of the distorted image has a ray."""
    f = round(float(rng.uniform(*FOCAL_RANGE)) * width, 4)
    names, p = zip(*LENS_MODELS)
    model = str(rng.choice(names, p=np.array(p) / sum(p)))
    corner = np.array([[width / 2 / f, height / 2 / f]])  # distorted normalised corner (cx, cy at the centre)
    for _ in range(200):
        k1 = round(float(rng.uniform(*K1_RANGE)), 6)
        k2 = 0.0 if model == "SIMPLE_RADIAL" else round(float(rng.uniform(*K2_RANGE)), 6)
        dist = Distortion("opencv", [k1, k2])
        xy = pixels_to_normalized(1.0, 1.0, 0.0, 0.0, corner, dist) if not dist.is_identity else corner
        if not np.isfinite(xy).all():
            continue
        r_max = float(np.linalg.norm(xy))
        r = np.linspace(0.0, 1.02 * r_max, 128)
        if (1 + 3 * k1 * r**2 + 5 * k2 * r**4).min() > MIN_SLOPE:
            break
    else:  # pragma: no cover - a pinhole always qualifies
        k1, k2, dist, r_max = 0.0, 0.0, Distortion("opencv", []), float(np.linalg.norm(corner))
    params = {"SIMPLE_RADIAL": [f, width / 2, height / 2, k1], "RADIAL": [f, width / 2, height / 2, k1, k2],
              "OPENCV": [f, f, width / 2, height / 2, k1, k2, 0.0, 0.0]}[model]
    return {"fx": f, "fy": f, "cx": width / 2, "cy": height / 2, "width": width, "height": height,
            "distortion": dist.to_dict(), "colmap_model": model, "colmap_params": params, "r_max": r_max}


def _size(rng: np.random.Generator, long_side: int) -> tuple[int, int]:
    aw, ah = ASPECTS[int(rng.integers(len(ASPECTS)))]
    return 2 * max(4, round(aw * long_side / 2)), 2 * max(4, round(ah * long_side / 2))


def _pose(C, target, yaw, pitch, roll) -> np.ndarray:
    """T_local_cam looking from C at target, then yaw (about camera y), pitch UP (about camera x), roll."""
    R = (look_at(np.asarray(C, float), target) @ axis_angle_to_rotmat([0, yaw, 0])
         @ axis_angle_to_rotmat([pitch, 0, 0]) @ axis_angle_to_rotmat([0, 0, roll]))
    return make_T(R, C)


def _probe_grid(intr: dict) -> tuple[np.ndarray, tuple[int, int]]:
    """Pixel centres every SKY_STRIDE pixels: uv [n,2] (row-major) and the grid's (rows, cols)."""
    s = SKY_STRIDE
    u, v = np.meshgrid(np.arange(s // 2, intr["width"], s) + 0.5, np.arange(s // 2, intr["height"], s) + 0.5)
    return np.stack([u.ravel(), v.ravel()], -1), u.shape


class _SkyProbe:
    """Low-resolution sky share of a photo at a pose (pixel-centre rays every SKY_STRIDE pixels, static scene)."""

    def __init__(self, prims: Primitives, intr: dict):
        self.uv, self.shape = _probe_grid(intr)
        self.prims = prims
        _, self.d_cam = camera_rays(intr["fx"], intr["fy"], intr["cx"], intr["cy"], np.eye(4), self.uv,
                                    Distortion.from_dict(intr["distortion"]))

    def sky(self, T_local_cam: np.ndarray) -> np.ndarray:
        d = self.d_cam @ T_local_cam[:3, :3].T
        o = np.broadcast_to(T_local_cam[:3, 3], d.shape)
        return (geometry.trace(self.prims, o, d).kind < 0).reshape(self.shape)


def _aim_up(probe: _SkyProbe, C, target, yaw, roll, vhalf, goal) -> tuple[float, float]:
    """Pitch (radians, up) that makes the low-resolution sky share `goal`, by bisection; (pitch, share).
    The pitch stays within +-0.75 of the half vertical field of view, so the target stays in the frame, and
    the optical axis points at least 0.5 degrees above the horizon."""
    elevation = math.atan2(target[2] - C[2], float(np.linalg.norm(np.asarray(target[:2]) - C[:2])))
    lo, hi = max(-0.75 * vhalf, math.radians(0.5) - elevation), 0.75 * vhalf
    if lo >= hi:
        return hi, float(probe.sky(_pose(C, target, yaw, hi, roll)).mean())
    f_lo = probe.sky(_pose(C, target, yaw, lo, roll)).mean()
    f_hi = probe.sky(_pose(C, target, yaw, hi, roll)).mean()
    if not f_lo <= goal <= f_hi:
        return (lo, f_lo) if abs(f_lo - goal) < abs(f_hi - goal) else (hi, f_hi)
    for _ in range(12):
        mid = 0.5 * (lo + hi)
        if probe.sky(_pose(C, target, yaw, mid, roll)).mean() < goal:
            lo = mid
        else:
            hi = mid
    pitch = 0.5 * (lo + hi)
    return pitch, float(probe.sky(_pose(C, target, yaw, pitch, roll)).mean())


def make_views(rng: np.random.Generator, static: Primitives, n_train: int, n_test: int, long_side: int) -> list[dict]:
    """All photos in name order: split, kind ("up" / "level" / "far"), intrinsics + lens, T_local_cam."""
    n = n_train + n_test
    splits = ["test" if i % TEST_EVERY == 0 else "train" for i in range(n)]
    train_slots = [i for i in range(n) if splits[i] == "train"]
    n_far = max(1, int(math.floor(FAR_SHARE * n_train + 0.5))) if n_train >= 2 else 0
    far = set(rng.choice(train_slots, n_far, replace=False).tolist()) if n_far else set()
    views = []
    for i in range(n):
        kind = "far" if i in far else ("up" if rng.uniform() < UP_SHARE else "level")
        W, H = _size(rng, long_side)
        views.append({"name": f"IMG_{i + 1:04d}.jpg", "image_id": i + 1, "split": splits[i], "kind": kind,
                      "intr": _lens(rng, W, H), "azimuth": float(rng.uniform(0, 2 * math.pi)),
                      "distance": float(math.exp(rng.uniform(*np.log(NEAR_DISTANCE))))})
    near = [v["distance"] for v in views if v["kind"] != "far"]
    typical = float(np.median(near)) if near else float(np.mean(NEAR_DISTANCE))
    for v in views:
        kind, intr = v["kind"], v["intr"]
        if kind == "far":
            v["distance"] = float(rng.uniform(*FAR_FACTOR)) * typical
        height = {"up": rng.uniform(0.2, 0.75), "far": rng.uniform(0.3, 2.0)}.get(
            kind, rng.uniform(0.4, 0.9) if rng.uniform() < 0.6 else rng.uniform(0.9, 1.8))
        C = np.array([v["distance"] * math.cos(v["azimuth"]), v["distance"] * math.sin(v["azimuth"]), float(height)])
        z_t = {"up": rng.uniform(0.9, 1.5), "far": rng.uniform(0.7, 1.1)}.get(kind, rng.uniform(0.6, 1.3))
        target = np.array([rng.uniform(-0.1, 0.1), rng.uniform(-0.1, 0.1), float(z_t)])
        yaw = math.radians(float(np.clip(rng.normal(0, 3.0), -6, 6)))
        roll = math.radians(float(np.clip(rng.normal(0, 2.0), -5, 5)))
        vhalf = math.atan(intr["height"] / 2 / intr["fy"])
        probe = _SkyProbe(static, intr)
        goal = float(rng.uniform(*SKY_TARGET))
        if kind == "up":
            pitch, share = _aim_up(probe, C, target, yaw, roll, vhalf, goal)
        else:
            pitch = float(np.clip(rng.normal(0, 0.08), -0.2, 0.2)) * vhalf
        T = _pose(C, target, yaw, pitch, roll)
        if kind == "up" and not (SKY_TARGET[0] - 0.01 <= share <= SKY_TARGET[1] + 0.01 and T[2, 2] > 0):
            v["kind"] = "level"  # this framing cannot reach the sky share looking up: an ordinary photo
        v.update({"T_local_cam": T, "sky_lowres": probe.sky(T), "height_above_ground": float(height),
                  "pitch_deg": float(np.degrees(np.arcsin(np.clip(T[2, 2], -1, 1))))})
    return views


# --------------------------------------------------------------------------- transients
def _inside(intr: dict, T_local_cam: np.ndarray, X: np.ndarray, margin: float = 0.03) -> np.ndarray:
    """Points [N,3] (local) in front of the camera that project inside the image (through the lens)."""
    dist = Distortion.from_dict(intr["distortion"])
    K = intrinsics_matrix(intr["fx"], intr["fy"], intr["cx"], intr["cy"])
    uv, z = project_points(K, T_local_cam, X, dist)
    W, H = intr["width"], intr["height"]
    with np.errstate(invalid="ignore", divide="ignore"):
        r_u = np.linalg.norm((X - T_local_cam[:3, 3]) @ T_local_cam[:3, :3][:, :2], axis=-1) / z
    return ((z > 0.05) & (r_u <= intr["r_max"]) & (uv[:, 0] >= margin * W) & (uv[:, 0] <= (1 - margin) * W)
            & (uv[:, 1] >= margin * H) & (uv[:, 1] <= (1 - margin) * H))


def _place_people(rng, lm_prims: Primitives, view: dict, tag: str, offset: int):
    C = view["T_local_cam"][:3, 3]
    u = C[:2] / np.linalg.norm(C[:2])
    w = np.array([-u[1], u[0]])
    prims, mats, spots = Primitives.empty(), [], []
    for k in range(1 + int(rng.integers(3))):
        for _ in range(40):
            s = float(rng.uniform(0.75, min(1.8, 0.7 * float(np.linalg.norm(C[:2])))))
            xy = s * u + float(rng.uniform(-0.7, 0.7)) * w
            axis = np.array([[xy[0], xy[1], z] for z in (0.05, 0.3, 0.55)])
            if (landmark.clear_of(lm_prims, axis, 0.15) and all(np.linalg.norm(xy - q) > 0.25 for q in spots)
                    and np.linalg.norm(xy - C[:2]) > 0.5
                    and _inside(view["intr"], view["T_local_cam"], axis[2:]).all()):
                p, m = landmark.person(rng, float(xy[0]), float(xy[1]), k, tag, offset + len(mats))
                prims, mats = prims.concat(p), mats + m
                spots.append(xy)
                break
    return prims, mats


def _place_helicopter(rng, lm_prims: Primitives, view: dict, tag: str, offset: int):
    sky = view["sky_lowres"]
    rows = np.arange(sky.shape[0])[:, None] < 0.65 * sky.shape[0]
    cand = np.flatnonzero((sky & rows).ravel())
    if len(cand) == 0:
        return Primitives.empty(), []
    intr, T = view["intr"], view["T_local_cam"]
    probe_uv, _ = _probe_grid(intr)
    for _ in range(30):
        uv = probe_uv[int(rng.choice(cand))][None]
        o, d = camera_rays(intr["fx"], intr["fy"], intr["cx"], intr["cy"], T, uv,
                           Distortion.from_dict(intr["distortion"]))
        d = d[0] / np.linalg.norm(d[0])
        L, D = float(rng.uniform(2.0, 4.0)), float(rng.uniform(15.0, 45.0))
        centre = o[0] + D * d
        if centre[2] > 0.3 * L + 0.5 and landmark.clear_of(lm_prims, centre[None], L):
            return landmark.helicopter(rng, centre, L, tag, offset)
    return Primitives.empty(), []


def _transients(rng, lay, lm_prims, view: dict, tag: str):
    """Occluders of one training photo: a helicopter in the sky and/or people in front of the plinth."""
    want = ("helicopter" if view["kind"] == "far"  # people would be a few pixels: far photos get a helicopter
            else str(rng.choice(["helicopter", "people", "both"], p=[0.4, 0.4, 0.2])))
    prims, mats, kinds = Primitives.empty(), [], []
    base = len(lay.materials)
    if want in ("people", "both"):
        p, m = _place_people(rng, lm_prims, view, tag, base)
        if m:
            prims, mats, kinds = prims.concat(p), mats + m, kinds + ["people"]
    if want in ("helicopter", "both") or not kinds:
        p, m = _place_helicopter(rng, lm_prims, view, tag, base + len(mats))
        if m:
            prims, mats, kinds = prims.concat(p), mats + m, kinds + ["helicopter"]
    return prims, mats, kinds


# --------------------------------------------------------------------------- rendering (worker)
def _render_job(job: dict) -> dict:
    """Render one photo (+ its clean twin for test photos), write its files. Runs in a worker process."""
    i = job["intr"]
    args = (i["fx"], i["fy"], i["cx"], i["cy"], i["width"], i["height"])
    dist = Distortion.from_dict(i["distortion"])
    out = render.render_image(job["prims"], job["mats"], job["T_local_cam"], *args, job["app"], True,
                              distortion=dist)
    rgb8 = render.to_uint8(out["rgb"])
    data_dir, gt_dir, name = Path(job["data_dir"]), Path(job["gt_dir"]), job["name"]
    stem = Path(name).stem
    writers.write_jpg(data_dir / "images" / name, rgb8, JPEG_QUALITY)
    writers.write_png(gt_dir / "masks" / f"{stem}.png", out["transient"].astype(np.uint8) * 255)
    on_landmark = np.isin(out["material"], job["landmark_ids"])
    writers.write_png(gt_dir / "landmark_masks" / f"{stem}.png", on_landmark.astype(np.uint8) * 255)
    (gt_dir / "depth").mkdir(parents=True, exist_ok=True)
    np.save(gt_dir / "depth" / f"{stem}.npy", out["depth"])
    # sky share of the static scene: pixel centres that see the sky, plus those whose occluder hides the sky
    sky = out["material"] < 0
    hidden = out["material"] >= job["n_static_materials"]
    if hidden.any():
        v, u = np.nonzero(hidden)
        o, d = camera_rays(*args[:4], job["T_local_cam"], np.column_stack([u + 0.5, v + 0.5]), dist)
        sky[v, u] = geometry.trace(job["static_prims"], o, d).kind < 0
    if job["split"] == "test":
        clean = render.render_image(job["static_prims"], job["static_mats"], job["T_local_cam"], *args,
                                    job["canonical"], True, distortion=dist)
        writers.write_png(gt_dir / "clean" / f"{stem}.png", render.to_uint8(clean["rgb"]))
    return {"name": name, "depth": out["depth"], "transient": out["transient"], "material": out["material"],
            "rgb": rgb8, "sky_fraction": float(sky.mean()), "landmark_fraction": float(on_landmark.mean())}


# --------------------------------------------------------------------------- sparse points
def sparse_points(rng, views: list[dict], results: list[dict], scene_prims: list[Primitives], lm_ids: np.ndarray):
    """SfM-like points on the landmark: pixel centres of each photo that see the landmark (not an occluder),
    lifted with the exact depth along the lens's ray; observed in every photo where the point is in front,
    inside the image and the lens's domain, not hidden (exact ray test against that photo's scene, occluders
    included) and the pixel it lands on shows the landmark at the point's depth. Observations are the exact
    projections through the lens. Returns (X_local [M,3], rgb [M,3] uint8, obs [M] lists of (view index, uv),
    source [M] (view index, pixel u, v))."""
    pts, cols, src = [], [], []
    for j, (view, res) in enumerate(zip(views, results)):
        ok = np.isin(res["material"], lm_ids) & ~res["transient"] & np.isfinite(res["depth"])
        flat = np.flatnonzero(ok)
        if len(flat) == 0:
            continue
        pick = np.sort(rng.choice(flat, min(POINTS_PER_IMAGE, len(flat)), replace=False))
        v, u = np.divmod(pick, view["intr"]["width"])
        intr = view["intr"]
        o, d = camera_rays(intr["fx"], intr["fy"], intr["cx"], intr["cy"], view["T_local_cam"],
                           np.column_stack([u + 0.5, v + 0.5]), Distortion.from_dict(intr["distortion"]))
        pts.append(o + res["depth"][v, u, None].astype(np.float64) * d)
        cols.append(res["rgb"][v, u])
        src += [(j, int(a), int(b)) for a, b in zip(u, v)]
    X = np.concatenate(pts) if pts else np.zeros((0, 3))
    C = np.concatenate(cols) if cols else np.zeros((0, 3), np.uint8)
    obs: list[list[tuple[int, np.ndarray]]] = [[] for _ in range(len(X))]
    for j, (view, res) in enumerate(zip(views, results)):
        intr, T = view["intr"], view["T_local_cam"]
        W, H = intr["width"], intr["height"]
        K = intrinsics_matrix(intr["fx"], intr["fy"], intr["cx"], intr["cy"])
        uv, z = project_points(K, T, X, Distortion.from_dict(intr["distortion"]))
        inside = _inside(intr, T, X, margin=0.0) & (uv[:, 0] < W) & (uv[:, 1] < H)
        idx = np.flatnonzero(inside)
        if len(idx) == 0:
            continue
        px = np.floor(uv[idx]).astype(np.int64)
        pu, pv = px[:, 0], px[:, 1]
        dz = res["depth"][pv, pu]
        good = (np.isin(res["material"][pv, pu], lm_ids) & ~res["transient"][pv, pu]
                & (np.abs(dz - z[idx]) < 0.03 * z[idx] + 0.01))
        idx = idx[good]
        if len(idx) == 0:
            continue
        c = T[:3, 3]
        d = (X[idx] - c) / z[idx, None]  # camera-z = 1: the hit parameter at the point is its z-depth
        hit = geometry.trace(scene_prims[j], np.broadcast_to(c, d.shape), d)
        seen = hit.t >= z[idx] * (1 - 2e-4) - 1e-4
        for i in idx[seen]:
            obs[i].append((j, uv[i]))
    keep = [i for i in range(len(X)) if len(obs[i]) >= 2]
    return X[keep], C[keep], [obs[i] for i in keep], [src[i] for i in keep]


# --------------------------------------------------------------------------- main entry point
def generate_collection(out_dir, scene: str | None = None, seed: int = 0, width: int | None = None,
                        height: int | None = None, n_train: int | None = None, n_test: int | None = None,
                        transient_share: float = 0.5, workers: int | None = None, overwrite: bool = False) -> dict:
    """Generate the collection preset (see the module docstring). `width` is every photo's long side.
    Returns {"dataset_dir", "groundtruth_dir", "scene", "layout": "colmap", "preset": "collection", "width",
    "n_train", "n_test", "n_far", "n_up", "n_transient_images", "n_points", "landmark_bounds", "seconds"}."""

    t_start = time.time()
    scene = DEFAULTS["scene"] if scene is None else scene
    width = DEFAULTS["width"] if width is None else width
    for name, value in (("n_train", n_train), ("n_test", n_test)):
        if value is not None and (not isinstance(value, (int, np.integer)) or value < 1):
            raise ConfigError(f"--{name} must be an integer >= 1, got {value!r}")
    n_train, n_test = split_counts(n_train, n_test)
    _validate(scene, width, height, n_train, n_test, transient_share, seed)
    data_dir, gt_dir = prepare_dirs(Path(out_dir), scene, overwrite)
    workers = workers if workers is not None else min(2, os.cpu_count() or 1)

    rng = lambda k: np.random.default_rng([seed, 100 + k])  # noqa: E731  (one independent stream per purpose)
    lay = landmark.build_landmark(rng(1))
    lm_prims = landmark.landmark_primitives(lay)
    lm_ids = landmark.landmark_material_ids(lay.materials)
    views = make_views(rng(2), lay.prims, n_train, n_test, int(width))
    ref = next((v for v in views if v["split"] == "train" and v["kind"] == "up"), views[0])
    T_dataset_local = invert_T(ref["T_local_cam"])  # as COLMAP: the reference photo's camera is the world frame
    for v in views:
        v["T_world_cam"] = T_dataset_local @ v["T_local_cam"]

    app_rng, tr_rng = rng(4), rng(5)
    canonical = materials.canonical_appearance(False)
    apps = {v["name"]: materials.collection_appearance(app_rng) for v in views}
    train_idx = [i for i, v in enumerate(views) if v["split"] == "train"]
    chosen = transient_images(tr_rng, train_idx, transient_share)
    transients, scene_prims, jobs = {}, [], []
    for i, v in enumerate(views):
        prims, mats = lay.prims, lay.materials
        if i in chosen:
            tp, tm, kinds = _transients(tr_rng, lay, lm_prims, v, f"t{i + 1}")
            if tm:
                transients[v["name"]] = {"kinds": kinds, "primitives": tp.to_json(mats + tm), "materials": tm}
                prims, mats = lay.prims.concat(tp), mats + tm
        scene_prims.append(prims)
        intr = {k: v["intr"][k] for k in ("fx", "fy", "cx", "cy", "width", "height", "distortion")}
        jobs.append({"name": v["name"], "split": v["split"], "prims": prims, "mats": mats,
                     "static_prims": lay.prims, "static_mats": lay.materials, "n_static_materials": len(lay.materials),
                     "landmark_ids": lm_ids, "T_local_cam": v["T_local_cam"], "intr": intr, "app": apps[v["name"]],
                     "canonical": canonical, "data_dir": str(data_dir), "gt_dir": str(gt_dir)})
    results = render.run_jobs(_render_job, jobs, workers)
    t_render = time.time() - t_start
    for v, r in zip(views, results):
        v["sky_fraction"], v["landmark_fraction"] = r["sky_fraction"], r["landmark_fraction"]
        if v["kind"] == "up" and not SKY_RANGE[0] <= r["sky_fraction"] <= SKY_RANGE[1]:
            v["kind"] = "level"  # the full-resolution share missed the stated range (rare): not an "up" photo

    X, C, obs, src = sparse_points(rng(7), views, results, scene_prims, lm_ids)
    X_ds = X @ T_dataset_local[:3, :3].T + T_dataset_local[:3, 3] if len(X) else X
    _write_colmap(data_dir / "sparse" / "0", views, X_ds, C, obs, rng(8))
    lm_lo, lm_hi = landmark.aabb(lm_prims, T_dataset_local)
    _write_groundtruth(gt_dir, CollectionGroundTruth(T_dataset_local=T_dataset_local, X_ds=X_ds, apps=apps,
        canonical=canonical, lay=lay, lm_hi=lm_hi, lm_ids=lm_ids, lm_lo=lm_lo, lm_prims=lm_prims, n_test=n_test,
        n_train=n_train, ref=ref, results=results, scene=scene, seed=seed, src=src, transient_share=transient_share,
        transients=transients, views=views, width=width))
    return {"dataset_dir": str(data_dir), "groundtruth_dir": str(gt_dir), "scene": scene, "layout": "colmap",
            "preset": "collection", "width": int(width), "n_train": n_train, "n_test": n_test,
            "n_far": sum(v["kind"] == "far" for v in views), "n_up": sum(v["kind"] == "up" for v in views),
            "n_transient_images": len(transients), "n_points": len(X),
            "landmark_bounds": [lm_lo.round(6).tolist(), lm_hi.round(6).tolist()],
            "render_seconds": round(t_render, 2), "seconds": round(time.time() - t_start, 2)}


def _write_colmap(model_dir: Path, views, X_ds, colors, obs, rng) -> None:
    per_image: list[list[tuple[np.ndarray, int]]] = [[] for _ in views]
    tracks = []
    for pid, point_obs in enumerate(obs, start=1):
        track = []
        for j, uv in point_obs:
            track.append((views[j]["image_id"], len(per_image[j])))
            per_image[j].append((uv, pid))
        tracks.append(track)
    cameras, images = [], []
    for j, v in enumerate(views):
        intr = v["intr"]
        cameras.append((v["image_id"], intr["colmap_model"], intr["width"], intr["height"], intr["colmap_params"]))
        extra = rng.uniform([0, 0], [intr["width"], intr["height"]], (UNMATCHED_PER_IMAGE, 2)).round(2)
        xys = np.concatenate([np.array([uv for uv, _ in per_image[j]]).reshape(-1, 2), extra])
        ids = np.array([pid for _, pid in per_image[j]] + [-1] * UNMATCHED_PER_IMAGE, np.int64)
        images.append((v["image_id"], v["T_world_cam"], v["image_id"], v["name"], xys, ids))
    points = [(pid, X, c, 0.0, tr) for pid, (X, c, tr) in enumerate(zip(X_ds, colors, tracks), start=1)]
    writers.write_colmap_text(model_dir, cameras, images, points)


@dataclass
class CollectionGroundTruth:
    """What the collection preset's ground-truth files are written from."""

    T_dataset_local: np.ndarray
    X_ds: np.ndarray
    apps: dict
    canonical: dict
    lay: Layout  # the static scene: primitives and materials
    lm_hi: np.ndarray
    lm_ids: np.ndarray
    lm_lo: np.ndarray
    lm_prims: Primitives
    n_test: int
    n_train: int
    ref: dict
    results: list[dict]
    scene: str
    seed: int
    src: np.ndarray
    transient_share: float
    transients: dict
    views: list[dict]
    width: int


def _write_groundtruth(gt_dir: Path, g: CollectionGroundTruth) -> None:
    """scene.json, appearance.json, cameras.json, landmarks.json (per-image files come from the workers)."""
    lay, T, views = g.lay, g.T_dataset_local, g.views
    loc_lo, loc_hi = landmark.aabb(g.lm_prims)
    up = T[:3, 2]
    scene_json = {
        "generator": "nerfw.synthetic", "format_version": 1, "preset": "collection", "seed": int(g.seed),
        "layout": "colmap", "variant": "landmark", "scene": g.scene,
        "units": "SfM-like units, about 3 m: the landmark is about 1.05 across and 2.1 tall",
        "params": {"width": int(g.width), "n_train": int(g.n_train), "n_test": int(g.n_test),
                   "test_every": TEST_EVERY, "transient_share": float(g.transient_share),
                   "supersample": render.SUPERSAMPLE, "jpeg_quality": JPEG_QUALITY, "sky_range": list(SKY_RANGE),
                   "focal_range": list(FOCAL_RANGE), "k1_range": list(K1_RANGE), "k2_range": list(K2_RANGE),
                   "far_factor": list(FAR_FACTOR)},
        "world": {"T_dataset_local": np.round(T, 12).tolist(), "up_dataset": np.round(up, 12).tolist(),
                  "reference_image": g.ref["name"],
                  "note": "dataset = T_dataset_local @ local; local is +z up with the ground at z = 0 and the "
                          "statue's axis on the z axis; the dataset frame is the reference photo's camera (as COLMAP)"},
        "sky": True,
        "landmark": {"bounds_world": [g.lm_lo.round(6).tolist(), g.lm_hi.round(6).tolist()],
                     "bounds_local": [loc_lo.round(6).tolist(), loc_hi.round(6).tolist()],
                     "center_world": np.round(T[:3, :3] @ ((loc_lo + loc_hi) / 2) + T[:3, 3], 6).tolist(),
                     "materials": [lay.materials[i]["name"] for i in g.lm_ids],
                     "plaza_half_width_local": landmark.PLAZA_HALF},
        "content_bounds_local": [loc_lo.round(6).tolist(), loc_hi.round(6).tolist()],
        "materials": lay.materials, "primitives": lay.prims.to_json(lay.materials),
        "transients": g.transients,
    }
    writers.write_json(gt_dir / "scene.json", scene_json)
    writers.write_json(gt_dir / "appearance.json", {"canonical": g.canonical, "images": g.apps})
    cams = {}
    for v in views:
        intr = v["intr"]
        cams[v["name"]] = {
            "split": v["split"], "image_id": v["image_id"], "kind": v["kind"],
            **{k: intr[k] for k in ("fx", "fy", "cx", "cy", "width", "height", "distortion")},
            "colmap_model": intr["colmap_model"], "colmap_params": intr["colmap_params"],
            "max_undistorted_radius": round(intr["r_max"], 9),
            "T_world_cam": np.round(v["T_world_cam"], 12).tolist(),
            "has_transients": v["name"] in g.transients,
            "transients": g.transients.get(v["name"], {}).get("kinds", []),
            "distance": round(v["distance"], 6), "height_above_ground": round(v["height_above_ground"], 6),
            "pitch_deg": round(v["pitch_deg"], 4), "sky_fraction": round(v["sky_fraction"], 6),
            "landmark_fraction": round(v["landmark_fraction"], 6)}
    writers.write_json(gt_dir / "cameras.json", {"layout": "colmap", "preset": "collection", "images": cams})
    lms = []
    X_ds = g.X_ds
    for X, (j, u, v) in zip(X_ds, g.src):
        view, res = views[j], g.results[j]
        intr = view["intr"]
        lms.append({"image": view["name"], "point_world": [round(float(x), 9) for x in X],
                    "pixel": [u + 0.5, v + 0.5], "depth": round(float(res["depth"][v, u]), 9),
                    "feature": "landmark_surface",
                    "intrinsics": {k: intr[k] for k in ("fx", "fy", "cx", "cy", "width", "height", "distortion")}})
    writers.write_json(gt_dir / "landmarks.json", lms)
