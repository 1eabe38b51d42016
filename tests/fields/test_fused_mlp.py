"""The fused inference MLPs of the grid field (nerfw/fields/fused_mlp.py) against the PyTorch modules."""
from __future__ import annotations

import pytest
import torch

from helpers import trained_like_model
from nerfw.fields import fused_mlp, fused_planes
from nerfw.model.fast_render import FastGridRenderer, FastRenderSettings


@pytest.fixture(scope="module")
def built():
    """The op where it can be built; elsewhere the modules run, which every other test covers."""
    if fused_planes.load_extension() is None:
        pytest.skip(f"the fused CPU ops cannot be built here: {fused_planes._state.get('error')}")


def inputs(rays: int, samples: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = 0.8 * torch.randn(rays, samples, 3, generator=g)
    dirs = torch.nn.functional.normalize(torch.randn(rays, 3, generator=g), dim=-1)
    ids = torch.randint(0, 4, (rays,), generator=g)
    return x, dirs, ids


def modules_and_fused(field, x, dirs, ids, appearance=None):
    """The field's static output by its modules, and by the fused op (checked to have run: the heads' module is
    not called)."""
    calls = []
    hook = field.heads.register_forward_hook(lambda *_: calls.append(1))
    try:
        with torch.no_grad():
            reference = field(x, dirs, ids, appearance, use_transient=False)
            assert len(calls) == 1
            fused = field(x, dirs, ids, appearance, use_transient=False, fused_inference=True)
            assert len(calls) == 1, "the fused op did not run"
    finally:
        hook.remove()
    return reference, fused


@pytest.mark.parametrize("rays,samples", [(300, 14), (37, 7), (1, 1)])
def test_fused_mlps_equal_the_modules(rays, samples, built):
    """Default widths (32 -> 64 -> 16, colour 15 -> 64 -> 64 -> 3): blocks of 32 samples, 4-sample narrow
    layers, a last partial block, per-image and overridden appearance codes."""
    field = trained_like_model(seed=5).renderer.field
    x, dirs, ids = inputs(rays, samples)
    reference, fused = modules_and_fused(field, x, dirs, ids)
    assert fused.sigma.shape == (rays, samples) and fused.rgb.shape == (rays, samples, 3)
    torch.testing.assert_close(fused.sigma, reference.sigma, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fused.rgb, reference.rgb, atol=1e-5, rtol=1e-5)
    app = torch.randn(field.heads.a_dim)
    reference, fused = modules_and_fused(field, x, dirs, ids, app)
    torch.testing.assert_close(fused.rgb, reference.rgb, atol=1e-5, rtol=1e-5)


def test_fused_mlps_take_other_widths_and_depths(built):
    """Widths that are no multiple of 8 and a deeper colour head run the generic loops; the same function."""
    field = trained_like_model(seed=6, grid_hidden=20, grid_geo_features=5, grid_color_layers=3).renderer.field
    x, dirs, ids = inputs(50, 9, seed=1)
    reference, fused = modules_and_fused(field, x, dirs, ids)
    torch.testing.assert_close(fused.sigma, reference.sigma, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fused.rgb, reference.rgb, atol=1e-5, rtol=1e-5)


def test_the_modules_run_where_the_fused_op_does_not_apply(built, monkeypatch):
    field = trained_like_model(seed=7).renderer.field
    enc = torch.rand(10, field.encoding.out_dim)
    with torch.no_grad():
        assert fused_mlp.fused_mlp_applies(field, enc, use_transient=False)
        assert not fused_mlp.fused_mlp_applies(field, enc, use_transient=True)  # the transient head needs features
        assert not fused_mlp.fused_mlp_applies(field, enc.double(), use_transient=False)
        monkeypatch.setenv("NERFW_FUSED_MLP", "0")
        assert not fused_mlp.fused_mlp_applies(field, enc, use_transient=False)
    monkeypatch.delenv("NERFW_FUSED_MLP")
    assert not fused_mlp.fused_mlp_applies(field, enc, use_transient=False)  # gradients wanted: training
    field.density.append(torch.nn.ReLU())  # a structure the op does not know
    with torch.no_grad():
        assert not fused_mlp.fused_mlp_applies(field, enc, use_transient=False)


def test_fast_renderer_with_the_fused_mlps_renders_the_same_image(built, monkeypatch):
    model = trained_like_model(seed=8)
    g = torch.Generator().manual_seed(3)
    o, d = 0.2 * torch.randn(500, 3, generator=g), torch.randn(500, 3, generator=g)
    d[:, 2] = 1.0
    near, far, ids = torch.full((500,), 0.05), torch.full((500,), 2.0), torch.zeros(500, dtype=torch.long)
    renderer = FastGridRenderer(model.renderer, FastRenderSettings(bf16=False))
    fused = renderer(o, d, near, far, ids)
    monkeypatch.setenv("NERFW_FUSED_MLP", "0")
    modules = renderer(o, d, near, far, ids)
    torch.testing.assert_close(fused.rgb, modules.rgb, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fused.depth, modules.depth, atol=1e-4, rtol=1e-4)
