"""Scene contraction for unbounded scenes (mip-NeRF 360, Barron et al. 2022, Eq. 10)."""
from __future__ import annotations

import torch


def contract(x: torch.Tensor) -> torch.Tensor:
    """contract(x) = x if |x| <= 1, else (2 - 1/|x|) x/|x|: the identity inside the unit ball, everything
    else (sky, distant background) squeezed into the ball of radius 2. [..., 3] -> [..., 3], |out| < 2."""
    norm = x.norm(dim=-1, keepdim=True).clamp_min(1.0)  # [..., 1]; 1 inside the ball (no division by 0)
    return torch.where(norm > 1, (2 - 1 / norm) * (x / norm), x)
