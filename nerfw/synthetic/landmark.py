"""The "collection" preset's scene: a statue on a plinth standing on a small paved patch, and its transients
(a helicopter in the sky, people in front of the plinth).

Built in the LOCAL frame (+z up, ground at z = 0, the statue's axis on the z axis) from a seeded numpy
Generator. One unit is about 3 m: the landmark (plinth + figure) is about 1.05 units across and 2.1 tall,
a person is about 0.55 units tall.
"""
from __future__ import annotations

import zlib

import numpy as np

from nerfw.synthetic import geometry
from nerfw.synthetic.geometry import Primitives
from nerfw.synthetic.layouts import Layout, _Builder

PLAZA_HALF = 1.6  # the paved patch around the plinth (grass beyond it)
LANDMARK_KIND = "landmark"


def build_landmark(rng: np.random.Generator) -> Layout:
    """A bronze figure (legs, torso, shoulders, arms, head, a raised gilded orb, a shield) on a stone plinth
    (step, block with an inscription panel on its front (-y) face, cornice), on a paved patch in a
    grass field that reaches the horizon. Materials named ``landmark_*`` make up the landmark."""
    b = _Builder()
    j = lambda a, s=0.06: float(a * (1 + rng.uniform(-s, s)))  # noqa: E731  (per-seed proportions)
    ground = b.material("ground", "paving", color=[0.6, 0.58, 0.55], color2=[0.74, 0.7, 0.64],
                        grout=[0.38, 0.36, 0.34], tile=0.25, square=[-PLAZA_HALF, PLAZA_HALF, -PLAZA_HALF, PLAZA_HALF])
    b.box([-300.0, -300.0, -20.0], [300.0, 300.0, 0.0], ground)
    stone = b.material("landmark_plinth", "stone", color=[0.62, 0.6, 0.57], color2=[0.8, 0.78, 0.74], band=0.17)
    panel = b.material("landmark_panel", "plaster", color=[0.24, 0.22, 0.2], color2=[0.4, 0.37, 0.33])
    bronze = b.material("landmark_bronze", "bronze", color=[0.36, 0.24, 0.14], color2=[0.55, 0.38, 0.22],
                        patina=[0.32, 0.58, 0.48], patina_amount=round(float(rng.uniform(0.5, 0.9)), 3))
    gilt = b.material("landmark_gilt", "plaster", color=[0.82, 0.64, 0.24], color2=[0.95, 0.8, 0.4])
    step, block, cornice = j(0.55), j(0.42), j(0.47)
    h_step, h_block = 0.08, j(0.54)
    top = h_step + h_block + 0.06
    b.box([-step, -step, 0.0], [step, step, h_step], stone)
    b.box([-block, -block, h_step], [block, block, h_step + h_block], stone)
    b.box([-cornice, -cornice, h_step + h_block], [cornice, cornice, top], stone)
    b.box([-0.25, -block - 0.012, h_step + 0.16], [0.25, -block, h_step + h_block - 0.12], panel)
    # the figure, facing -y (towards the panel side)
    z = top
    b.cylinder(0.0, 0.0, 0.3, z, z + 0.04, bronze)  # base disc
    z += 0.04
    leg_h, torso_h = j(0.42), j(0.36)
    for x in (-0.09, 0.09):
        b.cylinder(x, 0.0, 0.07, z, z + leg_h, bronze)
    z += leg_h - 0.03
    b.cylinder(0.0, 0.0, 0.16, z, z + torso_h, bronze)  # torso
    b.box([-0.22, -0.09, z + torso_h - 0.08], [0.22, 0.09, z + torso_h], bronze)  # shoulders
    b.cylinder(-0.25, 0.0, 0.05, z + 0.02, z + torso_h, bronze)  # hanging left arm
    b.box([-0.33, -0.16, z + 0.02], [-0.29, 0.16, z + 0.3], bronze)  # shield on the left arm
    arm_top = z + torso_h + j(0.42)
    b.cylinder(0.25, 0.0, 0.05, z + torso_h - 0.08, arm_top, bronze)  # raised right arm
    b.sphere([0.25, 0.0, arm_top + 0.07], 0.08, gilt)  # the orb it holds up
    z += torso_h
    b.cylinder(0.0, 0.0, 0.05, z, z + 0.05, bronze)  # neck
    b.sphere([0.0, -0.01, z + 0.14], 0.1, bronze)  # head
    return b.build(LANDMARK_KIND)


def landmark_material_ids(materials: list[dict]) -> np.ndarray:
    """Indices of the materials that make up the landmark (everything except the ground and transients)."""
    return np.array([i for i, m in enumerate(materials) if m["name"].startswith("landmark_")], np.int32)


def landmark_primitives(lay: Layout) -> Primitives:
    """The landmark's primitives alone (the ground slab dropped)."""
    ids = landmark_material_ids(lay.materials)
    p = lay.prims
    return p.subset(np.isin(p.box_mat, ids), np.isin(p.cyl_mat, ids), np.isin(p.sph_mat, ids))


def aabb(prims: Primitives, T: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact axis-aligned bounding box (lo [3], hi [3]) of primitives after the rigid transform T [4,4]
    (identity when None): box corners, the rims of rotated cylinders (a circle of radius r in the plane
    normal to a unit axis a extends r sqrt(1 - a_i^2) along axis i), spheres' centres +- r."""
    T = np.eye(4) if T is None else np.asarray(T, np.float64)
    R, t = T[:3, :3], T[:3, 3]
    los, his = [], []
    for lo, hi in zip(prims.box_lo.astype(np.float64), prims.box_hi.astype(np.float64)):
        c = np.array([np.where(np.array(bits, bool), hi, lo) for bits in np.ndindex(2, 2, 2)]) @ R.T + t
        los.append(c.min(0))
        his.append(c.max(0))
    axis = R[:, 2]
    ext_dir = np.sqrt(np.clip(1.0 - axis * axis, 0.0, 1.0))
    for cx, cy, r, z0, z1 in prims.cyl.astype(np.float64):
        caps = np.array([[cx, cy, z0], [cx, cy, z1]]) @ R.T + t
        los.append(caps.min(0) - r * ext_dir)
        his.append(caps.max(0) + r * ext_dir)
    for x, y, z, r in prims.sph.astype(np.float64):
        c = R @ [x, y, z] + t
        los.append(c - r)
        his.append(c + r)
    return np.min(los, 0), np.max(his, 0)


# --------------------------------------------------------------------------- transients
def _paint(name: str, color, color2) -> dict:
    return {"name": name, "kind": "plaster", "color": [round(float(c), 3) for c in color],
            "color2": [round(float(c), 3) for c in color2], "salt": zlib.crc32(name.encode()) % 997 + 11,
            "transient": True}


def person(rng: np.random.Generator, x: float, y: float, k: int, tag: str,
           offset: int) -> tuple[Primitives, list[dict]]:
    """A person about 0.55 units (1.7 m) tall: a body cylinder with clothes and a head sphere.
    Material indices start at `offset` (the number of materials before these)."""
    h, r = float(rng.uniform(0.52, 0.62)), float(rng.uniform(0.06, 0.085))
    upper, lower = rng.uniform(0.05, 0.95, 3), rng.uniform(0.05, 0.6, 3)
    mats = [{"name": f"{tag}_cloth{k}", "kind": "cloth", "color": upper.round(3).tolist(),
             "color2": lower.round(3).tolist(), "split_z": round(0.5 * h, 3), "striped": int(rng.uniform() < 0.4),
             "salt": int(rng.integers(1 << 20)), "transient": True},
            {"name": f"{tag}_skin{k}", "kind": "plaster", "color": [0.8, 0.62, 0.5], "color2": [0.6, 0.45, 0.35],
             "salt": 5, "transient": True}]
    p = Primitives.empty()
    p.cyl = np.array([[x, y, r, 0.0, h - 0.08]], np.float32)
    p.sph = np.array([[x, y, h - 0.04, 0.04]], np.float32)
    p.cyl_mat, p.sph_mat = np.array([offset], np.int32), np.array([offset + 1], np.int32)
    return p, mats


def helicopter(rng: np.random.Generator, center, length: float, tag: str, offset: int) -> tuple[Primitives, list[dict]]:
    """A helicopter-like blob `length` units long centred at `center`: cabin and rear body spheres, tail boom,
    fin, mast, a thin rotor disc and two skids, heading along a random +-x / +-y axis."""
    c, L = np.asarray(center, np.float64), float(length)
    axis, sign = int(rng.integers(2)), float(rng.choice([-1.0, 1.0]))
    h = np.zeros(3)
    h[axis] = sign  # heading
    side = np.zeros(3)
    side[1 - axis] = 1.0
    body = rng.choice([[0.7, 0.1, 0.08], [0.92, 0.92, 0.9], [0.1, 0.14, 0.35], [0.9, 0.75, 0.1], [0.12, 0.12, 0.12]])
    mats = [_paint(f"{tag}_body", np.array(body) * 0.85, np.minimum(np.array(body) * 1.1, 1)),
            _paint(f"{tag}_metal", [0.16, 0.16, 0.17], [0.3, 0.3, 0.32])]

    def box(centre, half):  # centre [3], half extents [3] -> (lo, hi)
        return np.asarray(centre) - half, np.asarray(centre) + half

    def half(along, across, up):
        e = np.abs(h) * along + side * across
        e[2] = up
        return e

    boxes = [box(c - 0.47 * L * h + [0, 0, 0.03 * L], half(0.24 * L, 0.025 * L, 0.025 * L)),  # tail boom
             box(c - 0.69 * L * h + [0, 0, 0.1 * L], half(0.04 * L, 0.01 * L, 0.09 * L))]  # fin
    for s in (-1, 1):  # skids
        boxes.append(box(c + s * 0.12 * L * side - [0, 0, 0.25 * L], half(0.25 * L, 0.012 * L, 0.012 * L)))
    p = Primitives.empty()
    p.box_lo = np.array([b[0] for b in boxes], np.float32)
    p.box_hi = np.array([b[1] for b in boxes], np.float32)
    p.box_mat = np.array([offset, offset + 1, offset + 1, offset + 1], np.int32)
    p.cyl = np.array([[c[0], c[1], 0.02 * L, c[2] + 0.12 * L, c[2] + 0.25 * L],  # mast
                      [c[0], c[1], 0.5 * L, c[2] + 0.25 * L, c[2] + 0.26 * L]], np.float32)  # rotor disc
    p.cyl_mat = np.array([offset + 1, offset + 1], np.int32)
    p.sph = np.array([[*c, 0.2 * L], [*(c - 0.17 * L * h), 0.15 * L]], np.float32)  # cabin, rear body
    p.sph_mat = np.array([offset, offset], np.int32)
    return p, mats


def clear_of(prims: Primitives, points: np.ndarray, margin: float) -> bool:
    """True when every point [N,3] is at least `margin` away from the primitives."""
    return bool((geometry.signed_distance(prims, points) > margin).all())
