"""Loss terms of NeRF-W (Martin-Brualla et al. 2020, Eq. 13-14), of the proposal sampler (mip-NeRF 360,
Barron et al. 2022, Eq. 13), the distortion loss (mip-NeRF 360 Eq. 15) and the tri-planes' total variation (K-Planes, Fridovich-Keil et al. 2023). Pure functions; the weights come from ModelConfig, never from literals here."""
from __future__ import annotations

import torch

# Keeps 1 / w finite in the proposal loss for empty intervals (multinerf uses the same epsilon).
PROPOSAL_EPS = 1e-7


def mse(rgb: torch.Tensor, rgb_gt: torch.Tensor) -> torch.Tensor:
    """Plain NeRF colour loss: mean over rays and channels of (C - C_gt)^2 (as NeRFW-pytorch and nerf_pl)."""
    return torch.mean((rgb - rgb_gt) ** 2)


def nerfw_color_loss(rgb: torch.Tensor, rgb_gt: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """NeRF-W Eq. 13, first term: mean over rays of ||C - C_gt||^2 / (2 beta^2), the squared norm summed over
    the 3 channels as in the paper. (NeRFW-pytorch and nerf_pl average over channels instead, i.e. divide this by 3,
    which moves the optimal beta by a factor sqrt(3).) rgb, rgb_gt [N, 3]; beta [N]."""
    return torch.mean(((rgb - rgb_gt) ** 2).sum(-1) / (2 * beta**2))


def log_beta_loss(beta: torch.Tensor) -> torch.Tensor:
    """NeRF-W Eq. 13, second term: (log beta^2) / 2 = log beta, averaged over rays. nerf_pl writes
    3 + log(beta) to keep the logged loss positive; the constant changes no gradient and is left out."""
    return torch.mean(torch.log(beta))


def transient_density_loss(transient_sigma_mean: torch.Tensor, lambda_u: float) -> torch.Tensor:
    """NeRF-W Eq. 13, third term: lambda_u / K sum_k sigma_t_k, averaged over rays ([N] per-ray means)."""
    return lambda_u * torch.mean(transient_sigma_mean)


def depth_loss(depth: torch.Tensor, depth_gt: torch.Tensor, kind: str) -> torch.Tensor:
    """L1 or L2 between rendered and given z-depth [N], over the rays whose depth_gt is finite and > 0."""
    valid = torch.isfinite(depth_gt) & (depth_gt > 0)
    if not bool(valid.any()):
        return depth.sum() * 0.0  # keeps the graph (DDP) when a batch has no valid depth
    err = depth[valid] - depth_gt[valid]
    if kind == "l1":
        return err.abs().mean()
    if kind == "l2":
        return (err**2).mean()
    raise ValueError(f"depth loss must be l1 or l2, got {kind!r}")


def outer_weights(edges: torch.Tensor, edges_p: torch.Tensor, w_p: torch.Tensor) -> torch.Tensor:
    """For each interval of ``edges`` [N, n+1], the summed proposal weight w_p [N, m] of every proposal
    interval of ``edges_p`` [N, m+1] that overlaps it (mip-NeRF 360 Eq. 12's bound). Returns [N, n]."""
    cw = torch.cat([torch.zeros_like(w_p[:, :1]), torch.cumsum(w_p, dim=-1)], dim=-1)  # [N, m+1]
    m = w_p.shape[-1]
    idx = torch.searchsorted(edges_p.contiguous(), edges.contiguous(), right=True)  # [N, n+1]: #edges_p <= e
    lo = (idx - 1).clamp(0, m)  # proposal interval that contains each edge
    hi = idx.clamp(0, m)
    return cw.gather(-1, hi[:, 1:]) - cw.gather(-1, lo[:, :-1])


def proposal_loss(edges: torch.Tensor, weights: torch.Tensor, edges_p: torch.Tensor,
                  w_p: torch.Tensor) -> torch.Tensor:
    """mip-NeRF 360 Eq. 13: sum_i max(0, w_i - bound_i)^2 / w_i, with the NeRF weights w [N, n] detached so
    only the proposal network learns; averaged over rays. Zero when the proposal bounds the NeRF histogram."""
    w = weights.detach()
    bound = outer_weights(edges.detach(), edges_p.detach(), w_p)
    return torch.mean((torch.clamp_min(w - bound, 0) ** 2 / (w + PROPOSAL_EPS)).sum(-1))


def distortion_loss(edges: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """mip-NeRF 360 Eq. 15 on a ray's step histogram in the spacing coordinate s (edges [N, S+1], weights [N, S]):
    sum_ij w_i w_j |m_i - m_j| + 1/3 sum_i w_i^2 (s_{i+1} - s_i), m the interval midpoints; averaged over rays.
    It is small when a ray's weight sits in one compact interval and large when it is spread along the ray, so
    it removes semi-transparent "floaters". The double sum is computed in O(S) with exclusive cumulative sums
    (midpoints are sorted): sum_ij = 2 sum_i w_i (m_i W_<i - (w m)_<i)."""
    mid = 0.5 * (edges[:, 1:] + edges[:, :-1])
    width = edges[:, 1:] - edges[:, :-1]
    w_before = torch.cumsum(weights, dim=-1) - weights  # exclusive sums
    wm_before = torch.cumsum(weights * mid, dim=-1) - weights * mid
    between = 2.0 * (weights * (mid * w_before - wm_before)).sum(-1)
    within = (weights.square() * width).sum(-1) / 3.0
    return torch.mean(between + within)


def plane_total_variation(planes) -> torch.Tensor:
    """K-Planes' spatial total variation (Sec. 3.2): the mean squared difference between neighbouring cells of
    each plane, along both axes, averaged over the planes of every resolution. planes: tensors [3, R, R, F]."""
    terms = []
    for plane in planes:
        along_rows = (plane[:, 1:] - plane[:, :-1]).square().mean()
        along_cols = (plane[:, :, 1:] - plane[:, :, :-1]).square().mean()
        terms.append(along_rows + along_cols)
    return torch.stack(terms).mean()
