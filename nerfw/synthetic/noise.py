"""Deterministic procedural noise: integer hashing and 2-D value noise.

Everything is a pure function of its inputs (no random state), so a texture evaluated at the same 3-D
surface point always gives the same colour, in any process and in any order.
"""
from __future__ import annotations

import numpy as np

_M1, _M2, _M3, _M4 = np.uint32(0x8DA6B343), np.uint32(0xD8163841), np.uint32(0xCB1AB31F), np.uint32(0x5BD1E995)


def hash2(ix: np.ndarray, iy: np.ndarray, salt: int = 0) -> np.ndarray:
    """Integer lattice coordinates [...] (any int dtype) -> pseudo-random float32 in [0, 1) [...]."""
    h = np.asarray(ix).astype(np.int64).astype(np.uint32) * _M1
    h ^= np.asarray(iy).astype(np.int64).astype(np.uint32) * _M2
    h ^= np.uint32((salt * 0x9E3779B1 * int(_M3)) & 0xFFFFFFFF)
    h ^= h >> np.uint32(13)
    h *= _M4
    h ^= h >> np.uint32(15)
    h *= _M1
    h ^= h >> np.uint32(16)
    return (h >> np.uint32(8)).astype(np.float32) * np.float32(1.0 / (1 << 24))


def value_noise2(u: np.ndarray, v: np.ndarray, salt: int = 0) -> np.ndarray:
    """Smooth 2-D value noise in [0, 1) at continuous coordinates u, v [...] (lattice spacing 1)."""
    iu, iv = np.floor(u), np.floor(v)
    fu, fv = (u - iu).astype(np.float32), (v - iv).astype(np.float32)
    iu, iv = iu.astype(np.int64), iv.astype(np.int64)
    su, sv = fu * fu * (3 - 2 * fu), fv * fv * (3 - 2 * fv)  # smoothstep weights
    a, b = hash2(iu, iv, salt), hash2(iu + 1, iv, salt)
    c, d = hash2(iu, iv + 1, salt), hash2(iu + 1, iv + 1, salt)
    return (a + (b - a) * su) * (1 - sv) + (c + (d - c) * su) * sv


def fbm2(u: np.ndarray, v: np.ndarray, octaves: int = 3, salt: int = 0) -> np.ndarray:
    """Fractal sum of value noise (lacunarity 2, gain 0.5), normalised to [0, 1)."""
    total = np.zeros(np.shape(u), dtype=np.float32)
    amp, norm = 1.0, 0.0
    for k in range(octaves):
        scale = float(2**k)
        total += np.float32(amp) * value_noise2(u * scale, v * scale, salt + 17 * k)
        norm += amp
        amp *= 0.5
    return total / np.float32(norm)
