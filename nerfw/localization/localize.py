"""Localize one query against a LocMap: retrieval -> 2-D/3-D matches -> PnP -> refinement by rendering.

Stages of a query (each recorded with its pose, so one run measures them all):

* ``retrieval``: the pose of the top VLAD match (no geometry);
* ``map``: mutual-nearest-neighbour + ratio-test matches of the query's SIFT to each of the top-k map images'
  keypoints with a 3-D point, pooled (with synthesized views in the map, the top-k photographs are matched too);
  LO-RANSAC PnP + non-linear refinement (pycolmap); with synthesized views, the final refinement uses the
  photographs' inliers only;
* ``refined``: the model renders the static scene (fast renderer, pinhole, at the query's feature resolution,
  appearance of the training image nearest to the estimate) at the current estimate; SIFT of the render, each
  render keypoint's 3-D point from the rendered median depth (where the opacity is >= 0.9); the query is matched
  to the render and the pose solved again. A round is kept when it has more PnP inliers than the estimate it
  started from (the map's, then the previous round's); rounds repeat while the count grows (``refine`` at most).
* ``photometric``: dense alignment of the query photo to the model's RGB-D render at the estimate
  (nerfw.localization.photometric: every rendered pixel with a surface, a per-channel gain and offset, Gauss-Newton
  on a blur pyramid), rendered again at the result and repeated (``photometric`` rounds). A round is kept when it
  lowers the photometric residual and the PnP inliers still fit its pose; this stage gives the final pose.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import numpy as np

from nerfw.cameras.conventions import intrinsics_matrix, invert_T, project_points
from nerfw.data.features import SiftExtractor, match_descriptors, read_grey, read_rgb, to_grey
from nerfw.localization.mapping import LocMap, bounds_for, feature_shape, normalized_rays
from nerfw.localization.photometric import align, undistort_image
from nerfw.localization.pose import PoseEstimate, pose_errors, refine_pose, solve_pose
from nerfw.localization.queries import Query
from nerfw.localization.retrieval import top_k, vlad
from nerfw.model.view_rendering import render_camera

# The default alignment resolution stops here (longest side, pixels): each round renders every pixel, and a
# 1920-pixel render costs minutes per query on a CPU. --photometric_size goes beyond it (e.g. on a GPU).
PHOTOMETRIC_DEFAULT_MAX = 1024


@dataclass
class LocalizeParams:
    top_k: int = 5  # map images matched per query
    ratio: float = 0.8  # Lowe's ratio
    max_error: float = 4.0  # RANSAC reprojection threshold, pixels of the feature image
    min_inliers: int = 12  # fewer PnP inliers: the query fails
    refine: int = 3  # render-and-match rounds at most (0: no refinement)
    render_min_opacity: float = 0.9  # render keypoints need this opacity for a 3-D point
    photometric: int = 2  # photometric alignment rounds (render + align) at most (0: off; docs/localization.md)
    photometric_size: int = 0  # longest side of the aligned images (0: twice the map's feature size)
    photometric_max_growth: float = 1.5  # the PnP inliers' median reprojection error may grow this many times
    photometric_max_drift: float = 0.1  # ... plus this many feature pixels
    # ... and the inliers' squared residuals, in units of their own variance, may grow by at most this much: a
    # likelihood-ratio test of the move against the matches (MatchSupport). Independent Gaussian residuals would
    # put the 99 % bound at 16.8 (chi-square, 6 degrees of freedom); a map rendered from a NeRF has correlated depth
    # errors, so the bound is 6x that: corrections that helped on the built-in scene reached 43, the moves rejected
    # on instant-ngp's fox (thousands of sub-pixel inliers; they made its poses worse) 1,100-2,200.
    photometric_max_chi2: float = 100.0
    chunk: int = 8192


@dataclass
class QueryResult:
    name: str
    status: str = "failed"  # "ok" | "failed"
    reason: str = ""
    T_world_cam: np.ndarray | None = None
    inliers: int = 0
    matches: int = 0
    keypoints: int = 0
    retrieved: list = field(default_factory=list)  # [(name, similarity)]
    stages: dict = field(default_factory=dict)  # stage -> {"T_world_cam", "inliers", "seconds"}
    seconds: float = 0.0
    T_true: np.ndarray | None = None


class Localizer:
    def __init__(self, run, locmap: LocMap, params: LocalizeParams, extractor: SiftExtractor | None = None):
        self.run, self.map, self.params = run, locmap, params
        self.extractor = extractor or SiftExtractor()
        train = np.nonzero(locmap.image_ids >= 0)[0]
        self._train_rows = train  # map rows that are training photographs (appearance for the renders)

    # ------------------------------------------------------------------ pieces
    def _ref_pixels(self, query: Query, uv_feat: np.ndarray, shape) -> np.ndarray:
        """Undistorted pinhole pixel coordinates [N, 2] in the query's reference camera."""
        cam = query.camera
        xy = normalized_rays(cam, keypoints_in_camera_uv(uv_feat, cam, shape))
        return xy * np.array([cam.fx, cam.fy]) + np.array([cam.cx, cam.cy])

    def _solve(self, query: Query, shape, uv_ref: np.ndarray, xyz: np.ndarray) -> PoseEstimate | None:
        cam = query.camera
        max_error = self.params.max_error * cam.width / shape[0]  # feature pixels -> reference pixels
        return solve_pose(uv_ref, xyz, cam.fx, cam.fy, cam.cx, cam.cy, cam.width, cam.height, max_error,
                          self.params.min_inliers)

    def _map_matches(self, desc: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Pooled matches of the query to the map images `rows`: (query keypoint index [M], 3-D point [M, 3],
        whether the map image is a photograph [M])."""
        q_idx, xyz, photo = [], [], []
        for i in rows:
            d, X = self.map.image_features(int(i))
            pairs = match_descriptors(desc, d, self.params.ratio)
            q_idx.append(pairs[:, 0])
            xyz.append(X[pairs[:, 1]])
            photo.append(np.full(len(pairs), bool(self.map.photo[int(i)])))
        if not q_idx:
            return np.zeros(0, np.int64), np.zeros((0, 3)), np.zeros(0, bool)
        return np.concatenate(q_idx), np.concatenate(xyz), np.concatenate(photo)

    def _refine_on_photos(self, query: Query, est: PoseEstimate, uv: np.ndarray, xyz: np.ndarray,
                          photo: np.ndarray) -> PoseEstimate:
        """With synthesized views in the map: the RANSAC pose refined over the photographs' inliers only. The
        renders' matches help RANSAC find the pose (more of the scene covered); their keypoints, detected in the
        model's blurrier images, are less precise, so they stay out of the final least squares."""
        keep = est.inlier_mask & photo
        if photo.all() or keep.sum() < self.params.min_inliers:
            return est
        cam = query.camera
        return refine_pose(est, uv, xyz, keep, cam.fx, cam.fy, cam.cx, cam.cy, cam.width, cam.height)

    def _retrieved(self, rows: np.ndarray, sims: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The top_k map images by similarity, and with synthesized views in the map also the top_k photographs
        (renders must not crowd the photographs out of the matching: they add matches, never remove them)."""
        k = self.params.top_k
        pick = list(range(min(k, len(rows))))
        photos = [j for j in range(len(rows)) if self.map.photo[int(rows[j])]][:k]
        pick = sorted(set(pick) | set(photos))
        return rows[pick], sims[pick]

    def _appearance_row(self, T: np.ndarray) -> int:
        centres = self.map.centers[self._train_rows]
        return int(self.map.image_ids[self._train_rows[int(np.argmin(np.linalg.norm(centres - T[:3, 3], axis=1)))]])

    def _render(self, query: Query, shape, T: np.ndarray):
        """The model's static render at pose T through the query's pinhole camera at the feature resolution:
        (that camera, render_camera's output)."""

        cam = query.camera
        sx, sy = shape[0] / cam.width, shape[1] / cam.height
        cam_f = dataclasses.replace(cam, width=shape[0], height=shape[1], fx=cam.fx * sx, fy=cam.fy * sy,
                                    cx=cam.cx * sx, cy=cam.cy * sy, T_world_cam=T, distortion=None)
        if cam_f.far <= 0:

            cam_f = bounds_for(self.run, cam_f)
        image_id = self._appearance_row(T)
        out = render_camera(self.run.model, cam_f, self.run.normalization, self.params.chunk,
                            appearance=self.run.model.appearance_vector(image_id=image_id), image_id=image_id,
                            use_transient=False, fast=True, distortion=False)
        return cam_f, out

    def _render_points(self, query: Query, shape, T: np.ndarray):
        """SIFT of the model's render at pose T, with the rendered 3-D point of each keypoint: (desc, xyz)."""
        cam_f, out = self._render(query, shape, T)
        feats = self.extractor(to_grey(out["rgb"]))
        iu = np.clip(np.floor(feats.uv[:, 0]).astype(int), 0, shape[0] - 1)
        iv = np.clip(np.floor(feats.uv[:, 1]).astype(int), 0, shape[1] - 1)
        z, op = out["depth"][iv, iu], out["opacity"][iv, iu]
        keep = (op >= self.params.render_min_opacity) & np.isfinite(z) & (z > 0)
        xy = (feats.uv[keep] - [cam_f.cx, cam_f.cy]) / [cam_f.fx, cam_f.fy]
        X = (np.concatenate([xy, np.ones((len(xy), 1))], -1) * z[keep][:, None]) @ T[:3, :3].T + T[:3, 3]
        return feats.desc[keep], X

    # ------------------------------------------------------------------ one query
    def localize(self, query: Query) -> QueryResult:
        p = self.params
        t0 = time.time()
        res = QueryResult(query.name, T_true=query.camera.T_world_cam if query.known else None)
        shape = feature_shape(query.path, self.map.feature_size)
        feats = self.extractor(read_grey(query.path, shape))
        res.keypoints = len(feats)
        if len(feats) < p.min_inliers:
            return self._fail(res, t0, f"only {len(feats)} SIFT keypoints (an image without texture, e.g. sky)")
        rows, sims = top_k(vlad(feats.desc, self.map.centres), self.map.vlad, len(self.map.names))
        rows, sims = self._retrieved(rows, sims)
        res.retrieved = [(self.map.names[int(i)], float(s)) for i, s in zip(rows, sims)]
        res.stages["retrieval"] = {"T_world_cam": self.map.T_world_cam[int(rows[0])].copy(), "inliers": 0,
                                   "seconds": time.time() - t0}
        uv_ref = self._ref_pixels(query, feats.uv, shape)
        q_idx, xyz, photo = self._map_matches(feats.desc, rows)
        res.matches = len(q_idx)
        if len(q_idx) < p.min_inliers:
            return self._fail(res, t0, f"only {len(q_idx)} 2-D/3-D matches with the top {p.top_k} map images")
        est = self._solve(query, shape, uv_ref[q_idx], xyz)
        if est is None:
            return self._fail(res, t0, f"no pose with >= {p.min_inliers} inliers from {len(q_idx)} matches")
        est = self._refine_on_photos(query, est, uv_ref[q_idx], xyz, photo)
        res.stages["map"] = {"T_world_cam": est.T_world_cam, "inliers": est.inliers, "seconds": time.time() - t0}
        best = est
        rounds = 0
        for _ in range(p.refine):
            desc_r, X_r = self._render_points(query, shape, best.T_world_cam)
            pairs = match_descriptors(feats.desc, desc_r, p.ratio)
            new = self._solve(query, shape, uv_ref[pairs[:, 0]], X_r[pairs[:, 1]]) if len(pairs) else None
            if new is None or new.inliers <= best.inliers:
                break
            best = new
            rounds += 1
        if p.refine > 0:
            res.stages["refined"] = {"T_world_cam": best.T_world_cam, "inliers": best.inliers, "rounds": rounds,
                                     "seconds": time.time() - t0}
        T_final = best.T_world_cam
        if p.photometric > 0:
            keep = est.inlier_mask
            check = (uv_ref[q_idx][keep], xyz[keep], self.params.photometric_max_drift * query.camera.width / shape[0])
            T_final = self._photometric(query, T_final, res, t0, check)
        res.status, res.T_world_cam, res.inliers = "ok", T_final, best.inliers
        res.seconds = time.time() - t0
        return res

    def _photometric(self, query: Query, T: np.ndarray, res: QueryResult, t0: float, check) -> np.ndarray:
        """The ``photometric`` stage: rounds of render at T + align the query photo to it; returns the final pose.

        ``check`` = (uv [N, 2] reference pixels, xyz [N, 3], drift): the PnP inliers. A round's pose must still
        explain them: its median reprojection error may be at most ``photometric_max_growth`` times the PnP pose's
        plus ``drift`` pixels. The inliers' residual is the features' own precision; a correction far beyond it is
        not supported by them (a weak model's blurred render can pull the alignment off; measured on the
        built-in scene, good corrections changed the median by -50 % to +70 %)."""

        cam = query.camera
        # twice the feature resolution (never above the photo's own, nor above PHOTOMETRIC_DEFAULT_MAX unless asked):
        # alignment is precise to a fraction of a pixel, and a finer pixel is a finer pose (docs/localization.md)
        size = self.params.photometric_size or min(2 * self.map.feature_size, PHOTOMETRIC_DEFAULT_MAX)
        shape = feature_shape(query.path, size)
        sx, sy = shape[0] / cam.width, shape[1] / cam.height
        K = (cam.fx * sx, cam.fy * sy, cam.cx * sx, cam.cy * sy)
        photo = undistort_image(read_rgb(query.path, shape), *K, cam.distortion)
        info = {"rounds": 0, "cost_before": None, "cost_after": None, "rejected": ""}
        uv_in, xyz_in, drift = check
        support = MatchSupport(T, uv_in, xyz_in, cam, floor_px=drift)
        limit = self.params.photometric_max_growth * support.base_median + drift
        for _ in range(self.params.photometric):
            cam_f, out = self._render(query, shape, T)
            depth = out["depth"]
            # surfaces only: pixels that are mostly empty or lie beyond the scene's far bound (sky) have no depth
            valid = (out["opacity"] >= self.params.render_min_opacity) & np.isfinite(depth) & (depth < cam_f.far)
            fit = align(photo, out["rgb"], depth, valid, K)
            if fit is None or fit.cost_after >= fit.cost_before:
                info["rejected"] = "no alignment" if fit is None else "no lower photometric residual"
                break
            T_new = T @ invert_T(fit.T_qr)  # world <- render camera <- query camera
            median, info["chi2"] = support.test(T_new)
            if median > limit:
                info["rejected"] = "the aligned pose does not explain the feature matches"
                break
            if info["chi2"] > self.params.photometric_max_chi2:
                info["rejected"] = (f"the feature matches contradict the aligned pose (chi-square growth "
                                    f"{info['chi2']:.3g} > {self.params.photometric_max_chi2:.3g})")
                break
            T = T_new
            info["rounds"] += 1
            info["cost_after"] = fit.cost_after
            if info["cost_before"] is None:
                info["cost_before"] = fit.cost_before
        res.stages["photometric"] = {"T_world_cam": T, "inliers": 0, **info, "seconds": time.time() - t0}
        return T

    def _fail(self, res: QueryResult, t0: float, reason: str) -> QueryResult:
        res.status, res.reason, res.seconds = "failed", reason, time.time() - t0
        return res


def reprojection_distances(T_world_cam: np.ndarray, uv: np.ndarray, xyz: np.ndarray, cam) -> np.ndarray:
    """Distances in pixels [N] between points xyz [N, 3] projected by the pinhole camera `cam` at T_world_cam and
    their observations uv [N, 2] (undistorted reference pixels); inf for points behind the camera."""

    proj, z = project_points(intrinsics_matrix(cam.fx, cam.fy, cam.cx, cam.cy), T_world_cam, xyz)
    return np.where(z > 1e-9, np.linalg.norm(proj - uv, axis=1), np.inf)


class MatchSupport:
    """How strongly the PnP inliers hold a pose: the growth of their squared reprojection residuals from the PnP
    pose's, in units of the residuals' own variance - a likelihood-ratio (chi-square) test of a move against the
    matches. A precise PnP (thousands of sub-pixel inliers, as on instant-ngp's fox) rejects a move of a few
    millimetres; a few dozen noisy inliers from a coarse map (the built-in scene's weak models) let the alignment
    correct a pose by tens of centimetres. Residuals are truncated at ``TRUNCATE`` sigmas, so a few wrong inliers
    cannot veto a move on their own."""

    TRUNCATE = 3.0

    def __init__(self, T_world_cam: np.ndarray, uv: np.ndarray, xyz: np.ndarray, cam, floor_px: float):
        self.uv, self.xyz, self.cam = uv, xyz, cam
        r = reprojection_distances(T_world_cam, uv, xyz, cam)
        self.base_median = _finite_median(r)
        # per-axis sigma of 2-D Gaussian residuals from their median length (Rayleigh: median = 1.1774 sigma)
        self.sigma = max(self.base_median / 1.1774, floor_px, 1e-6)
        self.base = self._cost(r)

    def _cost(self, r: np.ndarray) -> float:
        return float(np.sum(np.minimum(r / self.sigma, self.TRUNCATE) ** 2))

    def test(self, T_world_cam: np.ndarray) -> tuple[float, float]:
        """(median reprojection error in pixels, chi-square growth) of the inliers at another pose."""
        r = reprojection_distances(T_world_cam, self.uv, self.xyz, self.cam)
        return _finite_median(r), self._cost(r) - self.base

    def chi2_growth(self, T_world_cam: np.ndarray) -> float:
        return self.test(T_world_cam)[1]


def _finite_median(r: np.ndarray) -> float:
    r = r[np.isfinite(r)]
    return float(np.median(r)) if len(r) else float("inf")


def keypoints_in_camera_uv(uv_feat: np.ndarray, camera, shape) -> np.ndarray:
    return uv_feat * np.array([camera.width / shape[0], camera.height / shape[1]])


def errors_of(res: QueryResult, stage: str | None = None) -> tuple[float, float]:
    """(translation, rotation degrees) of a result (or of one of its stages) against its true pose; inf when the
    query (or stage) failed; nan when the true pose is unknown."""
    if res.T_true is None:
        return float("nan"), float("nan")
    if stage is None:
        T = res.T_world_cam if res.status == "ok" else None
    else:
        T = res.stages.get(stage, {}).get("T_world_cam")
    if T is None:
        return float("inf"), float("inf")
    return pose_errors(T, res.T_true)
