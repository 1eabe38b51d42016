"""NeRF-W: sampling + field(s) + compositing + losses, for the "mlp" and "grid" fields.

Rays are in the normalised model frame; directions have camera-z = 1 (t is z-depth), so view directions are
d / |d| and metric interval lengths are dt * |d|.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
from torch import nn

from nerfw.fields.config import ModelConfig
from nerfw.fields.grid_field import GridNeRFW, ProposalDensity
from nerfw.fields.heads import NeRFWHeads
from nerfw.fields.mlp_field import NeRFWMLP
from nerfw.model import losses
from nerfw.model.fast_render import FastGridRenderer
from nerfw.rendering.compositing import (
    Composite,
    composite_nerfw,
    deltas_from_depths,
    deltas_from_edges,
    weights_from_density,
)
from nerfw.rendering.samplers import (
    edges_from_spacing,
    fractions,
    importance_depths,
    merge_sorted,
    sample_pdf,
    stratified_depths,
)


@dataclass
class RenderOutput:
    """Per-ray renderings. Tensor fields are [N] or [N, 3]; the rest is what the loss needs."""

    rgb: torch.Tensor  # [N, 3] NeRF-W Eq. 8 (static image when the transient head is off)
    rgb_static: torch.Tensor  # [N, 3] static component (static density only)
    rgb_transient: torch.Tensor  # [N, 3] transient component (transient density only); zeros without one
    depth: torch.Tensor  # [N] expected static z-depth, model units (what the depth loss supervises)
    depth_median: torch.Tensor  # [N] median static z-depth, model units (what depth maps show)
    depth_spread: torch.Tensor  # [N] interquartile range of that depth, model units (how sure it is)
    opacity: torch.Tensor  # [N] 1 - final transmittance
    beta: torch.Tensor  # [N] NeRF-W Eq. 11 uncertainty (beta_min without transient head)
    transient_sigma_mean: torch.Tensor  # [N] mean transient density over the samples (0 without)
    transient_opacity: torch.Tensor  # [N] sum of transient weights (share of the pixel from transients; 0 without)
    has_transient: bool = False  # whether the transient head ran (selects the NeRF-W or the plain loss)
    aux_rgb: list[torch.Tensor] = field(default_factory=list)  # mlp: coarse / intermediate images [N, 3]
    proposal: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)  # grid: (edges, weights)
    edges: torch.Tensor | None = None  # grid: final interval edges [N, S+1] (spacing coordinate)
    weights: torch.Tensor | None = None  # final weights [N, S]

    _PER_RAY = ("rgb", "rgb_static", "rgb_transient", "depth", "depth_median", "depth_spread", "opacity", "beta",
                "transient_sigma_mean", "transient_opacity")

    @classmethod
    def cat(cls, outs: list["RenderOutput"]) -> "RenderOutput":
        """Concatenate chunks along rays (per-ray tensors only; loss inputs are dropped)."""
        values = {name: torch.cat([getattr(o, name) for o in outs]) for name in cls._PER_RAY}
        return cls(**values, has_transient=outs[0].has_transient)


def _output(comp: Composite, sigma_t: torch.Tensor | None, **extra) -> RenderOutput:
    t_mean = sigma_t.mean(-1) if sigma_t is not None else torch.zeros_like(comp.depth)
    return RenderOutput(comp.rgb, comp.rgb_static, comp.rgb_transient, comp.depth, comp.depth_median,
                        comp.depth_spread, comp.opacity, comp.beta, t_mean, comp.transient_opacity,
                        has_transient=sigma_t is not None, weights=comp.weights, **extra)


class MLPRenderer(nn.Module):
    """NeRFW-pytorch's hierarchical sampling: a coarse network on N_c stratified samples, then ``n_fine`` networks,
    each adding N_f inverse-CDF samples drawn from the previous weights (NeRF Sec. 5.2) and evaluating all
    samples so far. Only the last network has the transient head (as NeRFW-pytorch's updated system); each network
    owns its embedding tables."""

    def __init__(self, cfg: ModelConfig, n_images: int):
        super().__init__()
        self.cfg = cfg
        n_nets = 1 + (cfg.n_fine if cfg.N_f > 0 else 0)
        nets = []
        for k in range(n_nets):
            last = k == n_nets - 1
            encode_a = cfg.encode_a and (cfg.coarse_appearance or k > 0 or last)
            nets.append(NeRFWMLP(cfg, n_images, encode_a=encode_a, encode_t=cfg.encode_t and last))
        self.nets = nn.ModuleList(nets)

    @property
    def appearance_embedding(self) -> nn.Embedding | None:
        return self.nets[-1].heads.appearance

    def forward(self, rays_o, rays_d, near, far, image_ids, appearance, use_transient: bool,
                jitter: float) -> RenderOutput:
        cfg = self.cfg
        ray_norm = rays_d.norm(dim=-1)  # [N]
        dirs = rays_d / ray_norm[:, None]
        z = stratified_depths(near, far, cfg.N_c, use_disp=cfg.use_disp, jitter=jitter)  # [N, N_c]
        aux: list[torch.Tensor] = []
        comp = None
        for k, net in enumerate(self.nets):
            if k > 0:
                aux.append(comp.rgb)
                z = merge_sorted(z, importance_depths(z, comp.weights, cfg.N_f, jitter))
            x = rays_o[:, None, :] + rays_d[:, None, :] * z[..., None]  # [N, S, 3]
            f = net(x, dirs, image_ids, appearance, use_transient)
            comp = composite_nerfw(f.sigma, f.rgb, deltas_from_depths(z, ray_norm, cfg.mlp_last_delta), z,
                                   beta_min=cfg.beta_min, sigma_t=f.sigma_t, rgb_t=f.rgb_t, beta=f.beta,
                                   white_back=cfg.white_back)
        return _output(comp, f.sigma_t, aux_rgb=aux)


class GridRenderer(nn.Module):
    """Proposal sampling (mip-NeRF 360 Sec. 3) + the tri-plane NeRF-W field.

    ``proposal_samples`` intervals uniform in the spacing coordinate (linear then disparity, out to
    far_background, for unbounded scenes) are rendered with the tiny proposal density; ``grid_samples`` intervals
    are then drawn from its weights by inverse CDF (fixed counts: no data-dependent shapes on the CPU) and
    rendered with the full field. The proposal learns from the interlevel loss alone."""

    def __init__(self, cfg: ModelConfig, n_images: int):
        super().__init__()
        self.cfg = cfg
        self.proposal_net = ProposalDensity(cfg)
        self.field = GridNeRFW(cfg, n_images)

    @property
    def appearance_embedding(self) -> nn.Embedding | None:
        return self.field.heads.appearance

    def sample_far(self, far: torch.Tensor) -> torch.Tensor:
        """Unbounded scenes render out to at least far_background (sky and distant background)."""
        return far.clamp_min(self.cfg.far_background) if self.cfg.unbounded else far

    def forward(self, rays_o, rays_d, near, far, image_ids, appearance, use_transient: bool,
                jitter: float) -> RenderOutput:
        return self.render(rays_o, rays_d, near, far, image_ids, appearance, use_transient, jitter,
                           self.proposal_net, self.cfg.proposal_samples, self.cfg.grid_samples)

    def render(self, rays_o, rays_d, near, far, image_ids, appearance, use_transient: bool, jitter: float,
               proposal_density, n_proposal: int, n_field: int, bf16_field: bool = False,
               fused_mlp: bool = False) -> RenderOutput:
        """The pipeline with its parts as arguments: ``proposal_density`` maps points [N, P, 3] to sigma [N, P]
        (the proposal network in training; a baked volume in nerfw.model.fast_render), ``n_proposal`` and
        ``n_field`` intervals per ray, the field's MLPs optionally under bfloat16 autocast or (fused_mlp) by the
        fused CPU op where it applies (nerfw/fields/fused_mlp.py)."""
        cfg = self.cfg
        n = rays_o.shape[0]
        ray_norm = rays_d.norm(dim=-1)  # [N]
        dirs = rays_d / ray_norm[:, None]
        far = self.sample_far(far)
        linear = not cfg.unbounded
        s_p = fractions(n, n_proposal + 1, jitter, endpoints=True, device=near.device)  # [N, P+1]
        t_p = edges_from_spacing(s_p, near, far, linear)
        sigma_p = proposal_density(self._midpoints(rays_o, rays_d, t_p))  # [N, P]
        w_p = weights_from_density(sigma_p, deltas_from_edges(t_p, ray_norm))
        u = fractions(n, n_field + 1, jitter, endpoints=True, device=near.device)  # [N, S+1]
        s_f = sample_pdf(s_p, w_p, u)  # [N, S+1] resampled in the spacing coordinate
        t_f = edges_from_spacing(s_f, near, far, linear)
        mid = 0.5 * (t_f[:, 1:] + t_f[:, :-1])  # [N, S]
        with torch.autocast(device_type=rays_o.device.type, dtype=torch.bfloat16, enabled=bf16_field):
            f = self.field(self._midpoints(rays_o, rays_d, t_f), dirs, image_ids, appearance, use_transient,
                           fused_inference=fused_mlp)
        sigma, rgb = (f.sigma.float(), f.rgb.float()) if bf16_field else (f.sigma, f.rgb)  # composite in fp32
        sky = self.field.sky_color(dirs, image_ids, appearance)  # None without a sky head
        comp = composite_nerfw(sigma, rgb, deltas_from_edges(t_f, ray_norm), mid, beta_min=cfg.beta_min,
                               sigma_t=f.sigma_t, rgb_t=f.rgb_t, beta=f.beta, white_back=cfg.white_back,
                               background=sky)
        return _output(comp, f.sigma_t, proposal=[(s_p, w_p)], edges=s_f)

    @staticmethod
    def _midpoints(rays_o, rays_d, edges):
        mid = 0.5 * (edges[:, 1:] + edges[:, :-1])  # [N, S]
        return rays_o[:, None, :] + rays_d[:, None, :] * mid[..., None]  # [N, S, 3]


class NeRFW(nn.Module):
    """NeRF in the Wild with a selectable field ("grid" default, "mlp" NeRFW-pytorch's). See docs/model.md."""

    def __init__(self, cfg: ModelConfig, n_images: int):
        super().__init__()
        if cfg.field not in ("grid", "mlp"):
            raise ValueError(f"field must be grid or mlp, got {cfg.field!r}")
        self.cfg = dataclasses.replace(cfg)
        self.n_images = n_images
        self.renderer = (GridRenderer if cfg.field == "grid" else MLPRenderer)(self.cfg, n_images)
        # Images whose embeddings have been trained (the mean appearance averages these only).
        self.register_buffer("trained_images", torch.zeros(n_images, dtype=torch.bool))

    # ------------------------------------------------------------------ rendering
    def forward(self, rays_o: torch.Tensor, rays_d: torch.Tensor, near: torch.Tensor, far: torch.Tensor,
                image_ids: torch.Tensor, *, appearance: torch.Tensor | None = None, use_transient: bool = True,
                perturb: bool | None = None) -> RenderOutput:
        """rays_o, rays_d [N, 3] (model frame, camera-z of d = 1), near, far [N] z-depths, image_ids [N] long.
        appearance ([a_dim] or [N, a_dim]) overrides the per-image embedding; perturb None -> self.training."""
        perturb = self.training if perturb is None else perturb
        jitter = self.cfg.perturb if perturb else 0.0
        if appearance is not None and appearance.dim() == 2 and appearance.shape[0] != rays_o.shape[0]:
            raise ValueError(f"appearance has {appearance.shape[0]} rows for {rays_o.shape[0]} rays")
        return self.renderer(rays_o, rays_d, near, far, image_ids.long(), appearance,
                             use_transient and self.cfg.encode_t, jitter)

    def set_transient_gate(self, gate: float) -> None:
        """Scale the transient density of every NeRF-W head by ``gate`` (1: the paper's model). The trainer uses
        0 for the first --transient_warmup steps, then ramps it to 1 (trainer.transient_gate; a deviation from the
        paper, docs/model.md): the static field
        first learns what all images share, so the per-image transient head cannot take the landmark itself.
        The head still runs (zero gradients), so DDP sees every parameter used."""

        for module in self.modules():
            if isinstance(module, NeRFWHeads):
                module.transient_gate = float(gate)

    @torch.no_grad()
    def mark_trained(self, image_ids) -> None:
        """Record which images' embeddings are trained (the mean appearance averages these). The trainer calls
        this once with the training split, identically on every DDP rank."""
        self.trained_images[torch.as_tensor(image_ids, dtype=torch.long, device=self.trained_images.device)] = True

    @torch.no_grad()
    def render_chunked(self, rays_o, rays_d, near, far, image_ids, chunk: int, fast: bool = False,
                       **kwargs) -> RenderOutput:
        """forward() over chunks of ``chunk`` rays without gradients; per-ray outputs concatenated.

        fast=True renders the static scene of the grid field with the approximations of
        :mod:`nerfw.model.fast_render` (several times faster; checked against this renderer in the tests). It
        applies only to the grid field with the transient head off; otherwise the full renderer runs."""
        appearance = kwargs.pop("appearance", None)
        fast = fast and self.supports_fast_render(kwargs.get("use_transient", True))
        outs = []
        for i in range(0, rays_o.shape[0], chunk):
            sl = slice(i, i + chunk)
            app = appearance[sl] if appearance is not None and appearance.dim() == 2 else appearance
            render = self._render_fast if fast else self
            outs.append(render(rays_o[sl], rays_d[sl], near[sl], far[sl], image_ids[sl], appearance=app, **kwargs))
        return RenderOutput.cat(outs)

    def supports_fast_render(self, use_transient: bool) -> bool:
        return self.cfg.field == "grid" and not (use_transient and self.cfg.encode_t)

    def fast_renderer(self):
        """The model's :class:`FastGridRenderer` (made on first use; it re-bakes when the weights change)."""

        if getattr(self, "_fast_renderer", None) is None:
            self._fast_renderer = FastGridRenderer(self.renderer)
        return self._fast_renderer

    def _render_fast(self, rays_o, rays_d, near, far, image_ids, appearance=None, **_ignored) -> RenderOutput:
        return self.fast_renderer()(rays_o, rays_d, near, far, image_ids.long(), appearance)

    def static_density(self, x: torch.Tensor) -> torch.Tensor:
        """Static density sigma [M] (per model unit) at model-frame points x [M, 3], from the field that renders
        the final image (grid: the full field, not the proposal; mlp: the last fine network)."""
        r = self.renderer
        return (r.field if isinstance(r, GridRenderer) else r.nets[-1]).static_density(x)

    # ------------------------------------------------------------------ losses
    def loss(self, out: RenderOutput, rgb_gt: torch.Tensor, depth_gt: torch.Tensor | None = None
             ) -> dict[str, torch.Tensor]:
        """NeRF-W Eq. 13 (or plain MSE without transient head) + coarse MSE (mlp, Eq. 14) or proposal loss
        (grid) + optional depth loss. Returns each weighted term and their sum under "total"."""
        cfg = self.cfg
        terms: dict[str, torch.Tensor] = {}
        if out.has_transient:
            terms["color"] = losses.nerfw_color_loss(out.rgb, rgb_gt, out.beta)
            terms["log_beta"] = losses.log_beta_loss(out.beta)
            terms["transient_reg"] = losses.transient_density_loss(out.transient_sigma_mean, cfg.lambda_u)
        else:
            terms["color"] = losses.mse(out.rgb, rgb_gt)
        if out.aux_rgb:
            terms["coarse"] = cfg.coarse_loss_weight * sum(losses.mse(rgb, rgb_gt) for rgb in out.aux_rgb)
        if out.proposal:
            terms["proposal"] = cfg.proposal_loss_weight * sum(
                losses.proposal_loss(out.edges, out.weights, e, w) for e, w in out.proposal)
        if out.edges is not None and cfg.distortion_loss_weight > 0:
            terms["distortion"] = cfg.distortion_loss_weight * losses.distortion_loss(out.edges, out.weights)
        if cfg.field == "grid" and cfg.plane_tv_weight > 0:
            planes = [*self.renderer.field.encoding.planes, *self.renderer.proposal_net.encoding.planes]
            terms["plane_tv"] = cfg.plane_tv_weight * losses.plane_total_variation(planes)
        if depth_gt is not None and cfg.depth_loss_weight > 0:
            terms["depth"] = cfg.depth_loss_weight * losses.depth_loss(out.depth, depth_gt, cfg.depth_loss_type)
        terms["total"] = sum(terms.values())
        return terms

    # ------------------------------------------------------------------ appearance at test time
    @property
    def appearance_embedding(self) -> nn.Embedding | None:
        """The per-image appearance table used at test time (mlp: the last fine network's); None if encode_a
        is off."""
        return self.renderer.appearance_embedding

    def appearance_vector(self, image_id: int | None = None, vector=None,
                          interpolate: tuple[int, int, float] | None = None, mean: bool = False) -> torch.Tensor:
        """One appearance code [a_dim]: an image's, a given vector, (1 - a) e_i + a e_j, or the mean over the
        images trained so far (all images before training). Zeros when encode_a is off."""
        table = self.appearance_embedding
        if table is None:
            return torch.zeros(self.cfg.a_dim, device=self.trained_images.device)
        weight = table.weight.detach()  # [n_images, a_dim]
        if vector is not None:
            return torch.as_tensor(vector, dtype=weight.dtype, device=weight.device).reshape(self.cfg.a_dim)
        if interpolate is not None:
            i, j, a = interpolate
            return (1 - a) * weight[int(i)] + a * weight[int(j)]
        if mean:
            rows = self.trained_images if bool(self.trained_images.any()) else torch.ones_like(self.trained_images)
            return weight[rows].mean(0)
        if image_id is None:
            raise ValueError("appearance_vector needs image_id, vector, interpolate or mean=True")
        return weight[int(image_id)].clone()


def build_model(cfg: ModelConfig, n_images: int) -> NeRFW:
    """The model for a config; n_images counts every image of the dataset (train and test)."""
    return NeRFW(cfg, n_images)
