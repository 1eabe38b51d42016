"""The cached appearance fit of `nerfw eval` (nerfw.evaluation.evaluate.ColourCache) against the reference fit
through the whole model: same weights, same gradients, same embedding and PSNR, same pixels used."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from helpers import trained_like_model
from nerfw.data.scene import CameraView, Normalization
from nerfw.fields.config import ModelConfig
from nerfw.model.nerfw_model import build_model
from nerfw.evaluation.evaluate import evaluate, load_image
from nerfw.model.appearance_fit import ColourCache, FitOptions, fit_appearance, left_part
from nerfw.evaluation.metrics import psnr
from nerfw.model.view_rendering import render_camera
from nerfw.training.run_io import load_run


def small_model(field: str, seed: int = 0, **overrides):
    """A small non-trivial model of either field (the mlp shrunk so whole images render in a test)."""
    if field == "grid":
        return trained_like_model("grid", seed)
    torch.manual_seed(seed)
    cfg = ModelConfig(field="mlp", layers=3, W=32, skip_layer=2, transient_layers=1, N_xyz_freq=4, N_dir_freq=2,
                      N_c=12, N_f=12, a_dim=8, t_dim=4, **overrides)
    model = build_model(cfg, n_images=4).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model


def small_camera(width: int = 21, height: int = 9) -> CameraView:
    """A camera at the origin looking down +z, in the model frame (identity normalisation); odd width."""
    return CameraView("cam.png", None, "test", width, height, 0.8 * width, 0.8 * width, width / 2, height / 2,
                      np.eye(4), 0.2, 3.0)


def random_rays(n: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    o = torch.randn(n, 3, generator=g) * 0.2
    d = torch.cat([torch.randn(n, 2, generator=g) * 0.4, torch.ones(n, 1)], dim=-1)
    return o, d, torch.full((n,), 0.1), torch.full((n,), 2.5)


@pytest.mark.parametrize("field", ["grid", "mlp"])
def test_appearance_changes_colour_only(field):
    # The premise of the cache: with the transient head off, weights (hence sample positions) and depths do not
    # depend on the appearance embedding; only the colour does.
    model = small_model(field)
    o, d, near, far = random_rays(64)
    ids = torch.zeros(64, dtype=torch.long)
    a, b = torch.randn(2, model.cfg.a_dim)
    with torch.no_grad():
        out_a = model(o, d, near, far, ids, appearance=a, use_transient=False, perturb=False)
        out_b = model(o, d, near, far, ids, appearance=b, use_transient=False, perturb=False)
    assert torch.equal(out_a.weights, out_b.weights) and torch.equal(out_a.depth_median, out_b.depth_median)
    assert not torch.allclose(out_a.rgb, out_b.rgb)


@pytest.mark.parametrize("field,white_back,sky", [("grid", False, False), ("grid", True, False), ("grid", False, True),
                                                ("mlp", False, False), ("mlp", True, False)])
def test_cached_colour_and_gradient_match_the_full_model(field, white_back, sky):
    # with the sky head, a thin field (density_bias -8) lets light through to the sky on most rays
    model = small_model(field) if not sky else trained_like_model("grid", 0, sky=True, density_bias=-8.0)
    model.cfg.white_back = white_back  # the renderers read the model's config object
    o, d, near, far = random_rays(96, seed=1)
    cache = ColourCache.build(model, o, d, near, far, image_id=2, chunk=40)  # chunks must not matter
    assert not sky or cache.sky_weight.median() > 0.2
    assert not (cache.feat.requires_grad or cache.weights.requires_grad or cache.rest.requires_grad)
    target = torch.rand(96, 3)
    rays = torch.tensor([5, 0, 95, 5, 17, 60])  # with a repeat, as drawn with replacement
    grads = []
    for use_cache in (True, False):
        vec = torch.nn.Parameter(torch.randn(model.cfg.a_dim, generator=torch.Generator().manual_seed(3)))
        if use_cache:
            rgb = cache.rgb(vec, rays)
        else:
            ids = torch.full((len(rays),), 2, dtype=torch.long)
            rgb = model(o[rays], d[rays], near[rays], far[rays], ids, appearance=vec, use_transient=False,
                        perturb=False).rgb
        torch.mean((rgb - target[rays]) ** 2).backward()
        grads.append((rgb.detach(), vec.grad.clone()))
    (rgb_c, grad_c), (rgb_f, grad_f) = grads
    assert torch.allclose(rgb_c, rgb_f, atol=1e-6)
    assert grad_f.abs().max() > 0
    assert torch.allclose(grad_c, grad_f, rtol=1e-4, atol=1e-7)
    with torch.no_grad():
        full = model(o, d, near, far, torch.full((96,), 2), appearance=vec, use_transient=False, perturb=False)
    rendered = cache.render(vec, chunk=50)
    for name in ("rgb", "rgb_static", "depth", "depth_median", "opacity", "beta"):
        assert torch.allclose(rendered[name], getattr(full, name), atol=1e-5), name


@pytest.mark.parametrize("field", ["grid", "mlp"])
def test_cached_fit_follows_the_reference_fit(field):
    model = small_model(field)
    cam = small_camera()
    truth = torch.randn(model.cfg.a_dim) * 0.7
    gt = render_camera(model, cam, Normalization(np.zeros(3), 1.0), 500, appearance=truth, image_id=1)["rgb"]
    start = model.appearance_vector(mean=True)
    kwargs = dict(steps=30, lr=0.05, rays_per_step=600)  # > CPU_PIECE: the cached fit sums pieces
    cached = fit_appearance(model, cam, Normalization(np.zeros(3), 1.0), gt, 1, start, FitOptions(method="cached", **kwargs))
    full = fit_appearance(model, cam, Normalization(np.zeros(3), 1.0), gt, 1, start, FitOptions(method="full", **kwargs))
    assert torch.allclose(cached, full, atol=1e-3)
    assert (cached - start).abs().max() > 0.1  # it did move
    assert all(p.requires_grad for p in model.parameters())  # the model is unfrozen again


@pytest.mark.parametrize("method", ["cached", "full"])
def test_right_half_never_influences_the_fit(method):
    model = small_model("grid")
    cam = small_camera(width=21)  # odd: the left part is columns 0..10, column 10 is also scored
    norm = Normalization(np.zeros(3), 1.0)
    gt = render_camera(model, cam, norm, 500, appearance=torch.randn(model.cfg.a_dim), image_id=1)["rgb"]
    changed = gt.copy()
    changed[:, cam.width - cam.width // 2:] = np.random.default_rng(0).random(changed[:, 11:].shape)
    start = model.appearance_vector(mean=True)
    fit = FitOptions(steps=15, rays_per_step=64, method=method)
    a = fit_appearance(model, cam, norm, gt, 1, start, fit)
    b = fit_appearance(model, cam, norm, changed, 1, start, fit)
    assert torch.equal(a, b)
    changed[:, 10] = 0.5  # the last column of the left part does count
    c = fit_appearance(model, cam, norm, changed, 1, start, fit)
    assert not torch.equal(a, c)
    cols = left_part(cam) % cam.width
    assert cols.max() == 10 and len(cols) == 11 * cam.height


@pytest.fixture(scope="module")
def run(tiny_run):
    return load_run(tiny_run)


def test_cached_fit_on_a_trained_model_matches_the_reference(run):
    cam_id, cam = next((i, c) for i, c in enumerate(run.scene.cameras) if c.split == "test")
    gt = load_image(cam.image_path, cam.width, cam.height)
    start = run.model.appearance_vector(mean=True)
    vecs = {m: fit_appearance(run.model, cam, run.normalization, gt, cam_id, start, FitOptions(steps=40, method=m))
            for m in ("cached", "full")}
    right = slice(cam.width // 2, None)
    scores = {m: psnr(render_camera(run.model, cam, run.normalization, 4096, appearance=v)["rgb"][:, right],
                      gt[:, right]) for m, v in vecs.items()}
    assert abs(scores["cached"] - scores["full"]) < 0.1
    assert torch.allclose(vecs["cached"], vecs["full"], atol=1e-3)


def test_cached_eval_scores_like_the_reference_eval(run, tmp_path):
    quiet = lambda m: None  # noqa: E731
    cached = evaluate(run, "test", fit=FitOptions(steps=30, method="cached"), out_dir=tmp_path / "c", log=quiet,
                      max_images=2)
    full = evaluate(run, "test", fit=FitOptions(steps=30, method="full"), out_dir=tmp_path / "f", log=quiet,
                    max_images=2)
    assert cached["protocol"]["fit_method"] == "cached" and full["protocol"]["fit_method"] == "full"
    for a, b in zip(cached["per_image"], full["per_image"]):
        assert a["name"] == b["name"] and abs(a["psnr"] - b["psnr"]) < 0.1 and abs(a["ssim"] - b["ssim"]) < 0.005
    saved = json.loads((tmp_path / "c" / "metrics.json").read_text())
    assert saved["protocol"]["fit_method"] == "cached"


def test_cached_eval_scores_the_model_rendering(run):
    # The scored columns come from the model's own renderer with the fitted appearance, the others from the
    # cache: the assembled image equals render_camera's everywhere.
    from nerfw.evaluation.evaluate import fit_and_render

    cam_id, cam = next((i, c) for i, c in enumerate(run.scene.cameras) if c.split == "test")
    gt = load_image(cam.image_path, cam.width, cam.height)
    vec, out = fit_and_render(run, cam, cam_id, gt, chunk=700, fit=FitOptions(steps=5))
    ref = render_camera(run.model, cam, run.normalization, 1000, appearance=vec, image_id=cam_id)
    right = slice(cam.width // 2, None)
    assert np.array_equal(out["rgb"][:, right], ref["rgb"][:, right]) or \
        np.allclose(out["rgb"][:, right], ref["rgb"][:, right], atol=1e-6)
    for name in ("rgb", "rgb_static", "rgb_transient", "depth", "opacity", "beta"):
        assert np.allclose(out[name], ref[name], atol=1e-5), name


def test_rays_outside_the_cache_budget_use_the_full_fit(run, tmp_path):
    result = evaluate(run, "test", fit=FitOptions(steps=2, max_cache_mb=0), out_dir=tmp_path, log=lambda m: None,
                      max_images=1, write_panels=False)
    assert result["protocol"]["fit_method"] == "full"


PROC_STAT_BEFORE = """cpu  1000 0 100 5000 100 0 0 0 0 0
cpu0 500 0 50 2500 50 0 0 0 0 0
cpu1 500 0 50 2500 50 0 0 0 0 0
intr 1 2 3
"""
# 100 ticks per core: cpu0 busy 90 of them (10 idle), cpu1 idle 60 + iowait 10 + steal 20 (another VM's time)
PROC_STAT_AFTER = """cpu  1090 0 110 5070 110 0 0 20 0 0
cpu0 580 0 60 2510 50 0 0 0 0 0
cpu1 510 0 50 2560 60 0 0 20 0 0
intr 1 2 3
"""


def test_idle_cores_are_read_per_core_from_proc_stat(tmp_path, monkeypatch):
    from nerfw.evaluation import evaluate as ev

    (tmp_path / "a").write_text(PROC_STAT_BEFORE)
    (tmp_path / "b").write_text(PROC_STAT_AFTER)
    before, after = ev.read_cpu_times(str(tmp_path / "a")), ev.read_cpu_times(str(tmp_path / "b"))
    assert before["cpu1"] == (2550, 3100) and set(before) == {"cpu", "cpu0", "cpu1"}
    assert ev.idle_share(before, after, [0, 1]) == pytest.approx(0.1 + 0.7)  # steal is not idle
    assert ev.idle_share(before, after, [1]) == pytest.approx(0.7)
    assert ev.idle_share(before, after, [5]) == pytest.approx(80 / 200)  # no own line: the all-CPU share
    assert ev.idle_share(before, before, [0]) is None
    # threads: the measured idle cores rounded, at least 1; $OMP_NUM_THREADS wins; the load average only without
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(ev.os, "sched_getaffinity", lambda _pid: {0, 1}, raising=False)
    monkeypatch.setattr(ev.os, "getloadavg", lambda: (2.0, 2.0, 2.0))  # lags: the last minute was busy
    monkeypatch.setattr(ev, "idle_cores", lambda cores, window_s=0.25: 1.8)
    assert ev.cpu_threads() == 2
    monkeypatch.setattr(ev, "idle_cores", lambda cores, window_s=0.25: 0.2)
    assert ev.cpu_threads() == 1
    monkeypatch.setattr(ev, "idle_cores", lambda cores, window_s=0.25: None)
    assert ev.cpu_threads() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert ev.cpu_threads() == 3


def test_idle_cores_on_this_machine_are_within_its_cores():
    import os

    from nerfw.evaluation.evaluate import idle_cores

    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [0]
    idle = idle_cores(cores, window_s=0.1)
    if idle is None:
        pytest.skip("no /proc/stat here")
    assert -1e-9 <= idle <= len(cores) + 1e-9


@pytest.mark.parametrize("method", ["cached", "full"])
def test_pixels_without_a_ray_are_neither_fitted_nor_scored(method):
    """A lens that folds inside its image (k1 = -0.6) leaves its corners without a ray: the left-half fit never
    draws them and the right half is scored without them (a NaN photo colour there would spread otherwise)."""
    from nerfw.cameras.conventions import Distortion
    from nerfw.evaluation.evaluate import scores
    from nerfw.model.appearance_fit import lens_defined

    model = trained_like_model(seed=9)
    camera = CameraView("a.png", None, "test", 20, 16, 10.0, 10.0, 10.0, 8.0, np.eye(4), 0.1, 10.0,
                        distortion=Distortion("opencv", [-0.6]))
    defined = lens_defined(camera).numpy().reshape(16, 20)
    x, y = np.meshgrid((np.arange(20) + 0.5 - 10) / 10, (np.arange(16) + 0.5 - 8) / 10)
    np.testing.assert_array_equal(defined, np.hypot(x, y) <= 0.497)  # the fold of 1 - 0.6 r^2, distorted radius
    gt = np.full((16, 20, 3), 0.4)
    gt[~defined] = np.nan
    vec = fit_appearance(model, camera, Normalization(np.zeros(3), 1.0), gt, 0, model.appearance_vector(mean=True),
                         FitOptions(steps=20, method=method))
    assert torch.isfinite(vec).all() and not torch.equal(vec, model.appearance_vector(mean=True))
    image = np.random.default_rng(0).random((16, 20, 3))
    right = slice(10, None)
    s = scores(image[:, right], gt[:, right], defined[:, right])
    assert s["pixels_without_ray"] == int((~defined[:, right]).sum()) > 0
    assert s["psnr"] == pytest.approx(psnr(image[:, right][defined[:, right]], gt[:, right][defined[:, right]]))
    assert np.isfinite(s["ssim"])
    pinhole = CameraView("b.png", None, "test", 20, 16, 10.0, 10.0, 10.0, 8.0, np.eye(4), 0.1, 10.0)
    assert lens_defined(pinhole) is None
    assert "pixels_without_ray" not in scores(image, np.full_like(image, 0.4), None)
