"""The fused tri-plane op against its pure-PyTorch twin (grid_sample): outputs, gradients, gradcheck, fallbacks."""
from __future__ import annotations

import pytest
import torch

from nerfw.fields import fused_planes
from nerfw.fields.config import ModelConfig
from nerfw.fields.encodings import TriPlanes, is_earlier_plane_layout, upgrade_plane_optimizer_state
from nerfw.model.nerfw_model import build_model


@pytest.fixture(scope="module")
def fused():
    """The op where it can be built; elsewhere nerfw runs on the reference path, which the other tests cover."""
    if not fused_planes.fused_enabled():
        pytest.skip("NERFW_FUSED_PLANES=0 turns the fused op off")
    if fused_planes.load_extension() is None:
        pytest.skip(f"the fused op cannot be built here: {fused_planes._state.get('error')}")


def random_planes(resolutions, features, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(1 + 0.5 * torch.randn(3, r, r, features, generator=g, dtype=dtype)).requires_grad_()
            for r in resolutions]


def points(n, dtype=torch.float32, seed=1):
    """Points inside the cube, on its faces and corners, and outside it (border padding clamps them)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, generator=g, dtype=dtype) * 2.4 - 1.2
    x[:8] = torch.tensor([[s0, s1, s2] for s0 in (-1, 1) for s1 in (-1, 1) for s2 in (-1, 1)], dtype=dtype)
    x[8, :] = torch.tensor([1.0, -1.0, 0.0])
    return x


@pytest.mark.parametrize("features,resolutions", [(8, [5, 16, 33]), (3, [4, 9]), (16, [7])])
def test_fused_matches_reference_outputs_and_gradients(features, resolutions, fused):
    planes = random_planes(resolutions, features)
    x = points(3000)
    assert fused_planes.can_fuse(planes, x)
    out = fused_planes.sample_triplanes(planes, x)
    ref = fused_planes.reference_triplanes(planes, x)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    weights = torch.randn_like(ref)
    g_fused = torch.autograd.grad((out * weights).sum(), planes)
    g_ref = torch.autograd.grad((ref * weights).sum(), planes)
    for a, b in zip(g_fused, g_ref):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_fused_gradcheck_float64(fused):
    planes = random_planes([3, 5], 2, dtype=torch.float64)
    x = points(40, dtype=torch.float64) * 0.9  # off the cell borders' kinks where finite differences straddle
    assert torch.autograd.gradcheck(lambda *p: fused_planes._FusedTriPlanes.apply(x, *p), planes)


def test_fused_cell_values_by_hand(fused):
    """A point on a cell corner reads that cell; a point half-way between two cells reads their mean."""
    plane = torch.zeros(3, 2, 2, 1)
    plane[:, 0, 0], plane[:, 0, 1], plane[:, 1, 0], plane[:, 1, 1] = 1.0, 2.0, 3.0, 4.0  # [p, y, x, f]
    x = torch.tensor([[-1.0, -1.0, -1.0], [1.0, -1.0, -1.0], [0.0, -1.0, -1.0]])
    out = fused_planes.sample_triplanes([plane], x)[:, 0]
    # point 0: every plane at (0, 0) -> 1^3; point 1: xy and xz read x = 1 (2.0), yz reads (0, 0) -> 2 * 2 * 1;
    # point 2: xy and xz halfway along x (1.5), yz at (0, 0) -> 1.5 * 1.5 * 1
    torch.testing.assert_close(out, torch.tensor([1.0, 4.0, 2.25]))


def test_nan_points_give_nan_not_a_crash(fused):
    planes = random_planes([8], 4)
    x = points(20)
    x[3, 1] = float("nan")
    out = fused_planes.sample_triplanes(planes, x)
    assert torch.isnan(out[3]).all() and torch.isfinite(out[torch.arange(20) != 3]).all()


def test_points_with_gradients_and_the_switch_take_the_reference(monkeypatch, fused):
    planes = random_planes([8], 4)
    x = points(50).requires_grad_()
    assert not fused_planes.can_fuse(planes, x)
    out = fused_planes.sample_triplanes(planes, x)
    (gx,) = torch.autograd.grad(out.sum(), x)  # the reference path gives the points their gradient
    assert gx.abs().sum() > 0
    monkeypatch.setenv("NERFW_FUSED_PLANES", "0")
    assert not fused_planes.can_fuse(planes, x.detach())


def test_checkpoints_of_the_earlier_plane_layout_load_transposed():
    torch.manual_seed(0)
    enc = TriPlanes([4, 6], 3)
    state = enc.state_dict()
    old = {k: v.permute(0, 3, 1, 2).contiguous() for k, v in state.items()}  # [3, F, R, R] as stored before
    fresh = TriPlanes([4, 6], 3)
    fresh.load_state_dict(old)
    assert all(torch.equal(a, b) for a, b in zip(fresh.planes, enc.planes))
    fresh.load_state_dict(state)  # today's layout loads as it is
    assert all(torch.equal(a, b) for a, b in zip(fresh.planes, enc.planes))


def test_same_shaped_layouts_are_told_apart_by_the_state_dict_version():
    square = torch.zeros(3, 4, 4, 4)  # R == F: both layouts have this shape
    assert is_earlier_plane_layout(square, square, version=1)
    assert not is_earlier_plane_layout(square, square, version=2)
    assert not is_earlier_plane_layout(torch.zeros(3, 6, 6, 3), torch.zeros(3, 6, 6, 3))


def test_resumed_adam_moments_of_earlier_planes_are_transposed():
    enc = TriPlanes([5], 2)
    opt = torch.optim.Adam(enc.parameters())
    enc(points(30)).sum().backward()
    opt.step()
    moments = opt.state[enc.planes[0]]["exp_avg"].clone()
    opt.state[enc.planes[0]]["exp_avg"] = moments.permute(0, 3, 1, 2).contiguous()  # as an earlier run saved it
    upgrade_plane_optimizer_state(opt)
    assert torch.equal(opt.state[enc.planes[0]]["exp_avg"], moments)


def short_training(monkeypatch, fused: bool, steps: int = 25) -> list[float]:
    monkeypatch.setenv("NERFW_FUSED_PLANES", "1" if fused else "0")
    torch.manual_seed(0)
    cfg = ModelConfig(grid_max_res=32, grid_min_res=16, proposal_max_res=16, proposal_min_res=8)
    model = build_model(cfg, n_images=3)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(steps):
        o = torch.randn(64, 3, generator=g) * 0.3
        d = torch.nn.functional.normalize(torch.randn(64, 3, generator=g) - o, dim=-1)
        ids = torch.randint(0, 3, (64,), generator=g)
        target = torch.sigmoid(d * 3)
        terms = model.loss(model(o, d, torch.full((64,), 0.05), torch.full((64,), 3.0), ids), target)
        opt.zero_grad()
        terms["total"].backward()
        opt.step()
        losses.append(float(terms["total"].detach()))
    return losses


def test_short_training_follows_the_reference_loss_curve(monkeypatch, fused):
    fused = short_training(monkeypatch, True)
    reference = short_training(monkeypatch, False)
    assert fused[-1] < fused[0]  # it trains
    for a, b in zip(fused, reference):  # the same curve up to float rounding
        assert a == pytest.approx(b, rel=1e-3, abs=1e-4)
