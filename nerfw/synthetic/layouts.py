"""Scene layouts (an outdoor town square, an indoor room), camera paths, transients and landmark candidates.

Everything is built in the LOCAL frame (metres, +z up) from a seeded numpy Generator; the dataset frame
is a rigid transform of it (``T_dataset_local``), chosen so that the dataset's origin is far from the
content (outdoor) or at a sensor-like frame with y down (indoor), as in the real datasets.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from nerfw.cameras.conventions import axis_angle_to_rotmat, make_T
from nerfw.synthetic.geometry import Primitives

EYE_HEIGHT = 1.6  # metres, phone held at eye level


@dataclass
class Layout:
    """A static scene in the local frame."""

    kind: str  # "outdoor" | "indoor"
    prims: Primitives
    materials: list[dict]
    landmarks: list[dict] = field(default_factory=list)  # {"point": [3] local, "feature": str}


class _Builder:
    def __init__(self):
        self.mats: list[dict] = []
        self.boxes: list[tuple] = []
        self.cyls: list[tuple] = []
        self.sphs: list[tuple] = []
        self.landmarks: list[dict] = []

    def material(self, name: str, kind: str, **params) -> int:
        params.setdefault("salt", len(self.mats) * 101 + 7)
        self.mats.append({"name": name, "kind": kind, **params})
        return len(self.mats) - 1

    def box(self, lo, hi, mat: int):
        self.boxes.append((lo, hi, mat))

    def cylinder(self, cx, cy, r, z0, z1, mat: int):
        self.cyls.append((cx, cy, r, z0, z1, mat))

    def sphere(self, c, r, mat: int):
        self.sphs.append((*c, r, mat))

    def corners_landmarks(self, lo, hi, feature: str):
        for bits in np.ndindex(2, 2, 2):
            self.landmarks.append({"point": [hi[k] if bits[k] else lo[k] for k in range(3)], "feature": feature})

    def build(self, kind: str) -> Layout:
        p = Primitives.empty()
        if self.boxes:
            p.box_lo = np.array([b[0] for b in self.boxes], np.float32)
            p.box_hi = np.array([b[1] for b in self.boxes], np.float32)
            p.box_mat = np.array([b[2] for b in self.boxes], np.int32)
        if self.cyls:
            p.cyl = np.array([c[:5] for c in self.cyls], np.float32)
            p.cyl_mat = np.array([c[5] for c in self.cyls], np.int32)
        if self.sphs:
            p.sph = np.array([s[:4] for s in self.sphs], np.float32)
            p.sph_mat = np.array([s[4] for s in self.sphs], np.int32)
        return Layout(kind, p, self.mats, self.landmarks)


# --------------------------------------------------------------------------- outdoor
def _facade_material(b: _Builder, rng, name: str) -> int:
    base = np.array(rng.choice([[0.62, 0.36, 0.28], [0.78, 0.7, 0.55], [0.7, 0.55, 0.42], [0.55, 0.52, 0.5]]))
    return b.material(
        name, "facade", color=(base * 0.9).round(3).tolist(), color2=np.minimum(base * 1.12, 1).round(3).tolist(),
        mortar=[0.8, 0.78, 0.72], band=[0.86, 0.83, 0.76], frame=[0.93, 0.93, 0.9],
        glass=[0.12, 0.16, 0.2], brick=[0.24, 0.075], floor_h=round(float(rng.uniform(3.2, 3.8)), 3),
        cell_w=round(float(rng.uniform(2.6, 3.4)), 3), window=[1.2, 1.7, 0.9])


def _window_landmarks(b: _Builder, lo, hi, mat: dict, faces: str):
    """Corners of every window frame on the named faces ('S','N','E','W') of a facade box."""
    fh, cw = mat["floor_h"], mat["cell_w"]
    ww, wh, sill = mat["window"]
    n_floors = int(math.floor((hi[2] - lo[2] - 0.6) / fh))
    for face in faces:
        along = 0 if face in "SN" else 1
        L = hi[along] - lo[along]
        n_cells = int(math.floor(L / cw))
        margin = (L - n_cells * cw) / 2
        fixed = {"S": (1, lo[1]), "N": (1, hi[1]), "W": (0, lo[0]), "E": (0, hi[0])}[face]
        for fi in range(1, n_floors):  # upper floors (the ground floor has different windows)
            for ci in range(n_cells):
                for dx in (-ww / 2, ww / 2):
                    for z in (sill, sill + wh):
                        pt = [0.0, 0.0, lo[2] + fi * fh + z]
                        pt[along] = lo[along] + margin + (ci + 0.5) * cw + dx
                        pt[fixed[0]] = fixed[1]
                        b.landmarks.append({"point": pt, "feature": "window_corner"})


def build_outdoor(rng: np.random.Generator) -> Layout:
    """A town square: paved ground, facades on three sides, a tower, pillars, benches, trees, a fountain."""
    b = _Builder()
    ground = b.material("ground", "paving", color=[0.62, 0.6, 0.56], color2=[0.75, 0.71, 0.64],
                        grout=[0.4, 0.38, 0.36], tile=0.6, square=[-27.0, 27.0, -18.0, 19.0])
    b.box([-300, -300, -20], [300, 300, 0], ground)
    buildings = [  # (lo, hi, faces with window landmarks)
        ([-26.0, 20.0, 0.0], [-4.0, 32.0, float(rng.uniform(13, 16))], "SE"),
        ([4.0, 20.0, 0.0], [26.0, 32.0, float(rng.uniform(12, 15))], "SW"),
        ([-4.0, 23.0, 0.0], [4.0, 31.0, float(rng.uniform(24, 28))], "S"),  # tower
        ([-40.0, -14.0, 0.0], [-28.0, 16.0, float(rng.uniform(10, 13))], "E"),
        ([28.0, -12.0, 0.0], [40.0, 16.0, float(rng.uniform(11, 14))], "W"),
        ([-24.0, -44.0, 0.0], [22.0, -32.0, float(rng.uniform(9, 12))], "N"),
    ]
    for k, (lo, hi, faces) in enumerate(buildings):
        lo, hi = [round(x, 3) for x in lo], [round(x, 3) for x in hi]
        m = _facade_material(b, rng, f"facade{k}")
        b.box(lo, hi, m)
        _window_landmarks(b, lo, hi, b.mats[m], faces)
    stone = b.material("stone", "stone", color=[0.72, 0.7, 0.66], color2=[0.86, 0.84, 0.8], band=0.5)
    for x in np.linspace(-16, 16, 6):  # colonnade in front of the main facade
        b.cylinder(float(x), 14.0, 0.35, 0.0, 4.0, stone)
        b.box([float(x) - 0.5, 13.5, 4.0], [float(x) + 0.5, 14.5, 4.4], stone)
        b.corners_landmarks([float(x) - 0.5, 13.5, 4.0], [float(x) + 0.5, 14.5, 4.4], "capital_corner")
    b.cylinder(0.0, 4.0, 3.0, 0.0, 0.7, stone)  # fountain basin
    b.cylinder(0.0, 4.0, 0.4, 0.7, 2.4, stone)
    b.sphere([0.0, 4.0, 2.6], 0.45, stone)
    wood = b.material("bench", "wood", color=[0.45, 0.3, 0.18], color2=[0.6, 0.42, 0.26], plank=0.1)
    for x, y in [(-12, 8), (-6, 9), (7, 9), (13, 8), (-22, 0), (22, 1)]:
        along_x = abs(x) < 20
        hx, hy = (0.9, 0.25) if along_x else (0.25, 0.9)
        b.box([x - hx, y - hy, 0.0], [x + hx, y + hy, 0.45], wood)
        b.corners_landmarks([x - hx, y - hy, 0.0], [x + hx, y + hy, 0.45], "bench_corner")
    leaf = b.material("foliage", "foliage", color=[0.12, 0.3, 0.08], color2=[0.35, 0.55, 0.15])
    bark = b.material("bark", "bark", color=[0.25, 0.18, 0.12], color2=[0.42, 0.32, 0.22])
    for k in range(7):
        ang = rng.uniform(0, 2 * math.pi)
        x = float(rng.choice([-1, 1]) * rng.uniform(18, 25))
        y = float(rng.uniform(-14, 10))
        h = float(rng.uniform(2.5, 3.5))
        b.cylinder(x, y, 0.18, 0.0, h, bark)
        b.sphere([x + 0.2 * math.cos(ang), y + 0.2 * math.sin(ang), h + 1.2], float(rng.uniform(1.5, 2.2)), leaf)
    for x in (-20.0, 20.0):  # lamp posts
        b.cylinder(x, 12.0, 0.08, 0.0, 4.5, stone)
    return b.build("outdoor")


# --------------------------------------------------------------------------- indoor
ROOM = (6.0, 5.0, 2.7)  # x, y, z extent of the room interior


def build_indoor(rng: np.random.Generator) -> Layout:
    """A room (textured floor, walls, ceiling) with furniture, paintings and a checkerboard on the table."""
    b = _Builder()
    X, Y, Z = ROOM
    floor = b.material("floor", "wood", color=[0.55, 0.38, 0.22], color2=[0.72, 0.52, 0.32], plank=0.18)
    walls = [b.material(f"wall{k}", "wallpaper", color=c, color2=(np.array(c) * 0.85).round(3).tolist(), stripe=0.3)
             for k, c in enumerate([[0.85, 0.8, 0.7], [0.7, 0.78, 0.82], [0.82, 0.75, 0.78], [0.78, 0.82, 0.7]])]
    ceiling = b.material("ceiling", "plaster", color=[0.9, 0.9, 0.88], color2=[0.8, 0.8, 0.78])
    t = 0.3
    b.box([-t, -t, -t], [X + t, Y + t, 0.0], floor)
    b.box([-t, -t, Z], [X + t, Y + t, Z + t], ceiling)
    b.box([-t, -t, 0.0], [0.0, Y + t, Z], walls[0])
    b.box([X, -t, 0.0], [X + t, Y + t, Z], walls[1])
    b.box([-t, -t, 0.0], [X + t, 0.0, Z], walls[2])
    b.box([-t, Y, 0.0], [X + t, Y + t, Z], walls[3])
    wood = b.material("furniture", "wood", color=[0.4, 0.26, 0.15], color2=[0.55, 0.37, 0.22], plank=0.12)
    fabric = b.material("sofa", "plaster", color=[0.25, 0.35, 0.55], color2=[0.35, 0.45, 0.65])
    checker = b.material("chessboard", "checker", color=[0.1, 0.1, 0.1], color2=[0.92, 0.9, 0.85], square=0.06)
    furniture = [  # (lo, hi, material)
        ([2.2, 2.05, 0.7], [3.8, 2.95, 0.78], wood),  # table top
        ([2.3, 2.15, 0.0], [2.4, 2.25, 0.7], wood), ([3.6, 2.15, 0.0], [3.7, 2.25, 0.7], wood),
        ([2.3, 2.75, 0.0], [2.4, 2.85, 0.7], wood), ([3.6, 2.75, 0.0], [3.7, 2.85, 0.7], wood),
        ([2.75, 2.26, 0.78], [3.23, 2.74, 0.82], checker),  # board on the table
        ([0.5, 4.55, 0.0], [2.3, 5.0, 1.9], wood),  # shelf
        ([0.0, 0.8, 0.0], [0.85, 2.9, 0.8], fabric),  # sofa
        ([4.6, 0.0, 0.0], [5.8, 0.5, 1.0], wood),  # cabinet
        ([5.4, 3.2, 0.0], [6.0, 4.6, 0.75], wood),  # desk
        ([float(rng.uniform(3.9, 4.3)), 2.3, 0.0], [float(rng.uniform(4.5, 4.7)), 2.8, 0.45], fabric),  # stool
    ]
    for lo, hi, m in furniture:
        b.box(lo, hi, m)
        b.corners_landmarks(lo, hi, "furniture_corner")
    paintings = [([3.0, Y - 0.03, 1.2], [4.4, Y, 2.1]), ([X - 0.03, 0.8, 1.1], [X, 2.4, 2.0]),
                 ([0.0, 3.3, 1.1], [0.03, 4.4, 2.0]), ([1.0, 0.0, 1.2], [2.4, 0.03, 2.0])]
    for k, (lo, hi) in enumerate(paintings):
        m = b.material(f"painting{k}", "painting", color=[0.5, 0.5, 0.5], color2=[0.3, 0.22, 0.1])
        b.box(lo, hi, m)
        b.corners_landmarks(lo, hi, "painting_corner")
    b.cylinder(5.5, 4.0, 0.12, 0.75, 1.2, wood)  # lamp on the desk
    b.sphere([5.5, 4.0, 1.35], 0.18, fabric)
    return b.build("indoor")


# --------------------------------------------------------------------------- dataset frame
def dataset_transform(kind: str, rng: np.random.Generator, first_center_local: np.ndarray) -> np.ndarray:
    """T_dataset_local [4,4]. Outdoor: rotation about +z and an offset far from the content (z stays up).
    Indoor: a sensor-like world with y down, origin near the first training camera (as 7-Scenes)."""
    if kind == "outdoor":
        yaw = float(rng.uniform(20, 70))
        R = axis_angle_to_rotmat([0, 0, math.radians(yaw)])
        return make_T(R, [480.0, -320.0, 12.0])
    R0 = np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])  # local +z (up) -> dataset -y
    R = axis_angle_to_rotmat([0, math.radians(float(rng.uniform(-60, 60))), 0]) @ R0
    return make_T(R, -R @ first_center_local + rng.uniform(-0.3, 0.3, 3))
