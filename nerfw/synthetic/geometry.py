"""Analytic scene primitives: vectorised ray intersection, signed distance and frustum culling.

All geometry lives in the generator's LOCAL frame (metres, +z up). Primitives are
axis-aligned boxes, vertical capped cylinders and spheres; each carries a material index.
A ray is ``o + t d``; with camera rays from ``conventions.camera_rays`` t is the z-depth.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EPS = 1e-4  # minimum ray parameter of a valid hit (metres along a camera-z-normalised ray)
INF = np.float32(np.inf)
KIND_NONE, KIND_BOX, KIND_CYL, KIND_SPH = -1, 0, 1, 2


@dataclass
class Primitives:
    """Arrays of primitives in the local frame."""

    box_lo: np.ndarray  # [nb, 3] min corners
    box_hi: np.ndarray  # [nb, 3] max corners
    box_mat: np.ndarray  # [nb] int material index
    cyl: np.ndarray  # [nc, 5] (cx, cy, radius, z0, z1) vertical capped cylinders
    cyl_mat: np.ndarray  # [nc]
    sph: np.ndarray  # [ns, 4] (cx, cy, cz, radius)
    sph_mat: np.ndarray  # [ns]

    @staticmethod
    def empty() -> "Primitives":
        z = np.zeros
        return Primitives(z((0, 3), np.float32), z((0, 3), np.float32), z(0, np.int32),
                          z((0, 5), np.float32), z(0, np.int32), z((0, 4), np.float32), z(0, np.int32))

    def concat(self, other: "Primitives") -> "Primitives":
        c = np.concatenate
        return Primitives(c([self.box_lo, other.box_lo]), c([self.box_hi, other.box_hi]),
                          c([self.box_mat, other.box_mat]), c([self.cyl, other.cyl]),
                          c([self.cyl_mat, other.cyl_mat]), c([self.sph, other.sph]),
                          c([self.sph_mat, other.sph_mat]))

    def subset(self, box_keep: np.ndarray, cyl_keep: np.ndarray, sph_keep: np.ndarray) -> "Primitives":
        return Primitives(self.box_lo[box_keep], self.box_hi[box_keep], self.box_mat[box_keep],
                          self.cyl[cyl_keep], self.cyl_mat[cyl_keep], self.sph[sph_keep], self.sph_mat[sph_keep])

    def to_json(self, materials: list[dict]) -> dict:
        r = lambda a: np.round(np.asarray(a, dtype=np.float64), 6).tolist()  # noqa: E731
        return {
            "boxes": [{"lo": r(lo), "hi": r(hi), "material": materials[m]["name"]}
                      for lo, hi, m in zip(self.box_lo, self.box_hi, self.box_mat)],
            "cylinders": [{"center_xy": r(c[:2]), "radius": r(c[2]), "z0": r(c[3]), "z1": r(c[4]),
                           "material": materials[m]["name"]} for c, m in zip(self.cyl, self.cyl_mat)],
            "spheres": [{"center": r(s[:3]), "radius": r(s[3]), "material": materials[m]["name"]}
                        for s, m in zip(self.sph, self.sph_mat)],
        }

    @staticmethod
    def from_json(d: dict, materials: list[dict]) -> "Primitives":
        index = {m["name"]: i for i, m in enumerate(materials)}
        p = Primitives.empty()
        if d["boxes"]:
            p.box_lo = np.array([b["lo"] for b in d["boxes"]], np.float32)
            p.box_hi = np.array([b["hi"] for b in d["boxes"]], np.float32)
            p.box_mat = np.array([index[b["material"]] for b in d["boxes"]], np.int32)
        if d["cylinders"]:
            p.cyl = np.array([c["center_xy"] + [c["radius"], c["z0"], c["z1"]] for c in d["cylinders"]], np.float32)
            p.cyl_mat = np.array([index[c["material"]] for c in d["cylinders"]], np.int32)
        if d["spheres"]:
            p.sph = np.array([s["center"] + [s["radius"]] for s in d["spheres"]], np.float32)
            p.sph_mat = np.array([index[s["material"]] for s in d["spheres"]], np.int32)
        return p

    def bounding_boxes(self) -> tuple[np.ndarray, np.ndarray]:
        """AABBs of all primitives in the order boxes, cylinders, spheres: (lo [n,3], hi [n,3])."""
        c, s = self.cyl, self.sph
        cyl_lo = np.stack([c[:, 0] - c[:, 2], c[:, 1] - c[:, 2], c[:, 3]], -1)
        cyl_hi = np.stack([c[:, 0] + c[:, 2], c[:, 1] + c[:, 2], c[:, 4]], -1)
        return (np.concatenate([self.box_lo, cyl_lo, s[:, :3] - s[:, 3:]]),
                np.concatenate([self.box_hi, cyl_hi, s[:, :3] + s[:, 3:]]))


@dataclass
class Hit:
    t: np.ndarray  # [N] ray parameter (z-depth for camera rays), inf for a miss
    normal: np.ndarray  # [N, 3] unit outward normal (zeros for a miss)
    material: np.ndarray  # [N] material index, -1 for a miss
    kind: np.ndarray  # [N] KIND_* of the primitive hit
    index: np.ndarray  # [N] index of the primitive within its kind (-1 for a miss)


# --------------------------------------------------------------------------- intersection
def intersect_boxes(o: np.ndarray, d: np.ndarray, lo: np.ndarray, hi: np.ndarray):
    """Slab test. o, d [N, 3]; lo, hi [nb, 3] -> (t [N], index [N], normal [N, 3])."""
    n = len(o)
    if len(lo) == 0:
        return np.full(n, INF), np.full(n, -1), np.zeros((n, 3), np.float32)
    inv = 1.0 / d  # [N, 3]; d has no exact zeros (see _safe_dirs)
    tn = np.full((n, len(lo)), -np.inf, np.float32)  # [N, nb] entry parameter
    tf = np.full((n, len(lo)), np.inf, np.float32)  # [N, nb] exit parameter
    for k in range(3):  # per axis (a reduction over a length-3 axis is slow in numpy)
        a = (lo[None, :, k] - o[:, k:k + 1]) * inv[:, k:k + 1]
        b = (hi[None, :, k] - o[:, k:k + 1]) * inv[:, k:k + 1]
        np.maximum(tn, np.minimum(a, b), out=tn)
        np.minimum(tf, np.maximum(a, b), out=tf)
    tn = np.where((tf >= tn) & (tn > EPS), tn, INF)
    idx = tn.argmin(1)
    rows = np.arange(n)
    t = tn[rows, idx]
    tnear = np.minimum((lo[idx] - o) * inv, (hi[idx] - o) * inv)  # [N, 3] for the chosen box only
    axis = tnear.argmax(-1)  # the slab entered last gives the face
    normal = np.zeros((n, 3), np.float32)
    normal[rows, axis] = -np.sign(d[rows, axis])
    return t, idx, normal


def intersect_cylinders(o: np.ndarray, d: np.ndarray, cyl: np.ndarray):
    """Vertical capped cylinders [nc, 5] -> (t [N], index [N], normal [N, 3])."""
    n = len(o)
    if len(cyl) == 0:
        return np.full(n, INF), np.full(n, -1), np.zeros((n, 3), np.float32)
    cx, cy, r, z0, z1 = (cyl[:, k][None] for k in range(5))  # [1, nc]
    ox, oy, oz = o[:, 0:1] - cx, o[:, 1:2] - cy, o[:, 2:3]  # [N, nc]
    dx, dy, dz = d[:, 0:1], d[:, 1:2], d[:, 2:3]  # [N, 1]
    a = np.maximum(dx * dx + dy * dy, 1e-12)
    b = ox * dx + oy * dy
    c = ox * ox + oy * oy - r * r
    disc = b * b - a * c
    ts = (-b - np.sqrt(np.maximum(disc, 0))) / a
    zs = oz + ts * dz
    ts = np.where((disc >= 0) & (ts > EPS) & (zs >= z0) & (zs <= z1), ts, INF)
    tcap = np.full_like(ts, INF)
    for zc in (z0, z1):
        tc = (zc - oz) / dz
        xc, yc = ox + tc * dx, oy + tc * dy
        tcap = np.minimum(tcap, np.where((tc > EPS) & (xc * xc + yc * yc <= r * r), tc, INF))
    tall = np.minimum(ts, tcap)
    idx = tall.argmin(1)
    rows = np.arange(n)
    t = tall[rows, idx]
    on_side = ts[rows, idx] <= tcap[rows, idx]
    p = o + np.where(np.isfinite(t), t, 0)[:, None] * d
    normal = np.zeros((n, 3), np.float32)
    radial = (p[:, :2] - cyl[idx, :2]) / cyl[idx, 2:3]
    normal[:, :2] = np.where(on_side[:, None], radial, 0)
    normal[:, 2] = np.where(on_side, 0, -np.sign(dz[:, 0]))
    return t, idx, normal


def intersect_spheres(o: np.ndarray, d: np.ndarray, sph: np.ndarray):
    """Spheres [ns, 4] -> (t [N], index [N], normal [N, 3])."""
    n = len(o)
    if len(sph) == 0:
        return np.full(n, INF), np.full(n, -1), np.zeros((n, 3), np.float32)
    a = (d * d).sum(-1)[:, None]  # [N, 1]
    b = np.zeros((n, len(sph)), np.float32)
    c = -(sph[None, :, 3] ** 2)
    for k in range(3):
        oc = o[:, k:k + 1] - sph[None, :, k]  # [N, ns]
        b += oc * d[:, k:k + 1]
        c = c + oc * oc
    disc = b * b - a * c
    t = (-b - np.sqrt(np.maximum(disc, 0))) / a
    t = np.where((disc >= 0) & (t > EPS), t, INF)
    idx = t.argmin(1)
    rows = np.arange(n)
    t = t[rows, idx]
    p = o + np.where(np.isfinite(t), t, 0)[:, None] * d
    normal = ((p - sph[idx, :3]) / sph[idx, 3:4]).astype(np.float32)
    return t, idx, normal


def _safe_dirs(d: np.ndarray) -> np.ndarray:
    """Replace exact zero direction components by a tiny value (keeps the slab test NaN-free)."""
    return np.where(np.abs(d) < 1e-9, np.float32(1e-9), d).astype(np.float32)


def trace(prims: Primitives, o: np.ndarray, d: np.ndarray) -> Hit:
    """Nearest hit of rays o, d [N, 3] (local frame) against all primitives."""
    o, d = o.astype(np.float32), _safe_dirs(d)
    results = [intersect_boxes(o, d, prims.box_lo, prims.box_hi),
               intersect_cylinders(o, d, prims.cyl), intersect_spheres(o, d, prims.sph)]
    mats = [prims.box_mat, prims.cyl_mat, prims.sph_mat]
    t_all = np.stack([r[0] for r in results], 0)  # [3, N]
    kind = t_all.argmin(0)
    rows = np.arange(len(o))
    t = t_all[kind, rows]
    miss = ~np.isfinite(t)
    index = np.stack([r[1] for r in results], 0)[kind, rows]
    normal = np.stack([r[2] for r in results], 0)[kind, rows]
    material = np.full(len(o), -1, np.int32)
    for k, m in enumerate(mats):
        sel = (kind == k) & ~miss
        material[sel] = m[index[sel]]
    kind = np.where(miss, KIND_NONE, kind)
    index = np.where(miss, -1, index)
    normal[miss] = 0
    return Hit(t.astype(np.float32), normal.astype(np.float32), material, kind, index)


# --------------------------------------------------------------------------- signed distance
def signed_distance(prims: Primitives, p: np.ndarray) -> np.ndarray:
    """Exact signed distance [N] from points p [N, 3] to the union of the primitives (negative inside)."""
    p = np.asarray(p, dtype=np.float64).reshape(-1, 3)
    best = np.full(len(p), np.inf)
    if len(prims.box_lo):
        c = (prims.box_lo + prims.box_hi) / 2.0
        h = (prims.box_hi - prims.box_lo) / 2.0
        q = np.abs(p[:, None] - c[None]) - h[None]  # [N, nb, 3]
        d = np.linalg.norm(np.maximum(q, 0), axis=-1) + np.minimum(q.max(-1), 0)
        best = np.minimum(best, d.min(1))
    if len(prims.cyl):
        cy = prims.cyl.astype(np.float64)
        dxy = np.linalg.norm(p[:, None, :2] - cy[None, :, :2], axis=-1) - cy[None, :, 2]
        zc, hz = (cy[:, 3] + cy[:, 4]) / 2, (cy[:, 4] - cy[:, 3]) / 2
        dz = np.abs(p[:, None, 2] - zc[None]) - hz[None]
        d = np.minimum(np.maximum(dxy, dz), 0) + np.hypot(np.maximum(dxy, 0), np.maximum(dz, 0))
        best = np.minimum(best, d.min(1))
    if len(prims.sph):
        s = prims.sph.astype(np.float64)
        d = np.linalg.norm(p[:, None] - s[None, :, :3], axis=-1) - s[None, :, 3]
        best = np.minimum(best, d.min(1))
    return best


# --------------------------------------------------------------------------- culling
def projected_row_ranges(prims: Primitives, T_cam_local: np.ndarray, fx, fy, cx, cy, width, height):
    """Per primitive (boxes, cylinders, spheres order): (visible [n] bool, vmin [n], vmax [n]) in pixels.

    A primitive whose bounding box straddles the camera plane is kept for every row.
    """
    behind, straddle, umin, umax, vmin, vmax = projected_boxes(prims, T_cam_local, fx, fy, cx, cy)
    visible = ~behind & (straddle | ((umax >= 0) & (umin <= width)))
    return visible, vmin, vmax


def projected_boxes(prims: Primitives, T_cam_local: np.ndarray, fx, fy, cx, cy):
    """Per primitive (boxes, cylinders, spheres order), its bounding box through a PINHOLE camera:
    (behind [n] bool: entirely behind the camera plane, straddle [n] bool: partly behind it,
    umin, umax, vmin, vmax [n] pixel ranges, +-inf where straddling).

    For a lens with distortion, compare these ranges with the pinhole (undistorted) coordinates of the rays."""
    lo, hi = prims.bounding_boxes()
    if len(lo) == 0:
        z = np.zeros(0)
        return np.zeros(0, bool), np.zeros(0, bool), z, z, z, z
    corners = np.stack([np.where(np.array(bits)[None], hi, lo) for bits in np.ndindex(2, 2, 2)], 1)  # [n,8,3]
    Xc = corners @ T_cam_local[:3, :3].T + T_cam_local[:3, 3]
    z = Xc[..., 2]
    straddle = (z <= 0.05).any(1)
    behind = (z <= 0.05).all(1)
    zs = np.maximum(z, 0.05)
    u = Xc[..., 0] / zs * fx + cx
    v = Xc[..., 1] / zs * fy + cy
    inf = np.inf
    return (behind, straddle, np.where(straddle, -inf, u.min(1)), np.where(straddle, inf, u.max(1)),
            np.where(straddle, -inf, v.min(1)), np.where(straddle, inf, v.max(1)))
