"""Absolute pose from 2-D/3-D matches (pycolmap LO-RANSAC PnP + non-linear refinement), pose errors and recall."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from nerfw.cameras.conventions import invert_T, rotation_angle

# (translation in dataset units, rotation in degrees): Cambridge's usual 0.25 m / 2 deg, 0.5 m / 5 deg, 5 m / 10 deg
# and 7-Scenes' 5 cm / 5 deg.
RECALL_THRESHOLDS = ((0.25, 2.0), (0.5, 5.0), (5.0, 10.0), (0.05, 5.0))


@dataclass
class PoseEstimate:
    T_world_cam: np.ndarray  # [4, 4] dataset frame
    inliers: int
    matches: int
    inlier_mask: np.ndarray  # [matches] bool


def _pinhole(fx: float, fy: float, cx: float, cy: float, width: int, height: int):
    import pycolmap

    return pycolmap.Camera(model="PINHOLE", width=int(width), height=int(height), params=[fx, fy, cx, cy])


def _T_world_cam(cam_from_world, origin: np.ndarray) -> np.ndarray:
    """pycolmap's cam_from_world, solved for points shifted by -origin -> T_world_cam in the dataset frame."""
    T_cam_world = np.eye(4)
    T_cam_world[:3, :] = cam_from_world.matrix()
    T = invert_T(T_cam_world)
    T[:3, 3] += origin
    return T


def solve_pose(uv: np.ndarray, xyz: np.ndarray, fx: float, fy: float, cx: float, cy: float, width: int, height: int,
               max_error: float, min_inliers: int = 12) -> PoseEstimate | None:
    """Pose of a pinhole camera from undistorted pixel coordinates uv [N, 2] and dataset points xyz [N, 3];
    `max_error` is the RANSAC reprojection threshold in pixels. None when it fails or finds < min_inliers."""
    import pycolmap

    if len(uv) < max(4, min_inliers):
        return None
    origin = np.median(xyz, axis=0)  # solve near the origin (dataset frames can sit far from their content)
    camera = _pinhole(fx, fy, cx, cy, width, height)
    est = pycolmap.AbsolutePoseEstimationOptions()
    est.ransac.max_error = float(max_error)
    est.ransac.random_seed = 0
    est.ransac.min_inlier_ratio = 0.01
    est.ransac.max_num_trials = 10000
    ref = pycolmap.AbsolutePoseRefinementOptions()
    result = pycolmap.estimate_and_refine_absolute_pose(np.ascontiguousarray(uv, np.float64),
                                                        np.ascontiguousarray(xyz - origin, np.float64), camera, est,
                                                        ref)
    if result is None or int(result["num_inliers"]) < min_inliers:
        return None
    return PoseEstimate(_T_world_cam(result["cam_from_world"], origin), int(result["num_inliers"]), len(uv),
                        np.asarray(result["inlier_mask"], bool))


def refine_pose(est: PoseEstimate, uv: np.ndarray, xyz: np.ndarray, keep: np.ndarray, fx: float, fy: float,
                cx: float, cy: float, width: int, height: int) -> PoseEstimate:
    """`est` refined (Ceres, pycolmap) over the matches `keep` [N] only (a subset of its inliers), e.g. to drop
    less precise ones from the final least squares; `est` unchanged when the refinement fails."""
    import pycolmap

    origin = np.median(xyz[keep], axis=0)
    T_cam_world = invert_T(est.T_world_cam)
    t = T_cam_world[:3, :3] @ origin + T_cam_world[:3, 3]  # the same pose with the points shifted by -origin
    start = pycolmap.Rigid3d(pycolmap.Rotation3d(T_cam_world[:3, :3]), t)
    result = pycolmap.refine_absolute_pose(start, np.ascontiguousarray(uv, np.float64),
                                           np.ascontiguousarray(xyz - origin, np.float64),
                                           np.ascontiguousarray(keep, bool), _pinhole(fx, fy, cx, cy, width, height))
    if result is None:
        return est
    return PoseEstimate(_T_world_cam(result["cam_from_world"], origin), int(np.sum(keep)), est.matches,
                        np.asarray(keep, bool))


def pose_errors(T_est: np.ndarray, T_true: np.ndarray) -> tuple[float, float]:
    """(distance between the camera centres in dataset units, rotation angle between them in degrees)."""
    t = float(np.linalg.norm(T_est[:3, 3] - T_true[:3, 3]))
    r = math.degrees(rotation_angle(T_est[:3, :3].T @ T_true[:3, :3]))
    return t, r


def summarize(t_errors, r_errors, thresholds=RECALL_THRESHOLDS) -> dict:
    """Median errors and recall (share within both thresholds) over every query; failures are infinite errors."""
    t = np.asarray(t_errors, np.float64)
    r = np.asarray(r_errors, np.float64)
    if len(t) == 0:
        return {"queries": 0}
    out = {"queries": int(len(t)), "median_translation": float(np.median(t)), "median_rotation_deg": float(np.median(r)),
           "failed": int(np.sum(~np.isfinite(t)))}
    for dt, dr in thresholds:
        out[f"recall_{dt:g}_{dr:g}deg"] = float(np.mean((t <= dt) & (r <= dr)))
    return out
