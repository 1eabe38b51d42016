"""The fast inference renderer (nerfw.model.fast_render) against the renderer as trained."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import trained_like_model
from nerfw.fields.grid_field import to_grid_coords
from nerfw.fields.config import ModelConfig
from nerfw.model.fast_render import BakedDensity, FastGridRenderer, FastRenderSettings
from nerfw.model.nerfw_model import build_model
from nerfw.evaluation import metrics
from nerfw.model.view_rendering import render_camera
from nerfw.training.run_io import load_run


def _rays(n: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    o = 0.2 * torch.randn(n, 3, generator=g)
    d = torch.randn(n, 3, generator=g)
    d[:, 2] = 1.0  # camera-z = 1 convention
    return o, d, torch.full((n,), 0.05), torch.full((n,), 2.0)


class _ExactProposal:
    """Stands in for the baked volume: the proposal network itself (no voxelisation)."""

    def __init__(self, proposal):
        self.proposal = proposal

    def __call__(self, g):
        return self.proposal.density_at_grid_coords(g)


def test_fast_renderer_equals_full_renderer_without_approximations():
    """Same sample counts, the exact proposal, float32 -> the full renderer's static image."""
    model = trained_like_model()
    cfg = model.cfg
    fast = FastGridRenderer(model.renderer, FastRenderSettings(
        bake_samples=cfg.proposal_samples, field_samples=cfg.grid_samples, bf16=False))
    fast.baked = lambda: _ExactProposal(model.renderer.proposal_net)
    o, d, near, far = _rays(300)
    ids = torch.full((300,), 2, dtype=torch.long)
    with torch.no_grad():
        full = model(o, d, near, far, ids, use_transient=False, perturb=False)
        out = fast(o, d, near, far, ids)
    torch.testing.assert_close(out.rgb, full.rgb, atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(out.depth, full.depth, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(out.depth_median, full.depth_median)
    torch.testing.assert_close(out.opacity, full.opacity, atol=2e-5, rtol=1e-4)


def test_baked_volume_reproduces_the_density_function():
    """Exact at voxel centres (x is the last index, z the first); trilinear in between."""
    fn = lambda g: 1.0 + g[:, 0] + 2.0 * g[:, 1] - 3.0 * g[:, 2]  # noqa: E731  (trilinear interpolation is exact)
    baked = BakedDensity(fn, resolution=9, device="cpu", chunk=50)
    axis = torch.linspace(-1, 1, 9)
    assert baked.volume.shape == (1, 1, 9, 9, 9)
    voxel_centre = torch.stack([axis[3], axis[2], axis[1]])[None]  # volume[z=1, y=2, x=3]
    assert float(baked.volume[0, 0, 1, 2, 3]) == pytest.approx(float(fn(voxel_centre)))
    g = torch.rand(500, 3) * 2 - 1
    torch.testing.assert_close(baked(g), fn(g), atol=1e-5, rtol=1e-5)


def test_baked_volume_gives_the_same_values_with_a_batch_per_thread():
    """The points are split into one grid_sample batch per CPU thread (padded when they do not divide)."""
    fn = lambda g: torch.sin(3 * g[:, 0]) * g[:, 1] + g[:, 2] ** 2  # noqa: E731
    baked = BakedDensity(fn, resolution=17, device="cpu")
    g = torch.rand(1001, 3) * 2.4 - 1.2
    one_batch = torch.nn.functional.grid_sample(baked.volume, g.reshape(1, -1, 1, 1, 3), mode="bilinear",
                                                padding_mode="border", align_corners=True).reshape(-1)
    threads = torch.get_num_threads()
    try:
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            torch.testing.assert_close(baked(g), one_batch, atol=0, rtol=0)
            assert baked(g[:0]).shape == (0,)
    finally:
        torch.set_num_threads(threads)


def test_bake_of_the_proposal_network_is_close_and_rebuilt_after_training():
    model = trained_like_model()
    fast = FastGridRenderer(model.renderer, FastRenderSettings(bake_resolution=96))
    baked = fast.baked()
    assert fast.baked() is baked  # cached while the weights stay the same
    g = to_grid_coords(torch.randn(2000, 3))
    exact = model.renderer.proposal_net.density_at_grid_coords(g).detach()
    rel = (baked(g) - exact).abs().mean() / exact.abs().mean()
    assert float(rel) < 0.05
    with torch.no_grad():
        model.renderer.proposal_net.mlp[-1].bias.add_(1.0)  # an optimiser step changes parameters in place
    assert fast.baked() is not baked


def test_bfloat16_mlps_change_colours_little():
    model = trained_like_model(seed=3)
    o, d, near, far = _rays(400, seed=1)
    ids = torch.zeros(400, dtype=torch.long)
    out32 = FastGridRenderer(model.renderer, FastRenderSettings(bf16=False))(o, d, near, far, ids)
    out16 = FastGridRenderer(model.renderer, FastRenderSettings(bf16=True))(o, d, near, far, ids)
    rgb32, opacity32, rgb16, opacity16 = out32.rgb, out32.opacity, out16.rgb, out16.opacity
    assert rgb16.dtype == torch.float32
    assert float((rgb32 - rgb16).abs().max()) < 0.03
    assert float(((rgb32 - rgb16) ** 2).mean()) < 1e-4  # > 40 dB
    torch.testing.assert_close(opacity16, opacity32, atol=0.03, rtol=0.05)


def test_fast_render_of_a_trained_model_is_close_to_the_full_render(tiny_run):
    run = load_run(tiny_run)
    app = run.model.appearance_vector(mean=True)
    for camera in run.scene.split("test")[:2]:
        full = render_camera(run.model, camera, run.normalization, appearance=app)
        fast = render_camera(run.model, camera, run.normalization, appearance=app, fast=True)
        assert fast["rgb"].shape == full["rgb"].shape
        assert metrics.psnr(fast["rgb"], full["rgb"]) > 30.0
        # median depth (dataset units) agrees on the nearer half of the image (the far half is sky / background)
        near = full["depth"] < np.median(full["depth"])
        rel = np.abs(fast["depth"][near] - full["depth"][near]) / full["depth"][near]
        assert float(np.median(rel)) < 0.05


def test_fast_flag_falls_back_to_the_full_renderer_where_it_does_not_apply():
    model = build_model(ModelConfig(field="mlp", N_c=8, N_f=8, W=32, layers=2, skip_layer=1), n_images=2).eval()
    o, d, near, far = _rays(20)
    ids = torch.zeros(20, dtype=torch.long)
    a = model.render_chunked(o, d, near, far, ids, chunk=8, fast=True, use_transient=False)
    b = model.render_chunked(o, d, near, far, ids, chunk=8, fast=False, use_transient=False)
    torch.testing.assert_close(a.rgb, b.rgb)
    grid = trained_like_model()
    with_transient = grid.render_chunked(o, d, near, far, ids, chunk=8, fast=True, use_transient=True)
    assert with_transient.has_transient  # the transient head needs the full renderer


def test_median_depth_by_hand():
    from nerfw.rendering.compositing import median_depth

    z = torch.tensor([[1.0, 2.0, 3.0, 500.0], [1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0]])
    w = torch.tensor([[0.1, 0.5, 0.2, 0.2],  # half of 1.0 reached at the 2nd sample (0.6 >= 0.5)
                      [0.0, 0.0, 0.1, 0.1],  # half of 0.2 reached at the 3rd (0.1 >= 0.1)
                      [0.0, 0.0, 0.0, 0.0]])  # empty ray -> the first sample
    torch.testing.assert_close(median_depth(w, z), torch.tensor([2.0, 3.0, 1.0]))
    expected = (w[0] * z[0]).sum()  # 101.1: the expected depth is dragged to the far tail
    assert float(expected) > 100


def test_depth_spread_by_hand():
    """The interquartile range of a ray's depth: zero for a surface held by one sample, wide for a soft one; the
    median from the same search equals median_depth."""
    from nerfw.rendering.compositing import median_and_spread, median_depth

    z = torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0], [1.0, 2.0, 3.0, 4.0, 5.0], [1.0, 2.0, 3.0, 4.0, 5.0]])
    w = torch.tensor([[0.0, 0.0, 0.9, 0.0, 0.0],  # a sharp surface: every quartile at the 3rd sample
                      [0.0, 0.25, 0.25, 0.25, 0.25],  # soft: cum 0, .25, .5, .75, 1 -> quartiles at 2, 3 and 4
                      [0.1, 0.0, 0.0, 0.0, 0.3]])  # doubled: 1/4 of 0.4 at the 1st sample, 3/4 at the 5th
    median, spread = median_and_spread(w, z)
    torch.testing.assert_close(median, torch.tensor([3.0, 3.0, 5.0]))
    torch.testing.assert_close(spread, torch.tensor([0.0, 2.0, 4.0]))
    torch.testing.assert_close(median, median_depth(w, z))
