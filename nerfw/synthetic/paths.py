"""Camera paths (local frame, +z up): a person walking with a phone, or a handheld RGB-D sensor in a room.

Poses are camera-to-local ``T_local_cam`` with OpenCV axes (x right, y down, z forward).
"""
from __future__ import annotations

import math

import numpy as np

from nerfw.cameras.conventions import axis_angle_to_rotmat, make_T
from nerfw.synthetic.layouts import EYE_HEIGHT, ROOM


def look_at(center: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Camera-to-local rotation [3,3] looking from center at target with +z up (OpenCV axes, no roll)."""
    f = np.asarray(target, float) - center
    f /= np.linalg.norm(f)
    r = np.cross(f, [0.0, 0.0, 1.0])
    r /= np.linalg.norm(r)
    down = np.cross(f, r)
    return np.stack([r, down, f], axis=1)


def _smooth(rng: np.random.Generator, s: np.ndarray, amp: float) -> np.ndarray:
    """A smooth random wiggle along path parameter s in [0,1]: two sinusoids + small frame noise."""
    out = np.zeros_like(s)
    for cycles in (rng.uniform(0.5, 1.5), rng.uniform(2.0, 4.0)):
        out += amp / 2 * np.sin(2 * math.pi * cycles * s + rng.uniform(0, 2 * math.pi))
    return out + rng.normal(0, amp * 0.1, len(s))


def _jittered(rng, centers: np.ndarray, targets: np.ndarray, yaw: float, pitch: float, roll: float) -> list:
    """Poses from centres/targets [n,3] with smooth yaw/pitch/roll jitter (degrees amplitude)."""
    s = np.linspace(0, 1, len(centers))
    angles = np.radians(np.stack([_smooth(rng, s, pitch), _smooth(rng, s, yaw), _smooth(rng, s, roll)], 1))
    poses = []
    for c, t, (ax, ay, az) in zip(centers, targets, angles):
        # camera-frame rotations: pitch about x (right), yaw about y (down), roll about z (forward)
        R_jit = axis_angle_to_rotmat([0, ay, 0]) @ axis_angle_to_rotmat([ax, 0, 0]) @ axis_angle_to_rotmat([0, 0, az])
        poses.append(make_T(look_at(c, t) @ R_jit, c))
    return poses


def _split(n: int, parts: int) -> list[int]:
    return [n // parts + (1 if k < n % parts else 0) for k in range(parts)]


# (walk start xy, walk end xy, look target start xyz, look target end xyz)
_OUTDOOR_TRAIN = [((-14.0, -12.0), (9.0, -8.0), (-28.0, 6.0, 4.0), (6.0, 20.0, 5.0)),
                  ((14.0, -13.0), (-9.0, -8.0), (28.0, 6.0, 4.0), (-6.0, 20.0, 5.0))]
_OUTDOOR_TEST = [((-11.0, -9.5), (11.0, -11.0), (-20.0, 20.0, 4.5), (22.0, 18.0, 4.5)),
                 ((10.0, -7.0), (-10.0, -6.5), (28.0, 2.0, 4.0), (-28.0, 4.0, 4.0))]


def outdoor_sequence(rng: np.random.Generator, n: int, spec) -> list[np.ndarray]:
    """A walk through the square at eye height, looking at the facades."""
    (x0, y0), (x1, y1), t0, t1 = spec
    jitter = rng.uniform(-1.0, 1.0, 4)
    s = np.linspace(0, 1, n) if n > 1 else np.array([0.5])
    xy0, xy1 = np.array([x0, y0]) + jitter[:2], np.array([x1, y1]) + jitter[2:]
    xy = xy0[None] + s[:, None] * (xy1 - xy0)[None]
    side = np.array([-(xy1 - xy0)[1], (xy1 - xy0)[0]]) / np.linalg.norm(xy1 - xy0)
    xy += side[None] * (0.8 * np.sin(2 * math.pi * s * rng.uniform(0.5, 1.2) + rng.uniform(0, 6.3)))[:, None]
    z = EYE_HEIGHT + 0.03 * np.sin(2 * math.pi * 7 * s) + rng.normal(0, 0.02, n)  # walking bob
    centers = np.column_stack([xy, z])
    targets = np.asarray(t0)[None] + s[:, None] * (np.asarray(t1) - np.asarray(t0))[None]
    return _jittered(rng, centers, targets, yaw=5.0, pitch=3.0, roll=2.5)


def indoor_sequence(rng: np.random.Generator, n: int, rx: float, ry: float, z: float, phase: float) -> list:
    """A handheld sensor circling the table, looking across the room."""
    X, Y, _ = ROOM
    c0 = np.array([X / 2, Y / 2])
    a = phase + np.linspace(0, 2 * math.pi, n, endpoint=False)
    centers = np.column_stack([c0[0] + rx * np.cos(a), c0[1] + ry * np.sin(a),
                               z + 0.05 * np.sin(3 * a) + rng.normal(0, 0.01, n)])
    # look across the table toward the opposite side, slightly off-centre
    targets = np.column_stack([c0[0] - 0.9 * np.cos(a + 0.3 * np.sin(2 * a)), c0[1] - 0.9 * np.sin(a + 0.3 * np.sin(2 * a)),
                               np.full(n, 0.55)])
    return _jittered(rng, centers, targets, yaw=8.0, pitch=5.0, roll=3.0)


def make_cameras(kind: str, rng: np.random.Generator, n_train: int, n_test: int) -> list[tuple[str, int, np.ndarray]]:
    """[(split, sequence number (1-based), T_local_cam [4,4])] in order: train sequences, then test."""
    out = []
    seq = 0
    for split, n, specs in (("train", n_train, _OUTDOOR_TRAIN), ("test", n_test, _OUTDOOR_TEST)):
        if n == 0:
            continue
        parts = 2 if n >= 4 else 1
        for k, m in enumerate(_split(n, parts)):
            seq += 1
            if kind == "outdoor":
                poses = outdoor_sequence(rng, m, specs[k])
            else:
                rx, ry, z, ph = {("train", 0): (1.8, 1.4, 1.45, 0.0), ("train", 1): (1.5, 1.15, 1.25, 1.0),
                                 ("test", 0): (1.65, 1.3, 1.35, 0.4), ("test", 1): (1.6, 1.25, 1.4, 2.2)}[(split, k)]
                poses = indoor_sequence(rng, m, rx, ry, z, ph + rng.uniform(-0.2, 0.2))
            out += [(split, seq, T) for T in poses]
    return out
