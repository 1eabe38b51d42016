"""Where to evaluate a field along each ray. Pure functions.

Names: ``z`` are sample positions along a ray (z-depth, because ray directions have camera-z = 1, see
nerfw.cameras.conventions.camera_rays); ``edges`` are interval endpoints [n_rays, n + 1] whose midpoints are the
samples; ``s`` is a normalised spacing coordinate in which samples are uniform (mip-NeRF 360, Sec. 2.2).
"""
from __future__ import annotations

import torch

# Added to every weight before inverse-CDF sampling so that an all-zero histogram samples uniformly
# (NeRF's sample_pdf and NeRFW-pytorch use the same 1e-5).
PDF_WEIGHT_PADDING = 1e-5


def fractions(n_rays: int, n: int, jitter: float, *, endpoints: bool, device=None,
              dtype=torch.float32) -> torch.Tensor:
    """Sorted fractions in [0, 1], [n_rays, n].

    endpoints=True: n points from 0 to 1 inclusive (the ends stay fixed; interior points are jittered by up
    to +-jitter/2 of the spacing). endpoints=False: stratified, one point per bin [k/n, (k+1)/n), at the bin
    centre when jitter = 0 and uniformly inside it when jitter = 1.
    """
    if endpoints:
        u = torch.linspace(0, 1, n, device=device, dtype=dtype).expand(n_rays, n).clone()  # [n_rays, n]
        if jitter > 0 and n > 2:
            u[:, 1:-1] += jitter * (torch.rand(n_rays, n - 2, device=device, dtype=dtype) - 0.5) / (n - 1)
        return u
    offset = torch.full((n_rays, n), 0.5, device=device, dtype=dtype)
    if jitter > 0:
        offset = offset + jitter * (torch.rand(n_rays, n, device=device, dtype=dtype) - 0.5)
    return (torch.arange(n, device=device, dtype=dtype) + offset) / n


def stratified_depths(near: torch.Tensor, far: torch.Tensor, n: int, *, use_disp: bool = False,
                      jitter: float = 0.0) -> torch.Tensor:
    """NeRF's coarse samples: n points linear in depth (or in disparity when use_disp) from near to far,
    each jittered inside its bin by ``jitter`` (NeRFW-pytorch's --perturb; 0 at test time: deterministic).

    near, far: [n_rays] -> z: [n_rays, n], sorted, inside [near, far].
    """
    t = torch.linspace(0, 1, n, device=near.device, dtype=near.dtype)  # [n]
    if use_disp:
        z = 1.0 / (1.0 / near[:, None] * (1 - t) + 1.0 / far[:, None] * t)  # [n_rays, n]
    else:
        z = near[:, None] * (1 - t) + far[:, None] * t  # [n_rays, n]
    if jitter > 0 and n > 1:
        mids = 0.5 * (z[:, 1:] + z[:, :-1])  # [n_rays, n-1]
        upper = torch.cat([mids, z[:, -1:]], dim=-1)
        lower = torch.cat([z[:, :1], mids], dim=-1)
        z = lower + (upper - lower) * jitter * torch.rand_like(z)
    return z


def sample_pdf(bins: torch.Tensor, weights: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Inverse-CDF sampling of the piecewise-constant density given by ``weights`` on ``bins`` (NeRF Eq. 5).

    bins: [n_rays, B + 1] sorted edges; weights: [n_rays, B] >= 0 (gradients are not propagated);
    u: [n_rays, n] sorted fractions in [0, 1] (see :func:`fractions`). Returns sorted samples [n_rays, n]
    inside [bins[:, 0], bins[:, -1]]; u = 0 and u = 1 map exactly onto the first and last edge.
    """
    w = weights.detach() + PDF_WEIGHT_PADDING  # [n_rays, B]
    cdf = torch.cumsum(w, dim=-1)
    cdf = torch.cat([torch.zeros_like(cdf[:, :1]), cdf / cdf[:, -1:]], dim=-1)  # [n_rays, B + 1], ends 0 and 1
    u = u.contiguous()
    idx = torch.searchsorted(cdf, u, right=True)  # [n_rays, n] in [1, B + 1]
    below = (idx - 1).clamp(0, bins.shape[-1] - 1)
    above = idx.clamp(0, bins.shape[-1] - 1)
    cdf_lo, cdf_hi = cdf.gather(-1, below), cdf.gather(-1, above)
    bin_lo, bin_hi = bins.gather(-1, below), bins.gather(-1, above)
    denom = cdf_hi - cdf_lo
    frac = torch.where(denom > 0, (u - cdf_lo) / torch.where(denom > 0, denom, 1.0), 0.0).clamp(0, 1)
    return (bin_lo + frac * (bin_hi - bin_lo)).detach()


def importance_depths(z: torch.Tensor, weights: torch.Tensor, n: int, jitter: float) -> torch.Tensor:
    """NeRF's fine samples: n new depths drawn from the coarse weights, bins at the coarse midpoints
    (the end samples' weights are dropped as in NeRF / NeRFW-pytorch). Deterministic when jitter = 0.

    z: [n_rays, S] sorted, weights: [n_rays, S] -> [n_rays, n] (not merged with z).
    """
    mids = 0.5 * (z[:, 1:] + z[:, :-1])  # [n_rays, S - 1]
    u = fractions(z.shape[0], n, jitter, endpoints=False, device=z.device, dtype=z.dtype)
    if jitter == 0:  # NeRF's deterministic sampling: linspace(0, 1, n)
        u = torch.linspace(0, 1, n, device=z.device, dtype=z.dtype).expand(z.shape[0], n)
    return sample_pdf(mids, weights[:, 1:-1], u)


def merge_sorted(z_a: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:
    """Union of two sample sets, sorted along the ray: [n_rays, A], [n_rays, B] -> [n_rays, A + B]."""
    return torch.sort(torch.cat([z_a, z_b], dim=-1), dim=-1).values


# ----------------------------------------------------------------------------- spacing for unbounded scenes
def spacing_fn(t: torch.Tensor) -> torch.Tensor:
    """Linear up to 1, then linear in disparity: s = t/2 for t < 1, s = 1 - 1/(2t) beyond; maps [0, inf) to
    [0, 1) (the mip-NeRF 360 / nerfacto "uniform then disparity" spacing, Sec. 2.2)."""
    return torch.where(t < 1, 0.5 * t, 1 - 0.5 / t.clamp_min(1))


def spacing_fn_inv(s: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`spacing_fn` on [0, 1)."""
    return torch.where(s < 0.5, 2 * s, 0.5 / (1 - s.clamp(0.5, 1 - 1e-7)))


def edges_from_spacing(s_edges: torch.Tensor, near: torch.Tensor, far: torch.Tensor,
                       linear: bool) -> torch.Tensor:
    """Fractions [n_rays, n + 1] in [0, 1] -> depth edges in [near, far]: uniform in depth when ``linear``
    (bounded scenes), else uniform in :func:`spacing_fn` (unbounded scenes)."""
    if linear:
        return near[:, None] + s_edges * (far - near)[:, None]
    s_near, s_far = spacing_fn(near)[:, None], spacing_fn(far)[:, None]
    t = spacing_fn_inv(s_near + s_edges * (s_far - s_near))
    t = torch.maximum(torch.minimum(t, far[:, None]), near[:, None])
    # exact ends despite float32 rounding of s near 1
    return torch.where(s_edges >= 1, far[:, None], torch.where(s_edges <= 0, near[:, None], t))
