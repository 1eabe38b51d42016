"""`nerfw select-views`: choose novel camera poses in free space near the training cameras (LENS).

LENS (arXiv 2110.06558) renders a NeRF-W at new poses to augment a localization training set. The poses are
chosen from the NeRF's geometry; this module does it as follows (all in the DATASET frame and units):

1. Candidate centres lie on a regular grid over the density probe's box (``nerfw density``), spacing
   ``shortest box side / r``. A candidate is FREE when
   (a) it is nearer than ``d_view`` to some training camera centre;
   (b) training cameras saw through it: at least ``min_views`` training cameras have it inside their image and
       in front of the model's rendered static surface along the ray by at least ``d_scene``
       (``nerfw.novel_views.density.VisibilityMaps``: one low-resolution depth map per training camera, rendered once
       and cached in RUN/density/visibility.npz). Space no camera saw through (under the ground, inside solids,
       behind facades) is never free, whatever density the model gives it;
   (c) it is farther than ``d_scene`` from every occupied cell of the density probe and from every rendered
       surface point (the depth maps' pixels back-projected: the probe samples cell centres only and misses
       thin surfaces such as the ground).
   The grid is refined (r grows) until at least ``n_novel`` candidates remain. ``min_views = 0`` turns (b) and
   the surface points off (the density rule alone, as NeRFW-pytorch).
2. ``n_novel`` candidates are drawn without replacement (numpy Generator seeded with --seed, so the
   selection is deterministic). Each gets the rotation of its nearest training camera times a random
   rotation of angle uniform in [0, theta] about a uniformly random axis, applied in the camera frame:
   ``R_world_new = R_world_nearest @ R(axis * angle)``; the angle between the two orientations is then
   exactly ``angle <= theta``. (NeRFW-pytorch built an improper quaternion from three uniform angles, so its
   perturbation angle was not bounded by theta.)
3. Each chosen view is rendered at low resolution (``--check_width`` pixels wide); views whose mean
   opacity is below ``--min_opacity`` (they look at mostly empty space) are dropped, and further
   candidates (refining the grid when the pool runs out) are tried until ``n_novel`` views remain.

Defaults as in NeRFW-pytorch: 7-Scenes d_scene = 0.15 m, d_view = 0.15 m, theta = 9 deg; Cambridge and every
other format d_scene = 2 m, d_view = 6 m, theta = 9 deg (dataset units; override with the flags).

Outputs: FILE, a Cambridge-format poses file (``seq_synth/frameNNNNN.png X Y Z W P Q R``, from frame00001);
FILE with suffix .ply (new frustums green, training cameras red); FILE with suffix .json (parameters and,
per view, the nearest training image, its distance, the rotation angle and the measured opacity).
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from nerfw.cameras.conventions import axis_angle_to_rotmat, make_T
from nerfw.data.cameras_ply import write_cameras_ply
from nerfw.data.poses_file import write_poses_file
from nerfw.data.scene import CameraView
from nerfw.errors import ConfigError, NerfwError
from nerfw.model.view_rendering import render_camera
from nerfw.novel_views.density import load_or_render_visibility

# (d_scene, d_view, theta in degrees) per dataset format; "default" for Cambridge and everything else.
DEFAULTS = {"7scenes": (0.15, 0.15, 9.0), "default": (2.0, 6.0, 9.0)}
SYNTH_SEQUENCE = "seq_synth"
MAX_GRID_POINTS = 20_000_000  # stop refining beyond this many grid points
REFINE_FACTOR = 1.5  # r grows by this factor (at least +1) per refinement round
NEAR_FLOOR = 0.25  # a novel view's near bound is at least this fraction of its nearest camera's near


@dataclass
class SelectionParams:
    n_novel: int
    d_scene: float  # minimum distance from occupied space (dataset units)
    d_view: float  # maximum distance to the nearest training camera centre (dataset units)
    theta_deg: float  # maximum rotation away from the nearest training camera's orientation
    seed: int = 0
    min_opacity: float = 0.5  # drop views whose low-resolution render has a lower mean opacity (0: keep all)
    check_width: int = 32  # width in pixels of the opacity-check render
    min_views: int = 2  # training cameras that must have seen through a free centre (0: density rule only)
    visibility_width: int = 48  # width in pixels of the cached visibility depth maps


@dataclass
class NovelView:
    name: str
    T_world_cam: np.ndarray  # [4, 4] dataset frame
    nearest: int  # index into the run's cameras (= image id) of the nearest training camera
    distance: float  # to that camera's centre
    angle_deg: float  # rotation away from its orientation
    opacity: float = float("nan")  # mean opacity of the check render


def defaults_for(fmt: str) -> tuple[float, float, float]:
    """(d_scene, d_view, theta_deg) for a dataset format."""
    return DEFAULTS.get(fmt, DEFAULTS["default"])


def synth_name(k: int) -> str:
    """Cambridge-style name of the k-th novel view (k from 0): seq_synth/frame00001.png, ..."""
    return f"{SYNTH_SEQUENCE}/frame{k + 1:05d}.png"


# ----------------------------------------------------------------------------- training cameras
class TrainCameras:
    """The run's training cameras with a KD-tree over their centres (dataset frame)."""

    def __init__(self, cameras: list[CameraView]):
        self.ids = [i for i, c in enumerate(cameras) if c.split == "train"]
        if not self.ids:
            raise NerfwError("the run's dataset has no training cameras")
        self.cameras = [cameras[i] for i in self.ids]
        self.centers = np.stack([c.center for c in self.cameras])  # [n_train, 3]
        self.tree = cKDTree(self.centers)

    def nearest(self, points: np.ndarray, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """(distances, positions into self.cameras) of the k nearest training centres; [N] or [N, k]."""
        dist, pos = self.tree.query(np.asarray(points, dtype=np.float64).reshape(-1, 3), k=k)
        return dist, pos


def novel_camera(name: str, T_world_cam: np.ndarray, train: TrainCameras, split: str = "synth") -> CameraView:
    """A camera at a novel pose: intrinsics and size of its nearest training camera, bounds widened by the
    distance between the two centres (near >= NEAR_FLOOR * nearest near). Used by selection and synthesis,
    so a pose read back from a poses file gives the same camera. It is an ideal PINHOLE camera (no lens
    distortion, whatever the nearest camera's lens): the poses file, NVM and camera.json that describe a
    novel view know no distortion, so the view is rendered as they describe it."""
    dist, pos = train.nearest(T_world_cam[:3, 3])
    ref = train.cameras[int(pos[0])]
    delta = float(dist[0])
    near = max(ref.near - delta, NEAR_FLOOR * ref.near)
    return dataclasses.replace(ref, name=name, image_path=Path(name), split=split,
                               T_world_cam=np.asarray(T_world_cam, dtype=np.float64).copy(),
                               near=near, far=ref.far + delta, depth_path=None, distortion=None)


# ----------------------------------------------------------------------------- candidates
def grid_points(lo: np.ndarray, hi: np.ndarray, spacing: float) -> np.ndarray:
    """Regular grid of points [N, 3] covering [lo, hi] with the given spacing, centred in the box."""
    counts = np.maximum(1, np.floor((hi - lo) / spacing).astype(int) + 1)  # [3]
    offset = lo + 0.5 * ((hi - lo) - (counts - 1) * spacing)
    axes = [offset[i] + np.arange(counts[i]) * spacing for i in range(3)]
    X, Y, Z = np.meshgrid(*axes, indexing="ij")
    return np.stack([X.ravel(), Y.ravel(), Z.ravel()], axis=-1)


def candidate_box(bounds: np.ndarray, train: TrainCameras, d_view: float) -> tuple[np.ndarray, np.ndarray]:
    """The density box cut to where a candidate can be within d_view of a training camera."""
    lo = np.maximum(bounds[0], train.centers.min(axis=0) - d_view)
    hi = np.minimum(bounds[1], train.centers.max(axis=0) + d_view)
    if np.any(hi < lo):
        raise NerfwError("no training camera lies inside the density box; re-run `nerfw density` with a margin")
    return lo, hi


def free_mask(points: np.ndarray, occupied_tree: cKDTree | None, train: TrainCameras,
              d_scene: float, d_view: float, visibility=None, min_views: int = 0) -> np.ndarray:
    """[N] bool: nearer than d_view to a training camera, farther than d_scene from occupied space and, with
    `visibility` (VisibilityMaps) and min_views > 0, seen through by at least min_views training cameras with
    d_scene of free space beyond it."""
    free = train.nearest(points)[0] < d_view
    if occupied_tree is not None:
        idx = np.nonzero(free)[0]
        if len(idx):
            # The bound only prunes the search (points beyond it come back as inf); it must admit distance d_scene
            # itself, which scipy treats as beyond, so that "farther than d_scene" is decided here.
            bound = d_scene * (1.0 + 1e-6) + 1e-12
            free[idx] = occupied_tree.query(points[idx], distance_upper_bound=bound)[0] > d_scene
    if visibility is not None and min_views > 0:
        idx = np.nonzero(free)[0]
        if len(idx):
            free[idx] = visibility.seen_through(points[idx], d_scene) >= min_views
    return free


def candidate_rounds(lo: np.ndarray, hi: np.ndarray, occupied: np.ndarray, train: TrainCameras,
                     d_scene: float, d_view: float, visibility=None, min_views: int = 0):
    """Yield (spacing, free candidates [N, 3]) for ever finer grids (NeRFW-pytorch: spacing = shortest side / r)."""
    tree = cKDTree(occupied) if len(occupied) else None
    shortest = max(float(np.min(hi - lo)), 1e-9)
    r = 2
    while True:
        spacing = shortest / r
        if np.prod(np.floor((hi - lo) / spacing) + 1) > MAX_GRID_POINTS:
            return
        pts = grid_points(lo, hi, spacing)
        yield spacing, pts[free_mask(pts, tree, train, d_scene, d_view, visibility, min_views)]
        r = max(r + 1, int(math.ceil(r * REFINE_FACTOR)))


# ----------------------------------------------------------------------------- orientations
def random_rotation(rng: np.random.Generator, theta: float) -> tuple[np.ndarray, float]:
    """Rotation [3, 3] of angle uniform in [0, theta] (radians) about a uniformly random axis; (R, angle)."""
    axis = rng.normal(size=3)
    axis /= max(np.linalg.norm(axis), 1e-12)
    angle = float(rng.uniform(0.0, theta))
    return axis_angle_to_rotmat(axis * angle), angle


def orient(center: np.ndarray, train: TrainCameras, rng: np.random.Generator,
           theta: float) -> tuple[np.ndarray, int, float, float]:
    """(T_world_cam, nearest training position, its distance, angle) for a novel centre."""
    dist, pos = train.nearest(center)
    R_nearest = train.cameras[int(pos[0])].T_world_cam[:3, :3]
    R_pert, angle = random_rotation(rng, theta)
    return make_T(R_nearest @ R_pert, center), int(pos[0]), float(dist[0]), angle


# ----------------------------------------------------------------------------- opacity check
def view_opacity(run, camera: CameraView, width: int, chunk: int = 8192) -> float:
    """Mean opacity of a low-resolution static render (the mean appearance: opacity does not depend on it)."""

    out = render_camera(run.model, camera.at_width(width), run.normalization, chunk,
                        appearance=run.model.appearance_vector(mean=True), use_transient=False)
    return float(np.mean(out["opacity"]))


# ----------------------------------------------------------------------------- selection
def select_views(run, density, params: SelectionParams, log=print, visibility=None) -> list[NovelView]:
    """Choose params.n_novel novel views for a loaded run and a DensityGrid (see the module doc). `visibility`:
    VisibilityMaps of the training cameras (default: the run's, rendered once and cached); unused when
    params.min_views is 0."""
    if params.n_novel < 1:
        raise ConfigError(f"--n_novel must be >= 1, got {params.n_novel}")
    train = TrainCameras(run.scene.cameras)
    lo, hi = candidate_box(density.bounds, train, params.d_view)
    occupied = density.occupied_points
    if params.min_views > 0:
        if visibility is None:

            visibility = load_or_render_visibility(run, params.visibility_width, log=log)
        surfaces = visibility.surface_points()
        log(f"select-views: free = seen through by >= {params.min_views} training cameras, {params.d_scene:g} from "
            f"{len(occupied)} occupied cells and {len(surfaces)} rendered surface points")
        occupied = np.concatenate([occupied, surfaces]) if len(surfaces) else occupied
    elif not len(occupied):
        log("select-views: warning: the density grid has no occupied cell (an under-trained model, or a "
            "--threshold too high), so no candidate is rejected for being near the scene")
    rng = np.random.default_rng(params.seed)
    theta = math.radians(params.theta_deg)
    accepted: list[NovelView] = []
    tried: list[np.ndarray] = []  # centres already drawn (any round)
    n_rejected = 0
    for spacing, free in candidate_rounds(lo, hi, occupied, train, params.d_scene, params.d_view,
                                          visibility if params.min_views > 0 else None, params.min_views):
        fresh = _untried(free, tried, spacing)
        log(f"select-views: spacing {spacing:.4g}: {len(free)} free candidates ({len(fresh)} untried)")
        if len(free) < params.n_novel:  # as NeRFW-pytorch: refine until the grid alone holds n_novel candidates
            continue
        for i in rng.permutation(len(fresh)):
            center = fresh[i]
            tried.append(center)
            T, pos, dist, angle = orient(center, train, rng, theta)
            view = NovelView(synth_name(len(accepted)), T, train.ids[pos], dist, math.degrees(angle))
            if params.min_opacity > 0:
                view.opacity = view_opacity(run, novel_camera(view.name, T, train), params.check_width)
                if view.opacity < params.min_opacity:
                    n_rejected += 1
                    continue
            accepted.append(view)
            if len(accepted) == params.n_novel:
                log(f"select-views: {len(accepted)} views ({n_rejected} dropped as mostly empty)")
                return accepted
    raise NerfwError(f"found only {len(accepted)} of {params.n_novel} novel views ({n_rejected} dropped with "
                     f"opacity < {params.min_opacity}); try a smaller --d_scene, a larger --d_view, a lower "
                     "--min_opacity or --min_views, or fewer --n_novel (an under-trained model sees little free "
                     "space: its rendered surfaces are near the cameras)")


def _untried(points: np.ndarray, tried: list[np.ndarray], spacing: float) -> np.ndarray:
    """Points not within a tenth of the spacing of an already tried candidate."""
    if not tried or not len(points):
        return points
    dist = cKDTree(np.stack(tried)).query(points)[0]
    return points[dist > 0.1 * spacing]


# ----------------------------------------------------------------------------- outputs
def write_selection(views: list[NovelView], path: Path, run, params: SelectionParams) -> dict[str, Path]:
    """Poses file + .ply (frustums) + .json (details) for the selected views."""

    path = Path(path)
    write_poses_file(path, [(v.name, v.T_world_cam) for v in views])
    train = TrainCameras(run.scene.cameras)
    cameras = train.cameras + [novel_camera(v.name, v.T_world_cam, train) for v in views]
    ply = write_cameras_ply(path.with_suffix(".ply"), cameras)
    details = {
        "run": str(run.run_dir), "frame": "dataset", "format": run.scene.format,
        "params": dataclasses.asdict(params),
        "views": [{"name": v.name, "nearest_image": run.image_names[v.nearest], "nearest_id": v.nearest,
                   "distance": v.distance, "angle_deg": v.angle_deg,
                   "opacity": None if math.isnan(v.opacity) else v.opacity} for v in views],
    }
    info = path.with_suffix(".json")
    info.write_text(json.dumps(details, indent=2) + "\n")
    return {"poses": path, "ply": ply, "json": info}


