"""Input encodings: NeRF positional encoding, a pure-PyTorch multi-resolution hash grid, factorised tri-planes.

All grid encodings take points already mapped to [-1, 1]^3 (see :func:`nerfw.fields.contraction.contract`).
Each fast encoding has a plain reference in the tests (tests/test_fields.py): trilinear interpolation of a
dense grid computed by brute force.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from nerfw.fields.fused_planes import PLANE_AXES, sample_triplanes

# Spatial hash primes of Instant-NGP (Mueller et al. 2022, Eq. 4); the first is 1 for memory coherence.
_HASH_PRIMES = (1, 2654435761, 805459861)


def positional_encoding(x: torch.Tensor, n_freq: int) -> torch.Tensor:
    """NeRF Eq. 4 as NeRFW-pytorch writes it: [x, sin(2^k x), cos(2^k x)] for k < n_freq, WITHOUT the paper's pi.

    x: [..., D] -> [..., D * (1 + 2 n_freq)]
    """
    freqs = 2.0 ** torch.arange(n_freq, dtype=x.dtype, device=x.device)  # [n_freq]
    xf = x[..., None, :] * freqs[:, None]  # [..., n_freq, D]
    enc = torch.cat([torch.sin(xf), torch.cos(xf)], dim=-1).flatten(-2)  # [..., 2 n_freq D]
    return torch.cat([x, enc], dim=-1)


def pe_dim(in_dim: int, n_freq: int) -> int:
    """Output width of :func:`positional_encoding`."""
    return in_dim * (1 + 2 * n_freq)


def _level_resolutions(n_levels: int, base_res: int, max_res: int) -> list[int]:
    """Geometric progression of grid resolutions (Instant-NGP Eq. 2-3)."""
    if n_levels == 1:
        return [base_res]
    growth = math.exp((math.log(max_res) - math.log(base_res)) / (n_levels - 1))
    return [int(math.floor(base_res * growth**level)) for level in range(n_levels)]


_CORNERS = torch.tensor([[i >> 2 & 1, i >> 1 & 1, i & 1] for i in range(8)], dtype=torch.long)  # [8, 3]


class HashGrid(nn.Module):
    """Multi-resolution hash encoding (Instant-NGP), pure PyTorch: gathers 8 corners per level.

    Levels whose dense grid fits into the table are indexed densely (no collisions), the others hashed.
    Input [M, 3] in [-1, 1]^3 -> [M, n_levels * n_features].
    """

    def __init__(self, n_levels: int, n_features: int, log2_table: int, base_res: int, max_res: int):
        super().__init__()
        self.n_levels, self.n_features, self.table_size = n_levels, n_features, 2**log2_table
        res = _level_resolutions(n_levels, base_res, max_res)
        self.register_buffer("res", torch.tensor(res, dtype=torch.long), persistent=False)  # [L]
        dense = [(r + 1) ** 3 <= self.table_size for r in res]
        self.register_buffer("dense", torch.tensor(dense), persistent=False)  # [L]
        self.register_buffer("corners", _CORNERS.clone(), persistent=False)  # [8, 3]
        init = torch.empty(n_levels * self.table_size, n_features).uniform_(-1e-4, 1e-4)
        self.table = nn.Parameter(init)  # [L * T, F], level l at rows [l T, (l+1) T)

    @property
    def out_dim(self) -> int:
        return self.n_levels * self.n_features

    def corner_indices(self, cell: torch.Tensor) -> torch.Tensor:
        """Integer corner coordinates [M, L, 8, 3] -> table rows [M, L, 8]."""
        res1 = (self.res + 1)[None, :, None]  # [1, L, 1]
        dense_idx = cell[..., 0] + res1 * (cell[..., 1] + res1 * cell[..., 2])
        hashed = (cell[..., 0] * _HASH_PRIMES[0]) ^ (cell[..., 1] * _HASH_PRIMES[1]) ^ (cell[..., 2] * _HASH_PRIMES[2])
        idx = torch.where(self.dense[None, :, None], dense_idx, hashed) % self.table_size
        offsets = torch.arange(self.n_levels, device=cell.device) * self.table_size  # [L]
        return idx + offsets[None, :, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = ((x.clamp(-1, 1) + 1) * 0.5)[:, None, :] * self.res[None, :, None].to(x.dtype)  # [M, L, 3]
        base = u.floor().clamp_max(self.res[None, :, None] - 1)  # [M, L, 3]
        frac = u - base  # [M, L, 3]
        cell = base.long()[:, :, None, :] + self.corners  # [M, L, 8, 3]
        w = torch.where(self.corners.bool(), frac[:, :, None, :], 1 - frac[:, :, None, :]).prod(-1)  # [M, L, 8]
        feats = self.table[self.corner_indices(cell)]  # [M, L, 8, F]
        return (feats * w[..., None]).sum(2).flatten(1)  # [M, L * F]


def is_earlier_plane_layout(stored: torch.Tensor, plane: torch.Tensor, version: int = 1) -> bool:
    """Whether a stored plane tensor is in the [3, F, R, R] layout of earlier checkpoints (decided by its shape;
    by the state-dict version where R == F makes both layouts the same shape)."""
    earlier = stored.dim() == 4 and tuple(stored.permute(0, 2, 3, 1).shape) == tuple(plane.shape)
    return earlier and (tuple(stored.shape) != tuple(plane.shape) or version < 2)


def upgrade_plane_optimizer_state(optimizer: torch.optim.Optimizer) -> None:
    """Adam moments of planes from an earlier checkpoint ([3, F, R, R]) into today's [3, R, R, F] layout, told by
    their shape (where R == F both layouts have the same shape and the moments are left as stored: the defaults
    never have R == F)."""
    for param, state in optimizer.state.items():
        for key, value in state.items():
            if isinstance(value, torch.Tensor) and value.dim() == 4 and value.shape != param.shape \
                    and is_earlier_plane_layout(value, param):
                state[key] = value.permute(0, 2, 3, 1).contiguous()


class TriPlanes(nn.Module):
    """Factorised multi-resolution planes (K-Planes, Fridovich-Keil et al. 2023; TensoRF-like).

    For each resolution, the features of the xy, xz and yz planes are bilinearly interpolated and multiplied
    (K-Planes' Hadamard product, Sec. 3.2), then the resolutions are concatenated.
    Input [M, 3] in [-1, 1]^3 -> [M, n_res * n_features]. Each plane is stored [3, R, R, F] (channels last: a
    cell's F features side by side) and sampled by nerfw.fields.fused_planes: a fused C++ op on the CPU,
    grid_sample elsewhere.
    """

    _PLANE_AXES = PLANE_AXES
    _version = 2  # state-dict layout: 1 stored planes [3, F, R, R], 2 stores [3, R, R, F]

    def __init__(self, resolutions: list[int], n_features: int, init_scale: float = 0.1):
        super().__init__()
        self.n_features = n_features
        # K-Planes initialise to ~1 so the Hadamard product starts near 1 (Sec. 3.4): U[1 - s, 1 + s]. Drawn in the
        # [3, F, R, R] order, so a seed gives the same planes as with the earlier layout.
        self.planes = nn.ParameterList(
            nn.Parameter((1.0 + init_scale * (2 * torch.rand(3, n_features, r, r) - 1)).permute(0, 2, 3, 1)
                         .contiguous()) for r in resolutions)

    @property
    def out_dim(self) -> int:
        return len(self.planes) * self.n_features

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, *args, **kwargs):
        for i, plane in enumerate(self.planes):  # checkpoints written before channels-last planes: [3, F, R, R]
            stored = state_dict.get(f"{prefix}planes.{i}")
            if stored is not None and is_earlier_plane_layout(stored, plane, local_metadata.get("version", 1)):
                state_dict[f"{prefix}planes.{i}"] = stored.permute(0, 2, 3, 1).contiguous()
        super()._load_from_state_dict(state_dict, prefix, local_metadata, *args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sample_triplanes(list(self.planes), x)
