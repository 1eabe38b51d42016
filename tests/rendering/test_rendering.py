"""Properties of the pure rendering functions (nerfw.rendering)."""
import math

import pytest
import torch
from hypothesis import given, settings, strategies as st

from nerfw.rendering.compositing import (alpha_from_density, composite_nerfw, deltas_from_depths,
                                         deltas_from_edges, nerfw_weights, weights_from_alpha,
                                         weights_from_density)
from nerfw.rendering.samplers import (edges_from_spacing, fractions, importance_depths, merge_sorted,
                                      sample_pdf, spacing_fn, spacing_fn_inv, stratified_depths)

DENSITIES = st.lists(st.sampled_from([0.0, 1e-8, 1e-3, 0.5, 3.0, 100.0, 1e5, 1e10]), min_size=1, max_size=12)


def _pair(sigmas, seed):
    g = torch.Generator().manual_seed(seed)
    sigma = torch.tensor(sigmas, dtype=torch.float32)[None]  # [1, S]
    delta = torch.rand(sigma.shape, generator=g) * 0.1
    delta[torch.rand(sigma.shape, generator=g) < 0.3] = 0.0  # zero-length intervals
    return sigma, delta


@settings(max_examples=60, deadline=None)
@given(DENSITIES, DENSITIES, st.integers(0, 1000))
def test_weights_bounded_and_finite_with_gradients(sig_s, sig_t, seed):
    n = min(len(sig_s), len(sig_t))
    sigma_s, delta = _pair(sig_s[:n], seed)
    sigma_t = torch.tensor(sig_t[:n], dtype=torch.float32)[None]
    sigma_s.requires_grad_(True)
    sigma_t.requires_grad_(True)
    w = weights_from_density(sigma_s, delta)
    assert w.min() >= 0 and w.sum() <= 1 + 1e-5
    w_s, w_t = nerfw_weights(sigma_s, sigma_t, delta)
    assert w_s.sum() <= 1 + 1e-5 and w_t.sum() <= 1 + 1e-5 and (w_s + w_t).sum() <= 2 + 1e-5
    rgb = torch.rand(1, n, 3)
    comp = composite_nerfw(sigma_s, rgb, delta, torch.cumsum(delta, -1), beta_min=0.1, sigma_t=sigma_t,
                           rgb_t=rgb, beta=torch.ones(1, n))
    total = comp.rgb.sum() + comp.rgb_static.sum() + comp.depth.sum() + comp.beta.sum() + comp.opacity.sum()
    assert torch.isfinite(total)
    assert 0 <= comp.opacity.item() <= 1
    total.backward()
    assert torch.isfinite(sigma_s.grad).all() and torch.isfinite(sigma_t.grad).all()


@settings(max_examples=40, deadline=None)
@given(DENSITIES, st.integers(0, 1000))
def test_density_route_equals_alpha_route(sigmas, seed):
    sigma, delta = _pair(sigmas, seed)
    torch.testing.assert_close(weights_from_density(sigma, delta),
                               weights_from_alpha(alpha_from_density(sigma, delta)), atol=1e-6, rtol=1e-5)


def test_one_huge_density_gives_one_hot_weights():
    sigma = torch.tensor([[0.0, 0.0, 1e10, 1.0, 1e10]])
    w = weights_from_density(sigma, torch.full_like(sigma, 0.1))
    torch.testing.assert_close(w, torch.tensor([[0.0, 0.0, 1.0, 0.0, 0.0]]))


def test_hand_computed_nerfw_weights():
    # sigma_s = [1, 2], sigma_t = [0.5, 0], delta = 0.5:
    # T_0 = 1, T_1 = exp(-(1 + 0.5) 0.5) = exp(-0.75)
    # w_s = [1 - e^-0.5, e^-0.75 (1 - e^-1)], w_t = [1 - e^-0.25, 0]
    sigma_s, sigma_t, delta = torch.tensor([[1.0, 2.0]]), torch.tensor([[0.5, 0.0]]), torch.full((1, 2), 0.5)
    w_s, w_t = nerfw_weights(sigma_s, sigma_t, delta)
    e = math.exp
    torch.testing.assert_close(w_s, torch.tensor([[1 - e(-0.5), e(-0.75) * (1 - e(-1))]]))
    torch.testing.assert_close(w_t, torch.tensor([[1 - e(-0.25), 0.0]]))
    c_s = torch.tensor([[[1.0, 0, 0], [0, 1.0, 0]]])
    c_t = torch.tensor([[[0, 0, 1.0], [0, 0, 1.0]]])
    beta = torch.tensor([[2.0, 7.0]])
    comp = composite_nerfw(sigma_s, c_s, delta, torch.tensor([[1.0, 1.5]]), beta_min=0.1, sigma_t=sigma_t,
                           rgb_t=c_t, beta=beta)
    torch.testing.assert_close(comp.rgb, torch.tensor([[w_s[0, 0], w_s[0, 1], w_t[0, 0]]]))
    torch.testing.assert_close(comp.beta, torch.tensor([2.0 * (1 - e(-0.25)) + 0.1]))  # Eq. 11 + beta_min
    torch.testing.assert_close(comp.depth, torch.tensor([w_s[0, 0] * 1.0 + w_s[0, 1] * 1.5]))
    # static image: static density alone: [1 - e^-0.5, e^-0.5 (1 - e^-1)]
    torch.testing.assert_close(comp.rgb_static, torch.tensor([[1 - e(-0.5), e(-0.5) * (1 - e(-1)), 0.0]]))
    torch.testing.assert_close(comp.opacity, torch.tensor([1 - e(-1.75)]))


def test_zero_transient_equals_plain_nerf():
    g = torch.Generator().manual_seed(0)
    sigma, delta, rgb = torch.rand(4, 8, generator=g) * 5, torch.rand(4, 8, generator=g), torch.rand(4, 8, 3)
    z = torch.cumsum(delta, -1)
    plain = composite_nerfw(sigma, rgb, delta, z, beta_min=0.1)
    zero_t = composite_nerfw(sigma, rgb, delta, z, beta_min=0.1, sigma_t=torch.zeros_like(sigma),
                             rgb_t=torch.rand(4, 8, 3), beta=torch.rand(4, 8))
    for name in ("rgb", "rgb_static", "depth", "opacity", "beta"):
        torch.testing.assert_close(getattr(plain, name), getattr(zero_t, name))
    torch.testing.assert_close(plain.beta, torch.full((4,), 0.1))


def test_white_background_fills_empty_rays():
    sigma = torch.zeros(2, 4)
    comp = composite_nerfw(sigma, torch.zeros(2, 4, 3), torch.ones(2, 4), torch.ones(2, 4), beta_min=0.1,
                           white_back=True)
    torch.testing.assert_close(comp.rgb, torch.ones(2, 3))


def test_deltas_scale_by_ray_norm_and_last_interval():
    z = torch.tensor([[1.0, 2.0, 4.0]])
    d = deltas_from_depths(z, torch.tensor([2.0]), last=1e10)
    torch.testing.assert_close(d, torch.tensor([[2.0, 4.0, 1e10]]))
    torch.testing.assert_close(deltas_from_edges(z, torch.tensor([2.0])), torch.tensor([[2.0, 4.0]]))


@pytest.mark.parametrize("use_disp", [False, True])
@pytest.mark.parametrize("jitter", [0.0, 1.0])
def test_stratified_sorted_inside_bounds(use_disp, jitter):
    near, far = torch.tensor([0.1, 1.0, 2.0]), torch.tensor([5.0, 1.5, 100.0])
    z = stratified_depths(near, far, 16, use_disp=use_disp, jitter=jitter)
    assert (z[:, 1:] >= z[:, :-1]).all()
    assert (z >= near[:, None] - 1e-6).all() and (z <= far[:, None] * (1 + 1e-6)).all()
    if jitter == 0:
        torch.testing.assert_close(z, stratified_depths(near, far, 16, use_disp=use_disp, jitter=0.0))
        torch.testing.assert_close(z[:, 0], near)
        torch.testing.assert_close(z[:, -1], far)


def test_importance_sampling_follows_the_weights():
    z = torch.linspace(0, 10, 11).expand(2, 11)
    w = torch.zeros(2, 11)
    w[0, 4] = 1.0  # bin between midpoints 3.5 and 4.5
    w[1, 7] = 1.0
    for jitter in (0.0, 1.0):
        new = importance_depths(z, w, 64, jitter)
        assert (new[:, 1:] >= new[:, :-1]).all()
        inside0 = ((new[0] >= 3.5) & (new[0] <= 4.5)).float().mean()
        inside1 = ((new[1] >= 6.5) & (new[1] <= 7.5)).float().mean()
        assert inside0 > 0.9 and inside1 > 0.9
    torch.testing.assert_close(importance_depths(z, w, 8, 0.0), importance_depths(z, w, 8, 0.0))
    merged = merge_sorted(z, importance_depths(z, w, 8, 1.0))
    assert merged.shape == (2, 19) and (merged[:, 1:] >= merged[:, :-1]).all()


def test_sample_pdf_ends_and_uniform_histogram():
    bins = torch.tensor([[0.0, 1.0, 2.0, 4.0]])
    u = fractions(1, 5, 0.0, endpoints=True)
    out = sample_pdf(bins, torch.tensor([[1.0, 1.0, 2.0]]), u)
    # cdf edges [0, .25, .5, 1] -> u = [0, .25, .5, .75, 1] -> [0, 1, 2, 3, 4]
    torch.testing.assert_close(out, torch.tensor([[0.0, 1.0, 2.0, 3.0, 4.0]]))
    zero = sample_pdf(bins, torch.zeros(1, 3), u)
    assert torch.isfinite(zero).all() and (zero[:, 1:] >= zero[:, :-1]).all()


def test_fractions_sorted_in_unit_interval():
    for endpoints in (True, False):
        u = fractions(50, 9, 1.0, endpoints=endpoints)
        assert (u[:, 1:] >= u[:, :-1]).all() and u.min() >= 0 and u.max() <= 1
    u = fractions(3, 9, 1.0, endpoints=True)
    assert (u[:, 0] == 0).all() and (u[:, -1] == 1).all()


def test_spacing_round_trip_and_edges_cover_near_far():
    t = torch.tensor([0.0, 0.3, 1.0, 2.0, 50.0, 1000.0])
    torch.testing.assert_close(spacing_fn_inv(spacing_fn(t)), t, rtol=1e-4, atol=1e-6)
    near, far = torch.tensor([0.05, 0.5]), torch.tensor([1000.0, 3.0])
    for linear in (False, True):
        e = edges_from_spacing(fractions(2, 33, 1.0, endpoints=True), near, far, linear)
        assert (e[:, 1:] >= e[:, :-1]).all()
        torch.testing.assert_close(e[:, 0], near)
        torch.testing.assert_close(e[:, -1], far)
    e = edges_from_spacing(fractions(1, 33, 0.0, endpoints=True), near[:1], far[:1], False)
    assert (e < 1).sum() >= 14  # about half the samples inside the unit distance, the rest out to 1000
