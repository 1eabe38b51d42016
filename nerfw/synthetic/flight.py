"""`generate_flight`: the "flight" preset, a drone video over the town square, as instant-ngp's transforms.json.

One drone camera flies a racetrack over the square (nerfw.synthetic.layouts.build_outdoor): two straight legs
joined by half circles, 24 to 30 m up, the gimbal pitched 25 to 55 deg down and turned towards the square's
middle, so that the optical axes neither converge on one point nor stay parallel. The lens is what drone
footage ships with: OPENCV (k1, k2, p1, p2), fx != fy, principal point off centre. Lighting drifts along the
flight (auto exposure, white balance, sun dimmed by passing clouds; the sun itself stays where it is: one
flight). Moving vehicles (tractors, vans) and people on the ground are the transients. Written as
instant-ngp's colmap2nerf ships a capture:

OUT/<scene>/transforms.json        fl_x fl_y cx cy w h k1 k2 p1 p2 camera_angle_x/y aabb_scale, frames with
                                   file_path and an OpenGL camera-to-world transform_matrix; no near / far
                                   and no sparse points (the reader's fallbacks apply, as for a real capture)
OUT/<scene>/images/NNNN.jpg
OUT/<scene>.groundtruth/           scene.json, appearance.json, cameras.json, masks/, depth/, clean/
                                   (per-image files are <folder>/images/NNNN.png / .npy: the image's name)

Test split: the reader's for a single transforms.json, every 8th frame (index % 8 == 0), interleaved with the
training frames along the flight as a video's held-out frames are.
"""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import numpy as np

from nerfw.cameras.conventions import (
    Distortion,
    T_world_cam_to_opengl,
    camera_rays,
    make_T,
)
from nerfw.data import writers
from nerfw.errors import ConfigError
from nerfw.synthetic import geometry, landmark, layouts, materials, render
from nerfw.synthetic.common import (
    TEST_EVERY,
    content_bounds_local,
    prepare_dirs,
    split_counts,
    transient_images,
    validate_common,
)
from nerfw.synthetic.geometry import Primitives
from nerfw.synthetic.paths import look_at

DEFAULTS = {"scene": "SynthFlight", "width": 480, "height": 270, "n_frames": 80}
ALTITUDE = (24.0, 30.0)  # metres above the square
PITCH_DEG = (25.0, 55.0)  # gimbal pitch below the horizon (at 25 the top edge sees the horizon)
TRACK = {"half_length": 11.0, "radius": 13.0, "center": (0.0, -7.0)}  # racetrack legs along y, local metres
FOCAL_OF_WIDTH = 0.62  # fx / width: a drone's ~77 deg horizontal field of view
JPEG_QUALITY = 95


# --------------------------------------------------------------------------- camera
def drone_lens(rng: np.random.Generator, width: int, height: int) -> dict:
    """One camera for the whole flight: OPENCV lens, fx != fy, principal point a few pixels off centre."""
    fx = FOCAL_OF_WIDTH * width
    fy = fx * float(rng.uniform(1.003, 1.01))
    coeffs = [float(rng.uniform(-0.13, -0.08)), float(rng.uniform(0.01, 0.04)),
              float(rng.uniform(-1e-3, 1e-3)), float(rng.uniform(-1e-3, 1e-3))]
    return {"fx": round(fx, 6), "fy": round(fy, 6), "cx": round(width / 2 + float(rng.uniform(-0.01, 0.01)) * width, 6),
            "cy": round(height / 2 + float(rng.uniform(-0.01, 0.01)) * height, 6), "width": int(width),
            "height": int(height), "distortion": Distortion("opencv", [round(c, 8) for c in coeffs]).to_dict()}


def racetrack(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points [n, 2] and unit headings [n, 2] at path parameter s in [0, 1) around the racetrack (local xy)."""
    L, r = 2 * TRACK["half_length"], TRACK["radius"]
    cx, cy = TRACK["center"]
    total = 2 * L + 2 * math.pi * r
    d = (np.asarray(s) % 1.0) * total
    pts, heads = [], []
    for x in d:
        if x < L:  # east leg, heading north
            p, h = (cx + r, cy - L / 2 + x), (0.0, 1.0)
        elif x < L + math.pi * r:  # north turn
            a = (x - L) / r
            p, h = (cx + r * math.cos(a), cy + L / 2 + r * math.sin(a)), (-math.sin(a), math.cos(a))
        elif x < 2 * L + math.pi * r:  # west leg, heading south
            p, h = (cx - r, cy + L / 2 - (x - L - math.pi * r)), (0.0, -1.0)
        else:  # south turn
            a = math.pi + (x - 2 * L - math.pi * r) / r
            p, h = (cx + r * math.cos(a), cy - L / 2 + r * math.sin(a)), (-math.sin(a), math.cos(a))
        pts.append(p)
        heads.append(h)
    return np.asarray(pts), np.asarray(heads)


def flight_poses(rng: np.random.Generator, n: int) -> list[np.ndarray]:
    """T_local_cam [4,4] (OpenCV axes) of n frames along one lap: heading turned 50-70 deg towards the inside of
    the track, pitched PITCH_DEG down, altitude varying smoothly within ALTITUDE."""
    s = (np.arange(n) + 0.5) / n + float(rng.uniform(0, 1))
    xy, heading = racetrack(s)
    phase = rng.uniform(0, 2 * math.pi, 3)
    u = 2 * math.pi * s
    alt = np.mean(ALTITUDE) + 0.5 * np.ptp(ALTITUDE) * np.sin(u + phase[0])
    pitch = np.radians(np.mean(PITCH_DEG) + 0.5 * np.ptp(PITCH_DEG) * np.sin(2 * u + phase[1]))
    turn = np.radians(60.0 + 10.0 * np.sin(3 * u + phase[2]))  # towards the inside (left of the heading)
    poses = []
    for k in range(n):
        h = heading[k]
        left = np.array([-h[1], h[0]])
        look = math.cos(turn[k]) * h + math.sin(turn[k]) * left
        C = np.array([xy[k, 0], xy[k, 1], alt[k]])
        target = C + np.array([look[0] * math.cos(pitch[k]), look[1] * math.cos(pitch[k]), -math.sin(pitch[k])])
        poses.append(make_T(look_at(C, target), C))
    return poses


# --------------------------------------------------------------------------- appearance
def flight_appearances(rng: np.random.Generator, n: int) -> list[dict]:
    """One flight: the sun stays put; exposure, white balance and the sun's strength (clouds) drift smoothly."""
    base = materials.random_appearance(rng, indoor=False)
    u = np.linspace(0, 2 * math.pi, n, endpoint=False)
    ph = rng.uniform(0, 2 * math.pi, 6)
    out = []
    for k in range(n):
        app = dict(base)
        app["exposure"] = round(float(base["exposure"] * math.exp(0.18 * math.sin(u[k] + ph[0]))), 6)
        wb = np.asarray(base["white_balance"]) * (1 + 0.04 * np.sin(2 * u[k] + ph[1:4]))
        app["white_balance"] = [round(float(g), 6) for g in wb]
        cloud = 0.5 + 0.5 * math.sin(3 * u[k] + ph[4])  # 0 clear .. 1 under a cloud
        app["sun_strength"] = round(float(base["sun_strength"] * (1.0 - 0.55 * cloud)), 6)
        app["ambient"] = round(float(base["ambient"] * (1.0 + 0.2 * cloud)), 6)
        out.append(app)
    return out


# --------------------------------------------------------------------------- transients
def vehicle(rng: np.random.Generator, x: float, y: float, along_x: bool, k: int, tag: str,
            offset: int) -> tuple[Primitives, list[dict]]:
    """A tractor or van about 4.5 m long: a body box and a cab box, bright paint (axis-aligned boxes)."""
    length, width, height = float(rng.uniform(3.8, 5.2)), float(rng.uniform(1.9, 2.4)), float(rng.uniform(1.3, 1.8))
    paint = rng.uniform(0.1, 0.95, 3)
    mats = [{"name": f"{tag}_vehicle{k}", "kind": "plaster", "color": paint.round(3).tolist(),
             "color2": (paint * 0.8).round(3).tolist(), "salt": int(rng.integers(1 << 20)), "transient": True},
            {"name": f"{tag}_cab{k}", "kind": "plaster", "color": [0.15, 0.17, 0.2], "color2": [0.3, 0.33, 0.36],
             "salt": 3, "transient": True}]
    hl, hw = (length / 2, width / 2) if along_x else (width / 2, length / 2)
    cab_l = 0.35 * length
    cab_lo = [x + hl - cab_l, y - hw * 0.9, height] if along_x else [x - hl * 0.9, y + hw - cab_l, height]
    cab_hi = [x + hl, y + hw * 0.9, height + 1.1] if along_x else [x + hl * 0.9, y + hw, height + 1.1]
    p = Primitives.empty()
    p.box_lo = np.array([[x - hl, y - hw, 0.0], cab_lo], np.float32)
    p.box_hi = np.array([[x + hl, y + hw, height], cab_hi], np.float32)
    p.box_mat = np.array([offset, offset + 1], np.int32)
    return p, mats


def without_ground(prims: Primitives, ground_id: int) -> Primitives:
    return prims.subset(prims.box_mat != ground_id, np.ones(len(prims.cyl), bool), np.ones(len(prims.sph), bool))


def ground_spot(rng, static: Primitives, ground_id: int, intr: dict, T_local_cam: np.ndarray,
                clear: float) -> tuple[float, float] | None:
    """A point on the open ground seen in the image's middle 80 %, at least `clear` metres from anything standing
    on it (static content and the occluders placed so far)."""
    lens = Distortion.from_dict(intr["distortion"])
    standing = without_ground(static, ground_id)
    for _ in range(40):
        uv = rng.uniform([0.1 * intr["width"], 0.25 * intr["height"]], [0.9 * intr["width"], 0.95 * intr["height"]])
        o, d = camera_rays(intr["fx"], intr["fy"], intr["cx"], intr["cy"], T_local_cam, uv[None], lens)
        hit = geometry.trace(static, o.astype(np.float32), d.astype(np.float32))
        if hit.kind[0] < 0 or hit.material[0] != ground_id:
            continue
        p = o[0] + float(hit.t[0]) * d[0]
        probe = np.array([[p[0], p[1], z] for z in (0.5, 1.5)], np.float32)
        if np.all(geometry.signed_distance(standing, probe) > clear):
            return float(p[0]), float(p[1])
    return None


def frame_transients(rng, lay: layouts.Layout, ground_id: int, view: dict, tag: str):
    """1-3 vehicles and 0-4 people on the open ground in view. Returns (prims, materials, kinds)."""
    prims, mats, kinds = Primitives.empty(), [], []
    base = len(lay.materials)
    for k in range(1 + int(rng.integers(3))):
        spot = ground_spot(rng, lay.prims, ground_id, view["intr"], view["T_local_cam"], clear=3.0)
        if spot is not None:
            p, m = vehicle(rng, *spot, bool(rng.uniform() < 0.5), k, tag, base + len(mats))
            prims, mats, kinds = prims.concat(p), mats + m, kinds + ["vehicle"]
    for k in range(int(rng.integers(5))):
        spot = ground_spot(rng, lay.prims.concat(prims), ground_id, view["intr"], view["T_local_cam"], clear=0.6)
        if spot is not None:
            # people are 1.7 m tall: landmark.person is in units of 1/3 m, so scale its primitives
            p, m = landmark.person(rng, 0.0, 0.0, k, tag, base + len(mats))
            p.cyl[:, [0, 1]] += spot
            p.cyl[:, 2:] *= 3.0
            p.sph[:, :2] += spot
            p.sph[:, 2:] *= 3.0
            prims, mats, kinds = prims.concat(p), mats + m, kinds + ["person"]
    return prims, mats, sorted(set(kinds))


# --------------------------------------------------------------------------- rendering (worker)
def _render_job(job: dict) -> dict:
    """Render one frame (+ its clean twin for test frames) and write its files. Runs in a worker process."""
    i = job["intr"]
    args = (i["fx"], i["fy"], i["cx"], i["cy"], i["width"], i["height"])
    lens = Distortion.from_dict(i["distortion"])
    out = render.render_image(job["prims"], job["mats"], job["T_local_cam"], *args, job["app"], True, distortion=lens)
    data_dir, gt_dir, name = Path(job["data_dir"]), Path(job["gt_dir"]), job["name"]
    stem = Path(name).with_suffix("")
    writers.write_jpg(data_dir / name, render.to_uint8(out["rgb"]), JPEG_QUALITY)
    writers.write_png(gt_dir / "masks" / f"{stem}.png", out["transient"].astype(np.uint8) * 255)
    (gt_dir / "depth" / stem).parent.mkdir(parents=True, exist_ok=True)
    np.save(gt_dir / "depth" / f"{stem}.npy", out["depth"])
    if job["split"] == "test":
        clean = render.render_image(job["static_prims"], job["static_mats"], job["T_local_cam"], *args,
                                    job["canonical"], True, distortion=lens)
        writers.write_png(gt_dir / "clean" / f"{stem}.png", render.to_uint8(clean["rgb"]))
    return {"name": name, "transient_fraction": float(out["transient"].mean()),
            "sky_fraction": float((out["material"] < 0).mean())}


# --------------------------------------------------------------------------- main entry point
def generate_flight(out_dir, scene: str | None = None, seed: int = 0, width: int | None = None,
                    height: int | None = None, n_train: int | None = None, n_test: int | None = None,
                    transient_share: float = 0.5, workers: int | None = None, overwrite: bool = False) -> dict:
    """Generate the flight preset (see the module docstring). Returns {"dataset_dir", "groundtruth_dir", "scene",
    "layout": "transforms", "preset": "flight", "width", "height", "n_train", "n_test", "n_transient_images",
    "seconds"}."""

    t_start = time.time()
    scene = DEFAULTS["scene"] if scene is None else scene
    width = DEFAULTS["width"] if width is None else width
    height = DEFAULTS["height"] if height is None else height
    if n_train is None and n_test is None:
        n_train, n_test = DEFAULTS["n_frames"] - DEFAULTS["n_frames"] // TEST_EVERY, DEFAULTS["n_frames"] // TEST_EVERY
    for name, value in (("n_train", n_train), ("n_test", n_test)):
        if value is not None and (not isinstance(value, (int, np.integer)) or value < 1):
            raise ConfigError(f"--{name} must be an integer >= 1, got {value!r}")
    n_train, n_test = split_counts(n_train, n_test)  # same hold-out rule (every 8th) as the COLMAP reader
    validate_common(scene, (("width", width, 24), ("height", height, 16), ("n_train", n_train, 1),
                            ("n_test", n_test, 1)), transient_share, seed)
    data_dir, gt_dir = prepare_dirs(Path(out_dir), scene, overwrite)
    workers = workers if workers is not None else min(2, os.cpu_count() or 1)

    rng = lambda k: np.random.default_rng([seed, 200 + k])  # noqa: E731  (one independent stream per purpose)
    lay = layouts.build_outdoor(rng(1))
    ground_id = next(i for i, m in enumerate(lay.materials) if m["name"] == "ground")
    n = n_train + n_test
    intr = drone_lens(rng(2), int(width), int(height))
    poses = flight_poses(rng(3), n)
    T_dataset_local = layouts.dataset_transform("outdoor", rng(4), poses[0][:3, 3])
    apps_list = flight_appearances(rng(5), n)
    views = [{"name": f"images/{k + 1:04d}.jpg", "split": "test" if k % TEST_EVERY == 0 else "train",
              "T_local_cam": T, "T_world_cam": T_dataset_local @ T, "intr": intr} for k, T in enumerate(poses)]
    apps = {v["name"]: a for v, a in zip(views, apps_list)}
    canonical = materials.canonical_appearance(False)

    tr_rng = rng(6)
    train_idx = [k for k, v in enumerate(views) if v["split"] == "train"]
    chosen = transient_images(tr_rng, train_idx, transient_share)
    transients, jobs = {}, []
    for k, v in enumerate(views):
        prims, mats = lay.prims, lay.materials
        if k in chosen:
            tp, tm, kinds = frame_transients(tr_rng, lay, ground_id, v, f"t{k + 1}")
            if tm:
                transients[v["name"]] = {"kinds": kinds, "primitives": tp.to_json(mats + tm), "materials": tm}
                prims, mats = lay.prims.concat(tp), mats + tm
        jobs.append({"name": v["name"], "split": v["split"], "prims": prims, "mats": mats, "static_prims": lay.prims,
                     "static_mats": lay.materials, "T_local_cam": v["T_local_cam"], "intr": intr,
                     "app": apps[v["name"]], "canonical": canonical, "data_dir": str(data_dir), "gt_dir": str(gt_dir)})
    results = render.run_jobs(_render_job, jobs, workers)
    _write_transforms(data_dir / "transforms.json", views, intr)

    lo, hi = content_bounds_local(lay)
    scene_json = {
        "generator": "nerfw.synthetic", "format_version": 1, "preset": "flight", "seed": int(seed),
        "layout": "transforms", "variant": "outdoor", "scene": scene, "units": "metres",
        "params": {"width": int(width), "height": int(height), "n_train": int(n_train), "n_test": int(n_test),
                   "test_every": TEST_EVERY, "transient_share": float(transient_share),
                   "supersample": render.SUPERSAMPLE, "jpeg_quality": JPEG_QUALITY, "altitude_m": list(ALTITUDE),
                   "pitch_deg": list(PITCH_DEG), "track": TRACK},
        "world": {"T_dataset_local": np.round(T_dataset_local, 12).tolist(),
                  "up_dataset": np.round(T_dataset_local[:3, 2], 12).tolist(),
                  "note": "dataset = T_dataset_local @ local; the generator's local frame is metres with +z up"},
        "sky": True, "content_bounds_local": [lo.tolist(), hi.tolist()],
        "materials": lay.materials, "primitives": lay.prims.to_json(lay.materials), "transients": transients,
    }
    writers.write_json(gt_dir / "scene.json", scene_json)
    writers.write_json(gt_dir / "appearance.json", {"canonical": canonical, "images": apps})
    cams = {v["name"]: {"split": v["split"], **intr, "T_world_cam": np.round(v["T_world_cam"], 12).tolist(),
                        "has_transients": v["name"] in transients,
                        "transients": transients.get(v["name"], {}).get("kinds", []),
                        "transient_fraction": round(r["transient_fraction"], 6),
                        "sky_fraction": round(r["sky_fraction"], 6)} for v, r in zip(views, results)}
    writers.write_json(gt_dir / "cameras.json", {"layout": "transforms", "preset": "flight", "images": cams})
    writers.write_json(gt_dir / "landmarks.json", [])
    return {"dataset_dir": str(data_dir), "groundtruth_dir": str(gt_dir), "scene": scene, "layout": "transforms",
            "preset": "flight", "width": int(width), "height": int(height), "n_train": int(n_train),
            "n_test": int(n_test), "n_transient_images": len(transients), "seconds": round(time.time() - t_start, 2)}


def _write_transforms(path: Path, views: list[dict], intr: dict) -> None:
    """instant-ngp's transforms.json (colmap2nerf's keys): one shared camera, OpenGL camera-to-world matrices."""
    k1, k2, p1, p2 = intr["distortion"]["coeffs"][:4]
    W, H = intr["width"], intr["height"]
    meta = {"camera_angle_x": 2 * math.atan(W / (2 * intr["fx"])), "camera_angle_y": 2 * math.atan(H / (2 * intr["fy"])),
            "fl_x": intr["fx"], "fl_y": intr["fy"], "k1": k1, "k2": k2, "p1": p1, "p2": p2,
            "cx": intr["cx"], "cy": intr["cy"], "w": W, "h": H, "aabb_scale": 16,
            "frames": [{"file_path": f"./{v['name']}", "sharpness": 100.0,
                        "transform_matrix": np.round(T_world_cam_to_opengl(v["T_world_cam"]), 10).tolist()}
                       for v in views]}
    path.write_text(json.dumps(meta, indent=2) + "\n")
