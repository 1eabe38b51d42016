"""Procedural materials (albedo as a function of 3-D surface position), sky, and per-image appearance.

Colours in material definitions are sRGB-like values in [0, 1]. Shading happens in linear space:
``linear = albedo**2.2 * (ambient * (0.6 + 0.4 n_up) + sun_strength * sun_color * max(0, n . s))``,
then white balance (per-channel gain) and exposure (global gain), clipping, and ``**(1/2.2)``.
This is the "photometric variation" NeRF-W's appearance embedding has to absorb (paper Sec. 4.1).
"""
from __future__ import annotations

import math

import numpy as np

from nerfw.synthetic.noise import fbm2, hash2, value_noise2

GAMMA = 2.2


def _c(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float32)


def _mix(a, b, w):  # a, b [3] or [N,3]; w [N]
    return _c(a) + (_c(b) - _c(a)) * w[:, None]


def planar_uv(p: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2-D surface coordinates from a 3-D point p [N,3] by its dominant normal axis (u horizontal, v up)."""
    an = np.abs(n)
    up = an[:, 2] >= np.maximum(an[:, 0], an[:, 1])
    xface = an[:, 0] > an[:, 1]
    u = np.where(up, p[:, 0], np.where(xface, p[:, 1], p[:, 0]))
    v = np.where(up, p[:, 1], p[:, 2])
    return u, v


# --------------------------------------------------------------------------- material kinds
def _paving(m, p, n, lo, hi):
    s = m["tile"]
    u, v = p[:, 0] / s, p[:, 1] / s
    iu, iv = np.floor(u), np.floor(v)
    fu, fv = u - iu, v - iv
    tile = hash2(iu, iv, m["salt"])
    grout = (np.minimum(fu, 1 - fu) < 0.04) | (np.minimum(fv, 1 - fv) < 0.04)
    fine = fbm2(p[:, 0] * 12, p[:, 1] * 12, 2, m["salt"] + 1)
    col = _mix(m["color"], m["color2"], tile) * (0.8 + 0.4 * fine)[:, None]
    col = np.where(grout[:, None], _c(m["grout"]) * (0.8 + 0.3 * fine)[:, None], col)
    x0, x1, y0, y1 = m["square"]
    outside = (p[:, 0] < x0) | (p[:, 0] > x1) | (p[:, 1] < y0) | (p[:, 1] > y1)
    g = fbm2(p[:, 0] * 2.0, p[:, 1] * 2.0, 3, m["salt"] + 5)
    grass = _mix([0.22, 0.42, 0.12], [0.45, 0.55, 0.2], g)
    return np.where(outside[:, None], grass, col)


def _facade_coords(p, n, lo, hi):
    """Horizontal position along the face s, face length L, height above base h."""
    xface = np.abs(n[:, 0]) > 0.5
    s = np.where(xface, p[:, 1] - lo[:, 1], p[:, 0] - lo[:, 0])
    L = np.where(xface, hi[:, 1] - lo[:, 1], hi[:, 0] - lo[:, 0])
    return s, L, p[:, 2] - lo[:, 2]


def _facade(m, p, n, lo, hi):
    s, L, h = _facade_coords(p, n, lo, hi)
    H = hi[:, 2] - lo[:, 2]
    # bricks: running bond, half-brick offset every other course
    bw, bh = m["brick"]
    row = np.floor(h / bh)
    bu = s / bw + 0.5 * (row % 2)
    col = np.floor(bu)
    fu, fv = bu - col, h / bh - row
    mortar = (np.minimum(fu, 1 - fu) * bw < 0.008) | (np.minimum(fv, 1 - fv) * bh < 0.008)
    shade = hash2(col, row, m["salt"])
    albedo = _mix(m["color"], m["color2"], shade)
    albedo = np.where(mortar[:, None], _c(m["mortar"]), albedo)
    # horizontal stone bands at every floor line and a parapet
    fh = m["floor_h"]
    band = (np.abs(h - np.round(h / fh) * fh) < 0.14) & (h > 1.0)
    band |= h > H - 0.6
    # windows on a regular grid, centred on the face
    cw = m["cell_w"]
    n_cells = np.floor(L / cw)
    sc = (s - (L - n_cells * cw) / 2) / cw
    ci, fi = np.floor(sc), np.floor(h / fh)
    fx, fy = (sc - ci) * cw, (h / fh - fi) * fh
    n_floors = np.floor((H - 0.6) / fh)
    ww, wh, sill = m["window"]
    ground = fi == 0
    wh_f = np.where(ground, wh + 0.6, wh)
    sill_f = np.where(ground, sill - 0.3, sill)
    in_win = ((ci >= 0) & (ci < n_cells) & (fi < n_floors) & (np.abs(fx - cw / 2) < ww / 2)
              & (fy > sill_f) & (fy < sill_f + wh_f))
    ex = ww / 2 - np.abs(fx - cw / 2)  # distance to the window's side edge
    ey = np.minimum(fy - sill_f, sill_f + wh_f - fy)
    frame = (np.minimum(ex, ey) < 0.07) | (np.abs(fx - cw / 2) < 0.03) | (np.abs(fy - sill_f - 0.62 * wh_f) < 0.03)
    wid = hash2(ci + 1000 * np.round(lo[:, 0]), fi + 1000 * np.round(lo[:, 1]), m["salt"] + 3)
    glass = _mix(m["glass"], [0.55, 0.6, 0.65], (0.5 * wid + 0.5 * fy / np.maximum(wh_f + sill_f, 1e-3)) * 0.6)
    win = np.where(frame[:, None], _c(m["frame"]), glass)
    albedo = np.where(band[:, None], _c(m["band"]) * (0.9 + 0.2 * shade)[:, None], albedo)
    albedo = np.where(in_win[:, None], win, albedo)
    roof = n[:, 2] > 0.5
    if roof.any():
        albedo[roof] = _roof(m, p[roof], n[roof], lo[roof], hi[roof])
    return albedo


def _roof(m, p, n, lo, hi):
    g = fbm2(p[:, 0] * 1.5, p[:, 1] * 1.5, 2, m["salt"] + 9)
    return _mix([0.35, 0.33, 0.32], [0.5, 0.45, 0.42], g)


def _stone(m, p, n, lo, hi):
    u, v = planar_uv(p, n)
    g = fbm2(u * 6 + p[:, 2] * 0.0, v * 6, 3, m["salt"])
    col = _mix(m["color"], m["color2"], g)
    bands = (np.abs(p[:, 2] - np.round(p[:, 2] / m["band"]) * m["band"]) < 0.03)
    return np.where(bands[:, None], col * 0.7, col)


def _wood(m, p, n, lo, hi):
    u, v = planar_uv(p, n)
    along_x = np.abs(n[:, 2]) > 0.5
    a = np.where(along_x, p[:, 0], u)  # grain direction
    b = np.where(along_x, p[:, 1], v)
    plank = np.floor(b / m["plank"])
    off = hash2(plank, plank * 7, m["salt"]) * 3.0
    board = np.floor((a + off) / 1.2)
    grain = value_noise2(a * 1.5, b * 40, m["salt"] + 1)
    col = _mix(m["color"], m["color2"], 0.6 * hash2(plank, board, m["salt"] + 2) + 0.4 * grain)
    fb = b / m["plank"] - plank
    gap = np.minimum(fb, 1 - fb) * m["plank"] < 0.006
    return np.where(gap[:, None], col * 0.45, col)


def _foliage(m, p, n, lo, hi):
    g = fbm2(p[:, 0] * 4 + p[:, 2] * 2.7, p[:, 1] * 4 - p[:, 2] * 3.1, 3, m["salt"])
    g = np.clip((g - 0.3) * 2.2, 0, 1)
    return _mix(m["color"], m["color2"], g)


def _bark(m, p, n, lo, hi):
    ang = np.arctan2(n[:, 1], n[:, 0]) * 0.3
    g = fbm2(ang * 10, p[:, 2] * 1.5, 3, m["salt"])
    return _mix(m["color"], m["color2"], g)


def _cloth(m, p, n, lo, hi):
    upper = p[:, 2] > m["split_z"]
    base = np.where(upper[:, None], _c(m["color"]), _c(m["color2"]))
    u, v = planar_uv(p, n)
    stripe = (np.floor(v / 0.08) % 2 == 0) & upper & (m["striped"] > 0)
    g = value_noise2(u * 20, v * 20, m["salt"])
    col = base * (0.85 + 0.3 * g)[:, None]
    return np.where(stripe[:, None], col * 0.6, col)


def _wallpaper(m, p, n, lo, hi):
    u, v = planar_uv(p, n)
    stripe = (np.floor(u / m["stripe"]) % 2) == 0
    du = (u / 0.2) % 1 - 0.5
    dv = (v / 0.2) % 1 - 0.5
    diamond = (np.abs(du) + np.abs(dv)) < 0.18
    g = fbm2(u * 8, v * 8, 2, m["salt"])
    col = np.where(stripe[:, None], _c(m["color"]), _c(m["color2"])) * (0.9 + 0.2 * g)[:, None]
    return np.where((diamond & stripe)[:, None], col * 0.75, col)


def _painting(m, p, n, lo, hi):
    u, v = planar_uv(p, n)
    an = np.abs(n)
    xface = an[:, 0] > an[:, 1]
    lu = np.where(xface, u - lo[:, 1], u - lo[:, 0])
    Lu = np.where(xface, hi[:, 1] - lo[:, 1], hi[:, 0] - lo[:, 0])
    lv, Lv = v - lo[:, 2], hi[:, 2] - lo[:, 2]
    frame = (np.minimum(lu, Lu - lu) < 0.06) | (np.minimum(lv, Lv - lv) < 0.06)
    rgb = np.stack([fbm2(u * 5, v * 5, 3, m["salt"] + k) for k in range(3)], -1)
    rgb = np.clip((rgb - 0.25) * 2.0, 0.05, 0.95)
    facing = an[:, 2] < 0.5  # only the front/back faces carry the picture
    return np.where((frame | ~facing)[:, None], _c(m["color2"]), rgb)


def _checker(m, p, n, lo, hi):
    u, v = planar_uv(p, n)
    s = m["square"]
    odd = (np.floor(u / s) + np.floor(v / s)) % 2 == 1
    g = value_noise2(u * 30, v * 30, m["salt"])
    col = np.where(odd[:, None], _c(m["color"]), _c(m["color2"]))
    return col * (0.9 + 0.15 * g)[:, None]


def _plaster(m, p, n, lo, hi):
    u, v = planar_uv(p, n)
    g = fbm2(u * 3, v * 3, 3, m["salt"])
    return _mix(m["color"], m["color2"], g)


def _bronze(m, p, n, lo, hi):
    """Cast bronze: mottled metal with vertical verdigris streaks (rain runs down the statue)."""
    u, v = planar_uv(p, n)
    g = fbm2(u * 9, v * 9, 3, m["salt"])
    col = _mix(m["color"], m["color2"], g)
    streak = fbm2(u * 24 + p[:, 2] * 0.7, p[:, 2] * 2.0, 2, m["salt"] + 3)
    w = np.clip((streak - 0.5) * 3.5, 0, 1) * m.get("patina_amount", 0.8)
    return _mix(col, m["patina"], w)


ALBEDO = {"bronze": _bronze, "paving": _paving, "facade": _facade, "roof": _roof, "stone": _stone, "wood": _wood,
          "foliage": _foliage, "bark": _bark, "cloth": _cloth, "wallpaper": _wallpaper,
          "painting": _painting, "checker": _checker, "plaster": _plaster}


def albedo(materials: list[dict], mat: np.ndarray, p: np.ndarray, n: np.ndarray,
           lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """sRGB albedo [N,3] of hits with material indices mat [N] (>= 0) at points p [N,3], normals n [N,3].

    lo, hi [N,3]: the bounding box of the primitive hit (facade/painting layouts are relative to it).
    """
    out = np.zeros((len(mat), 3), np.float32)
    for m_id in np.unique(mat):
        sel = mat == m_id
        m = materials[int(m_id)]
        out[sel] = ALBEDO[m["kind"]](m, p[sel], n[sel], lo[sel], hi[sel])
    return np.clip(out, 0.0, 1.0)


# --------------------------------------------------------------------------- lighting and sky
def sun_direction(app: dict) -> np.ndarray:
    """Unit vector towards the sun in the LOCAL frame (+z up) from azimuth/elevation in degrees."""
    az, el = math.radians(app["sun_azimuth_deg"]), math.radians(app["sun_elevation_deg"])
    return np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)], np.float32)


def shade_linear(alb: np.ndarray, n: np.ndarray, app: dict) -> np.ndarray:
    """Lambertian sun + hemispherical ambient. alb [N,3] sRGB, n [N,3] -> linear radiance [N,3]."""
    lin = alb.astype(np.float32) ** GAMMA
    lambert = np.maximum(n @ sun_direction(app), 0)[:, None]  # [N, 1]
    ambient = app["ambient"] * (0.6 + 0.4 * n[:, 2:3])
    light = ambient * _c(app["ambient_color"]) + app["sun_strength"] * lambert * _c(app["sun_color"])
    return lin * light


def sky_linear(d: np.ndarray, app: dict) -> np.ndarray:
    """Sky at infinity for directions d [N,3]: zenith/horizon gradient * tint + sun glow, linear [N,3]."""
    dn = d / np.linalg.norm(d, axis=-1, keepdims=True)
    w = np.clip(dn[:, 2], 0, 1) ** 0.6
    col = _mix(app["sky_horizon"], app["sky_zenith"], w) ** GAMMA * _c(app["sky_tint"])
    glow = np.maximum(dn @ sun_direction(app), 0) ** 48
    below = np.clip(-dn[:, 2] * 4, 0, 1)[:, None]  # under the horizon (never seen over the ground)
    if app.get("cloud_cover", 0.0) > 0:
        col = _clouds(dn, col, app)
    return col * (1 - 0.5 * below) + 0.6 * glow[:, None] * _c(app["sun_color"])


def _clouds(dn: np.ndarray, col: np.ndarray, app: dict) -> np.ndarray:
    """Clouds at infinity over the linear sky colour col [N,3]: fractal noise on the plane z = 1 seen along
    unit directions dn [N,3], thresholded by ``cloud_cover`` (0..1), drifted by ``cloud_offset``, scaled by
    ``cloud_scale``, grey level ``cloud_brightness``; lit on the sun's side; faded out at the horizon."""
    up = np.maximum(dn[:, 2], 0.02)
    s, (ox, oy) = app["cloud_scale"], app["cloud_offset"]
    g = fbm2(dn[:, 0] / up * s + ox, dn[:, 1] / up * s + oy, 4, int(app["cloud_salt"]))
    cover = float(app["cloud_cover"])
    alpha = np.clip((g - (1.0 - 0.55 * cover - 0.2)) / 0.18, 0, 1) * np.clip(dn[:, 2] / 0.12, 0, 1)
    lit = 0.75 + 0.25 * np.maximum(dn @ sun_direction(app), 0)
    cloud = (np.float32(app["cloud_brightness"]) ** GAMMA * lit)[:, None] * (0.8 + 0.2 * _c(app["sun_color"]))
    return col * (1 - alpha[:, None]) + cloud * alpha[:, None]


def to_display(linear: np.ndarray, app: dict) -> np.ndarray:
    """White balance (per-channel gains), exposure (global gain), clip, gamma -> [N,3] in [0, 1]."""
    x = linear * _c(app["white_balance"]) * np.float32(app["exposure"])
    return np.clip(x, 0.0, 1.0) ** np.float32(1.0 / GAMMA)


# --------------------------------------------------------------------------- appearance
def canonical_appearance(indoor: bool) -> dict:
    """The fixed appearance used for the clean ground-truth renders."""
    return {
        "exposure": 1.0, "white_balance": [1.0, 1.0, 1.0],
        "sun_azimuth_deg": 135.0 if not indoor else 60.0, "sun_elevation_deg": 45.0 if not indoor else 35.0,
        "sun_strength": 0.9 if not indoor else 0.6, "sun_color": [1.0, 0.97, 0.9],
        "ambient": 0.45 if not indoor else 0.75, "ambient_color": [0.9, 0.95, 1.05],
        "sky_zenith": [0.25, 0.45, 0.85], "sky_horizon": [0.75, 0.85, 0.95], "sky_tint": [1.0, 1.0, 1.0],
    }


def random_appearance(rng: np.random.Generator, indoor: bool) -> dict:
    """A per-image appearance: exposure, white balance, sun direction/strength/colour, ambient, sky tint."""
    app = canonical_appearance(indoor)
    r = lambda a, b: float(rng.uniform(a, b))  # noqa: E731
    warm = r(0, 1)
    app.update({
        "exposure": float(np.exp(rng.normal(0.0, 0.22 if not indoor else 0.12))),
        "white_balance": [round(float(g), 6) for g in 1.0 + rng.normal(0, 0.06, 3)],
        "sun_azimuth_deg": r(0, 360) if not indoor else r(30, 90),
        "sun_elevation_deg": r(12, 70) if not indoor else r(20, 50),
        "sun_strength": r(0.4, 1.2) if not indoor else r(0.3, 0.8),
        "sun_color": [1.0, 0.95 - 0.1 * warm, 0.9 - 0.25 * warm],
        "ambient": r(0.3, 0.6) if not indoor else r(0.6, 0.9),
        "sky_tint": [1.0 + 0.3 * warm, 1.0 + 0.05 * warm, 1.0 - 0.3 * warm + r(-0.1, 0.1)],
    })
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in app.items()}


# (sky zenith, sky horizon) per weather, sRGB
SKY_PALETTES = {
    "clear": ([0.22, 0.42, 0.85], [0.72, 0.84, 0.96]),
    "hazy": ([0.45, 0.56, 0.72], [0.82, 0.84, 0.87]),
    "overcast": ([0.6, 0.62, 0.66], [0.8, 0.8, 0.82]),
    "golden": ([0.3, 0.36, 0.62], [0.97, 0.72, 0.45]),
    "dusk": ([0.12, 0.2, 0.48], [0.62, 0.5, 0.62]),
}


def collection_appearance(rng: np.random.Generator) -> dict:
    """A photo-collection appearance: much stronger than `random_appearance` (exposure, white balance,
    weather: sky colours, sun height/strength/colour, ambient) and clouds at infinity that change per photo."""
    app = canonical_appearance(False)
    r = lambda a, b: float(rng.uniform(a, b))  # noqa: E731
    weather = str(rng.choice(list(SKY_PALETTES)))
    zen, hor = (np.clip(np.array(c) + rng.normal(0, 0.04, 3), 0.02, 1.0) for c in SKY_PALETTES[weather])
    low_sun = weather in ("golden", "dusk")
    warm = r(0.6, 1.0) if low_sun else r(0.0, 0.4)
    cover = {"clear": r(0.0, 0.35), "hazy": r(0.2, 0.6), "overcast": r(0.75, 1.0)}.get(weather, r(0.1, 0.7))
    app.update({
        "weather": weather,
        "exposure": float(np.clip(np.exp(rng.normal(0.0, 0.45)), 0.4, 2.5)),
        "white_balance": [round(float(g), 6) for g in np.clip(1.0 + rng.normal(0, 0.12, 3), 0.7, 1.35)],
        "sun_azimuth_deg": r(0, 360),
        "sun_elevation_deg": r(3, 15) if low_sun else r(15, 75),
        "sun_strength": r(0.05, 0.3) if weather == "overcast" else r(0.5, 1.6),
        "sun_color": [1.0, round(0.97 - 0.3 * warm, 6), round(0.92 - 0.55 * warm, 6)],
        "ambient": r(0.45, 0.8) if weather == "overcast" else r(0.2, 0.55),
        "ambient_color": [round(float(c), 6) for c in 0.95 + rng.normal(0, 0.06, 3)],
        "sky_zenith": zen.round(6).tolist(), "sky_horizon": hor.round(6).tolist(),
        "sky_tint": [round(1.0 + 0.35 * warm, 6), 1.0, round(1.0 - 0.3 * warm + r(-0.1, 0.1), 6)],
        "cloud_cover": round(cover, 6), "cloud_scale": r(0.5, 1.6),
        "cloud_offset": [r(-100, 100), r(-100, 100)], "cloud_salt": int(rng.integers(1 << 20)),
        "cloud_brightness": r(0.55, 0.75) if weather == "overcast" else r(0.75, 1.0),
    })
    app["cloud_offset"] = [round(v, 6) for v in app["cloud_offset"]]
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in app.items()}
