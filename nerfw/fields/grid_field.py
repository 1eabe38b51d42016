"""The fast field: contracted points -> multi-resolution tri-planes -> small MLPs + the NeRF-W heads.

Tri-planes rather than a hash grid because they are ~10x faster forward + backward in pure PyTorch on a CPU
at similar capacity (benchmarks/encodings.py; numbers in docs/model.md).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nerfw.fields.config import ModelConfig
from nerfw.fields.contraction import contract
from nerfw.fields.encodings import TriPlanes
from nerfw.fields.fused_mlp import fused_mlp_applies, fused_static_field
from nerfw.fields.heads import FieldOutput, NeRFWHeads, SkyHead

# contract() maps space into the ball of radius 2; the planes cover [-1, 1].
CONTRACTED_RADIUS = 2.0


def geometric_resolutions(n: int, lo: int, hi: int) -> list[int]:
    """n resolutions from lo to hi in geometric progression."""
    if n == 1:
        return [hi]
    return [int(round(lo * (hi / lo) ** (i / (n - 1)))) for i in range(n)]


def to_grid_coords(x: torch.Tensor) -> torch.Tensor:
    """Model-frame points [..., 3] -> [..., 3] in [-1, 1] (contraction, then / 2)."""
    return contract(x) / CONTRACTED_RADIUS


class GridNeRFW(nn.Module):
    """Tri-plane features -> density MLP (hidden ``grid_hidden``) -> sigma (softplus) + geometry features ->
    NeRF-W heads (appearance colour, transient)."""

    def __init__(self, cfg: ModelConfig, n_images: int):
        super().__init__()
        self.density_bias = cfg.density_bias
        self.encoding = TriPlanes(geometric_resolutions(cfg.grid_levels, cfg.grid_min_res, cfg.grid_max_res),
                                  cfg.grid_features)
        self.density = nn.Sequential(nn.Linear(self.encoding.out_dim, cfg.grid_hidden), nn.ReLU(inplace=True),
                                     nn.Linear(cfg.grid_hidden, 1 + cfg.grid_geo_features))
        self.heads = NeRFWHeads(n_images, cfg.grid_geo_features, cfg.grid_hidden, cfg.grid_color_layers,
                                cfg.grid_transient_layers, cfg.N_dir_freq, cfg.a_dim, cfg.t_dim,
                                cfg.encode_a, cfg.encode_t, cfg.a_init_std)
        self.sky = SkyHead(cfg.N_dir_freq, cfg.a_dim if cfg.encode_a else 0, cfg.grid_hidden) \
            if cfg.sky and cfg.unbounded else None

    def sky_color(self, dirs: torch.Tensor, image_ids: torch.Tensor, appearance: torch.Tensor | None):
        """The sky head's colour [R, 3] for unit directions [R, 3] (None without a sky head)."""
        if self.sky is None:
            return None
        return self.sky(dirs, self.heads.appearance_codes(image_ids, appearance))

    def static_density(self, x: torch.Tensor) -> torch.Tensor:
        """Static sigma at model-frame points [M, 3] -> [M] (view- and image-independent)."""
        h = self.density(self.encoding(to_grid_coords(x)))
        return F.softplus(h[:, 0] + self.density_bias)

    def forward(self, x: torch.Tensor, dirs: torch.Tensor, image_ids: torch.Tensor,
                appearance: torch.Tensor | None = None, use_transient: bool = True,
                fused_inference: bool = False) -> FieldOutput:
        """x [R, S, 3] model-frame points, dirs [R, 3] unit, image_ids [R]. fused_inference: the MLPs by the fused
        CPU op where it applies (nerfw/fields/fused_mlp.py; the fast renderer asks for it)."""
        R, S, _ = x.shape
        enc = self.encoding(to_grid_coords(x.reshape(R * S, 3)))
        if fused_inference and fused_mlp_applies(self, enc, use_transient):
            sigma, rgb = fused_static_field(self, enc, dirs, image_ids, appearance, S)
            return FieldOutput(sigma=sigma.reshape(R, S), rgb=rgb.reshape(R, S, 3))
        h = self.density(enc).reshape(R, S, -1)
        sigma = F.softplus(h[..., 0] + self.density_bias)  # [R, S]
        return self.heads(h[..., 1:], dirs, image_ids, appearance, use_transient, sigma)


class ProposalDensity(nn.Module):
    """A tiny density-only field for proposal sampling (mip-NeRF 360 Sec. 3): coarse tri-planes + 1 hidden layer."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.density_bias = cfg.density_bias
        self.encoding = TriPlanes(
            geometric_resolutions(cfg.proposal_levels, cfg.proposal_min_res, cfg.proposal_max_res),
            cfg.proposal_features)
        self.mlp = nn.Sequential(nn.Linear(self.encoding.out_dim, cfg.proposal_hidden), nn.ReLU(),
                                 nn.Linear(cfg.proposal_hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [R, S, 3] -> sigma [R, S]."""
        R, S, _ = x.shape
        return self.density_at_grid_coords(to_grid_coords(x.reshape(R * S, 3))).reshape(R, S)

    def density_at_grid_coords(self, g: torch.Tensor) -> torch.Tensor:
        """sigma at points already contracted to grid coordinates [M, 3] in [-1, 1] -> [M]."""
        return F.softplus(self.mlp(self.encoding(g))[:, 0] + self.density_bias)


__all__ = ["GridNeRFW", "ProposalDensity", "geometric_resolutions", "to_grid_coords"]
