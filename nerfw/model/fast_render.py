"""Fast inference rendering for the grid field: a baked proposal grid, fewer field samples, bfloat16 MLPs.

Training and ``nerfw eval`` use :class:`nerfw.model.nerfw_model.GridRenderer` as trained (64 proposal + 48 field
samples per ray, the colour head at every sample). Rendering frames for people to look at does not need all of
that, so ``FastGridRenderer`` (used by ``nerfw render`` / ``synthesize`` unless ``--quality full``) makes three
approximations, each measured against the full renderer (tests/test_fast_render.py, docs/model.md,
benchmarks/time_to_quality.py):

1. The proposal network is baked once into a dense density volume over the contracted cube (the network's own
   finest plane resolution is 128, so a 128^3 trilinear volume reproduces it closely); each ray then looks up
   ``bake_samples`` points in it instead of evaluating the network at 64. This is the occupancy-grid idea of
   Instant-NGP (Mueller et al. 2022, Sec. 4) applied to the proposal density.
2. The field is evaluated at ``field_samples`` (< 48) points drawn from those weights by the same inverse CDF.
3. Where the hardware computes in bfloat16 natively, the MLPs run under bfloat16 autocast (the planes and
   the compositing stay float32).

(Evaluating the colour head only at the few heaviest samples of a ray was tried and dropped: on trained
models every one of the 14 samples carries weight, and the top-4 colours alone cost 8 dB against the full
render.)

Only the static scene is rendered this way (the transient head off); anything else falls back to the full
renderer.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from nerfw.fields.grid_field import to_grid_coords
from nerfw.fields.encodings import positional_encoding
from nerfw.rendering.compositing import deltas_from_edges, median_depth, weights_from_density
from nerfw.rendering.samplers import edges_from_spacing, fractions, sample_pdf


@dataclass
class FastRenderSettings:
    """Knobs of the approximation; the defaults were chosen by measuring PSNR against the full renderer."""

    bake_resolution: int = 128  # voxels per side of the baked proposal density (contracted cube)
    bake_samples: int = 24  # lookups per ray in the baked volume
    field_samples: int = 14  # field evaluations per ray
    bf16: bool | None = None  # MLPs in bfloat16 autocast; None: where the hardware has bf16 arithmetic


def native_bf16(device: torch.device) -> bool:
    """Whether bfloat16 matrix products are fast on ``device``: CUDA GPUs from Ampere on, x86 CPUs with
    AVX512-BF16 or AMX (elsewhere PyTorch emulates them, slower than float32)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and _cpu_has_bf16()


@functools.lru_cache(maxsize=1)
def _cpu_has_bf16() -> bool:
    try:
        with open("/proc/cpuinfo") as fh:
            flags = next((line for line in fh if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _param_fingerprint(module: torch.nn.Module) -> tuple:
    """Changes whenever a parameter is replaced or updated in place (optimiser steps bump ``_version``)."""
    return tuple((p.data_ptr(), p._version) for p in module.parameters())


class BakedDensity:
    """A density volume [D, D, D] sampled from a density function of grid coordinates in [-1, 1]^3."""

    def __init__(self, density_fn, resolution: int, device, chunk: int = 1 << 18):
        axis = torch.linspace(-1, 1, resolution, device=device)
        values = []
        with torch.no_grad():
            for k in range(resolution):  # one z-slice at a time bounds memory
                gz, gy, gx = torch.meshgrid(axis[k:k + 1], axis, axis, indexing="ij")
                g = torch.stack([gx, gy, gz], dim=-1).reshape(-1, 3)
                values.append(torch.cat([density_fn(g[i:i + chunk]) for i in range(0, len(g), chunk)]))
        # volume[z, y, x]: F.grid_sample reads the last coordinate of a point as the depth index.
        self.volume = torch.cat(values).reshape(1, 1, resolution, resolution, resolution)

    def __call__(self, g: torch.Tensor) -> torch.Tensor:
        """Trilinear density at grid coordinates [M, 3] -> [M]."""
        out = F.grid_sample(self.volume, g.reshape(1, -1, 1, 1, 3), mode="bilinear", padding_mode="border",
                            align_corners=True)
        return out.reshape(-1)


class FastGridRenderer:
    """Static-scene rendering of a trained :class:`GridRenderer` with the approximations above (no gradients)."""

    def __init__(self, renderer, settings: FastRenderSettings | None = None):
        self.renderer = renderer
        self.settings = settings or FastRenderSettings()
        self._baked: BakedDensity | None = None
        self._fingerprint: tuple | None = None

    def baked(self) -> BakedDensity:
        """The baked proposal density, rebuilt if the proposal network changed since it was baked."""
        proposal = self.renderer.proposal_net
        fingerprint = _param_fingerprint(proposal)
        if self._baked is None or fingerprint != self._fingerprint:
            device = next(proposal.parameters()).device
            self._baked = BakedDensity(proposal.density_at_grid_coords, self.settings.bake_resolution, device)
            self._fingerprint = fingerprint
        return self._baked

    @torch.no_grad()
    def __call__(self, rays_o, rays_d, near, far, appearance_codes: torch.Tensor | None):
        """rays [N, 3] (model frame, camera-z of d = 1), near/far [N]; appearance_codes [N, a_dim] or None.
        Returns (rgb [N, 3], expected depth [N], median depth [N], opacity [N]); depths are model-frame z."""
        r, s = self.renderer, self.settings
        cfg = r.cfg
        bf16 = native_bf16(rays_o.device) if s.bf16 is None else s.bf16
        n = rays_o.shape[0]
        ray_norm = rays_d.norm(dim=-1)
        dirs = rays_d / ray_norm[:, None]
        far = r.sample_far(far)
        linear = not cfg.unbounded
        # 1. proposal weights from the baked volume
        s_p = fractions(n, s.bake_samples + 1, 0.0, endpoints=True, device=near.device)
        t_p = edges_from_spacing(s_p, near, far, linear)
        sigma_p = self.baked()(to_grid_coords(r._midpoints(rays_o, rays_d, t_p).reshape(-1, 3))).reshape(n, -1)
        w_p = weights_from_density(sigma_p, deltas_from_edges(t_p, ray_norm))
        # 2. field density at a few samples drawn from them
        u = fractions(n, s.field_samples + 1, 0.0, endpoints=True, device=near.device)
        t_f = edges_from_spacing(sample_pdf(s_p, w_p, u), near, far, linear)
        x = r._midpoints(rays_o, rays_d, t_f)  # [N, S, 3]
        field = r.field
        with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=bf16):
            h = field.density(field.encoding(to_grid_coords(x.reshape(-1, 3)))).float()  # [N S, 1 + geo]
        sigma = F.softplus(h[:, 0] + field.density_bias).reshape(n, -1)
        w = weights_from_density(sigma, deltas_from_edges(t_f, ray_norm))  # [N, S]
        mid = 0.5 * (t_f[:, 1:] + t_f[:, :-1])
        # 3. the static colour head (NeRF-W Eq. 7) at every sample, composited
        heads = field.heads
        cond = positional_encoding(dirs, heads.n_dir_freq)  # [N, 27]
        if appearance_codes is not None:
            cond = torch.cat([appearance_codes, cond], dim=-1)
        with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=bf16):
            colors = torch.sigmoid(heads.color(h[:, 1:].reshape(n, -1, h.shape[1] - 1), cond)).float()  # [N, S, 3]
        rgb = torch.einsum("ns,nsc->nc", w, colors)
        opacity = w.sum(-1)
        if cfg.white_back:
            rgb = rgb + (1 - opacity[:, None])
        return rgb, (w * mid).sum(-1), median_depth(w, mid), opacity
