"""The sky head (ModelConfig.sky): colour at infinity from the view direction and the appearance embedding."""
import pytest
import torch

from nerfw.fields.config import ModelConfig
from nerfw.model.nerfw_model import build_model
from nerfw.rendering.compositing import composite_nerfw
from nerfw.training.config import Config

SMALL = dict(field="grid", grid_min_res=8, grid_max_res=16, grid_levels=2, grid_samples=8, proposal_samples=8,
             proposal_min_res=8, proposal_max_res=8, proposal_levels=1)


def test_composite_onto_a_per_ray_background():
    """C = sum w c + T_final * background, by hand for two samples on two rays (static and NeRF-W paths)."""
    sigma = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    delta = torch.tensor([[0.5, 0.5], [0.5, 0.5]])
    rgb = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]] * 2)
    sky = torch.tensor([[0.2, 0.4, 0.6], [0.9, 0.8, 0.7]])
    a1, a2 = 1 - torch.exp(torch.tensor(-0.5)), 1 - torch.exp(torch.tensor(-1.0))
    w1, w2 = a1, (1 - a1) * a2
    t_final = (1 - a1) * (1 - a2)
    expected0 = w1 * rgb[0, 0] + w2 * rgb[0, 1] + t_final * sky[0]
    z = torch.tensor([[1.0, 2.0]] * 2)
    for sigma_t in (None, torch.zeros(2, 2)):
        extra = {} if sigma_t is None else dict(sigma_t=sigma_t, rgb_t=torch.zeros(2, 2, 3), beta=torch.ones(2, 2))
        comp = composite_nerfw(sigma, rgb, delta, z, beta_min=0.1, background=sky, **extra)
        torch.testing.assert_close(comp.rgb[0], expected0)
        torch.testing.assert_close(comp.rgb[1], sky[1])  # an empty ray shows the sky
        torch.testing.assert_close(comp.rgb_static, comp.rgb)  # no transient density


def test_empty_space_renders_the_sky_of_the_image():
    """With no density anywhere the render is the sky head's colour; it depends on the direction and the image's
    appearance, not on the ray's origin (the sky is at infinity: no parallax)."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(**SMALL, sky=True, density_bias=-100.0), n_images=3).eval()
    assert model.renderer.field.sky is not None
    d = torch.nn.functional.normalize(torch.randn(16, 3), dim=-1)
    near, far = torch.full((16,), 0.05), torch.full((16,), 2.0)
    ids = torch.zeros(16, dtype=torch.long)
    out_a = model(torch.zeros(16, 3), d, near, far, ids, use_transient=False)
    out_b = model(torch.full((16, 3), 0.3), d, near, far, ids, use_transient=False)
    torch.testing.assert_close(out_a.rgb, out_b.rgb)
    sky = model.renderer.field.sky_color(d, ids, None)
    torch.testing.assert_close(out_a.rgb, sky, atol=1e-4, rtol=0)
    other = model(torch.zeros(16, 3), d, near, far, torch.full((16,), 2, dtype=torch.long), use_transient=False)
    assert (other.rgb - out_a.rgb).abs().max() > 1e-3  # another photo's appearance: another sky
    assert (out_a.rgb[0] - out_a.rgb[1:]).abs().max() > 1e-3  # it varies with the direction


@pytest.mark.parametrize("cfg", [dict(sky=False), dict(sky=True, unbounded=False),
                                 dict(sky=True, field="mlp", W=16, layers=3, skip_layer=2, N_c=8, N_f=8)])
def test_no_sky_head_where_it_does_not_apply(cfg):
    model = build_model(ModelConfig(**{**SMALL, **cfg}), n_images=2)
    field = getattr(model.renderer, "field", None)
    assert field is None or field.sky is None
    assert not any("sky" in name for name, _ in model.named_parameters())


def test_runs_saved_before_the_sky_head_load_without_one():
    """A checkpoint's config is read with Config.from_dict: a saved choice is kept, and a run saved before the
    option existed gets the default, off (the model it trained has no sky head)."""
    old = Config().to_dict()
    old["model"]["sky"] = True
    assert Config.from_dict(old, "ckpt").model.sky is True  # a saved choice is kept
    del old["model"]["sky"]
    assert Config.from_dict(old, "ckpt").model.sky is False
