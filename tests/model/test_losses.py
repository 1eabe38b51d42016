"""Each loss term against a value computed by hand."""
import math

import pytest
import torch

from nerfw.model import losses
from nerfw.fields.config import ModelConfig
from nerfw.model.nerfw_model import RenderOutput, build_model


def test_nerfw_terms_by_hand():
    rgb = torch.tensor([[0.5, 0.5, 0.5], [1.0, 0.0, 0.0]])
    gt = torch.tensor([[0.5, 0.7, 0.5], [0.0, 0.0, 0.0]])
    beta = torch.tensor([0.1, 2.0])
    # ray 0: 0.04 / (2 * 0.01) = 2; ray 1: 1 / (2 * 4) = 0.125 -> mean 1.0625
    torch.testing.assert_close(losses.nerfw_color_loss(rgb, gt, beta), torch.tensor(1.0625))
    torch.testing.assert_close(losses.log_beta_loss(beta), torch.tensor((math.log(0.1) + math.log(2.0)) / 2))
    torch.testing.assert_close(losses.transient_density_loss(torch.tensor([1.0, 3.0]), 0.01), torch.tensor(0.02))
    torch.testing.assert_close(losses.mse(rgb, gt), torch.tensor((0.04 + 1.0) / 6))


def test_depth_loss_ignores_invalid():
    pred = torch.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    gt = torch.tensor([1.5, float("nan"), 0.0, 2.0])
    torch.testing.assert_close(losses.depth_loss(pred, gt, "l1"), torch.tensor((0.5 + 2.0) / 2))
    torch.testing.assert_close(losses.depth_loss(pred, gt, "l2"), torch.tensor((0.25 + 4.0) / 2))
    none = losses.depth_loss(pred, torch.full((4,), float("nan")), "l1")
    none.backward()
    assert none.item() == 0 and pred.grad is not None


def test_outer_weights_by_hand():
    edges_p = torch.tensor([[0.0, 1.0, 2.0, 3.0]])
    w_p = torch.tensor([[0.2, 0.3, 0.5]])
    edges = torch.tensor([[0.0, 0.5, 1.5, 3.0]])
    # [0, .5] overlaps p-interval 0 -> .2; [.5, 1.5] overlaps 0 and 1 -> .5; [1.5, 3] overlaps 1, 2 -> .8
    torch.testing.assert_close(losses.outer_weights(edges, edges_p, w_p), torch.tensor([[0.2, 0.5, 0.8]]))


def test_proposal_loss_zero_when_bounded_and_by_hand_otherwise():
    edges = torch.tensor([[0.0, 1.0, 2.0, 3.0]])
    w = torch.tensor([[0.1, 0.6, 0.3]])
    assert losses.proposal_loss(edges, w, edges, w).item() < 1e-6
    w_p = torch.tensor([[0.0, 0.0, 1.0]], requires_grad=True)
    fine_edges = torch.tensor([[0.0, 0.5, 1.0]])  # inside the first proposal interval only
    w_f = torch.tensor([[0.4, 0.2]])
    # bound = 0 for both: 0.4^2/0.4 + 0.2^2/0.2 = 0.6
    loss = losses.proposal_loss(fine_edges, w_f, edges, w_p)
    torch.testing.assert_close(loss, torch.tensor(0.6), rtol=1e-5, atol=1e-6)
    loss.backward()
    assert w_p.grad[0, 0] < 0  # raising the proposal weight there lowers the loss


def _fake_output(**kw):
    n = 2
    base = dict(rgb=torch.tensor([[0.5, 0.5, 0.5], [1.0, 0.0, 0.0]]), rgb_static=torch.zeros(n, 3),
                rgb_transient=torch.zeros(n, 3), depth=torch.tensor([1.0, 2.0]),
                depth_median=torch.tensor([1.0, 2.0]), depth_spread=torch.zeros(n), opacity=torch.ones(n),
                beta=torch.tensor([0.1, 2.0]), transient_sigma_mean=torch.tensor([1.0, 3.0]),
                transient_opacity=torch.zeros(n))
    base.update(kw)
    return RenderOutput(**base)


def test_model_loss_assembles_terms():
    gt = torch.tensor([[0.5, 0.7, 0.5], [0.0, 0.0, 0.0]])
    cfg = ModelConfig(field="mlp", W=16, layers=2, lambda_u=0.01, depth_loss_weight=0.5, coarse_loss_weight=1.0)
    model = build_model(cfg, 3)
    out = _fake_output(has_transient=True, aux_rgb=[torch.full((2, 3), 0.5)])
    terms = model.loss(out, gt, depth_gt=torch.tensor([1.5, float("nan")]))
    torch.testing.assert_close(terms["color"], torch.tensor(1.0625))
    torch.testing.assert_close(terms["log_beta"], torch.tensor((math.log(0.1) + math.log(2.0)) / 2))
    torch.testing.assert_close(terms["transient_reg"], torch.tensor(0.02))
    torch.testing.assert_close(terms["coarse"], torch.tensor((0.04 + 0.75) / 6))
    torch.testing.assert_close(terms["depth"], torch.tensor(0.25))
    torch.testing.assert_close(terms["total"], sum(v for k, v in terms.items() if k != "total"))
    plain = model.loss(_fake_output(has_transient=False), gt)
    assert set(plain) == {"color", "total"}
    torch.testing.assert_close(plain["color"], torch.tensor((0.04 + 1.0) / 6))


def test_plane_total_variation_by_hand():
    # one 2x2 plane per axis pair, one feature: rows differ by 1, columns by 2 -> (1 + 4) per plane
    plane = torch.tensor([[0.0, 2.0], [1.0, 3.0]])[..., None].expand(3, 2, 2, 1)  # [3, R, R, F]
    assert float(losses.plane_total_variation([plane])) == 5.0
    flat = torch.full((3, 4, 4, 2), 0.7)
    # mean over resolutions: (5 + 0) / 2
    assert float(losses.plane_total_variation([plane, flat])) == 2.5


def test_model_loss_adds_plane_tv_only_when_weighted():
    torch.manual_seed(0)
    rays = (torch.zeros(8, 3), torch.tensor([[0.0, 0.0, 1.0]]).expand(8, 3), torch.full((8,), 0.1),
            torch.full((8,), 2.0), torch.zeros(8, dtype=torch.long))
    for weight in (0.0, 1e-3):
        cfg = ModelConfig(grid_max_res=32, grid_min_res=16, proposal_max_res=16, proposal_min_res=8,
                          plane_tv_weight=weight)
        model = build_model(cfg, n_images=2)
        terms = model.loss(model(*rays), torch.rand(8, 3))
        assert ("plane_tv" in terms) == (weight > 0)
    planes = [*model.renderer.field.encoding.planes, *model.renderer.proposal_net.encoding.planes]
    with torch.no_grad():
        expected = 1e-3 * float(losses.plane_total_variation(planes))
    assert float(terms["plane_tv"].detach()) == pytest.approx(expected)
    assert expected > 0  # the random initial planes are not flat


def _distortion_reference(edges, weights):
    """mip-NeRF 360 Eq. 15 written as the double sum over interval pairs."""
    mid = 0.5 * (edges[:, 1:] + edges[:, :-1])
    pair = (weights[:, :, None] * weights[:, None, :] * (mid[:, :, None] - mid[:, None, :]).abs()).sum((1, 2))
    single = (weights ** 2 * (edges[:, 1:] - edges[:, :-1])).sum(-1) / 3
    return (pair + single).mean()


def test_distortion_loss_matches_the_double_sum_and_prefers_compact_weights():
    g = torch.Generator().manual_seed(0)
    edges = torch.sort(torch.rand(16, 33, generator=g, dtype=torch.float64), dim=-1).values
    weights = torch.rand(16, 32, generator=g, dtype=torch.float64)
    weights = weights / weights.sum(-1, keepdim=True) * torch.rand(16, 1, generator=g, dtype=torch.float64)
    assert torch.allclose(losses.distortion_loss(edges, weights), _distortion_reference(edges, weights), atol=1e-12)
    # by hand: one ray, two unit intervals [0,1], [1,2], half the weight in each:
    # pair term 2 * 0.5 * 0.5 * |0.5 - 1.5| = 0.5, single term (0.25 + 0.25) / 3
    e, w = torch.tensor([[0.0, 1.0, 2.0]]), torch.tensor([[0.5, 0.5]])
    assert abs(float(losses.distortion_loss(e, w)) - (0.5 + 0.5 / 3)) < 1e-6
    # all weight in one narrow interval costs less than the same weight spread along the ray
    narrow = torch.tensor([[0.0, 0.49, 0.51, 1.0]])
    assert float(losses.distortion_loss(narrow, torch.tensor([[0.0, 1.0, 0.0]]))) < \
        float(losses.distortion_loss(narrow, torch.tensor([[0.5, 0.0, 0.5]])))
