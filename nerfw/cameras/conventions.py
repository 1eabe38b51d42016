"""The one place that owns camera conventions and conversions (see docs/conventions.md).

Internal conventions of nerfw
-----------------------------
* Camera axes are OpenCV: x right, y down, z forward (the camera looks along +z).
* A pose is the camera-to-world rigid transform ``T_world_cam`` (4x4): ``X_world = T_world_cam @ X_cam``.
  Its inverse is ``T_cam_world`` (world-to-camera).
* Quaternions are Hamilton, ordered (w, x, y, z), and returned with w >= 0.
* Pixel (column u, row v) covers [u, u+1) x [v, v+1); its centre is (u + 0.5, v + 0.5).
  The principal point is in the same continuous coordinates, so an image-centred principal point
  is (W / 2, H / 2).
* Units are the dataset's (metres for Cambridge and 7-Scenes, arbitrary SfM units for COLMAP).

Every format nerfw reads or writes is converted here, and nowhere else:

=================  ===============================================================
Cambridge / NVM    camera centre C and world-to-camera quaternion q: R = R(q), t = -R C
7-Scenes           4x4 camera-to-world, OpenCV axes (used as is)
COLMAP             world-to-camera qvec (w,x,y,z) and tvec
transforms.json    4x4 camera-to-world with OpenGL axes (x right, y up, z backward)
LLFF               3x5 [R | t | hwf] camera-to-world with axes (down, right, backward)
=================  ===============================================================
"""
from __future__ import annotations

import functools

import numpy as np

# Right-multiplying a camera-to-world pose by this flips the camera's y and z axes:
# OpenGL (x right, y up, z back)  <->  OpenCV (x right, y down, z forward). It is its own inverse.
FLIP_YZ = np.diag([1.0, -1.0, -1.0, 1.0])


# --------------------------------------------------------------------------- quaternions
def quat_to_rotmat(q_wxyz: np.ndarray) -> np.ndarray:
    """Hamilton quaternion(s) (w, x, y, z) [..., 4] -> rotation matrix [..., 3, 3].

    The quaternion is normalised first; a zero quaternion raises ValueError.
    """
    q = np.asarray(q_wxyz, dtype=np.float64)
    norm = np.linalg.norm(q, axis=-1, keepdims=True)
    if np.any(norm < 1e-12) or not np.all(np.isfinite(q)):
        raise ValueError("quaternion must be finite and non-zero")
    w, x, y, z = np.moveaxis(q / norm, -1, 0)
    R = np.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        axis=-1,
    )
    return R.reshape(q.shape[:-1] + (3, 3))


def rotmat_to_quat(R: np.ndarray) -> np.ndarray:
    """Rotation matrix [3, 3] -> Hamilton quaternion (w, x, y, z) with w >= 0 (Shepperd's method)."""
    R = np.asarray(R, dtype=np.float64)
    trace = np.trace(R)
    if trace > 0:
        s = 2.0 * np.sqrt(trace + 1.0)
        q = [0.25 * s, (R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s]
    elif R[0, 0] > R[1, 1] and R[0, 0] > R[2, 2]:
        s = 2.0 * np.sqrt(1.0 + R[0, 0] - R[1, 1] - R[2, 2])
        q = [(R[2, 1] - R[1, 2]) / s, 0.25 * s, (R[0, 1] + R[1, 0]) / s, (R[0, 2] + R[2, 0]) / s]
    elif R[1, 1] > R[2, 2]:
        s = 2.0 * np.sqrt(1.0 + R[1, 1] - R[0, 0] - R[2, 2])
        q = [(R[0, 2] - R[2, 0]) / s, (R[0, 1] + R[1, 0]) / s, 0.25 * s, (R[1, 2] + R[2, 1]) / s]
    else:
        s = 2.0 * np.sqrt(1.0 + R[2, 2] - R[0, 0] - R[1, 1])
        q = [(R[1, 0] - R[0, 1]) / s, (R[0, 2] + R[2, 0]) / s, (R[1, 2] + R[2, 1]) / s, 0.25 * s]
    q = np.asarray(q)
    q /= np.linalg.norm(q)
    return -q if q[0] < 0 else q


def axis_angle_to_rotmat(axis_angle: np.ndarray) -> np.ndarray:
    """Rotation vector (axis * angle in radians) [3] -> rotation matrix [3, 3] (Rodrigues)."""
    v = np.asarray(axis_angle, dtype=np.float64)
    angle = np.linalg.norm(v)
    if angle < 1e-15:
        return np.eye(3)
    k = v / angle
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle) * K + (1 - np.cos(angle)) * (K @ K)


def rotation_angle(R: np.ndarray) -> float:
    """Angle (radians) of a rotation matrix."""
    return float(np.arccos(np.clip((np.trace(R) - 1.0) / 2.0, -1.0, 1.0)))


# --------------------------------------------------------------------------- rigid transforms
def make_T(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """[3,3] rotation and [3] translation -> 4x4 homogeneous transform."""
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = np.asarray(t, dtype=np.float64).reshape(3)
    return T


def invert_T(T: np.ndarray) -> np.ndarray:
    """Inverse of a rigid 4x4 transform (R^T, -R^T t)."""
    R, t = T[:3, :3], T[:3, 3]
    return make_T(R.T, -R.T @ t)


# --------------------------------------------------------------------------- formats
def cambridge_to_T_world_cam(center_xyz: np.ndarray, q_cam_world_wxyz: np.ndarray) -> np.ndarray:
    """Cambridge split line / NVM camera (centre C, world-to-camera quaternion) -> T_world_cam.

    R_cam_world = R(q); the camera-to-world rotation is its transpose; the translation is C.
    """
    R_cam_world = quat_to_rotmat(q_cam_world_wxyz)
    return make_T(R_cam_world.T, center_xyz)


def T_world_cam_to_cambridge(T_world_cam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """T_world_cam -> (camera centre [3], world-to-camera quaternion (w,x,y,z) [4])."""
    return T_world_cam[:3, 3].copy(), rotmat_to_quat(T_world_cam[:3, :3].T)


# NVM stores exactly what Cambridge stores: the world-to-camera rotation as a quaternion and the centre.
nvm_to_T_world_cam = cambridge_to_T_world_cam
T_world_cam_to_nvm = T_world_cam_to_cambridge


def sevenscenes_to_T_world_cam(pose_4x4: np.ndarray) -> np.ndarray:
    """7-Scenes pose.txt is already camera-to-world with OpenCV axes."""
    return np.asarray(pose_4x4, dtype=np.float64).copy()


def T_world_cam_to_sevenscenes(T_world_cam: np.ndarray) -> np.ndarray:
    return np.asarray(T_world_cam, dtype=np.float64).copy()


def colmap_to_T_world_cam(qvec_wxyz: np.ndarray, tvec: np.ndarray) -> np.ndarray:
    """COLMAP image (world-to-camera qvec, tvec) -> T_world_cam."""
    return invert_T(make_T(quat_to_rotmat(qvec_wxyz), tvec))


def T_world_cam_to_colmap(T_world_cam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """T_world_cam -> COLMAP (qvec (w,x,y,z), tvec) of the world-to-camera transform."""
    T_cam_world = invert_T(T_world_cam)
    return rotmat_to_quat(T_cam_world[:3, :3]), T_cam_world[:3, 3].copy()


def opengl_to_T_world_cam(c2w_opengl: np.ndarray) -> np.ndarray:
    """transforms.json (nerfstudio / instant-ngp / Blender) camera-to-world, OpenGL axes -> OpenCV."""
    c2w = np.eye(4)
    c2w[: np.asarray(c2w_opengl).shape[0]] = np.asarray(c2w_opengl, dtype=np.float64)
    # The one place the OpenGL <-> OpenCV flip happens.
    return c2w @ FLIP_YZ


def T_world_cam_to_opengl(T_world_cam: np.ndarray) -> np.ndarray:
    """T_world_cam (OpenCV axes) -> camera-to-world with OpenGL axes, as transforms.json stores it."""
    return np.asarray(T_world_cam, dtype=np.float64) @ FLIP_YZ


def llff_to_T_world_cam(pose_3x5: np.ndarray) -> tuple[np.ndarray, tuple[float, float, float]]:
    """LLFF poses_bounds row [3,5] = [R | t | (H, W, f)] with rotation columns (down, right, back).

    Returns (T_world_cam with OpenCV axes, (H, W, focal)). OpenCV x = right = column 1,
    y = down = column 0, z = forward = -back = -column 2.
    """
    P = np.asarray(pose_3x5, dtype=np.float64).reshape(3, 5)
    down, right, back = P[:, 0], P[:, 1], P[:, 2]
    R = np.stack([right, down, -back], axis=1)
    H, W, f = P[:, 4]
    return make_T(R, P[:, 3]), (float(H), float(W), float(f))


def T_world_cam_to_llff(T_world_cam: np.ndarray, height: float, width: float, focal: float) -> np.ndarray:
    """Inverse of :func:`llff_to_T_world_cam`: returns the [3,5] LLFF pose."""
    R = T_world_cam[:3, :3]
    right, down, forward = R[:, 0], R[:, 1], R[:, 2]
    P = np.zeros((3, 5))
    P[:, 0], P[:, 1], P[:, 2] = down, right, -forward
    P[:, 3] = T_world_cam[:3, 3]
    P[:, 4] = [height, width, focal]
    return P


# --------------------------------------------------------------------------- projection
def intrinsics_matrix(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def project_points(
    K: np.ndarray,  # [3, 3]
    T_world_cam: np.ndarray,  # [4, 4]
    points_world: np.ndarray,  # [N, 3]
    distortion: "Distortion | None" = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Project world points to continuous pixel coordinates (through the lens model when given).

    Returns (uv [N, 2], z [N]); pixel index = floor(uv) (pixel centres at +0.5).
    """
    X = np.asarray(points_world, dtype=np.float64).reshape(-1, 3)
    T_cam_world = invert_T(T_world_cam)
    X_cam = X @ T_cam_world[:3, :3].T + T_cam_world[:3, 3]
    z = X_cam[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        xy = X_cam[:, :2] / z[:, None]
    if distortion is not None:
        xy = distort(distortion, xy)
    uv = xy * np.array([K[0, 0], K[1, 1]]) + np.array([K[0, 2], K[1, 2]])
    return uv, z


def pixel_centers(width: int, height: int) -> np.ndarray:
    """Continuous coordinates of every pixel centre, row-major [H*W, 2] as (u, v)."""
    u, v = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5, indexing="xy")
    return np.stack([u.ravel(), v.ravel()], axis=-1)


def camera_rays(
    fx: float, fy: float, cx: float, cy: float,
    T_world_cam: np.ndarray,  # [4, 4]
    uv: np.ndarray,  # [N, 2] continuous pixel coordinates
    distortion: "Distortion | None" = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Rays through pixel coordinates: origins [N,3] and directions [N,3] in world.

    With a distortion model the pixel is first undistorted, so the ray is the one the real lens imaged.
    Directions are scaled so that their camera-frame z component is 1: the ray parameter t is then the
    z-depth (what depth maps, SfM near/far bounds and 7-Scenes depth PNGs measure).
    """
    xy = pixels_to_normalized(fx, fy, cx, cy, uv, distortion)
    d_cam = np.concatenate([xy, np.ones((len(uv), 1))], axis=-1)
    d_world = d_cam @ T_world_cam[:3, :3].T
    o_world = np.broadcast_to(T_world_cam[:3, 3], d_world.shape).copy()
    return o_world, d_world


# --------------------------------------------------------------------------- lens distortion
# Distortion acts on normalised image coordinates x = (u - cx) / fx, y = (v - cy) / fy. Every model below
# maps an *undistorted* (pinhole) point to the *distorted* point the lens images it at (`distort`), and back
# (`undistort`). The models and their coefficient order:
#   "opencv"     k1 k2 p1 p2 k3 k4 k5 k6: OpenCV's rational model. COLMAP SIMPLE_RADIAL (k), RADIAL (k1 k2),
#                OPENCV (k1 k2 p1 p2), FULL_OPENCV (all 8) and transforms.json k1..k4 p1 p2 are all special
#                cases (missing terms are 0; transforms.json k4 is OpenCV's k4 of the rational denominator
#                only in FULL_OPENCV - nerfstudio's "OPENCV" uses k1 k2 k3 k4 p1 p2 with k3/k4 as r^6/r^8
#                radial terms, see `opencv_from_transforms`).
#   "fisheye"    k1 k2 k3 k4: OpenCV / COLMAP OPENCV_FISHEYE, equidistant theta_d = theta (1 + k1 th^2 + ...).
#   "nvm"        r: VisualSfM's measurement distortion: undistorted = distorted * (1 + r |distorted|^2).
# Undistortion of "opencv" / "fisheye" and distortion of "nvm" have no closed form and use Newton's method.
DISTORTION_MODELS = {"opencv": 8, "fisheye": 4, "nvm": 1}


class Distortion:
    """A lens distortion model and its coefficients (see the table above). Immutable and hashable."""

    __slots__ = ("model", "coeffs")

    def __init__(self, model: str, coeffs):
        if model not in DISTORTION_MODELS:
            raise ValueError(f"unknown distortion model {model!r}; expected one of {', '.join(DISTORTION_MODELS)}")
        values = [float(c) for c in coeffs]
        n = DISTORTION_MODELS[model]
        if len(values) > n or not all(np.isfinite(values)):
            raise ValueError(f"distortion model {model} takes at most {n} finite coefficients, got {values}")
        object.__setattr__(self, "model", model)
        object.__setattr__(self, "coeffs", tuple(values + [0.0] * (n - len(values))))

    def __setattr__(self, name, value):
        raise AttributeError("Distortion is immutable")

    def __eq__(self, other) -> bool:
        return isinstance(other, Distortion) and (self.model, self.coeffs) == (other.model, other.coeffs)

    def __hash__(self) -> int:
        return hash((self.model, self.coeffs))

    def __repr__(self) -> str:
        return f"Distortion({self.model!r}, {self.coeffs})"

    @property
    def is_identity(self) -> bool:
        return not any(self.coeffs)

    def to_dict(self) -> dict:
        return {"model": self.model, "coeffs": list(self.coeffs)}

    @classmethod
    def from_dict(cls, d: dict | None) -> "Distortion | None":
        return None if not d else cls(d["model"], d["coeffs"])


def _opencv_distort(x, y, c):
    k1, k2, p1, p2, k3, k4, k5, k6 = c
    r2 = x * x + y * y
    radial = (1 + r2 * (k1 + r2 * (k2 + r2 * k3))) / (1 + r2 * (k4 + r2 * (k5 + r2 * k6)))
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    return xd, yd


def _fisheye_theta_d(theta, c):
    k1, k2, k3, k4 = c
    t2 = theta * theta
    return theta * (1 + t2 * (k1 + t2 * (k2 + t2 * (k3 + t2 * k4))))


def distort(distortion: Distortion | None, xy: np.ndarray) -> np.ndarray:
    """Undistorted normalised coordinates [N, 2] -> distorted normalised coordinates [N, 2]."""
    xy = np.asarray(xy, dtype=np.float64)
    if distortion is None or distortion.is_identity:
        return xy.copy()
    x, y = xy[..., 0], xy[..., 1]
    if distortion.model == "opencv":
        return np.stack(_opencv_distort(x, y, distortion.coeffs), axis=-1)
    r = np.hypot(x, y)
    if distortion.model == "fisheye":
        theta = np.arctan(r)
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(r > 1e-12, _fisheye_theta_d(theta, distortion.coeffs) / r, 1.0)
        return xy * scale[..., None]
    # nvm: find the distorted radius rd with rd (1 + k rd^2) = r (Newton from rd = r).
    k = distortion.coeffs[0]
    rd = r.copy()
    for _ in range(50):
        step = (rd * (1 + k * rd * rd) - r) / (1 + 3 * k * rd * rd)
        rd -= step
        if np.all(np.abs(step) < 1e-15):
            break
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(r > 1e-12, rd / r, 1.0)
    return xy * scale[..., None]


def undistort(distortion: Distortion | None, xy_distorted: np.ndarray, iterations: int = 100) -> np.ndarray:
    """Distorted normalised coordinates [N, 2] -> undistorted (pinhole) normalised coordinates [N, 2].

    "nvm" is closed-form; "fisheye" inverts theta_d(theta) by 1-D Newton; "opencv" runs 2-D Newton on
    distort(p) = p_d with a central-difference Jacobian (float64), starting at p = p_d. Points outside the
    model's invertible domain come back as NaN.
    """
    xy_d = np.asarray(xy_distorted, dtype=np.float64)
    if distortion is None or distortion.is_identity:
        return xy_d.copy()
    c = distortion.coeffs
    if distortion.model == "nvm":
        return _nan_outside_domain(distortion, xy_d, xy_d * (1 + c[0] * np.sum(xy_d * xy_d, axis=-1, keepdims=True)))
    if distortion.model == "fisheye":
        theta_d = np.hypot(xy_d[..., 0], xy_d[..., 1])
        theta = theta_d.copy()
        for _ in range(iterations):
            t2 = theta * theta
            k1, k2, k3, k4 = c
            derivative = 1 + t2 * (3 * k1 + t2 * (5 * k2 + t2 * (7 * k3 + t2 * 9 * k4)))
            step = (_fisheye_theta_d(theta, c) - theta_d) / derivative
            theta -= step
            if np.all(np.abs(step) < 1e-15):
                break
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(theta_d > 1e-12, np.tan(theta) / theta_d, 1.0)
        return _nan_outside_domain(distortion, xy_d, xy_d * scale[..., None])
    x, y = xy_d[..., 0].copy(), xy_d[..., 1].copy()
    eps = 1e-7
    for _ in range(iterations):
        fx_, fy_ = _opencv_distort(x, y, c)
        rx, ry = fx_ - xy_d[..., 0], fy_ - xy_d[..., 1]
        ax, ay = _opencv_distort(x + eps, y, c)
        bx, by = _opencv_distort(x - eps, y, c)
        cx_, cy_ = _opencv_distort(x, y + eps, c)
        dx_, dy_ = _opencv_distort(x, y - eps, c)
        j00, j10 = (ax - bx) / (2 * eps), (ay - by) / (2 * eps)
        j01, j11 = (cx_ - dx_) / (2 * eps), (cy_ - dy_) / (2 * eps)
        det = j00 * j11 - j01 * j10
        det = np.where(np.abs(det) < 1e-12, 1e-12, det)
        sx = (j11 * rx - j01 * ry) / det
        sy = (-j10 * rx + j00 * ry) / det
        x, y = x - sx, y - sy
        if np.all(np.abs(sx) + np.abs(sy) < 1e-14):
            break
    return _nan_outside_domain(distortion, xy_d, np.stack([x, y], axis=-1))


def _radial_map(distortion: Distortion, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(undistorted radius, distorted radius) of the radial part of a lens along parameter t: the undistorted
    radius for "opencv" (NaN where the rational denominator is not positive), the angle theta for "fisheye"."""
    c = distortion.coeffs
    t2 = t * t
    if distortion.model == "fisheye":
        return np.tan(t), t * (1 + t2 * (c[0] + t2 * (c[1] + t2 * (c[2] + t2 * c[3]))))
    den = 1 + t2 * (c[5] + t2 * (c[6] + t2 * c[7]))
    return t, t * (1 + t2 * (c[0] + t2 * (c[1] + t2 * c[4]))) / np.where(den > 0, den, np.nan)


@functools.lru_cache(maxsize=4096)
def fold_radius(distortion: Distortion) -> float:
    """The undistorted radius where the radial part of an "opencv" / "fisheye" lens model stops increasing (its
    fold; inf when it increases out to radius 50 or, fisheye, to 90 degrees). Beyond it the model has no inverse.
    A scan on a coarse grid, then on a fine one inside the first bracket that turns back (to ~1e-7 of the range)."""
    lo, hi = 0.0, (np.pi / 2 if distortion.model == "fisheye" else 50.0)
    for _ in range(3):
        t = np.linspace(lo, hi, 2001)
        r, rd = _radial_map(distortion, t)
        bad = np.flatnonzero(~(np.diff(rd) > 0))  # turning back, or the rational denominator crossed zero
        if not len(bad):
            return float("inf") if lo == 0.0 else float(r[-1])
        lo, hi = t[max(bad[0] - 1, 0)], t[bad[0] + 1]
    return float(_radial_map(distortion, np.array([lo]))[0][0])


def in_lens_domain(distortion: Distortion, xy_d: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """[N] bool: xy [N, 2] is the undistortion of xy_d [N, 2] on the lens model's invertible branch.

    Newton can converge to a solution beyond the fold of the model (where the distortion polynomial turns back)
    or behind the camera (fisheye theta > 90 degrees): a finite answer that is the ray of another pixel. Valid is:
    finite, distort(xy) = xy_d, the radius of xy inside the fold of the radial part (fold_radius) and, with
    tangential terms, the Jacobian of `distort` positive at xy. "nvm" is closed-form: valid while
    r_d (1 + k r_d^2) still increases at the distorted radius r_d."""
    ok = np.all(np.isfinite(xy), axis=-1)
    if distortion.model == "nvm":
        k = distortion.coeffs[0]
        return ok & (1 + 3 * k * np.sum(xy_d * xy_d, axis=-1) > 0)
    safe = np.where(ok[:, None], xy, 0.0)
    ok &= np.max(np.abs(distort(distortion, safe) - xy_d), axis=-1) < 1e-8 * np.maximum(1, np.abs(xy_d).max(-1))
    ok &= np.hypot(safe[:, 0], safe[:, 1]) < fold_radius(distortion)
    if distortion.model == "opencv" and (distortion.coeffs[2] or distortion.coeffs[3]):
        eps = 1e-7
        jx = (distort(distortion, safe + [eps, 0]) - distort(distortion, safe - [eps, 0])) / (2 * eps)
        jy = (distort(distortion, safe + [0, eps]) - distort(distortion, safe - [0, eps])) / (2 * eps)
        ok &= jx[:, 0] * jy[:, 1] - jx[:, 1] * jy[:, 0] > 0
    return ok


def _nan_outside_domain(distortion: Distortion, xy_d: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """xy with NaN rows where it is not the undistortion of xy_d on the lens model's invertible branch: those
    pixels have no ray, and callers decide (mask them, or fall back to the pinhole direction)."""
    shape = xy.shape
    flat_d, flat = xy_d.reshape(-1, 2), xy.reshape(-1, 2).copy()
    with np.errstate(invalid="ignore", over="ignore"):
        flat[~in_lens_domain(distortion, flat_d, flat)] = np.nan
    return flat.reshape(shape)


def pixels_to_normalized(fx: float, fy: float, cx: float, cy: float, uv: np.ndarray,
                         distortion: Distortion | None = None) -> np.ndarray:
    """Continuous pixel coordinates [N, 2] -> undistorted normalised coordinates [N, 2] (pinhole x/z, y/z)."""
    uv = np.asarray(uv, dtype=np.float64)
    xy_d = np.stack([(uv[:, 0] - cx) / fx, (uv[:, 1] - cy) / fy], axis=-1)
    return undistort(distortion, xy_d)


def normalized_to_pixels(fx: float, fy: float, cx: float, cy: float, xy: np.ndarray,
                         distortion: Distortion | None = None) -> np.ndarray:
    """Undistorted normalised coordinates [N, 2] -> continuous pixel coordinates of the distorted image."""
    xy_d = distort(distortion, xy)
    return np.stack([xy_d[:, 0] * fx + cx, xy_d[:, 1] * fy + cy], axis=-1)
