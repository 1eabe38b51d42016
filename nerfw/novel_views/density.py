"""`nerfw density`: probe a trained run's STATIC density on a regular 3-D grid (LENS, arXiv 2110.06558).

LENS chooses novel camera centres in free space, which it finds from the NeRF's density. This module samples
the static density sigma(x) of the model on a regular grid over the scene, in the DATASET frame and units:

* the box: robust percentiles (0.5 / 99.5) of the training camera centres and of the scene content (their
  union), expanded by a margin on every side. Content is the dataset's sparse points; 7-Scenes has none, so
  points back-projected from its depth maps are used (else the frustums' corners at the far bound). (The
  NeRFW-pytorch probed around the camera centres only, so geometry outside the camera hull was never probed.)
* the grid: cubic cells of side ``spacing = longest box side / resolution``; one sample at each cell centre.
* units: sigma is returned per DATASET unit of length (1/metre for Cambridge and 7-Scenes). The model works
  in the normalised frame ``x_model = (x_dataset - center) * scale`` where optical depth is
  ``sigma_model * dt_model``; since ``dt_model = scale * dt_dataset``, ``sigma_dataset = sigma_model * scale``.
* occupied: cells with ``sigma_dataset > threshold``. The default threshold makes a cell occupied when light
  crossing it would be absorbed to 50 %: ``1 - exp(-sigma * spacing) = 0.5``, so ``sigma = ln 2 / spacing``.

Visibility (what the training cameras saw through; used by ``nerfw select-views``): every training camera is
rendered once at low resolution as a pinhole camera (static scene, mean appearance, transient head off, the
fast renderer where the field has one): its median z-depth where the static opacity is >= 0.5, else "clear up to
the far bound". A point is SEEN THROUGH by a camera when it projects inside that camera's image and lies in front
of the rendered surface along its ray by at least a margin. The maps are cached in RUN/density/visibility.npz,
keyed by the checkpoint, the cameras and the resolution (rebuilt when any changes). The rendered surfaces
(back-projected pixels with opacity >= 0.5) are also kept as points: the density probe samples cell centres
only and misses thin surfaces (the ground), the depth maps do not.

Outputs in RUN/density/ (or --out): density.npz (axes x, y, z [n_i]; sigma [nx, ny, nz]; bounds [2, 3];
spacing; threshold; occupied_points [M, 3]; model_scale) and occupied.ply (occupied cells as points,
coloured by density, with the training cameras) for MeshLab.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nerfw.cameras.pixels import lens_normalized
from nerfw.data.cameras_ply import write_cameras_ply
from nerfw.data.parsers.sevenscenes import read_depth_m
from nerfw.data.scene import Normalization, SceneData
from nerfw.errors import ConfigError, NerfwError
from nerfw.model.view_rendering import render_camera

BOUNDS_PERCENTILES = (0.5, 99.5)  # robust box of camera centres / sparse points (NeRFW-pytorch: 0.5-99.5 of centres)
DEFAULT_RESOLUTION = 128  # cells along the longest side of the box (NeRFW-pytorch: 64 along the shortest)
DEFAULT_MARGIN_FRACTION = 0.05  # margin = this * longest side of the percentile box, when --margin is not given
DEFAULT_OCCUPIED_ALPHA = 0.5  # a cell is occupied when it absorbs this fraction of light (default threshold)
MAX_CELLS = 64_000_000  # refuse grids larger than this (memory: 4 bytes per cell for sigma)


@dataclass
class DensityGrid:
    """Static density sampled at cell centres; everything in the dataset frame and units."""

    axes: tuple[np.ndarray, np.ndarray, np.ndarray]  # cell-centre coordinates along x, y, z: [nx], [ny], [nz]
    sigma: np.ndarray  # [nx, ny, nz] float32, per dataset unit of length
    bounds: np.ndarray  # [2, 3] box corners (min, max)
    spacing: float  # cell side
    threshold: float  # sigma above which a cell is occupied (per dataset unit)

    @property
    def occupied_mask(self) -> np.ndarray:
        return self.sigma > self.threshold  # [nx, ny, nz]

    @property
    def occupied_points(self) -> np.ndarray:
        """Centres of occupied cells [M, 3]."""
        ix, iy, iz = np.nonzero(self.occupied_mask)
        return np.stack([self.axes[0][ix], self.axes[1][iy], self.axes[2][iz]], axis=-1)

    def cell_centers(self) -> np.ndarray:
        """All cell centres [nx * ny * nz, 3] in C order (x slowest), matching sigma.ravel()."""
        X, Y, Z = np.meshgrid(*self.axes, indexing="ij")
        return np.stack([X.ravel(), Y.ravel(), Z.ravel()], axis=-1)


# ----------------------------------------------------------------------------- the box
def depth_points(cameras: list, max_views: int = 64, stride: int = 8) -> np.ndarray:
    """Points [N, 3] back-projected from the depth maps of up to `max_views` cameras (every `stride`-th pixel).

    For datasets without sparse points (7-Scenes): they tell the box where the walls are. Raw Kinect depth is
    not registered to the colour camera; a few centimetres do not matter for a bounding box.
    """

    with_depth = [c for c in cameras if c.depth_path is not None and Path(c.depth_path).is_file()]
    chosen = with_depth[:: max(1, len(with_depth) // max_views)][:max_views]
    out = []
    for c in chosen:
        full = read_depth_m(Path(c.depth_path), c.depth_scale)  # [H, W] metres, NaN where invalid
        sx, sy = full.shape[1] / c.width, full.shape[0] / c.height  # depth map size vs camera size
        z = full[::stride, ::stride]
        v, u = np.nonzero(np.isfinite(z))
        uv = np.stack([(u * stride + 0.5), (v * stride + 0.5)], axis=-1)  # [n, 2] depth-map pixels
        # through the lens (normalised coefficients: the depth map's size does not change them); pixels outside
        # the lens model's domain use the pinhole direction, as in training
        xy, _ = lens_normalized(c.fx * sx, c.fy * sy, c.cx * sx, c.cy * sy, uv, c.distortion)
        d = np.concatenate([xy, np.ones((len(xy), 1))], -1) @ c.T_world_cam[:3, :3].T
        out.append(c.center + d * z[v, u][:, None])  # t is z-depth
    return np.concatenate(out) if out else np.zeros((0, 3))


def frustum_points(cameras: list) -> np.ndarray:
    """[5 * n, 3]: each camera's principal point and image corners at its far bound (last resort)."""

    pts = []
    for c in cameras:
        uv = np.array([[c.cx, c.cy], [0, 0], [c.width, 0], [0, c.height], [c.width, c.height]], float)
        xy, _ = lens_normalized(c.fx, c.fy, c.cx, c.cy, uv, c.distortion)  # the corners through the lens
        rays = np.concatenate([xy, np.ones((5, 1))], -1) * c.far
        pts.append(rays @ c.T_world_cam[:3, :3].T + c.center)
    return np.concatenate(pts)


def content_points(scene: SceneData) -> tuple[np.ndarray, str]:
    """What the cameras look at: the sparse points, else back-projected depth, else frustum corners at far."""
    if scene.points is not None and len(scene.points):
        return np.asarray(scene.points, dtype=np.float64).reshape(-1, 3), "sparse points"
    train = scene.split("train") or scene.cameras
    pts = depth_points(train)
    if len(pts):
        return pts, "depth maps"
    return frustum_points(train), "camera frustums at the far bound"


def scene_box(scene: SceneData, margin: float | None = None,
              percentiles: tuple[float, float] = BOUNDS_PERCENTILES) -> np.ndarray:
    """[2, 3] box over the training camera centres and the scene content (robust percentiles), + margin.

    Content: the dataset's sparse points; for datasets without them (7-Scenes), points back-projected from
    the depth maps, else the camera frustums' corners at the far bound. `margin` is in dataset units; None
    uses DEFAULT_MARGIN_FRACTION of the box's longest side.
    """
    train = scene.split("train") or scene.cameras
    sets = [np.stack([c.center for c in train]), content_points(scene)[0]]  # [n_cams, 3], [N, 3]
    lo = np.min([np.percentile(s, percentiles[0], axis=0) for s in sets], axis=0)
    hi = np.max([np.percentile(s, percentiles[1], axis=0) for s in sets], axis=0)
    if margin is None:
        margin = DEFAULT_MARGIN_FRACTION * float(np.max(hi - lo))
    margin = max(float(margin), 1e-6)
    return np.stack([lo - margin, hi + margin])


def grid_axes(bounds: np.ndarray, resolution: int) -> tuple[tuple[np.ndarray, ...], float]:
    """Cubic cells of side longest/resolution covering `bounds`: (cell-centre axes, spacing)."""
    extent = bounds[1] - bounds[0]  # [3]
    spacing = float(np.max(extent)) / resolution
    counts = np.maximum(1, np.ceil(extent / spacing - 1e-9).astype(int))  # [3]
    if int(np.prod(counts)) > MAX_CELLS:
        raise ConfigError(f"--resolution {resolution} gives {int(np.prod(counts))} cells (max {MAX_CELLS})")
    axes = tuple(bounds[0, i] + (np.arange(counts[i]) + 0.5) * spacing for i in range(3))
    return axes, spacing


# ----------------------------------------------------------------------------- density queries
def static_field(model: torch.nn.Module) -> torch.nn.Module:
    """The field whose static density renders the images: the grid field, or the mlp's last (fine) network."""
    renderer = model.renderer
    return renderer.field if hasattr(renderer, "field") else renderer.nets[-1]


def model_static_sigma(model: torch.nn.Module, x_model: torch.Tensor) -> torch.Tensor:
    """Static density at model-frame points [N, 3] -> [N] (per model unit of length).

    NeRFW has no density-only query, so this calls the field's documented forward
    ``field(x [R, S, 3], dirs [R, 3], image_ids [R], appearance, use_transient) -> FieldOutput`` with one
    sample per "ray" and the transient head off; static sigma depends on neither the direction nor the
    image, so both are placeholders. (A model that grows ``static_density(x)`` is used instead.)
    """
    if hasattr(model, "static_density"):
        return model.static_density(x_model).reshape(-1)
    n = x_model.shape[0]
    dirs = torch.zeros(n, 3, dtype=x_model.dtype, device=x_model.device)  # [N, 3] placeholder, unit +z
    dirs[:, 2] = 1.0
    ids = torch.zeros(n, dtype=torch.long, device=x_model.device)  # [N] placeholder
    out = static_field(model)(x_model[:, None, :], dirs, ids, None, use_transient=False)
    return out.sigma[:, 0]  # [N]


@torch.no_grad()
def static_sigma_dataset(model: torch.nn.Module, normalization: Normalization,
                         points: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """Static density at DATASET-frame points [N, 3] -> [N] float32 per dataset unit of length.

    x_model = (x - center) * scale (Normalization); sigma_dataset = sigma_model * scale (see module doc).
    """
    device = next(model.parameters()).device
    x_model = normalization.points_to_model(np.asarray(points, dtype=np.float64).reshape(-1, 3))  # [N, 3]
    out = np.empty(len(x_model), dtype=np.float32)
    for start in range(0, len(x_model), chunk):
        x = torch.as_tensor(x_model[start:start + chunk], dtype=torch.float32, device=device)
        out[start:start + chunk] = model_static_sigma(model, x).float().cpu().numpy()
    return out * np.float32(normalization.scale)


def default_threshold(spacing: float, alpha: float = DEFAULT_OCCUPIED_ALPHA) -> float:
    """sigma such that a ray crossing one cell is absorbed by `alpha`: 1 - exp(-sigma * spacing) = alpha."""
    return -math.log(1.0 - alpha) / spacing


def probe_density(model: torch.nn.Module, normalization: Normalization, bounds: np.ndarray,
                  resolution: int = DEFAULT_RESOLUTION, threshold: float | None = None,
                  chunk: int = 65536) -> DensityGrid:
    """Sample the static density on a regular grid over `bounds` ([2, 3], dataset frame)."""
    axes, spacing = grid_axes(np.asarray(bounds, dtype=np.float64), resolution)
    grid = DensityGrid(axes=axes, sigma=np.zeros(0, np.float32), bounds=np.asarray(bounds, np.float64),
                       spacing=spacing, threshold=float(threshold) if threshold else default_threshold(spacing))
    sigma = static_sigma_dataset(model, normalization, grid.cell_centers(), chunk)
    grid.sigma = sigma.reshape(len(axes[0]), len(axes[1]), len(axes[2]))
    return grid


# ----------------------------------------------------------------------------- visibility
VISIBILITY_WIDTH = 48  # pixels across each training camera's visibility depth map
VISIBILITY_MIN_OPACITY = 0.5  # a pixel sees a surface when its static opacity reaches this
VISIBILITY_VERSION = 1


def run_fingerprint(run) -> str:
    """Identifies the model of a loaded run: checkpoint file, step, size and modification time."""
    path = Path(run.checkpoint)
    st = path.stat()
    return f"{path.name}:{run.step}:{st.st_size}:{st.st_mtime_ns}"


@dataclass
class VisibilityMaps:
    """Per training camera: a low-resolution PINHOLE z-depth map of the first surface (inf = clear to infinity),
    in the dataset frame and units. ``seen_through`` counts the cameras that saw through points."""

    T_world_cam: np.ndarray  # [C, 4, 4]
    K: np.ndarray  # [C, 3, 3] intrinsics at the maps' resolution
    sizes: np.ndarray  # [C, 2] (width, height) of each map
    depth: list[np.ndarray]  # C arrays [h, w] float32 z-depth of the surface; inf where the ray saw no surface

    @classmethod
    def from_depths(cls, cameras: list, depths: list[np.ndarray]) -> "VisibilityMaps":
        """Maps for `cameras` (CameraView) from z-depth arrays at any size (intrinsics scaled to each array)."""
        Ks, sizes = [], []
        for c, d in zip(cameras, depths):
            h, w = d.shape
            sx, sy = w / c.width, h / c.height
            Ks.append(np.array([[c.fx * sx, 0, c.cx * sx], [0, c.fy * sy, c.cy * sy], [0, 0, 1.0]]))
            sizes.append((w, h))
        return cls(np.stack([np.asarray(c.T_world_cam, np.float64) for c in cameras]), np.stack(Ks),
                   np.asarray(sizes, np.int64), [np.asarray(d, np.float32) for d in depths])

    def surface_points(self) -> np.ndarray:
        """[M, 3] the rendered surfaces: every pixel with a finite depth, back-projected (dataset frame)."""
        out = []
        for T, K, d in zip(self.T_world_cam, self.K, self.depth):
            v, u = np.nonzero(np.isfinite(d))
            x = np.stack([(u + 0.5 - K[0, 2]) / K[0, 0], (v + 0.5 - K[1, 2]) / K[1, 1], np.ones(len(u))], -1)
            out.append((x * d[v, u][:, None]) @ T[:3, :3].T + T[:3, 3])
        return np.concatenate(out) if out else np.zeros((0, 3))

    def seen_through(self, points: np.ndarray, margin: float, chunk: int = 200_000) -> np.ndarray:
        """[N] int: for each dataset-frame point [N, 3], the number of cameras in whose image it projects and
        that saw at least `margin` (dataset units, along the ray) of free space beyond it. The surface depth is
        the smallest of the 4 map pixels around the projection (conservative at depth edges)."""
        points = np.asarray(points, np.float64).reshape(-1, 3)
        counts = np.zeros(len(points), np.int32)
        for start in range(0, len(points), chunk):
            p = points[start:start + chunk]
            for T, K, (w, h), d in zip(self.T_world_cam, self.K, self.sizes, self.depth):
                x = (p - T[:3, 3]) @ T[:3, :3]  # [n, 3] camera frame (R^T (p - c))
                z = x[:, 2]
                ok = z > 1e-9
                zs = np.where(ok, z, 1.0)
                u = K[0, 0] * x[:, 0] / zs + K[0, 2]
                v = K[1, 1] * x[:, 1] / zs + K[1, 2]
                ok &= (u >= 0) & (u < w) & (v >= 0) & (v < h)
                if not ok.any():
                    continue
                idx = np.nonzero(ok)[0]
                surface = _min_around(d, u[idx] - 0.5, v[idx] - 0.5)  # pixel centres at +0.5
                stretch = np.linalg.norm(x[idx], axis=1) / z[idx]  # ray length per unit of z-depth
                counts[start + idx] += ((surface - z[idx]) * stretch >= margin).astype(np.int32)
        return counts


def _min_around(depth: np.ndarray, fu: np.ndarray, fv: np.ndarray) -> np.ndarray:
    """Minimum of the 4 pixels whose centres surround continuous index coordinates (fu, fv) (clamped)."""
    h, w = depth.shape
    u0 = np.clip(np.floor(fu).astype(np.int64), 0, w - 1)
    v0 = np.clip(np.floor(fv).astype(np.int64), 0, h - 1)
    u1, v1 = np.minimum(u0 + 1, w - 1), np.minimum(v0 + 1, h - 1)
    return np.minimum(np.minimum(depth[v0, u0], depth[v0, u1]), np.minimum(depth[v1, u0], depth[v1, u1]))


def render_visibility(run, width: int = VISIBILITY_WIDTH, chunk: int = 8192, log=print) -> VisibilityMaps:
    """Render every training camera of a loaded run at `width` pixels (pinhole, static, mean appearance)."""

    cameras = run.scene.split("train")
    appearance = run.model.appearance_vector(mean=True)
    depths = []
    for c in cameras:
        small = c.at_width(width)
        out = render_camera(run.model, small, run.normalization, chunk, appearance=appearance,
                            use_transient=False, fast=True, distortion=False)
        depths.append(np.where(out["opacity"] >= VISIBILITY_MIN_OPACITY, out["depth"], np.inf).astype(np.float32))
    return VisibilityMaps.from_depths(cameras, depths)


def visibility_key(run, width: int) -> str:
    names = "\n".join(f"{c.name} {np.round(c.T_world_cam, 6).tolist()}" for c in run.scene.split("train"))
    text = json.dumps({"v": VISIBILITY_VERSION, "model": run_fingerprint(run), "width": width,
                       "cameras": hashlib.sha1(names.encode()).hexdigest()})
    return hashlib.sha1(text.encode()).hexdigest()


def load_or_render_visibility(run, width: int = VISIBILITY_WIDTH, cache_dir: Path | None = None,
                              log=print) -> VisibilityMaps:
    """The run's visibility maps from RUN/density/visibility.npz when its key matches, else rendered and saved."""
    cache = (Path(cache_dir) if cache_dir else Path(run.run_dir) / "density") / "visibility.npz"
    key = visibility_key(run, width)
    if cache.is_file():
        try:
            with np.load(cache) as f:
                if str(f["key"]) == key:
                    sizes = f["sizes"]
                    flat, offsets = f["depth"], np.concatenate([[0], np.cumsum(sizes[:, 0] * sizes[:, 1])])
                    depth = [flat[offsets[i]:offsets[i + 1]].reshape(h, w) for i, (w, h) in enumerate(sizes)]
                    return VisibilityMaps(f["T_world_cam"], f["K"], sizes, depth)
        except (OSError, KeyError, ValueError):
            pass  # unreadable: render again
    import time

    t0 = time.time()
    maps = render_visibility(run, width, log=log)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name("visibility.tmp.npz")
    np.savez(tmp, key=key, T_world_cam=maps.T_world_cam, K=maps.K, sizes=maps.sizes,
             depth=np.concatenate([d.ravel() for d in maps.depth]))
    tmp.replace(cache)
    log(f"visibility: {len(maps.depth)} training cameras rendered at {width} px wide in {time.time() - t0:.1f} s "
        f"(cached in {cache})")
    return maps


# ----------------------------------------------------------------------------- files
def save_density(grid: DensityGrid, out_dir: Path, model_scale: float) -> Path:
    """Write density.npz (atomically) into out_dir and return its path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "density.npz"
    tmp = out_dir / "density.tmp.npz"
    np.savez_compressed(tmp, x=grid.axes[0], y=grid.axes[1], z=grid.axes[2], sigma=grid.sigma.astype(np.float32),
                        bounds=grid.bounds, spacing=grid.spacing, threshold=grid.threshold,
                        occupied_points=grid.occupied_points, model_scale=model_scale,
                        frame="dataset", units="sigma per dataset unit of length")
    tmp.replace(path)
    return path


def load_density(path: Path) -> DensityGrid:
    """Read a density.npz written by save_density."""
    path = Path(path)
    if not path.is_file():
        raise NerfwError(f"{path}: density grid not found (run `nerfw density --run RUN` first)")
    with np.load(path) as d:
        return DensityGrid(axes=(d["x"], d["y"], d["z"]), sigma=d["sigma"], bounds=d["bounds"],
                           spacing=float(d["spacing"]), threshold=float(d["threshold"]))


def density_colors(sigma: np.ndarray, threshold: float) -> np.ndarray:
    """uint8 [M, 3] colours of occupied cells: grey-brown ramp over log(sigma / threshold)."""
    v = np.log(np.maximum(sigma, threshold) / threshold)
    v = v / max(float(np.percentile(v, 99)) if len(v) else 1.0, 1e-6)
    v = np.clip(v, 0, 1)[:, None]
    low, high = np.array([230, 200, 120]), np.array([120, 40, 20])
    return (low * (1 - v) + high * v).astype(np.uint8)


def write_density_ply(grid: DensityGrid, path: Path, scene: SceneData | None = None) -> Path:
    """Occupied cell centres as coloured points (+ the training cameras, red) in one PLY."""

    mask = grid.occupied_mask
    points, colors = grid.occupied_points, density_colors(grid.sigma[mask], grid.threshold)
    cameras = scene.split("train") if scene is not None else []
    if not cameras and not len(points):
        points, colors = grid.bounds, np.zeros((2, 3), np.uint8)  # an empty probe: write the box corners
    return write_cameras_ply(Path(path), cameras, points=points, point_colors=colors)


def run_density(run, out_dir: Path | None = None, resolution: int = DEFAULT_RESOLUTION,
                threshold: float | None = None, margin: float | None = None, chunk: int = 65536,
                log=print) -> tuple[DensityGrid, Path]:
    """Probe a loaded run (nerfw.training.run_io.Run); write density.npz + occupied.ply; return (grid, npz)."""
    out_dir = Path(out_dir) if out_dir else Path(run.run_dir) / "density"
    bounds = scene_box(run.scene, margin)
    grid = probe_density(run.model, run.normalization, bounds, resolution, threshold, chunk)
    npz = save_density(grid, out_dir, run.normalization.scale)
    write_density_ply(grid, out_dir / "occupied.ply", run.scene)
    occ = int(grid.occupied_mask.sum())
    log(f"density: {grid.sigma.shape} cells of {grid.spacing:.4g} over box {np.round(bounds, 3).tolist()}; "
        f"{occ} occupied ({100.0 * occ / grid.sigma.size:.1f} %) at sigma > {grid.threshold:.4g}")
    return grid, npz


