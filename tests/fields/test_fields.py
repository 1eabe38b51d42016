"""Encodings, contraction and fields: each fast path against a simple reference."""
import torch
from hypothesis import given, settings, strategies as st

from nerfw.fields.contraction import contract
from nerfw.fields.encodings import HashGrid, TriPlanes, pe_dim, positional_encoding
from nerfw.fields.grid_field import GridNeRFW, geometric_resolutions
from nerfw.fields.heads import ConditionedMLP
from nerfw.fields.mlp_field import NeRFWMLP
from nerfw.fields.config import ModelConfig


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=3, max_size=3))
def test_contraction_bounded(xyz):
    y = contract(torch.tensor([xyz], dtype=torch.float64))
    assert torch.isfinite(y).all() and y.norm() < 2


def test_contraction_identity_inside_continuous_and_monotone():
    x = torch.randn(1000, 3)
    x = x / x.norm(dim=-1, keepdim=True) * torch.rand(1000, 1)  # |x| <= 1
    torch.testing.assert_close(contract(x), x)
    direction = torch.tensor([0.6, 0.0, 0.8])
    radii = torch.tensor([0.5, 1.0, 1.0 + 1e-6, 2.0, 10.0, 1e8])
    y = contract(radii[:, None] * direction)
    torch.testing.assert_close(y[1], y[2], atol=1e-5, rtol=0)  # continuous at |x| = 1
    assert (y.norm(dim=-1)[1:] >= y.norm(dim=-1)[:-1]).all()
    torch.testing.assert_close(y[3].norm(), torch.tensor(1.5))  # 2 - 1/2
    torch.testing.assert_close(y / y.norm(dim=-1, keepdim=True), direction.expand(6, 3))  # radial


def test_positional_encoding_layout_without_pi():
    x = torch.tensor([[0.5, -1.0, 2.0]])
    enc = positional_encoding(x, 2)
    assert enc.shape == (1, pe_dim(3, 2)) == (1, 15)
    torch.testing.assert_close(enc[0, :3], x[0])
    torch.testing.assert_close(enc[0, 3:6], torch.sin(x[0]))  # 2^0 x, no pi (as NeRFW-pytorch)
    torch.testing.assert_close(enc[0, 6:9], torch.cos(x[0]))
    torch.testing.assert_close(enc[0, 9:12], torch.sin(2 * x[0]))


def _bilinear_reference(plane: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """plane [F, R, R] (rows = v, cols = u), uv [M, 2] in [-1, 1] (align_corners=True) -> [M, F]."""
    R = plane.shape[-1]
    p = (uv.clamp(-1, 1) + 1) / 2 * (R - 1)
    i0 = p.floor().long().clamp(0, R - 2)
    f = p - i0
    u0, v0, fu, fv = i0[:, 0], i0[:, 1], f[:, :1], f[:, 1:]
    c = lambda v, u: plane[:, v, u].t()  # noqa: E731
    return (c(v0, u0) * (1 - fu) * (1 - fv) + c(v0, u0 + 1) * fu * (1 - fv)
            + c(v0 + 1, u0) * (1 - fu) * fv + c(v0 + 1, u0 + 1) * fu * fv)


def test_triplanes_match_bilinear_reference_forward_and_backward():
    torch.manual_seed(0)
    enc = TriPlanes([4, 7], 3, init_scale=0.5)
    x = torch.rand(200, 3) * 2 - 1
    out = enc(x)
    ref = []
    for plane in enc.planes:
        feats = [_bilinear_reference(plane[k].permute(2, 0, 1), x[:, list(ax)])  # [R, R, F] -> [F, R, R]
                 for k, ax in enumerate(TriPlanes._PLANE_AXES)]
        ref.append(feats[0] * feats[1] * feats[2])
    ref = torch.cat(ref, dim=-1)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    g_fast = torch.autograd.grad(out.square().sum(), list(enc.planes))
    g_ref = torch.autograd.grad(ref.square().sum(), list(enc.planes))
    for a, b in zip(g_fast, g_ref):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def _trilinear_reference(grid: HashGrid, level: int, x: torch.Tensor) -> torch.Tensor:
    """Brute-force trilinear interpolation of one level, corner by corner. x [M, 3] -> [M, F]."""
    res = int(grid.res[level])
    u = (x + 1) / 2 * res
    base = u.floor().clamp(max=res - 1)
    out = 0
    for corner in grid.corners:
        c = base.long() + corner
        w = torch.where(corner.bool(), u - base, 1 - (u - base)).prod(-1, keepdim=True)
        if bool(grid.dense[level]):
            idx = c[:, 0] + (res + 1) * (c[:, 1] + (res + 1) * c[:, 2])
        else:
            idx = (c[:, 0] * 1) ^ (c[:, 1] * 2654435761) ^ (c[:, 2] * 805459861)
        out = out + w * grid.table[idx % grid.table_size + level * grid.table_size]
    return out


def test_hash_grid_matches_trilinear_reference():
    torch.manual_seed(0)
    grid = HashGrid(n_levels=3, n_features=2, log2_table=10, base_res=4, max_res=36)  # res 4, 12, 36
    assert grid.dense.tolist() == [True, False, False]  # (4+1)^3 <= 1024 < (12+1)^3: dense, then hashed
    with torch.no_grad():
        grid.table.normal_()
    x = torch.rand(100, 3) * 2 - 1
    out = grid(x)
    for level in range(3):
        torch.testing.assert_close(out[:, 2 * level:2 * level + 2], _trilinear_reference(grid, level, x))


def test_conditioned_mlp_equals_concatenating_reference():
    torch.manual_seed(0)
    mlp = ConditionedMLP(feat_dim=5, cond_dim=4, hidden=8, n_hidden=2, out_dim=3)
    feat, cond = torch.randn(6, 7, 5, requires_grad=True), torch.randn(6, 4, requires_grad=True)
    fast, ref = mlp(feat, cond), mlp.reference(feat, cond)
    torch.testing.assert_close(fast, ref)
    g_fast = torch.autograd.grad(fast.sum(), [feat, cond, mlp.first_cond.weight])
    g_ref = torch.autograd.grad(ref.sum(), [feat, cond, mlp.first_cond.weight])
    for a, b in zip(g_fast, g_ref):
        torch.testing.assert_close(a, b)


def _run_field(net, transient=True):
    x, dirs = torch.randn(4, 6, 3), torch.nn.functional.normalize(torch.randn(4, 3), dim=-1)
    return net(x, dirs, torch.tensor([0, 1, 2, 1]), None, transient)


def test_mlp_field_shapes_ranges_and_seed_layout():
    cfg = ModelConfig(field="mlp", layers=8, W=32)
    net = NeRFWMLP(cfg, n_images=3, encode_a=True, encode_t=True)
    assert net.trunk[4].in_features == 32 + pe_dim(3, cfg.N_xyz_freq)  # skip concat at layer 4
    assert net.heads.appearance.weight.shape == (3, 48) and net.heads.transient_embedding.weight.shape == (3, 16)
    out = _run_field(net)
    assert out.sigma.shape == (4, 6) and out.rgb.shape == (4, 6, 3) and out.beta.shape == (4, 6)
    assert (out.sigma >= 0).all() and (out.sigma_t >= 0).all() and (out.beta >= 0).all()
    assert (out.rgb >= 0).all() and (out.rgb <= 1).all() and (out.rgb_t <= 1).all()
    assert _run_field(net, transient=False).sigma_t is None


def test_no_transient_parameters_without_encode_t():
    cfg = ModelConfig(field="grid", encode_t=False, encode_a=False, grid_min_res=8, grid_max_res=16)
    net = GridNeRFW(cfg, n_images=3)
    assert net.heads.transient is None and net.heads.appearance is None
    assert not any("transient" in name for name, _ in net.named_parameters())
    out = _run_field(net)
    assert out.sigma_t is None and torch.isfinite(out.rgb).all()


def test_grid_field_far_points_finite():
    cfg = ModelConfig(grid_min_res=8, grid_max_res=16)
    net = GridNeRFW(cfg, n_images=2)
    x = torch.tensor([[[0.0, 0.0, 0.0], [1e3, -1e4, 5.0], [1e8, 0.0, 0.0]]])
    out = net(x, torch.tensor([[0.0, 0.0, 1.0]]), torch.tensor([1]), None, True)
    assert torch.isfinite(out.sigma).all() and torch.isfinite(out.rgb).all()
    assert geometric_resolutions(4, 64, 512) == [64, 128, 256, 512]


def test_appearance_codes_are_nerfw_pytorchs_and_a_init_std_scales_them():
    """The default draws exactly nn.Embedding's N(0, 1) (NeRFW-pytorch's); a_init_std 0.01 scales that draw, so the
    random stream and every other initial parameter stay the same."""
    from nerfw.fields.heads import NeRFWHeads

    def heads(**kw):
        torch.manual_seed(0)
        return NeRFWHeads(500, 15, 16, 2, 2, 4, 48, 16, True, True, **kw)

    default, small = heads(a_init_std=ModelConfig.a_init_std), heads(a_init_std=0.01)
    torch.manual_seed(0)
    plain = torch.nn.Embedding(500, 48)
    torch.testing.assert_close(default.appearance.weight, plain.weight)
    torch.testing.assert_close(small.appearance.weight, 0.01 * plain.weight)
    assert abs(float(small.appearance.weight.std()) - 0.01) < 5e-4
    for (name, a), (_, b) in zip(default.named_parameters(), small.named_parameters()):
        if name != "appearance.weight":
            assert torch.equal(a, b), name
