"""`nerfw export --run RUN --format points|mesh`: the static scene's geometry, in the dataset's own frame and units.

Points (``--format points``): every training view (or ``--max_views`` of them, evenly spread) is rendered as an
undistorted pinhole image ``--width`` pixels wide with the static field and the chosen appearance (the mean of
all images, or ``--appearance IMAGE``), and each pixel is lifted to 3-D at its median depth (the depth where the
static opacity passes one half: nerfw.rendering.compositing.median_depth). A pixel is kept when

* its opacity is at least ``--min_opacity`` (the ray did hit a surface),
* its transient share (transient opacity with the image's own transient embedding) is at most
  ``--max_transient`` (not a passer-by the transient head explained),
* with ``--max_depth_spread`` (off by default), its depth is sure: the middle half of the ray's static weight lies
  within that many times the framed radius (the interquartile range of the weights' depth,
  nerfw.rendering.compositing.median_and_spread). A short run leaves some surfaces soft or doubled, and there the
  median depth wanders; but fur is soft too (DEFAULT_MAX_DEPTH_SPREAD),
* it is no depth edge (the depth of a 4-neighbour differs by more than ``EDGE_RELATIVE`` of its own: a median depth
  there lies between the two surfaces), and
* it lies within ``--max_distance`` (dataset units) of the framed ball's centre: by default twice the framed
  radius, the part of the contracted shell still resolved within 4 cells (beyond it one cell spans r^2 of
  the ball's cells, mip-NeRF 360 Eq. 10), and
* another rendered view agrees on it (its sure depth there within AGREEMENT_RELATIVE): the multi-view consistency
  test of depth-map fusion, which drops floaters that explain one photo only.

Then statistical outlier removal (``--outlier_std``, default 2: points whose mean distance to their 16 nearest
neighbours lies more than 2 standard deviations above the cloud's mean) drops isolated floaters and stray pixels.
Normals come from the cross product of the depth map's neighbouring points (cheap: no extra render), turned
towards the camera. The cloud is averaged per voxel of ``--voxel`` dataset units (default: the framed radius / 256,
about a finest-grid cell) and capped at ``--num_points`` (a fixed random subset).

Mesh (``--format mesh``, .ply or .obj): the static density is sampled on a grid of ``--resolution`` cells along the
framed ball's bounding box (in the dataset frame) and marching cubes (scikit-image) extracts its iso-surface at
``--threshold``. By default that level is the one the renders show: the median static density at the median-depth
points of a few training views (the points export at low resolution), so the mesh lies where the rendered depth
does, whatever the scale of the scene and however sharp the trained density is (a fixed absorbance per cell would
miss the soft density of a short run). Faces that no view renders with a sure depth (within AGREEMENT_RELATIVE of
it, or a grid cell) are removed: the ground's underside, the inside of walls, floaters, surfaces the field has left
soft. So are pieces with fewer than ``--min_component`` faces. Each vertex is coloured by the model's static colour
there, seen from the nearest training camera, with the chosen appearance.

Both are written with the dataset's frame (the run's normalization inverted), so they overlay the camera PLY
(`nerfw cameras`) and the dataset's sparse points; the PLY header's comments name the frame and the run.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from nerfw.data.vertex_ply import write_vertices
from nerfw.errors import ConfigError, NerfwError
from nerfw.model.view_rendering import render_camera
from nerfw.novel_views.density import probe_density, static_field, static_sigma_dataset

AGREEMENT_RELATIVE = 0.02  # a point agrees with a view whose rendered depth there is within 2 % of its own
# A pixel's depth is sure when its interquartile range is within this share of the framed radius. Off by default:
# 0.03 took the demo's cloud from 83 % to 94 % within 3 % of the true surface, but instant-ngp's fox lost its head
# (a 5-minute model's fur and wall hold the middle half of their weight over a median 5 % of the radius).
DEFAULT_MAX_DEPTH_SPREAD = float("inf")
MIN_AGREEING_VIEWS = 2  # points: kept when at least this many views (its own included) agree on them
EDGE_RELATIVE = 0.03  # a pixel is a depth edge when a 4-neighbour's depth differs by more than this share
DEFAULT_WIDTH = 160  # pixels across each rendered training view
DEFAULT_MAX_VIEWS = 32
VOXELS_PER_RADIUS = 256
OUTLIER_NEIGHBOURS = 16  # points: neighbours whose mean distance decides an outlier (remove_outliers)
DEFAULT_MESH_RESOLUTION = 192


@dataclasses.dataclass
class Geometry:
    """Points (and faces for a mesh) in the dataset frame."""

    points: np.ndarray  # [N, 3] float64
    colors: np.ndarray  # [N, 3] uint8
    normals: np.ndarray | None = None  # [N, 3] unit
    faces: np.ndarray | None = None  # [F, 3] int


# ----------------------------------------------------------------------------- points
def pixel_points(depth: np.ndarray, camera) -> np.ndarray:
    """Dataset-frame points [H, W, 3] of a pinhole depth map (z-depth) of `camera`."""
    h, w = depth.shape
    u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    x_cam = np.stack([(u - camera.cx) / camera.fx * depth, (v - camera.cy) / camera.fy * depth, depth], axis=-1)
    T = camera.T_world_cam
    return x_cam @ T[:3, :3].T + T[:3, 3]


def depth_edges(depth: np.ndarray, relative: float = EDGE_RELATIVE) -> np.ndarray:
    """[H, W] bool: pixels whose depth differs from a 4-neighbour's by more than `relative` of their own."""
    d = np.where(np.isfinite(depth), depth, np.inf)
    edge = np.zeros(d.shape, bool)
    for axis in (0, 1):
        diff = np.abs(np.diff(d, axis=axis))
        with np.errstate(invalid="ignore"):
            jump = ~(diff <= relative * np.minimum(np.take(d, range(d.shape[axis] - 1), axis),
                                                   np.take(d, range(1, d.shape[axis]), axis)))
        lo = [slice(None)] * 2
        hi = [slice(None)] * 2
        lo[axis], hi[axis] = slice(0, -1), slice(1, None)
        edge[tuple(lo)] |= jump
        edge[tuple(hi)] |= jump
    return edge


def depth_normals(points: np.ndarray, camera_center: np.ndarray) -> np.ndarray:
    """Unit normals [H, W, 3] of a point map from its central differences, turned towards the camera."""
    du = np.gradient(points, axis=1)
    dv = np.gradient(points, axis=0)
    n = np.cross(du, dv)
    n /= np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-12)
    flip = np.sum(n * (camera_center - points), axis=-1) < 0
    n[flip] *= -1
    return n


def voxel_average(g: Geometry, voxel: float) -> Geometry:
    """One point per occupied voxel: the mean position, colour and (re-normalised) normal of its points."""
    keys = np.floor(g.points / voxel).astype(np.int64)
    _, inverse, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)

    def mean(values: np.ndarray) -> np.ndarray:
        out = np.zeros((len(counts), values.shape[1]))
        np.add.at(out, inverse, values)
        return out / counts[:, None]

    normals = None
    if g.normals is not None:
        normals = mean(g.normals)
        normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    return Geometry(mean(g.points), np.clip(np.round(mean(g.colors.astype(np.float64))), 0, 255).astype(np.uint8),
                    normals)


def remove_outliers(g: Geometry, std_ratio: float, neighbours: int = OUTLIER_NEIGHBOURS) -> Geometry:
    """Statistical outlier removal (Rusu et al. 2008; PCL's StatisticalOutlierRemoval): a point is dropped when its
    mean distance to its `neighbours` nearest points exceeds the cloud's mean of that distance by more than
    `std_ratio` standard deviations. Isolated floaters and stray pixels go; surfaces stay."""
    from scipy.spatial import cKDTree

    if std_ratio <= 0 or len(g.points) <= neighbours:
        return g
    dist, _ = cKDTree(g.points).query(g.points, neighbours + 1)
    spacing = dist[:, 1:].mean(axis=1)  # column 0 is the point itself
    keep = spacing <= spacing.mean() + std_ratio * spacing.std()
    return Geometry(g.points[keep], g.colors[keep], None if g.normals is None else g.normals[keep])


@dataclasses.dataclass
class PointOptions:
    width: int = DEFAULT_WIDTH
    max_views: int = DEFAULT_MAX_VIEWS
    min_opacity: float = 0.95
    max_transient: float = 0.2
    max_distance: float | None = None  # dataset units from the framed centre; None: twice the framed radius
    voxel: float | None = None  # dataset units; None: framed radius / VOXELS_PER_RADIUS
    num_points: int = 1_000_000
    appearance: str | None = None  # a training image's name or index; None: the mean appearance
    outlier_std: float = 2.0  # statistical outlier removal (remove_outliers); 0: off
    max_depth_spread: float = DEFAULT_MAX_DEPTH_SPREAD  # share of the framed radius; inf keeps unsure depths too


def appearance_for(run, name: str | None) -> torch.Tensor:
    if name is None:
        return run.model.appearance_vector(mean=True)
    return run.model.appearance_vector(image_id=run.image_id(name))


def framed_ball(run) -> tuple[np.ndarray, float]:
    """(centre, radius) of the run's framed ball in the dataset frame: the model frame's unit ball."""
    return run.normalization.points_to_dataset(np.zeros((1, 3)))[0], 1.0 / run.normalization.scale


def spread(items: list, count: int) -> list:
    if len(items) <= count:
        return list(items)
    return [items[int(i)] for i in np.linspace(0, len(items) - 1, count).round()]


def view_points(run, camera, image_id: int, appearance: torch.Tensor, opts: PointOptions):
    """The kept pixels of one training view, lifted to 3-D (see the module doc), and the view at its rendered size
    with its surface depth map (inf where the ray met no surface) for the agreement test."""

    small = camera.at_width(opts.width)
    out = render_camera(run.model, small, run.normalization, appearance=appearance, image_id=image_id,
                        use_transient=bool(run.model.cfg.encode_t), distortion=False)
    depth = out["depth"]
    pts = pixel_points(depth, small)
    transient = out["transient_opacity"] / np.maximum(out["opacity"], 1e-6)  # share of the pixel's opacity
    sure = out["depth_spread"] <= opts.max_depth_spread / run.normalization.scale  # the framed radius
    keep = (out["opacity"] >= opts.min_opacity) & (transient <= opts.max_transient) & ~depth_edges(depth) & sure
    keep &= np.isfinite(depth) & (depth > 0)
    normals = depth_normals(pts, small.center)
    colors = np.clip(np.round(out["rgb_static"] * 255), 0, 255).astype(np.uint8)
    surface = np.where((out["opacity"] >= 0.5) & sure, depth, np.inf)
    return Geometry(pts[keep], colors[keep], normals[keep]), (small, surface)


def agreeing_views(points: np.ndarray, views: list, relative: float = AGREEMENT_RELATIVE,
                   absolute: float = 0.0) -> np.ndarray:
    """[N] int: for each dataset-frame point, the views (camera, surface depth map) in whose image it projects with
    a z-depth within `relative` of the surface the view rendered there (or within `absolute` dataset units, if
    more). A surface every view agrees on is the scene's; a floater or a surface behind another (the ground's
    underside, a wall's inside) is not."""
    counts = np.zeros(len(points), np.int32)
    for camera, depth in views:
        T = camera.T_world_cam
        x = (points - T[:3, 3]) @ T[:3, :3]  # camera frame
        z = x[:, 2]
        zs = np.where(z > 1e-9, z, 1.0)
        u = np.floor(camera.fx * x[:, 0] / zs + camera.cx).astype(np.int64)
        v = np.floor(camera.fy * x[:, 1] / zs + camera.cy).astype(np.int64)
        ok = (z > 1e-9) & (u >= 0) & (u < depth.shape[1]) & (v >= 0) & (v < depth.shape[0])
        idx = np.nonzero(ok)[0]
        tolerance = np.maximum(relative * z[idx], absolute)
        counts[idx] += (np.abs(depth[v[idx], u[idx]] - z[idx]) <= tolerance).astype(np.int32)
    return counts


def export_points(run, opts: PointOptions, progress=None, views_out: list | None = None) -> Geometry:
    """The static scene's point cloud (see the module doc). `views_out`, when given, receives each rendered view
    and its surface depth map."""
    center, radius = framed_ball(run)
    appearance = appearance_for(run, opts.appearance)
    cameras = spread([(i, c) for i, c in enumerate(run.scene.cameras) if c.split == "train"], opts.max_views)
    parts, views = [], [] if views_out is None else views_out
    for image_id, camera in (progress(cameras) if progress else cameras):
        part, view = view_points(run, camera, image_id, appearance, opts)
        parts.append(part)
        views.append(view)
    g = Geometry(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("points", "colors", "normals")))
    max_distance = 2.0 * radius if opts.max_distance is None else opts.max_distance
    near = np.linalg.norm(g.points - center, axis=1) <= max_distance
    g = voxel_average(Geometry(g.points[near], g.colors[near], g.normals[near]),
                      radius / VOXELS_PER_RADIUS if opts.voxel is None else opts.voxel) if near.any() else None
    agreed = agreeing_views(g.points, views) >= min(MIN_AGREEING_VIEWS, len(views)) if g is not None else None
    if g is None or not agreed.any():
        raise NerfwError(f"no points to export: no pixel of the {len(cameras)} views has opacity >= "
                         f"{opts.min_opacity:g}, transient share <= {opts.max_transient:g}, a depth spread <= "
                         f"{opts.max_depth_spread:g} of the framed radius, a depth another view agrees on and lies "
                         f"within {max_distance:.4g} units of the framed centre (lower --min_opacity, raise "
                         "--max_depth_spread for a short run's soft surfaces, or raise --max_distance)")
    g = remove_outliers(Geometry(g.points[agreed], g.colors[agreed], g.normals[agreed]), opts.outlier_std)
    if len(g.points) > opts.num_points:
        keep = np.sort(np.random.default_rng(0).choice(len(g.points), opts.num_points, replace=False))
        g = Geometry(g.points[keep], g.colors[keep], g.normals[keep])
    return g


# ----------------------------------------------------------------------------- mesh
@dataclasses.dataclass
class MeshOptions:
    resolution: int = DEFAULT_MESH_RESOLUTION
    threshold: float | None = None  # static sigma per dataset unit; None: the density the renders show (surface_density)
    min_component: int = 200  # faces; smaller disconnected pieces are removed
    appearance: str | None = None
    max_depth_spread: float = DEFAULT_MAX_DEPTH_SPREAD  # of the probe views that decide which faces are seen


def keep_large_components(vertices: np.ndarray, faces: np.ndarray, min_faces: int):
    """The mesh without its connected pieces of fewer than `min_faces` faces (unused vertices dropped)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(vertices)
    rows = np.concatenate([faces[:, 0], faces[:, 1], faces[:, 2]])
    cols = np.concatenate([faces[:, 1], faces[:, 2], faces[:, 0]])
    _, label = connected_components(coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n)), directed=False)
    face_label = label[faces[:, 0]]
    sizes = np.bincount(face_label, minlength=label.max() + 1)
    faces = faces[sizes[face_label] >= min_faces]
    used = np.unique(faces)
    remap = np.full(n, -1, np.int64)
    remap[used] = np.arange(len(used))
    return vertices[used], remap[faces], used


@torch.no_grad()
def vertex_colors(run, points: np.ndarray, appearance: torch.Tensor, chunk: int = 32768) -> np.ndarray:
    """The static colour at each dataset-frame point, seen from its nearest training camera."""
    from scipy.spatial import cKDTree


    train = run.scene.split("train")
    centres = np.stack([c.center for c in train])
    nearest = cKDTree(centres).query(points)[1]
    dirs = points - centres[nearest]
    norm = run.normalization
    x_model = norm.points_to_model(points)
    d_model = dirs @ norm.rotation.T
    d_model /= np.maximum(np.linalg.norm(d_model, axis=1, keepdims=True), 1e-12)
    field = static_field(run.model)
    device = next(run.model.parameters()).device
    out = np.empty((len(points), 3))
    for s in range(0, len(points), chunk):
        x = torch.as_tensor(x_model[s:s + chunk], dtype=torch.float32, device=device)[:, None, :]
        d = torch.as_tensor(d_model[s:s + chunk], dtype=torch.float32, device=device)
        ids = torch.zeros(len(d), dtype=torch.long, device=device)
        out[s:s + chunk] = field(x, d, ids, appearance.to(device), use_transient=False).rgb[:, 0].float().cpu().numpy()
    return np.clip(np.round(out * 255), 0, 255).astype(np.uint8)


SURFACE_PROBE = PointOptions(width=96, max_views=24, voxel=None)  # views lifted to find the surface's density


def surface_density(run, views_out: list | None = None, max_depth_spread: float = DEFAULT_MAX_DEPTH_SPREAD) -> float:
    """The median static density (per dataset unit) at the median-depth points of a few training views."""

    probe = dataclasses.replace(SURFACE_PROBE, max_depth_spread=max_depth_spread)
    points = export_points(run, probe, views_out=views_out).points
    return float(np.median(static_sigma_dataset(run.model, run.normalization, points)))


def export_mesh(run, opts: MeshOptions) -> Geometry:
    from skimage.measure import marching_cubes


    center, radius = framed_ball(run)
    views: list = []  # the probe's views and surface depth maps, for the visibility test
    rendered_density = surface_density(run, views, opts.max_depth_spread)  # the probe's views serve both
    threshold = rendered_density if opts.threshold is None else opts.threshold
    grid = probe_density(run.model, run.normalization, np.stack([center - radius, center + radius]), opts.resolution,
                         threshold=threshold)
    sigma = grid.sigma
    if not (sigma.min() < grid.threshold < sigma.max()):
        raise NerfwError(f"no surface to export: the static density inside the framed ball ranges "
                         f"{sigma.min():.3g} .. {sigma.max():.3g}, the threshold is {grid.threshold:.3g} "
                         "(give --threshold within that range)")
    verts, faces, _, _ = marching_cubes(sigma, level=grid.threshold, spacing=(grid.spacing,) * 3)
    verts = verts + np.array([axis[0] for axis in grid.axes])  # index 0 lies at the first cell centre
    seen = agreeing_views(verts, views, absolute=grid.spacing) >= 1  # a vertex may lie a cell off the surface
    faces = faces[seen[faces].all(axis=1)]  # surfaces no view renders: the ground's underside, insides, floaters
    verts, faces, _ = keep_large_components(verts, faces.astype(np.int64), opts.min_component)
    if not len(faces):
        raise NerfwError(f"no surface to export: every piece has fewer than --min_component {opts.min_component} "
                         "faces")
    colors = vertex_colors(run, verts, appearance_for(run, opts.appearance))
    return Geometry(verts, colors, faces=faces[:, ::-1].copy())  # outward normals: density rises inwards


# ----------------------------------------------------------------------------- writers
def frame_comments(run) -> list[str]:
    return ["frame: the dataset's own frame and units (nerfw run normalization inverted)",
            f"run: {Path(run.run_dir).resolve()} step {run.step}"]


def write_ply(path: Path, g: Geometry, comments: list[str]) -> Path:

    return write_vertices(path, g.points, g.colors, g.normals, g.faces, comments, float_type="f4")


def write_obj(path: Path, g: Geometry, comments: list[str]) -> Path:
    """Wavefront OBJ with per-vertex colours (``v x y z r g b``, as MeshLab and CloudCompare read them)."""
    lines = [f"# {c}" for c in comments]
    rgb = g.colors / 255.0
    lines += [f"v {p[0]:.6f} {p[1]:.6f} {p[2]:.6f} {c[0]:.4f} {c[1]:.4f} {c[2]:.4f}" for p, c in zip(g.points, rgb)]
    lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in (g.faces if g.faces is not None else [])]
    path.write_text("\n".join(lines) + "\n")
    return path


def check_output(path: Path, suffixes: tuple[str, ...]) -> Path:
    if path.suffix.lower() not in suffixes:
        raise ConfigError(f"--out {path}: expected a file name ending in {' or '.join(suffixes)}")
    parent = path.resolve().parent
    if not parent.is_dir():
        try:
            parent.mkdir(parents=True)
        except OSError as exc:
            raise ConfigError(f"--out {path}: cannot create its folder ({exc.strerror})") from None
    try:
        with open(path, "ab"):
            pass
    except OSError as exc:
        raise ConfigError(f"--out {path}: not writable ({exc.strerror})") from None
    return path


