"""The localization map: SIFT keypoints of the map images with 3-D points from the model's rendered depth.

Map images are the run's training photographs and, optionally, a `nerfw synthesize` output (the LENS views).
For every keypoint the model renders exactly that keypoint's ray (through the camera's lens): the keypoint keeps
its 3-D point ``c + R [x, y, 1] z`` (z the median static z-depth) when the static opacity is at least
``min_opacity``, the rays one feature pixel around it see depths within ``max_depth_spread`` of it (one surface,
not a depth edge) and, for photographs, the transient share of the pixel (the transient head's opacity with the
image's own embedding) is at most ``max_transient``. Everything is in the dataset frame and units.

The map is cached in RUN/localization/map/<key>.npz; the key covers the model (checkpoint file, step, size, time),
every map image (name, file size and time), and the map options, so a change of either rebuilds it.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from nerfw.cameras.pixels import lens_normalized
from nerfw.data.poses_file import parse_poses_file
from nerfw.data.scene import CameraView
from nerfw.localization import LocalizationError
from nerfw.data.features import Features, SiftExtractor, image_size, read_grey
from nerfw.localization.retrieval import DEFAULT_CLUSTERS, fit_vocabulary, vlad
from nerfw.novel_views.density import run_fingerprint
from nerfw.novel_views.selection import TrainCameras, novel_camera
from nerfw.novel_views.synthesis import appearance_tensor

MAP_VERSION = 3


@dataclass
class MapParams:
    feature_size: int = 0  # longest side of the feature images in pixels (0: the run's training resolution)
    max_features: int = 4096  # SIFT keypoints per image at most
    min_opacity: float = 0.9  # static opacity a keypoint's ray needs to keep its 3-D point
    max_transient: float = 0.2  # highest transient share of a photograph's keypoint
    max_depth_spread: float = 0.1  # (max - min) / depth of the rays 1 feature pixel around a keypoint (edges)
    clusters: int = DEFAULT_CLUSTERS  # VLAD vocabulary size
    chunk: int = 8192  # rays per forward pass

    def resolved_size(self, run) -> int:
        if self.feature_size > 0:
            return int(self.feature_size)
        c = run.scene.split("train")[0]
        return int(max(c.width, c.height))


@dataclass
class MapImage:
    name: str
    path: Path
    camera: CameraView  # intrinsics at its reference size, pose (dataset frame), lens
    image_id: int  # the run's image id (its appearance and transient embeddings), -1 for synthesized views
    appearance: dict | None = None  # synthesized views: {"image_ids", "weights"} of their appearance
    photo: bool = True  # a photograph (transients possible) or a render


@dataclass
class LocMap:
    names: list[str]
    T_world_cam: np.ndarray  # [n, 4, 4]
    image_ids: np.ndarray  # [n] run image id or -1
    photo: np.ndarray  # [n] bool
    offsets: np.ndarray  # [n + 1] keypoints of image i are rows offsets[i]:offsets[i+1]
    desc: np.ndarray  # [N, 128] float32 unit RootSIFT of the keypoints with a 3-D point
    xyz: np.ndarray  # [N, 3] float64 dataset frame
    vlad: np.ndarray  # [n, K * 128] float32 global descriptors (from all keypoints of each image)
    centres: np.ndarray  # [K, 128] VLAD vocabulary
    feature_size: int
    stats: dict = field(default_factory=dict)

    def image_features(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        sl = slice(int(self.offsets[i]), int(self.offsets[i + 1]))
        return self.desc[sl], self.xyz[sl]

    @property
    def centers(self) -> np.ndarray:
        return self.T_world_cam[:, :3, 3]


# ----------------------------------------------------------------------------- map images
def training_images(run) -> list[MapImage]:
    ids = {n: i for i, n in enumerate(run.image_names)}
    return [MapImage(c.name, Path(c.image_path), c, ids[c.name]) for c in run.scene.split("train")]


def synthesized_images(out: Path) -> list[MapImage]:
    """The views of a `nerfw synthesize` output folder (either layout): pinhole cameras from camera.json, poses
    from dataset_synth.txt, appearance from appearance.json."""

    out = Path(out)
    try:
        cams = {v["name"]: v for v in json.loads((out / "camera.json").read_text())["views"]}
        apps = {v["name"]: v for v in json.loads((out / "appearance.json").read_text())["views"]}
    except (OSError, KeyError, ValueError) as exc:
        raise LocalizationError(f"{out}: not a `nerfw synthesize` output (camera.json / appearance.json: {exc})") \
            from None
    images = []
    for name, T in parse_poses_file(out / "dataset_synth.txt"):
        if name not in cams or name not in apps:
            raise LocalizationError(f"{out}: view {name} is missing from camera.json or appearance.json")
        k = cams[name]
        cam = CameraView(name, out / name, "synth", int(k["width"]), int(k["height"]), float(k["fx"]), float(k["fy"]),
                         float(k["cx"]), float(k["cy"]), T, 0.0, 0.0)
        images.append(MapImage(name, out / name, cam, -1, {"image_ids": apps[name]["image_ids"],
                                                           "weights": apps[name]["weights"]}, photo=False))
    return images


def feature_shape(path: Path, size: int) -> tuple[int, int]:
    """(width, height) of an image's feature image: the file resampled to longest side `size` (never up)."""
    w, h = image_size(path)
    s = min(1.0, size / max(w, h))
    return max(8, int(round(w * s))), max(8, int(round(h * s)))


def keypoints_in_camera(features: Features, camera: CameraView, shape: tuple[int, int]) -> np.ndarray:
    """Keypoints [N, 2] of a feature image of `shape` (W, H) in the reference camera's pixel coordinates."""
    return features.uv * np.array([camera.width / shape[0], camera.height / shape[1]])


# ----------------------------------------------------------------------------- rendering keypoint rays
def normalized_rays(camera: CameraView, uv: np.ndarray) -> np.ndarray:
    """Undistorted normalised coordinates [N, 2] of reference-camera pixels uv [N, 2] through its lens."""

    xy, _ = lens_normalized(camera.fx, camera.fy, camera.cx, camera.cy, uv, camera.distortion)
    return xy


@torch.no_grad()
def render_rays(run, camera: CameraView, xy: np.ndarray, image_id: int, appearance: torch.Tensor | None,
                transient: bool, chunk: int = 8192) -> dict:
    """Render the rays of normalised coordinates xy [N, 2] of a camera. Returns numpy [N] arrays: z (median static
    z-depth, dataset units), opacity (static) and transient (transient share; zeros when not asked)."""
    model, norm = run.model, run.normalization
    device = next(model.parameters()).device
    T = norm.pose_to_model(camera.T_world_cam)
    d = np.concatenate([xy, np.ones((len(xy), 1))], -1) @ T[:3, :3].T  # camera z = 1 -> t is z-depth
    as_t = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32, device=device)  # noqa: E731
    o, d = as_t(np.broadcast_to(T[:3, 3], d.shape)), as_t(d)
    n = len(xy)
    near = torch.full((n,), camera.near * norm.scale, device=device)
    far = torch.full((n,), camera.far * norm.scale, device=device)
    ids = torch.full((n,), max(int(image_id), 0), dtype=torch.long, device=device)
    app = appearance.to(device) if appearance is not None else None
    # the static pass with the fast renderer where the field has one (nerfw.model.fast_render: the same depths
    # within its tested tolerance, several times faster)
    out = model.render_chunked(o, d, near, far, ids, chunk=chunk, appearance=app, use_transient=False, perturb=False,
                               fast=True)
    result = {"z": out.depth_median.float().cpu().numpy() / norm.scale, "opacity": out.opacity.float().cpu().numpy(),
              "transient": np.zeros(n, np.float32)}
    # a run stopped within its transient warm-up trained with the transient head gated off (untrained: ignore it)
    warm = run.step >= getattr(run.cfg.model, "transient_warmup", 0)
    if transient and warm and getattr(model.cfg, "encode_t", False):
        out_t = model.render_chunked(o, d, near, far, ids, chunk=chunk, appearance=app, use_transient=True,
                                     perturb=False)
        result["transient"] = out_t.transient_opacity.float().cpu().numpy()
    return result


def bounds_for(run, camera: CameraView) -> CameraView:
    """A synthesized view has no near/far: its nearest training camera's, widened by the distance between them."""
    if camera.far > 0:
        return camera

    ref = novel_camera(camera.name, camera.T_world_cam, TrainCameras(run.scene.cameras))
    return dataclasses.replace(camera, near=ref.near, far=ref.far)


def appearance_of(run, image: MapImage) -> torch.Tensor | None:
    if image.appearance is None:
        return None

    return appearance_tensor(run.model, image.appearance)


def points_of_image(run, image: MapImage, extractor: SiftExtractor, params: MapParams, size: int):
    """(all Features, keep mask [N], xyz [N, 3]) of one map image."""
    shape = feature_shape(image.path, size)
    feats = extractor(read_grey(image.path, shape))
    camera = bounds_for(run, image.camera)
    uv = keypoints_in_camera(feats, camera, shape)
    n = len(uv)
    xy = normalized_rays(camera, uv)
    app = appearance_of(run, image)
    r = render_rays(run, camera, xy, image.image_id, app, transient=image.photo, chunk=params.chunk)
    keep = (r["opacity"] >= params.min_opacity) & np.isfinite(r["z"]) & (r["z"] > 0)
    if params.max_depth_spread > 0 and n:
        # a keypoint on a depth edge (a silhouette against the background) has a 3-D point on either surface: the
        # rays one feature pixel left, right, above and below it must see the same depth
        step = np.array([camera.width / shape[0], camera.height / shape[1]])
        offsets = np.array([[-1, 0], [1, 0], [0, -1], [0, 1]]) * step
        around = normalized_rays(camera, (uv[None] + offsets[:, None]).reshape(-1, 2))
        z4 = render_rays(run, camera, around, image.image_id, app, transient=False, chunk=params.chunk)["z"]
        z4 = np.concatenate([z4.reshape(4, n), r["z"][None]])
        with np.errstate(divide="ignore", invalid="ignore"):
            keep &= (z4.max(0) - z4.min(0)) <= params.max_depth_spread * r["z"]
    if image.photo:
        keep &= r["transient"] <= params.max_transient
    rays = np.concatenate([xy, np.ones((len(xy), 1))], -1) * r["z"][:, None]
    xyz = rays @ camera.T_world_cam[:3, :3].T + camera.T_world_cam[:3, 3]
    return feats, keep, xyz


# ----------------------------------------------------------------------------- building and caching
def map_key(run, images: list[MapImage], params: MapParams, size: int) -> str:

    files = []
    for im in images:
        try:
            st = im.path.stat()
            files.append([im.name, st.st_size, st.st_mtime_ns, np.round(im.camera.T_world_cam, 6).tolist()])
        except OSError:
            files.append([im.name, -1, -1])
    options = {**dataclasses.asdict(params), "feature_size": size, "chunk": None}  # what changes the map
    text = json.dumps({"v": MAP_VERSION, "model": run_fingerprint(run), "params": options, "images": files})
    return hashlib.sha1(text.encode()).hexdigest()


def build_map(run, images: list[MapImage], params: MapParams, log=print, progress: bool = True) -> LocMap:
    from tqdm import tqdm

    if not images:
        raise LocalizationError("the map has no images")
    size = params.resolved_size(run)
    extractor = SiftExtractor(params.max_features)
    t0 = time.time()
    descs, xyzs, owners, all_desc = [], [], [], []
    n_keypoints = 0
    for i, im in enumerate(tqdm(images, desc="localize: map", disable=not progress, dynamic_ncols=True)):
        feats, keep, xyz = points_of_image(run, im, extractor, params, size)
        n_keypoints += len(feats)
        all_desc.append(feats.desc)
        descs.append(feats.desc[keep])
        xyzs.append(xyz[keep])
        owners.append(np.full(int(keep.sum()), i, np.int32))
    counts = np.array([len(x) for x in xyzs])
    stacked = np.concatenate(all_desc) if n_keypoints else np.zeros((0, 128), np.float32)
    if len(stacked) == 0:
        raise LocalizationError("no SIFT keypoint in any map image")
    centres = fit_vocabulary(stacked, params.clusters)
    vlads = np.stack([vlad(d, centres) for d in all_desc])
    stats = {"images": len(images), "keypoints": int(n_keypoints), "points": int(counts.sum()),
             "seconds": time.time() - t0, "feature_size": size}
    log(f"localize: map of {len(images)} images: {n_keypoints} keypoints, {int(counts.sum())} with a 3-D point "
        f"({time.time() - t0:.1f} s)")
    return LocMap([im.name for im in images], np.stack([im.camera.T_world_cam for im in images]),
                  np.array([im.image_id for im in images]), np.array([im.photo for im in images]),
                  np.concatenate([[0], np.cumsum(counts)]).astype(np.int64), np.concatenate(descs),
                  np.concatenate(xyzs), vlads, centres, size, stats)


def save_map(m: LocMap, path: Path, key: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(tmp, key=key, names=np.array(m.names), T_world_cam=m.T_world_cam, image_ids=m.image_ids, photo=m.photo,
             offsets=m.offsets, desc=m.desc.astype(np.float16), xyz=m.xyz, vlad=m.vlad, centres=m.centres,
             feature_size=m.feature_size, stats=json.dumps(m.stats))
    tmp.replace(path)


def load_map(path: Path, key: str) -> LocMap | None:
    try:
        with np.load(path) as f:
            if str(f["key"]) != key:
                return None
            desc = f["desc"].astype(np.float32)
            desc /= np.maximum(np.linalg.norm(desc, axis=1, keepdims=True), 1e-12)
            return LocMap([str(n) for n in f["names"]], f["T_world_cam"], f["image_ids"], f["photo"], f["offsets"],
                          desc, f["xyz"], f["vlad"], f["centres"], int(f["feature_size"]),
                          {**json.loads(str(f["stats"])), "cached": True})
    except (OSError, KeyError, ValueError):
        return None


def load_or_build_map(run, extra: Path | None, params: MapParams, log=print, progress: bool = True,
                      cache_dir: Path | None = None) -> LocMap:
    """The run's map (training images + the views of `extra`), from the cache when its key matches."""
    images = training_images(run) + (synthesized_images(extra) if extra else [])
    size = params.resolved_size(run)
    key = map_key(run, images, params, size)
    path = (Path(cache_dir) if cache_dir else Path(run.run_dir) / "localization" / "map") / f"{key[:20]}.npz"
    cached = load_map(path, key) if path.is_file() else None
    if cached is not None:
        log(f"localize: map of {len(cached.names)} images from the cache {path}")
        return cached
    m = build_map(run, images, params, log, progress)
    save_map(m, path, key)
    return m
