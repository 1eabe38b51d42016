"""NeRFW end to end: shapes, determinism, gradients on every parameter, appearance helpers, overfitting."""
import pytest
import torch

from nerfw.fields.config import ModelConfig
from nerfw.model.nerfw_model import NeRFW, RenderOutput, build_model

SMALL = {
    "grid": dict(field="grid", grid_min_res=8, grid_max_res=16, grid_levels=2, grid_samples=8,
                 proposal_samples=8, proposal_min_res=8, proposal_max_res=8, proposal_levels=1),
    "mlp": dict(field="mlp", W=16, layers=3, skip_layer=2, N_c=8, N_f=8, N_xyz_freq=4),
}


def _rays(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    o = torch.randn(n, 3, generator=g)
    o = o / o.norm(dim=-1, keepdim=True) * 0.8
    d = -o + 0.3 * torch.randn(n, 3, generator=g)
    return o, d, torch.full((n,), 0.05), torch.full((n,), 2.0), torch.randint(0, 4, (n,), generator=g)


@pytest.mark.parametrize("field", ["grid", "mlp"])
def test_forward_shapes_and_eval_determinism(field):
    torch.manual_seed(0)
    model = build_model(ModelConfig(**SMALL[field]), n_images=4)
    rays = _rays(10)
    out = model(*rays)
    assert isinstance(out, RenderOutput) and out.has_transient
    for name in ("rgb", "rgb_static", "rgb_transient"):
        assert getattr(out, name).shape == (10, 3)
    for name in ("depth", "opacity", "beta", "transient_sigma_mean"):
        assert getattr(out, name).shape == (10,) and torch.isfinite(getattr(out, name)).all()
    assert (out.beta >= model.cfg.beta_min).all() and (out.opacity <= 1).all()
    model.eval()
    a, b = model(*rays), model(*rays)
    torch.testing.assert_close(a.rgb, b.rgb)
    static = model(*rays, use_transient=False)
    assert not static.has_transient
    torch.testing.assert_close(static.rgb, static.rgb_static)
    torch.testing.assert_close(static.rgb_static, a.rgb_static)
    chunked = model.render_chunked(*rays, chunk=3)
    torch.testing.assert_close(chunked.rgb, a.rgb)
    torch.testing.assert_close(chunked.depth, a.depth)


@pytest.mark.parametrize("field", ["grid", "mlp"])
@pytest.mark.parametrize("encode_t", [True, False])
def test_every_parameter_gets_a_gradient(field, encode_t):
    torch.manual_seed(0)
    cfg = ModelConfig(**SMALL[field], encode_t=encode_t, depth_loss_weight=0.1)
    model = build_model(cfg, n_images=4)
    o, d, near, far, _ = _rays(16)
    ids = torch.arange(16) % 4  # every image in the batch
    out = model(o, d, near, far, ids)
    terms = model.loss(out, torch.rand(16, 3), torch.rand(16) + 0.5)
    assert ("proposal" in terms) == (field == "grid") and ("coarse" in terms) == (field == "mlp")
    assert ("log_beta" in terms) == encode_t
    terms["total"].backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None]
    assert not missing
    assert encode_t or not any("transient" in name for name, _ in model.named_parameters())


def test_mlp_networks_have_their_own_tables():
    cfg = ModelConfig(**SMALL["mlp"], n_fine=2, coarse_appearance=False)
    model = build_model(cfg, n_images=5)
    nets = model.renderer.nets
    assert len(nets) == 3 and nets[0].heads.appearance is None
    assert nets[1].heads.appearance is not nets[2].heads.appearance
    assert nets[1].heads.transient is None and nets[2].heads.transient_embedding.num_embeddings == 5
    assert model.appearance_embedding is nets[2].heads.appearance
    out = model(*_rays(6, seed=1)[:4], torch.zeros(6, dtype=torch.long))
    assert len(out.aux_rgb) == 2


def test_appearance_vectors_and_override():
    torch.manual_seed(0)
    model = build_model(ModelConfig(**SMALL["grid"]), n_images=4)
    table = model.appearance_embedding.weight.detach()
    torch.testing.assert_close(model.appearance_vector(image_id=2), table[2])
    torch.testing.assert_close(model.appearance_vector(interpolate=(0, 1, 0.25)), 0.75 * table[0] + 0.25 * table[1])
    torch.testing.assert_close(model.appearance_vector(mean=True), table.mean(0))  # nothing trained yet
    o, d, near, far, _ = _rays(8)
    model.mark_trained([1, 3])  # the training split, as the trainer records it
    torch.testing.assert_close(model.appearance_vector(mean=True), table[[1, 3]].mean(0))
    assert model.state_dict()["trained_images"].tolist() == [False, True, False, True]
    v = torch.arange(48.0)
    torch.testing.assert_close(model.appearance_vector(vector=v), v)
    model.eval()
    ids = torch.zeros(8, dtype=torch.long)
    same = model(o, d, near, far, ids, appearance=table[2], use_transient=False)
    ref = model(o, d, near, far, torch.full((8,), 2), use_transient=False)
    torch.testing.assert_close(same.rgb, ref.rgb)
    per_ray = model.render_chunked(o, d, near, far, ids, chunk=3, appearance=table[2].expand(8, 48),
                                   use_transient=False)
    torch.testing.assert_close(per_ray.rgb, ref.rgb)
    off = build_model(ModelConfig(**SMALL["grid"], encode_a=False), n_images=4)
    assert off.appearance_embedding is None
    torch.testing.assert_close(off.appearance_vector(image_id=1), torch.zeros(48))


def test_unbounded_grid_reaches_far_background():
    model = build_model(ModelConfig(**SMALL["grid"], far_background=1000.0), n_images=1)
    torch.testing.assert_close(model.renderer.sample_far(torch.tensor([2.0, 5000.0])), torch.tensor([1000.0, 5000.0]))
    bounded = build_model(ModelConfig(**SMALL["grid"], unbounded=False), n_images=1)
    torch.testing.assert_close(bounded.renderer.sample_far(torch.tensor([2.0])), torch.tensor([2.0]))


@pytest.mark.parametrize("field,lr", [("grid", 3e-2), ("mlp", 1e-2)])
def test_overfits_random_colours(field, lr):
    """64 rays with random colours: the colour error must fall by a large factor in 50 steps."""
    torch.manual_seed(0)
    over = {"grid": dict(grid_min_res=16, grid_max_res=64, grid_samples=16, proposal_samples=16),
            "mlp": dict(W=64, layers=4, skip_layer=2, N_c=16, N_f=16, N_xyz_freq=8)}[field]
    model: NeRFW = build_model(ModelConfig(field=field, **over), n_images=4)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, eps=1e-15)
    rays, gt = _rays(64), torch.rand(64, 3)
    errors = []
    for _ in range(50):
        out = model(*rays)
        loss = model.loss(out, gt)["total"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        errors.append(torch.mean((out.rgb.detach() - gt) ** 2).item())
    assert errors[-1] < errors[0] / 4, errors[::10]


@pytest.mark.parametrize("field", ["grid", "mlp"])
def test_static_density_matches_rendered_samples(field):
    """static_density(x) equals the sigma the field computes for the same points during rendering."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(**SMALL[field]), n_images=2)
    net = model.renderer.field if field == "grid" else model.renderer.nets[-1]
    x = torch.randn(3, 5, 3)
    dirs = torch.nn.functional.normalize(torch.randn(3, 3), dim=-1)
    sigma = net(x, dirs, torch.zeros(3, dtype=torch.long), None, True).sigma
    torch.testing.assert_close(model.static_density(x.reshape(15, 3)), sigma.reshape(15))


def test_transient_gate_zero_renders_the_static_scene_and_keeps_gradients():
    """During the static warm-up the transient density is gated to 0: the image is the static image, beta is
    beta_min, and the transient head still gets (zero) gradients so DDP sees every parameter used."""
    import torch

    from nerfw.fields.config import ModelConfig
    from nerfw.model.nerfw_model import build_model

    torch.manual_seed(0)
    model = build_model(ModelConfig(grid_min_res=8, grid_max_res=16, proposal_min_res=8, proposal_max_res=8,
                                    density_bias=2.0), n_images=3)
    rays_o, rays_d = torch.zeros(32, 3), torch.nn.functional.normalize(torch.randn(32, 3), dim=-1)
    near, far, ids = torch.full((32,), 0.1), torch.full((32,), 3.0), torch.randint(0, 3, (32,))
    model.set_transient_gate(0.0)
    out = model(rays_o, rays_d, near, far, ids, perturb=False)
    torch.testing.assert_close(out.rgb, out.rgb_static)
    assert torch.all(out.transient_opacity == 0) and torch.allclose(out.beta, torch.full_like(out.beta, 0.1))
    model.loss(out, torch.rand(32, 3))["total"].backward()
    head = model.renderer.field.heads.transient
    assert all(p.grad is not None and torch.all(p.grad == 0) for p in head.parameters())
    model.set_transient_gate(1.0)
    out = model(rays_o, rays_d, near, far, ids, perturb=False)
    assert float(out.transient_opacity.max()) > 0
