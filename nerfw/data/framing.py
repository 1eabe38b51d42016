"""Scene framing: where the content is, so that the field's well-resolved region holds it.

The grid field contracts space (mip-NeRF 360 Eq. 10): the unit ball of the model frame is kept as is and
sampled at the planes' finest resolution; everything outside is squeezed into the shell 1 < |x| < 2. A
framing is a centre and a radius in the dataset's frame; :class:`nerfw.data.scene.Normalization` maps that
ball to the unit ball. Framing by the cameras (the previous rule, ``--framing cameras``) fails on
internet collections: a few distant cameras make the camera spread many times the landmark's size, so the
landmark ends up a handful of cells across. Framing by content looks at what the cameras see:

``points``   the dataset's sparse SfM points (COLMAP, NVM), or points triangulated from its photos when it ships
             none (nerfw.data.photo_points): centre = per-axis median, radius = the ``quantile``-th distance from
             it (robust to stray far points and to outlier cameras).
``focus``    no points: the point closest to all training cameras' optical axes (least squares), when the
             axes converge (object-centric captures, orbits); radius = the frustum's half-width at the
             median camera distance to that point, i.e. what a typical view sees around its centre.
``frustum``  forward-facing or walking captures (axes nearly parallel): points on each training camera's
             frustum at its near bound and at the geometric mean of its near and far bounds; centre and
             radius as for ``points``.
``cameras``  the old rule: centre = median camera, radius = camera spread + median far bound (everything,
             cameras included, inside the unit ball). Best for small bounded rooms with --unbounded False.
``auto``     points if the dataset has at least MIN_POINTS of them, else focus if the axes converge, else
             frustum.
The content ball is then widened (:func:`widen_to_detail` for points, :func:`widen` for focus and frustum): while
a cell of the finest plane stays within a pixel at the content, or, for focus / frustum with the cameras close to
the content, to hold the median camera.
``--scene_box x0,y0,z0,x1,y1,z1`` (dataset units) overrides all of them: centre = box centre, radius =
half its diagonal.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nerfw.cameras.conventions import camera_rays
from nerfw.errors import ConfigError

METHODS = ("auto", "points", "focus", "frustum", "cameras")
MIN_POINTS = 50  # fewer sparse points than this say little about where the content is
QUANTILE = 0.9  # the content ball holds this share of the content points
MIN_AXIS_SPREAD = 0.02  # smallest eigenvalue of mean(I - d d^T) for converging axes (about 8 deg of spread)
CAMERA_QUANTILE = 0.5  # the content ball is widened until it holds this share of the training cameras
WARN_PIXELS_PER_CELL = 2.0  # the framing report warns when the content has more pixels than this per finest cell
CLOSE_CAMERAS = 3.5  # focus / frustum: cameras within this many content radii are held in the ball (see `widen`)


@dataclass
class Framing:
    center: np.ndarray  # [3] dataset frame
    radius: float  # dataset units: this ball becomes the model frame's unit ball
    method: str  # what decided it (one of METHODS, or "scene_box")
    reason: str  # one line for logs and `nerfw inspect`
    content_radius: float = 0.0  # the content's own ball before any widening (0: the radius itself)

    def __post_init__(self):
        if not self.content_radius:
            self.content_radius = float(self.radius)

    def describe(self) -> str:
        c = ", ".join(f"{v:.4g}" for v in self.center)
        return f"framing: {self.method}: centre ({c}), radius {self.radius:.4g} dataset units; {self.reason}"

    def to_dict(self) -> dict:
        return {"center": [float(v) for v in self.center], "radius": float(self.radius), "method": self.method,
                "reason": self.reason, "content_radius": float(self.content_radius)}


def join_scene_box_arg(argv: list[str]) -> list[str]:
    """`--scene_box -1,-2,0,1,2,3` -> `--scene_box=-1,-2,0,1,2,3`: argparse takes a value starting with '-' for
    an option, and a box's first corner usually has negative coordinates."""
    out = list(argv)
    for i in range(len(out) - 1):
        if out[i] == "--scene_box" and out[i + 1].startswith("-") and "," in out[i + 1]:
            out[i:i + 2] = [f"--scene_box={out[i + 1]}", ""]
    return [a for a in out if a != ""]


def parse_scene_box(text: str) -> np.ndarray | None:
    """"x0,y0,z0,x1,y1,z1" -> [2, 3] (min corner, max corner) or None for an empty string."""
    if not text:
        return None
    try:
        values = [float(v) for v in text.replace(" ", "").split(",")]
    except ValueError:
        values = []
    box = np.asarray(values).reshape(-1, 3) if len(values) == 6 else None
    if box is None or not np.all(np.isfinite(box)) or np.any(box[1] <= box[0]):
        raise ConfigError(f"--scene_box {text!r}: expected six numbers x0,y0,z0,x1,y1,z1 with x1>x0, y1>y0, z1>z0 "
                          "(dataset units)")
    return box


def robust_ball(points: np.ndarray, quantile: float = QUANTILE) -> tuple[np.ndarray, float]:
    """Centre (per-axis median) and radius (quantile of distances) of a point set [N, 3]."""
    center = np.median(points, axis=0)
    radius = float(np.quantile(np.linalg.norm(points - center, axis=1), quantile))
    return center, max(radius, 1e-9)


def axes_focus(cameras) -> tuple[np.ndarray, float, float]:
    """Least-squares point nearest to all optical axes -> (point [3], axis spread, share of cameras it is in
    front of). The spread is the smallest eigenvalue of mean(I - d d^T): 0 when all axes are parallel."""
    A, b = np.zeros((3, 3)), np.zeros(3)
    for cam in cameras:
        d = cam.T_world_cam[:3, 2] / np.linalg.norm(cam.T_world_cam[:3, 2])
        P = np.eye(3) - np.outer(d, d)  # projects onto the plane orthogonal to the axis
        A += P
        b += P @ cam.center
    A /= len(cameras)
    b /= len(cameras)
    spread = float(np.linalg.eigvalsh(A)[0])
    if spread < 1e-9:
        return np.full(3, np.nan), spread, 0.0
    focus = np.linalg.solve(A, b)
    in_front = np.mean([float((focus - c.center) @ c.T_world_cam[:3, 2]) > 0 for c in cameras])
    return focus, spread, float(in_front)


def half_fov_tangent(cam) -> float:
    """tan of the half field of view along the image's shorter side."""
    return 0.5 * min(cam.width / cam.fx, cam.height / cam.fy)


def frustum_points(cameras) -> np.ndarray:
    """Points on each camera's frustum (3x3 pixel grid) at its near bound and at sqrt(near * far). [N, 3]"""
    out = []
    for cam in cameras:
        near = cam.near if np.isfinite(cam.near) and cam.near > 0 else None
        far = cam.far if np.isfinite(cam.far) and cam.far > 0 else None
        if near is None or far is None:
            continue
        u, v = np.meshgrid(np.array([0.1, 0.5, 0.9]) * cam.width, np.array([0.1, 0.5, 0.9]) * cam.height)
        _, d = camera_rays(cam.fx, cam.fy, cam.cx, cam.cy, cam.T_world_cam, np.stack([u.ravel(), v.ravel()], -1))
        for depth in (near, np.sqrt(near * far)):
            out.append(cam.center + depth * d)
    return np.concatenate(out) if out else np.zeros((0, 3))


def cameras_framing(train) -> Framing:
    centers = np.stack([c.center for c in train])
    center = np.median(centers, axis=0)
    spread = float(np.max(np.linalg.norm(centers - center, axis=1))) if len(train) > 1 else 0.0
    far = float(np.median([c.far for c in train]))
    return Framing(center, max(spread + far, 1e-6), "cameras",
                   f"camera spread {spread:.4g} + median far bound {far:.4g}")


def camera_reach(train, center: np.ndarray, quantile: float = CAMERA_QUANTILE) -> float:
    """The ``quantile``-th distance of the training cameras from ``center`` (0 without cameras)."""
    distances = [np.linalg.norm(c.center - center) for c in train]
    return float(np.quantile(distances, quantile)) if distances else 0.0


def widen_to_cameras(framing: Framing, train, quantile: float = CAMERA_QUANTILE) -> Framing:
    """The ball widened, about the same centre, to hold the typical (median) training camera.

    mip-NeRF 360's contraction assumes the cameras inside the unit ball: rays then cross the finely resolved
    region on their way to the content. With the cameras outside it, the stretch between a camera and the content
    lies in the contracted shell, where one cell spans a large volume seen by few cameras, so "floaters" in front
    of each camera are cheap and the field learns them instead of the content (measured on instant-ngp's fox,
    800 steps: test PSNR 15.4 dB with the content-tight radius 1.93, 18.0 dB at 3.0, 20.3 dB at 4.9 = the median
    camera distance). The few far cameras of a photo collection stay outside: the median ignores them."""
    reach = camera_reach(train, framing.center, quantile)
    if reach <= framing.radius:
        return framing
    return Framing(framing.center, reach, framing.method,
                   f"{framing.reason}; widened from {framing.radius:.4g} to hold the median camera ({reach:.4g})",
                   framing.content_radius)


def pixel_footprint(train, center: np.ndarray) -> float:
    """What one pixel of the median training camera covers at ``center`` (distance / focal), dataset units."""
    return float(np.median([np.linalg.norm(c.center - center) / max(c.fx, c.fy) for c in train]))


def detail_radius(train, center: np.ndarray, grid_max_res: int) -> float:
    """The ball radius at which a cell of the finest plane covers what a pixel covers at ``center``: the planes
    span the contracted cube [-2, 2]^3 of the model frame with grid_max_res cells per side."""
    return pixel_footprint(train, center) * grid_max_res / 4.0


def widen_to_detail(framing: Framing, train, grid_max_res: int, quantile: float = CAMERA_QUANTILE) -> Framing:
    """The content ball widened while the finest grid cell stays within one pixel at the content, up to the median
    camera.

    Content estimates are tight: sparse points lie on what was matched, usually the landmark, and the focus / frustum
    rules see what one view holds. The landmark's surroundings (the square it stands on, the ground in front of a
    close camera) then lie in the contracted shell, where they are coarse and cheap to fake with floaters. Where the
    planes resolve the landmark finer than the photos do, that spare resolution is spent on the surroundings
    instead. Measured on the collection preset (docs/benchmarks.md): the points' ball (radius 0.92, 0.47 pixels per
    cell) left the plaza in the shell and blurred it in close views; widened to 1.97 it did not."""
    reach = camera_reach(train, framing.center, quantile)
    radius = min(detail_radius(train, framing.center, grid_max_res), reach)
    if radius <= framing.radius:
        return framing
    return Framing(framing.center, radius, framing.method,
                   f"{framing.reason}; widened from {framing.radius:.4g} to {radius:.4g}, where the finest grid cell "
                   f"{'matches a pixel at the content' if radius < reach else 'reaches the median camera'}",
                   framing.content_radius)


def widen(framing: Framing, train, grid_max_res: int) -> Framing:
    """The ``focus`` / ``frustum`` ball widened for training, by where the cameras stand relative to it.

    * Cameras close to the content (the median camera within CLOSE_CAMERAS content radii: object captures, rooms,
      orbits, drone flights): the ball holds the median camera (:func:`widen_to_cameras`), so that no stretch in
      front of a camera lies in the coarse contracted shell. This costs the content at most CLOSE_CAMERAS times
      its resolution.
    * Cameras far from it (photo collections of a landmark, long lenses): holding them would shrink the landmark
      to a few cells (a ball 6 times the statue of an internet collection trained to fog, docs/benchmarks.md);
      the ball widens only while a cell stays within a pixel at the content (:func:`widen_to_detail`), as the
      points' ball does.

    For the focus rule the ratio is 1 / tan(half the short side's view), so the threshold is a lens's: views wider
    than 32 degrees on their short side hold their cameras. Measured side by side (benchmarks/real_scenes.py): held,
    the fox (2.55) gains 4.9 dB at 800 steps and beer framed by its focus (3.07) 0.87 dB at 2,500 steps (28.42 vs
    27.55 dB widened to detail); the collection preset framed by its focus (2.9) loses 0.21 dB held (21.12 vs 21.33
    dB at 3,500 steps); an internet collection framed by its focus (6.2) lost its statue held. The points' ball is
    never held to the cameras: it is where the content is, and holding the cameras lost 0.13 dB on the collection
    preset (radius 3.77 instead of 1.97, 1,500 steps)."""
    reach = camera_reach(train, framing.center)
    if reach <= CLOSE_CAMERAS * framing.radius:
        return widen_to_cameras(framing, train)
    return widen_to_detail(framing, train, grid_max_res)


def points_framing(points: np.ndarray, train, grid_max_res: int, what: str = "sparse points") -> Framing:
    center, radius = robust_ball(points)
    return widen_to_detail(Framing(
        center, radius, "points",
        f"{QUANTILE:.0%} of the {len(points)} {what} lie within the radius of their median"), train, grid_max_res)


def focus_framing(train, focus: np.ndarray, spread: float, in_front: float, grid_max_res: int) -> Framing:
    if not np.all(np.isfinite(focus)):
        raise ConfigError("--framing focus: the training cameras' optical axes are parallel")
    distances = np.array([np.linalg.norm(c.center - focus) for c in train])
    radius = float(np.median(distances * np.array([half_fov_tangent(c) for c in train])))
    return widen(Framing(
        focus, max(radius, 1e-6), "focus",
        f"optical axes converge (spread {spread:.3f}, in front of {in_front:.0%} of the cameras) at median "
        f"distance {np.median(distances):.4g}; radius = half the view there"), train, grid_max_res)


def frustum_framing(train, spread: float, grid_max_res: int) -> Framing:
    pts = frustum_points(train)
    if len(pts) == 0:
        return cameras_framing(train)
    center, radius = robust_ball(pts)
    return widen(Framing(
        center, radius, "frustum",
        f"axes nearly parallel (spread {spread:.3f}): frusta between the near bound and sqrt(near*far)"), train,
        grid_max_res)


def choose_framing(scene, method: str = "auto", scene_box: np.ndarray | None = None,
                   grid_max_res: int = 512) -> Framing:
    """The framing of a scene's training cameras and points (see the module docstring)."""
    if method not in METHODS:
        raise ConfigError(f"--framing {method!r}: expected one of {', '.join(METHODS)}")
    train = scene.split("train") or scene.cameras
    if scene_box is not None:
        box = np.asarray(scene_box, dtype=np.float64).reshape(2, 3)
        return Framing(box.mean(axis=0), float(np.linalg.norm(box[1] - box[0]) / 2), "scene_box",
                       "given by --scene_box")
    points = scene.points[np.all(np.isfinite(scene.points), axis=1)] if scene.points is not None else None
    n_points = 0 if points is None else len(points)
    if method == "points" or (method == "auto" and n_points >= MIN_POINTS):
        if n_points == 0:
            raise ConfigError("--framing points: the dataset has no sparse points")
        return points_framing(points, train, grid_max_res, scene.points_origin)
    if method == "cameras" or len(train) < 2:
        framing = cameras_framing(train)
    else:
        focus, spread, in_front = axes_focus(train)
        if method == "focus" or (method == "auto" and spread >= MIN_AXIS_SPREAD and in_front >= 0.8):
            framing = focus_framing(train, focus, spread, in_front, grid_max_res)
        else:
            framing = frustum_framing(train, spread, grid_max_res)
    if method == "auto" and n_points:  # present but too few to say where the content is
        framing.reason += f"; the dataset's {n_points} sparse points are too few to frame by (at least {MIN_POINTS})"
    return framing


def detail_note(train, center: np.ndarray, radius: float, grid_max_res: int) -> str:
    """One line comparing the field's finest cell with what a pixel covers at the content.

    The planes span the contracted cube [-2, 2]^3 of the model frame (the content ball is its unit ball) with
    ``grid_max_res`` cells per side, so the finest cell is 4 * radius / grid_max_res dataset units. A pixel of a
    training camera covers about distance / fx at the content centre (median over the cameras). A cell much
    larger than a pixel cannot hold the detail the photos show. Measured on the flight preset at equal steps
    (3,950): --grid_max_res 1024 instead of 512 (2.3 -> 1.2 pixels per cell) gave 25.85 instead of 25.00 dB, but
    each CPU step took ~45 % longer, and in an equal 10 minutes on the fox (3.6 pixels per cell) 1024 scored 22.82
    dB at 1,850 steps against 24.52 at 2,950: the finer planes pay off in long runs (a GPU), not in short CPU ones."""
    cell = 4.0 * radius / grid_max_res
    pixel = pixel_footprint(train, center)
    ratio = cell / max(pixel, 1e-12)
    hint = f" (for a long run or a GPU: --grid_max_res {2 * grid_max_res} keeps more detail)" if ratio > 2 else ""
    return (f"detail: finest grid cell {cell:.3g} dataset units, a pixel covers {pixel:.3g} at the content centre "
            f"(median camera): {ratio:.2g} pixels per cell{hint}")


def content_report(train, framing: Framing, grid_max_res: int) -> tuple[str, str | None]:
    """(one line: the content's extent in finest-grid cells and in its photos' pixels, a warning or None).

    The content is the ball the framing found before widening it (``Framing.content_radius``): the landmark's points,
    or what a typical view holds around the axes' focus. The warning comes when the content spans fewer cells than
    its photos have pixels across it: the field then cannot hold the detail the photos show. A ball widened to hold
    the cameras is the usual cause on a collection framed without points; --scene_box around the landmark is the
    remedy there, --grid_max_res elsewhere. Up to WARN_PIXELS_PER_CELL pixels per cell pass quietly: the built-in
    demo scene trains at 1.3 and the detail rule's own widening stops at 1."""
    across = 2.0 * framing.content_radius
    cells = across / (4.0 * framing.radius / grid_max_res)
    pixels = across / max(pixel_footprint(train, framing.center), 1e-12)
    line = (f"content: {across:.4g} dataset units across = {cells:.0f} cells of the finest grid "
            f"({grid_max_res}^3 planes) and {pixels:.0f} pixels of the median photo: {pixels / max(cells, 1e-12):.2g} "
            "pixels per cell")
    if pixels <= WARN_PIXELS_PER_CELL * cells:
        return line, None
    widened = framing.radius > 1.01 * framing.content_radius
    cause = (f"the ball was widened {framing.radius / framing.content_radius:.2g}x beyond the content (to hold the "
             "cameras against floaters, or to a pixel's footprint); --scene_box around the landmark trades that for "
             "detail; or " if widened else "")
    return line, (f"warning: the content spans {pixels / cells:.2g}x fewer grid cells ({cells:.0f}) than its photos "
                  f"have pixels across it ({pixels:.0f}): detail finer than a cell is lost; {cause}use --grid_max_res "
                  f"{2 * grid_max_res} for a long run or a GPU")
