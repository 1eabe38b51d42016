"""Sparse points from the photos, for datasets that ship none.

Framing (nerfw.data.framing) and orientation (nerfw.data.orientation) read where the landmark is and which way its
walls run from the dataset's sparse SfM points. Many captures ship their poses without them: instant-ngp's and
nerfstudio's transforms.json, LLFF's poses_bounds.npy without its COLMAP model, NeRF-W collections re-exported by
other tools. The cameras alone then say where the photos look, not where the surfaces are: on a statue
photographed from a plaza the optical axes meet at the statue while the points lie on the statue, the plaza and
its walls (measured on the collection preset: the cameras' ball is 0.47 units above the points' median and twice
their radius; the yaw of the cameras' spread is 12.6 deg off the walls; together 0.98 dB of test PSNR).

With the poses known, points are cheap to recover from the photos themselves (two-view triangulation with known
cameras, Hartley & Zisserman ch. 12):

1. up to MAX_PHOTOS training photos, evenly spread over the training list;
2. SIFT keypoints (pycolmap, CPU) in each, on the image file resampled to at most FEATURE_SIDE pixels;
3. each photo matched (mutual nearest neighbours + Lowe's ratio test) with its NEIGHBOURS nearest cameras among
   those whose optical axes lie within MAX_AXIS_ANGLE_DEG of its own (views that can share content);
4. each match triangulated as the midpoint of the closest points of its two rays (through the lens model),
   kept when it lies in front of both cameras, the rays meet at MIN_PARALLAX_DEG or more (depth is then
   defined), and both rays pass within MAX_ERROR_PIXELS of it (the epipolar constraint of the known poses:
   this rejects the wrong matches, which are most of those a ratio test lets through on repeated texture).

The points are only used to frame and orient the model (never as supervision), so a few stray points do no harm:
the framing takes medians and quantiles of them. They are used where the framing depends on them: when they show
the cameras standing far from the content (:func:`with_photo_points`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from nerfw.cameras.pixels import lens_normalized
from nerfw.data.features import SiftExtractor, image_size, match_descriptors, read_rgb, to_grey
from nerfw.data.framing import MIN_POINTS, camera_reach, robust_ball
from nerfw.errors import ImageError

MAX_PHOTOS = 96  # photos used; more add time, not information about where the content is
PROBE_PHOTOS = 24  # photos that decide whether the points are used (all MAX_PHOTOS are triangulated when they are)
FEATURE_SIDE = 512  # longer image side (pixels) at which keypoints are found
MAX_FEATURES = 1024
NEIGHBOURS = 6  # pairs per photo
MAX_AXIS_ANGLE_DEG = 60.0  # cameras looking further apart rarely share content
MIN_PARALLAX_DEG = 3.0  # rays meeting at a smaller angle leave the depth undefined
FAR_CAMERAS = 2.5  # the photos' points frame a scene whose median camera stands beyond this many of their radii
MAX_ERROR_PIXELS = 1.0  # a triangulated point further than this from either ray (in feature pixels) is a bad match


@dataclass
class PhotoPoints:
    points: np.ndarray  # [N, 3] dataset frame
    colors: np.ndarray  # [N, 3] uint8
    n_photos: int
    n_pairs: int
    seconds: float


@dataclass
class PhotoView:
    """A training camera at its feature image's size, with what was found in that image."""
    center: np.ndarray  # [3]
    rotation: np.ndarray  # [3, 3] camera-to-world
    focal: float  # feature pixels (geometric mean of fx, fy)
    rays: np.ndarray  # [N, 3] unit world directions through the keypoints
    desc: np.ndarray  # [N, 128]
    colors: np.ndarray  # [N, 3] uint8


def spread_evenly(n: int, k: int) -> np.ndarray:
    """k indices spread evenly over range(n) (all of them when n <= k)."""
    return np.arange(n) if n <= k else np.unique(np.round(np.linspace(0, n - 1, k)).astype(int))


def photo_view(cam, extractor: SiftExtractor) -> PhotoView:
    """SIFT keypoints of one training camera's image file, resampled to at most FEATURE_SIDE pixels, as world rays."""
    file_w, file_h = image_size(cam.image_path)
    s = min(1.0, FEATURE_SIDE / max(file_w, file_h))
    size = (max(8, round(file_w * s)), max(8, round(file_h * s)))
    sx, sy = size[0] / cam.width, size[1] / cam.height  # feature image pixels per camera pixel
    rgb = read_rgb(cam.image_path, size)
    feats = extractor(to_grey(rgb))
    xy, _ = lens_normalized(cam.fx * sx, cam.fy * sy, cam.cx * sx, cam.cy * sy, feats.uv, cam.distortion)
    R = np.asarray(cam.T_world_cam, dtype=np.float64)[:3, :3]
    rays = np.concatenate([xy, np.ones((len(xy), 1))], axis=1) @ R.T
    rays /= np.linalg.norm(rays, axis=1, keepdims=True)
    ij = np.clip(np.floor(feats.uv).astype(int), 0, [size[0] - 1, size[1] - 1])
    colors = np.round(rgb[ij[:, 1], ij[:, 0]] * 255).astype(np.uint8)
    return PhotoView(cam.center.astype(np.float64), R, float(np.sqrt(cam.fx * sx * cam.fy * sy)), rays, feats.desc,
                     colors)


def neighbour_pairs(views: list[PhotoView], k: int = NEIGHBOURS) -> list[tuple[int, int]]:
    """Each view with its k nearest cameras whose optical axes are within MAX_AXIS_ANGLE_DEG of its own, once."""
    centers = np.stack([v.center for v in views])
    axes = np.stack([v.rotation[:, 2] for v in views])
    distance = np.linalg.norm(centers[:, None] - centers[None], axis=-1)
    facing = axes @ axes.T >= np.cos(np.radians(MAX_AXIS_ANGLE_DEG))
    distance[~facing] = np.inf
    np.fill_diagonal(distance, np.inf)
    pairs = set()
    for i in range(len(views)):
        for j in np.argsort(distance[i])[:k]:
            if np.isfinite(distance[i, j]):
                pairs.add((min(i, int(j)), max(i, int(j))))
    return sorted(pairs)


def triangulate_rays(c0: np.ndarray, r0: np.ndarray, c1: np.ndarray, r1: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Midpoints of the closest points of ray pairs c0 + t0 r0, c1 + t1 r1 (unit r0, r1 [N, 3]).

    Returns (points [N, 3], t0 [N], t1 [N], the angle of each ray to the point's direction from its camera, the
    larger of the two, radians [N]). Parallel rays get t = inf."""
    b = c1 - c0
    d = np.einsum("ij,ij->i", r0, r1)
    denom = 1.0 - d ** 2
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # parallel rays: inf and nan, dropped later
        t0 = np.where(denom > 1e-12, (r0 @ b - d * (r1 @ b)) / denom, np.inf)
        t1 = np.where(denom > 1e-12, (d * (r0 @ b) - r1 @ b) / denom, np.inf)
        p0, p1 = c0 + t0[:, None] * r0, c1 + t1[:, None] * r1
        points = 0.5 * (p0 + p1)
        error = np.arctan2(0.5 * np.linalg.norm(p0 - p1, axis=1), np.minimum(np.abs(t0), np.abs(t1)))
    return points, t0, t1, error


def pair_points(a: PhotoView, b: PhotoView) -> tuple[np.ndarray, np.ndarray]:
    """Triangulated points [N, 3] and colours [N, 3] of the matches between two views that pass the checks."""
    matches = match_descriptors(a.desc, b.desc)
    if len(matches) == 0:
        return np.zeros((0, 3)), np.zeros((0, 3), np.uint8)
    ra, rb = a.rays[matches[:, 0]], b.rays[matches[:, 1]]
    points, ta, tb, error = triangulate_rays(a.center, ra, b.center, rb)
    parallax = np.arccos(np.clip(np.einsum("ij,ij->i", ra, rb), -1.0, 1.0))
    max_error = MAX_ERROR_PIXELS / min(a.focal, b.focal)
    keep = (ta > 0) & (tb > 0) & np.isfinite(ta) & (parallax >= np.radians(MIN_PARALLAX_DEG)) & (error <= max_error)
    return points[keep], a.colors[matches[keep, 0]]


def triangulate_photos(cameras, max_photos: int = MAX_PHOTOS, views: dict[int, PhotoView] | None = None
                       ) -> PhotoPoints:
    """Sparse points of the scene from its training photos and their known poses (see the module docstring).
    ``views`` caches each camera's keypoints by its index in ``cameras`` (a later call with more photos reuses
    them). Photos that cannot be read are skipped (training reports them)."""
    t0 = time.time()
    views = {} if views is None else views
    extractor = None
    chosen = spread_evenly(len(cameras), max_photos)
    for i in chosen:
        if i not in views:
            extractor = extractor or SiftExtractor(MAX_FEATURES)
            try:
                views[i] = photo_view(cameras[i], extractor)
            except ImageError:
                views[i] = None
    used = [views[i] for i in chosen if views[i] is not None]
    pairs = neighbour_pairs(used) if len(used) >= 2 else []
    found = [pair_points(used[i], used[j]) for i, j in pairs]
    points = np.concatenate([p for p, _ in found]) if found else np.zeros((0, 3))
    colors = np.concatenate([c for _, c in found]) if found else np.zeros((0, 3), np.uint8)
    return PhotoPoints(points, colors, len(used), len(pairs), time.time() - t0)


def photo_points_wanted(enabled: bool, framing: str = "auto", scene_box: str | None = None) -> bool:
    """Whether `nerfw train` / `inspect` options let the photos' points decide the frame: --photo_points, with the
    framing left to the points (auto, points) and no --scene_box."""
    return bool(enabled) and framing in ("auto", "points") and not scene_box


def with_photo_points(scene, enabled: bool = True):
    """The scene to frame and orient by -> (scene, a note for the log or None).

    A scene that ships at least framing.MIN_POINTS sparse points is returned as it is. Otherwise (when ``enabled``)
    points are triangulated from its training photos, and a copy holding them is returned when they show the
    cameras standing far from the content: the median training camera beyond FAR_CAMERAS radii of the points'
    ball (landmark collections, long lenses). There the ball must sit tightly on the content, and only points say
    where that is. With the cameras closer (object captures, orbits, rooms, forward-facing captures, drone
    flights) the ball holds the cameras anyway, and the cameras' own rules were measured better: the flight
    preset framed and oriented by its photos' points scored 23.96 dB instead of 27.82 (4,350 steps; the points'
    ball was 1.5 times wider and their yaw lost the flight lines that the camera centres give). Measured ratios:
    a room 0.46, the flight 1.1, the fox 1.3, LLFF fern 1.5; the collection preset 3.1 to 3.7 (framed by its
    photos' points: +0.54 dB, docs/benchmarks.md), an internet collection of a statue about 6."""
    shipped = 0 if scene.points is None else int(np.isfinite(scene.points).all(axis=1).sum())
    if shipped >= MIN_POINTS or not enabled:
        return scene, None
    t0 = time.time()
    train = scene.split("train") or scene.cameras
    views: dict[int, PhotoView] = {}  # keypoints found once, reused by the pass over all photos
    everything = min(len(train), MAX_PHOTOS)
    found = triangulate_photos(train, PROBE_PHOTOS, views)  # enough to tell where the cameras stand
    if len(found.points) < MIN_POINTS and found.n_photos < everything:
        found = triangulate_photos(train, views=views)
    if len(found.points) < MIN_POINTS:
        return scene, f"points: {describe(found, shipped, t0)}: too few, framing by the cameras"
    center, radius = robust_ball(found.points)
    reach = camera_reach(train, center)
    if reach <= FAR_CAMERAS * radius:
        return scene, (f"points: {describe(found, shipped, t0)}: the median camera stands {reach / radius:.2g} of "
                       f"their radii away (within {FAR_CAMERAS:g}): a capture around or through its content, framed "
                       "by its cameras")
    if found.n_photos < everything:
        found = triangulate_photos(train, views=views)
        center, radius = robust_ball(found.points)
        reach = camera_reach(train, center)
    return replace(scene, points=found.points, point_colors=found.colors,
                   points_origin="points triangulated from the photos"), (
        f"points: {describe(found, shipped, t0)}: the median camera stands {reach / radius:.2g} of their radii away, "
        "so they frame and orient the model")


def describe(found: PhotoPoints, shipped: int, t0: float) -> str:
    return (f"the dataset ships {shipped or 'no'} sparse points; {len(found.points)} triangulated from "
            f"{found.n_photos} training photos ({found.n_pairs} pairs, SIFT matches checked against the known poses, "
            f"{time.time() - t0:.1f} s)")
