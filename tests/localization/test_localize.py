"""`nerfw localize` pieces on synthetic data (no model): matching, PnP, errors and recall, and the one-line error of
a run without a checkpoint. The tests with a trained model are in tests/test_localize_model.py."""
from __future__ import annotations

import numpy as np
import pytest


def test_a_run_without_a_model_is_a_one_line_error(tmp_path, capsys):
    from nerfw.cli import main

    (tmp_path / "config.json").write_text("{}")
    assert main(["localize", "--run", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no readable checkpoint" in err


def test_matching_is_mutual_and_passes_the_ratio_test():
    from nerfw.data.features import match_descriptors

    rng = np.random.default_rng(0)
    a = rng.normal(size=(50, 128)).astype(np.float32)
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    perm = rng.permutation(50)
    b = a[perm] + 0.01 * rng.normal(size=(50, 128)).astype(np.float32)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    pairs = match_descriptors(a, b)
    assert len(pairs) == 50 and np.all(perm[pairs[:, 1]] == pairs[:, 0])
    # an ambiguous descriptor (two near-identical candidates in b) fails the ratio test
    b2 = np.concatenate([b, b[:1] + 1e-4])
    b2 /= np.linalg.norm(b2, axis=1, keepdims=True)
    assert perm[0] not in match_descriptors(a, b2)[:, 0]
    assert match_descriptors(a, b[:0]).shape == (0, 2)


def test_pose_errors_and_recall():
    from nerfw.cameras.conventions import axis_angle_to_rotmat, make_T
    from nerfw.localization.pose import pose_errors, summarize

    T = make_T(axis_angle_to_rotmat([0.1, 0.2, 0.3]), [1.0, 2.0, 3.0])
    T2 = make_T(T[:3, :3] @ axis_angle_to_rotmat([0.0, 0.0, np.radians(4.0)]), [1.0, 2.3, 3.4])
    t, r = pose_errors(T2, T)
    assert t == pytest.approx(0.5) and r == pytest.approx(4.0)
    s = summarize([0.1, 0.4, np.inf], [1.0, 4.0, np.inf])
    assert s["failed"] == 1 and s["median_translation"] == pytest.approx(0.4)
    assert s["recall_0.25_2deg"] == pytest.approx(1 / 3) and s["recall_0.5_5deg"] == pytest.approx(2 / 3)


def test_pnp_recovers_a_synthetic_pose():
    from nerfw.cameras.conventions import axis_angle_to_rotmat, invert_T, make_T
    from nerfw.localization.pose import pose_errors, solve_pose

    rng = np.random.default_rng(1)
    T = make_T(axis_angle_to_rotmat([0.05, -0.3, 0.02]), [480.0, -320.0, 12.0])  # far from the origin
    X_cam = np.concatenate([rng.uniform(-8, 8, (200, 2)), rng.uniform(10, 40, (200, 1))], -1)
    X = X_cam @ T[:3, :3].T + T[:3, 3]
    uv = X_cam[:, :2] / X_cam[:, 2:] * 100.0 + [80.0, 45.0]
    uv[:40] += rng.uniform(-30, 30, (40, 2))  # 20 % outliers
    est = solve_pose(uv, X, 100.0, 100.0, 80.0, 45.0, 160, 90, max_error=2.0)
    assert est is not None and est.inliers >= 160
    t, r = pose_errors(est.T_world_cam, T)
    assert t < 1e-6 and r < 1e-6
    assert np.allclose(invert_T(invert_T(est.T_world_cam)), est.T_world_cam)


def test_refining_on_a_subset_of_the_matches_drops_the_biased_ones():
    """The (c) map's final refinement: photographs' inliers only. Half the matches carry a 0.8 px bias (like a
    render's keypoints); refined over the unbiased half the error drops over 100-fold."""
    from nerfw.cameras.conventions import axis_angle_to_rotmat, make_T
    from nerfw.localization.pose import pose_errors, refine_pose, solve_pose

    rng = np.random.default_rng(2)
    T = make_T(axis_angle_to_rotmat([0.1, 0.4, -0.05]), [480.0, -320.0, 12.0])
    X_cam = np.concatenate([rng.uniform(-8, 8, (200, 2)), rng.uniform(10, 40, (200, 1))], -1)
    X = X_cam @ T[:3, :3].T + T[:3, 3]
    uv = X_cam[:, :2] / X_cam[:, 2:] * 100.0 + [80.0, 45.0]
    uv[100:] += [0.8, 0.0]
    photo = np.arange(200) < 100
    est = solve_pose(uv, X, 100.0, 100.0, 80.0, 45.0, 160, 90, max_error=2.0)
    assert est is not None and est.inliers == 200
    biased = pose_errors(est.T_world_cam, T)[0]
    assert biased > 1e-2
    refined = refine_pose(est, uv, X, est.inlier_mask & photo, 100.0, 100.0, 80.0, 45.0, 160, 90)
    t, r = pose_errors(refined.T_world_cam, T)
    assert t < 0.01 * biased and r < 1e-2 and refined.inliers == 100
