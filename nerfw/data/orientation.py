"""Scene orientation: which way the model frame's axes point, so that the tri-planes meet the scene square on.

The grid field factorises space into xy, xz and yz planes (K-Planes): structure aligned with the axes (a
ground plane, upright walls, a vertical statue) is what the planes store compactly; the same structure turned
by an arbitrary rotation smears over many plane cells. SfM frames are arbitrary: COLMAP's world is the first
camera's frame, or any other, so a collection's ground can lie at any angle to the dataset's axes. The model
frame therefore turns the scene so that

* **z is up.** Photographers hold the camera upright: whatever the pitch, a photo's x axis (its rows) is
  horizontal. Up is the direction most nearly orthogonal to all training cameras' x axes (the smallest
  eigenvector of mean(r r^T)); its sign agrees with the cameras' own up vectors (-y; OpenCV axes), or, for
  cameras looking straight down (a drone), with their viewing directions pointing down. When the cameras' x
  axes do not spread (a forward-facing capture, a drone flying one heading), it is the mean camera up.
* **Upright datasets keep their axes.** An estimated up (then x) within SNAP_DEG = 2 deg of a dataset axis is
  taken to be that axis: the estimates scatter by about a degree.
* **x and y follow the content.** Built structure is mostly walls at right angles (a "Manhattan world"): turned
  to the right yaw, the sparse points on them pile up in a few bins of their x and y histograms, so the yaw
  with the least histogram entropy is kept when it stands out (>= 200 points). Otherwise x is the content's
  longest horizontal principal axis (a street, a drone's flight lines; the camera centres when there are no
  points), else the cameras' mean x axis.

``--orient none`` keeps the dataset's axes (the behaviour before this module). The rotation is stored with
the run's normalisation (:class:`nerfw.data.scene.Normalization`), so every output in the dataset frame is
unchanged: poses, depth (a z-depth is rotation-invariant), exported cameras and localisation results.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nerfw.data.framing import MIN_POINTS

ORIENT_METHODS = ("auto", "none")
MIN_RIGHT_SPREAD = 0.05  # 2nd eigenvalue of mean(r r^T): the x axes span a plane (about 13 deg of yaw spread)
MIN_ANISOTROPY = 1.5  # horizontal principal variances must differ this much to define x
MIN_SIGN = 0.05  # |mean(up . camera up)| below this: the cameras look straight down or up
MANHATTAN_MIN_POINTS = 200  # fewer content points give histogram entropies too noisy to find walls by
MANHATTAN_MIN_CONTRAST = 0.05  # random (wall-less) point sets reach 0.01 at 300 points, 0.03 at 100
MANHATTAN_BINS = 128
MANHATTAN_STEP_DEG = 0.5
SNAP_DEG = 2.0  # an estimated axis this close to a dataset axis is taken to be it (an upright dataset)


@dataclass
class Orientation:
    rotation: np.ndarray  # [3, 3] proper rotation; row i is model axis i in dataset coordinates
    method: str  # "auto" or "none"
    reason: str  # one line for logs and `nerfw inspect`

    def describe(self) -> str:
        up = ", ".join(f"{v:.3f}" for v in self.rotation[2])
        return f"orientation: {self.method}: model z (up) = dataset ({up}); {self.reason}"

    def to_dict(self) -> dict:
        return {"rotation": [[float(v) for v in row] for row in self.rotation], "method": self.method,
                "reason": self.reason}


def identity_orientation() -> Orientation:
    return Orientation(np.eye(3), "none", "the dataset's axes (--orient none)")


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-12)


def estimate_up(rotations: np.ndarray) -> tuple[np.ndarray, str]:
    """Up in dataset coordinates from camera-to-world rotations [N, 3, 3] (OpenCV camera axes) -> (unit [3], why)."""
    right, down, forward = rotations[:, :, 0], rotations[:, :, 1], rotations[:, :, 2]  # [N, 3] each
    eigval, eigvec = np.linalg.eigh(right.T @ right / len(right))  # ascending
    cam_up = -down.mean(0)
    if eigval[1] < MIN_RIGHT_SPREAD:  # the x axes share one line: no plane to be normal to
        r = eigvec[:, 2]
        up = cam_up - r * (cam_up @ r)
        if np.linalg.norm(up) >= 0.5:  # upright photos agree on up: a forward-facing capture
            return _unit(up), "the cameras' mean up (their x axes do not spread)"
        # Their ups cancel out: a drone flying lines to and fro, looking down; up is against the view.
        down = forward.mean(0) - r * (forward.mean(0) @ r)
        if np.linalg.norm(down) >= 0.5:
            return _unit(-down), "against the cameras' mean view (x axes along one line, ups cancel out)"
        return np.array([0.0, 0.0, 1.0]), "the dataset's z (the cameras agree on no up)"
    up = eigvec[:, 0]
    agreement = float(cam_up @ up)
    if abs(agreement) >= MIN_SIGN:
        return up * np.sign(agreement), (f"normal to the {len(right)} cameras' x axes (photos are taken upright); "
                                         f"rms {np.degrees(np.arcsin(min(1.0, np.sqrt(max(eigval[0], 0.0))))):.0f} deg "
                                         "residual roll")
    # Cameras looking straight down (nadir drone photos): their up vectors are horizontal; they look down.
    return up * -np.sign(float(forward.mean(0) @ up) or 1.0), "normal to the cameras' x axes; cameras look down"


def _entropy(values: np.ndarray, half_range: float, bins: int) -> float:
    counts, _ = np.histogram(values, bins=bins, range=(-half_range, half_range))
    p = counts[counts > 0] / max(counts.sum(), 1)
    return float(-(p * np.log(p)).sum())


def manhattan_yaw(h: np.ndarray, bins: int = MANHATTAN_BINS) -> tuple[float, float]:
    """Horizontal coordinates [N, 2] -> (yaw in radians in [0, pi/2), contrast). Turned by the right yaw, points on
    walls at right angles pile up in a few bins of x and y; the yaw minimising the histograms' entropy is kept,
    and contrast = 1 - min / median entropy over all yaws says how clear the minimum is."""
    half = 1.05 * float(np.percentile(np.abs(h), 98)) + 1e-12
    yaws = np.radians(np.arange(0.0, 90.0, MANHATTAN_STEP_DEG))
    entropies = []
    for a in yaws:
        c, s = np.cos(a), np.sin(a)
        turned = h @ np.array([[c, -s], [s, c]])  # coordinates along (cos a, sin a) and (-sin a, cos a)
        entropies.append(_entropy(turned[:, 0], half, bins) + _entropy(turned[:, 1], half, bins))
    entropies = np.asarray(entropies)
    return float(yaws[int(np.argmin(entropies))]), float(1.0 - entropies.min() / np.median(entropies))


def horizontal_axes(up: np.ndarray, points: np.ndarray, mean_right: np.ndarray) -> tuple[np.ndarray, str]:
    """The model's x axis (unit, horizontal): along the content's walls (Manhattan), else its longest horizontal
    principal axis, else the cameras' mean x axis. Angles are measured from the cameras' mean x axis, so the
    result turns with the dataset frame (the same model frame whatever the dataset's axes)."""
    ref = mean_right - up * (mean_right @ up)
    if np.linalg.norm(ref) < 1e-6:  # the cameras' x axes cancel out: any horizontal direction
        ref = np.cross(up, np.eye(3)[int(np.argmin(np.abs(up)))])
    ref = _unit(ref)
    basis = np.stack([ref, np.cross(up, ref)])  # [2, 3] a right-handed horizontal basis
    h = (points - np.median(points, axis=0)) @ basis.T if len(points) else np.zeros((0, 2))  # [N, 2]
    if len(h) >= MANHATTAN_MIN_POINTS:
        yaw, contrast = manhattan_yaw(h)
        if contrast >= MANHATTAN_MIN_CONTRAST:
            return _unit(np.array([np.cos(yaw), np.sin(yaw)]) @ basis), (
                f"x along the content's walls (coordinate histograms {100 * contrast:.0f} % sharper than at a "
                "typical yaw)")
    if len(h) >= 3:
        eigval, eigvec = np.linalg.eigh(np.cov(h.T))
        if eigval[1] > MIN_ANISOTROPY * max(eigval[0], 1e-12):
            x = eigvec[:, 1] if eigvec[0, 1] >= 0 else -eigvec[:, 1]  # the sign nearest the cameras' x axis
            return _unit(x @ basis), ("x along the content's longest horizontal extent "
                                      f"({np.sqrt(eigval[1] / max(eigval[0], 1e-12)):.1f}:1)")
    return ref, "x along the cameras' mean x axis"


def choose_orientation(train, content_points: np.ndarray, method: str = "auto") -> Orientation:
    """The model frame's axes for training cameras (objects with T_world_cam) and the content points [N, 3]
    (sparse points in the content ball, or camera centres)."""
    if method == "none":
        return identity_orientation()
    if method != "auto":
        raise ValueError(f"orientation must be one of {ORIENT_METHODS}, got {method!r}")
    rotations = np.stack([np.asarray(c.T_world_cam, dtype=np.float64)[:3, :3] for c in train])
    up, why_up = estimate_up(rotations)
    x, why_x = horizontal_axes(up, np.asarray(content_points, dtype=np.float64).reshape(-1, 3),
                               rotations[:, :, 0].mean(0))
    rotation = np.stack([x, np.cross(up, x), up])  # rows: model x, y, z in dataset coordinates; det +1
    rotation, snapped = snap_to_dataset_axes(rotation)
    return Orientation(rotation, "auto", f"up {why_up}; {why_x}{snapped}")


def _nearest_axis(v: np.ndarray) -> tuple[np.ndarray, float]:
    """The signed dataset axis nearest to the unit vector v, and the angle to it in degrees."""
    k = int(np.argmax(np.abs(v)))
    return np.sign(v[k]) * np.eye(3)[k], float(np.degrees(np.arccos(np.clip(abs(v[k]), 0.0, 1.0))))


def snap_to_dataset_axes(rotation: np.ndarray) -> tuple[np.ndarray, str]:
    """Datasets that are already upright (synthetic scenes, nerfstudio's and instant-ngp's z-up output) keep their
    exact axes: the estimated up, then x, moves onto a dataset axis within SNAP_DEG. The estimates scatter by
    about a degree (photographers' roll), and a ground plane tilted by that smears over grid cells.
    Returns (rotation, a note for the log; empty when nothing snapped)."""
    up, up_angle = _nearest_axis(rotation[2])
    if up_angle > SNAP_DEG:
        return rotation, ""
    x = rotation[0] - up * (rotation[0] @ up)
    x = x / np.linalg.norm(x)
    x_axis, x_angle = _nearest_axis(x)
    note = f"; up snapped to a dataset axis ({up_angle:.1f} deg away)"
    if x_angle <= SNAP_DEG:
        x, note = x_axis, f"; up and x snapped to dataset axes ({up_angle:.1f} and {x_angle:.1f} deg away)"
    return np.stack([x, np.cross(up, x), up]), note


def orient_scene(scene, framing, method: str = "auto") -> Orientation:
    """The orientation of a scene's model frame: its training cameras, and as content the sparse points inside
    the framing's ball (at least framing.MIN_POINTS of them), else the training camera centres."""

    train = scene.split("train") or scene.cameras
    content = np.stack([c.center for c in train])
    if scene.points is not None and len(scene.points):
        pts = np.asarray(scene.points, dtype=np.float64).reshape(-1, 3)
        inside = pts[np.linalg.norm(pts - framing.center, axis=1) <= framing.radius]
        content = inside if len(inside) >= MIN_POINTS else content
    return choose_orientation(train, content, method)


__all__ = ["orient_scene", "ORIENT_METHODS", "Orientation", "choose_orientation", "estimate_up", "horizontal_axes",
           "identity_orientation", "manhattan_yaw", "snap_to_dataset_axes"]
