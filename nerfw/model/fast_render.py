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

On the CPU the baked volume is read with one ``grid_sample`` batch per thread: PyTorch's CPU kernel
parallelises over the batch only, so one batch ran on one thread (on a 2-core AMD EPYC: lookups 1.7x faster at
2 threads, a 640x360 frame 1.06x; the values are the same).

The field's tri-planes are read by TriPlanes' own sampler (nerfw/fields/fused_planes.py: the fused C++ op on
the CPU, which splits the points, not the three planes, between threads). Reading them with ``F.embedding_bag``
from channels-last copies was tried earlier and dropped: no faster on a real frame's points (0.96-1.00x at 2
threads), because neighbouring rays read neighbouring texels, which stay in cache.

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
        # grid_sample's CPU kernel runs one thread per batch entry: the points go in one batch per thread,
        # all over the same volume (an expanded view, not a copy).
        n_batches = torch.get_num_threads() if g.device.type == "cpu" else 1
        m = g.shape[0]
        if m % n_batches:
            g = F.pad(g, (0, 0, 0, n_batches - m % n_batches))
        out = F.grid_sample(self.volume.expand(n_batches, -1, -1, -1, -1), g.reshape(n_batches, -1, 1, 1, 3),
                            mode="bilinear", padding_mode="border", align_corners=True)  # [B, 1, M / B, 1, 1]
        return out.reshape(-1)[:m]


class FastGridRenderer:
    """Static-scene rendering of a trained :class:`GridRenderer` with the approximations above (no gradients):
    its own pipeline (GridRenderer.render) with the baked volume as the proposal density."""

    def __init__(self, renderer, settings: FastRenderSettings | None = None):
        self.renderer = renderer
        self.settings = settings or FastRenderSettings()
        self._baked: BakedDensity | None = None
        self._fingerprint: tuple | None = None

    def bake(self) -> BakedDensity:
        """(Re)build the baked proposal density from the current weights."""
        proposal = self.renderer.proposal_net
        device = next(proposal.parameters()).device
        self._baked = BakedDensity(proposal.density_at_grid_coords, self.settings.bake_resolution, device)
        self._fingerprint = _param_fingerprint(proposal)
        return self._baked

    def baked(self) -> BakedDensity:
        """The baked proposal density, rebuilt if the proposal network changed since it was baked."""
        if self._baked is None or _param_fingerprint(self.renderer.proposal_net) != self._fingerprint:
            return self.bake()
        return self._baked

    @torch.no_grad()
    def __call__(self, rays_o, rays_d, near, far, image_ids, appearance=None):
        """rays [N, 3] (model frame, camera-z of d = 1), near/far [N], image_ids [N]; appearance overrides the
        per-image codes as in NeRFW.forward. Returns the RenderOutput of the static scene."""
        s = self.settings
        baked = self.baked()
        bf16 = native_bf16(rays_o.device) if s.bf16 is None else s.bf16

        def baked_density(x):  # points [N, P, 3] -> sigma [N, P]
            return baked(to_grid_coords(x.reshape(-1, 3))).reshape(x.shape[:-1])

        return self.renderer.render(rays_o, rays_d, near, far, image_ids, appearance, False, 0.0, baked_density,
                                    s.bake_samples, s.field_samples, bf16_field=bf16, fused_mlp=not bf16)
