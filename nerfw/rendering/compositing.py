"""Volume rendering of NeRF-W (Martin-Brualla et al. 2020, Eq. 8-11). Pure functions.

Names: ``sigma`` densities [n_rays, S] >= 0, ``delta`` interval lengths [n_rays, S] in metric units (the
z-depth step times |d|), ``w`` weights [n_rays, S]. Everything goes through sigma * delta summed in log space
(an exclusive cumsum) and ``expm1``, so densities from 0 to 1e10 and zero-length intervals stay finite in
value and gradient.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


def exclusive_cumsum(x: torch.Tensor) -> torch.Tensor:
    """[..., S] -> [..., S] with out[..., i] = sum_{j<i} x[..., j] (out[..., 0] = 0)."""
    return torch.cat([torch.zeros_like(x[..., :1]), torch.cumsum(x[..., :-1], dim=-1)], dim=-1)


def alpha_from_density(sigma: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """alpha_i = 1 - exp(-sigma_i delta_i) (NeRF Eq. 3), via expm1 for small products."""
    return -torch.expm1(-sigma * delta)


def transmittance(optical_depth: torch.Tensor) -> torch.Tensor:
    """T_i = exp(-sum_{j<i} tau_j) for per-interval optical depths tau = sigma * delta (NeRF-W Eq. 9)."""
    return torch.exp(-exclusive_cumsum(optical_depth))


def weights_from_density(sigma: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """Density route: w_i = T_i (1 - exp(-sigma_i delta_i))."""
    return transmittance(sigma * delta) * alpha_from_density(sigma, delta)


def weights_from_alpha(alpha: torch.Tensor) -> torch.Tensor:
    """Alpha route: w_i = alpha_i prod_{j<i} (1 - alpha_j). Equals :func:`weights_from_density` (tested)."""
    trans = torch.cumprod(torch.cat([torch.ones_like(alpha[..., :1]), 1 - alpha[..., :-1]], dim=-1), dim=-1)
    return trans * alpha


def nerfw_weights(sigma_s: torch.Tensor, sigma_t: torch.Tensor, delta: torch.Tensor):
    """NeRF-W Eq. 9-10: joint transmittance T_i = exp(-sum_{j<i} (sigma_s_j + sigma_t_j) delta_j);
    static weights T_i (1 - exp(-sigma_s_i delta_i)), transient weights T_i (1 - exp(-sigma_t_i delta_i)).

    Returns (w_s, w_t), each [n_rays, S]. sum w_s <= 1 and sum w_t <= 1, but because
    alpha(sigma_s) + alpha(sigma_t) >= alpha(sigma_s + sigma_t), sum (w_s + w_t) may exceed the joint opacity
    1 - T_{S+1} when both densities are large in the same interval (the paper's formulation; tested <= 2).
    """
    trans = transmittance((sigma_s + sigma_t) * delta)  # [n_rays, S]
    return trans * alpha_from_density(sigma_s, delta), trans * alpha_from_density(sigma_t, delta)


def depth_quantiles(weights: torch.Tensor, z: torch.Tensor, fractions: tuple[float, ...]) -> torch.Tensor:
    """The sample depths where the accumulated weight first reaches each fraction of the ray's total weight.
    weights, z: [n_rays, S] -> [n_rays, len(fractions)]; rays with no weight get z[:, 0]."""
    cum = torch.cumsum(weights, dim=-1)
    targets = torch.cat([cum[:, -1:] * f for f in fractions], dim=-1)  # no host-made tensor: this runs every step
    index = torch.searchsorted(cum.contiguous(), targets.contiguous()).clamp_max(z.shape[-1] - 1)  # first cum >= t
    return z.gather(-1, index)


def median_depth(weights: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """The sample depth where the accumulated weight first reaches half of the ray's total weight
    (the "median depth" of mip-NeRF 360 / nerfstudio). weights, z: [n_rays, S] -> [n_rays].

    Unlike the expected depth sum_i w_i z_i, it is not dragged far away by small weights on the long last
    interval of an unbounded ray, so depth maps show surfaces; rays with no weight get z[:, 0]."""
    return depth_quantiles(weights, z, (0.5,))[:, 0]


def median_and_spread(weights: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(median depth, interquartile range of the depth) [n_rays] each, from one search. The spread says how sure
    the depth is: a surface the field has made sharp holds the middle half of the weight within a sample or two; a
    soft or doubled one spreads it over many (what `nerfw export` drops)."""
    q = depth_quantiles(weights, z, (0.25, 0.5, 0.75))
    return q[:, 1], q[:, 2] - q[:, 0]


def composite(weights: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """sum_i w_i v_i: weights [n_rays, S], values [n_rays, S, C] -> [n_rays, C]."""
    return torch.einsum("rs,rsc->rc", weights, values)


@dataclass
class Composite:
    """Per-ray renderings of one network's samples."""

    rgb: torch.Tensor  # [n_rays, 3] NeRF-W Eq. 8 (static + transient), or the static image without transient
    rgb_static: torch.Tensor  # [n_rays, 3] static component alone (static density only)
    rgb_transient: torch.Tensor  # [n_rays, 3] transient component alone (transient density only); 0 if none
    depth: torch.Tensor  # [n_rays] expected z-depth of the static component, sum_i w_s_i z_i
    depth_median: torch.Tensor  # [n_rays] median z-depth of the static component (see median_depth)
    depth_spread: torch.Tensor  # [n_rays] interquartile range of that z-depth (see median_and_spread)
    opacity: torch.Tensor  # [n_rays] 1 - transmittance after the last sample (static + transient)
    beta: torch.Tensor  # [n_rays] NeRF-W Eq. 11 uncertainty, beta_min when there is no transient head
    weights: torch.Tensor  # [n_rays, S] w_s (+ w_t): where the content is (drives resampling / proposal loss)
    weights_static: torch.Tensor  # [n_rays, S] static weights of the joint compositing (w_s)
    transient_opacity: torch.Tensor  # [n_rays] sum_i w_t_i: the share of the pixel explained by transients


def composite_nerfw(sigma_s: torch.Tensor, rgb_s: torch.Tensor, delta: torch.Tensor, z: torch.Tensor, *,
                    beta_min: float, sigma_t: torch.Tensor | None = None, rgb_t: torch.Tensor | None = None,
                    beta: torch.Tensor | None = None, white_back: bool = False,
                    background: torch.Tensor | None = None) -> Composite:
    """Render one set of samples, with (NeRF-W) or without (NeRF) a transient component.

    sigma_s, delta, z: [n_rays, S]; rgb_s: [n_rays, S, 3]; sigma_t, beta: [n_rays, S]; rgb_t: [n_rays, S, 3].
    C = sum w_s c_s + w_t c_t (Eq. 8-10); beta_hat = sum w_t beta_i + beta_min (Eq. 11). The static image is
    re-composited with the static density alone, as NeRF-W renders its static component (Fig. 5).
    Deviation from NeRFW-pytorch / nerf_pl: they render ``depth`` with w_s too but add beta_min inside their
    renderer the same way; nerf_pl renders its transient image with the joint weights, we use the transient
    density alone so the image shows the transient component as if the scene were empty.
    background [n_rays, 3] (the sky head's colour at infinity) replaces the constant black / white background:
    what light the samples let through comes from it.
    """
    w_static_only = weights_from_density(sigma_s, delta)  # [n_rays, S]
    rgb_static = composite(w_static_only, rgb_s)
    if background is None:
        background = 1.0 if white_back else 0.0
    if sigma_t is None:
        opacity = w_static_only.sum(-1)
        rgb_static = rgb_static + background * (1 - opacity[:, None])
        return Composite(rgb_static, rgb_static, torch.zeros_like(rgb_static), (w_static_only * z).sum(-1),
                         *median_and_spread(w_static_only.detach(), z), opacity, torch.full_like(opacity, beta_min),
                         w_static_only, w_static_only, torch.zeros_like(opacity))
    w_s, w_t = nerfw_weights(sigma_s, sigma_t, delta)
    opacity = -torch.expm1(-((sigma_s + sigma_t) * delta).sum(-1))  # joint 1 - T_{S+1}, in [0, 1]
    rgb = composite(w_s, rgb_s) + composite(w_t, rgb_t) + background * (1 - opacity[:, None])
    w_transient_only = weights_from_density(sigma_t, delta)
    rgb_transient = composite(w_transient_only, rgb_t)
    rgb_static = rgb_static + background * (1 - w_static_only.sum(-1, keepdim=True))
    beta_hat = (w_t * beta).sum(-1) + beta_min  # Eq. 11 (+ beta_min, Sec. 4.2)
    return Composite(rgb, rgb_static, rgb_transient, (w_s * z).sum(-1), *median_and_spread(w_s.detach(), z), opacity,
                     beta_hat, w_s + w_t, w_s, w_t.sum(-1))


def deltas_from_depths(z: torch.Tensor, ray_norm: torch.Tensor, last: float) -> torch.Tensor:
    """NeRF's intervals for point samples: delta_i = (z_{i+1} - z_i) |d|, the last one ``last`` (metric).

    z: [n_rays, S], ray_norm: [n_rays] -> [n_rays, S]. The original NeRF uses last = 1e10 (the last sample
    absorbs everything behind it); NeRFW-pytorch uses 233 (and nerf_pl 1e2). Ours is ModelConfig.mlp_last_delta.
    """
    dz = torch.cat([z[:, 1:] - z[:, :-1], torch.full_like(z[:, :1], last)], dim=-1)
    dz = dz.clamp_min(0)
    scale = torch.cat([ray_norm[:, None].expand(-1, z.shape[1] - 1), torch.ones_like(z[:, :1])], dim=-1)
    return dz * scale


def deltas_from_edges(edges: torch.Tensor, ray_norm: torch.Tensor) -> torch.Tensor:
    """Interval lengths of edges [n_rays, S + 1] (z-depth) -> metric [n_rays, S]."""
    return (edges[:, 1:] - edges[:, :-1]).clamp_min(0) * ray_norm[:, None]
