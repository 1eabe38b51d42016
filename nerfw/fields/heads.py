"""The NeRF-W heads shared by both fields: appearance-conditioned colour and the transient head.

NeRFW-pytorch's heads concatenate per-ray inputs (embeddings, encoded direction) with per-sample features before a
Linear layer. ``Linear([f, c]) = W_f f + W_c c``, so :class:`ConditionedMLP` computes the per-ray half once per
ray instead of once per sample: the same function (tested against the concatenating reference), fewer FLOPs.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from nerfw.fields.encodings import pe_dim, positional_encoding


class ConditionedMLP(nn.Module):
    """MLP on [feature (per sample), cond (per ray)] with ReLU hidden layers and a linear output."""

    def __init__(self, feat_dim: int, cond_dim: int, hidden: int, n_hidden: int, out_dim: int):
        super().__init__()
        self.first = nn.Linear(feat_dim, hidden)
        self.first_cond = nn.Linear(cond_dim, hidden, bias=False) if cond_dim > 0 else None
        layers: list[nn.Module] = [nn.ReLU(inplace=True)]  # in place: the sums are not needed for backward
        for _ in range(n_hidden - 1):
            layers += [nn.Linear(hidden, hidden), nn.ReLU(inplace=True)]
        self.rest = nn.Sequential(*layers, nn.Linear(hidden, out_dim))

    def forward(self, feat: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        """feat [R, S, F], cond [R, C] or None -> [R, S, out_dim]."""
        h = self.first(feat)  # [R, S, hidden]
        if self.first_cond is not None:
            h = h.add_(self.first_cond(cond)[:, None, :])  # in place: the Linear's backward does not need h
        return self.rest(h)

    def reference(self, feat: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        """NeRFW-pytorch's form: concatenate per sample, one Linear (for tests)."""
        if self.first_cond is None:
            return self.rest(self.first(feat))
        weight = torch.cat([self.first.weight, self.first_cond.weight], dim=1)
        x = torch.cat([feat, cond[:, None, :].expand(-1, feat.shape[1], -1)], dim=-1)
        return self.rest(F.linear(x, weight, self.first.bias))


@dataclass
class FieldOutput:
    """What a NeRF-W field returns for samples [R, S]."""

    sigma: torch.Tensor  # [R, S] static density
    rgb: torch.Tensor  # [R, S, 3] static colour
    sigma_t: torch.Tensor | None = None  # [R, S] transient density
    rgb_t: torch.Tensor | None = None  # [R, S, 3] transient colour
    beta: torch.Tensor | None = None  # [R, S] transient uncertainty


class NeRFWHeads(nn.Module):
    """Appearance-conditioned static colour (NeRF-W Eq. 7 / Sec. 4.1) and the transient head (Sec. 4.2):
    sigma_t (softplus), c_t (sigmoid), beta (softplus), without view dependence as in the paper and NeRFW-pytorch.
    Owns the per-image embedding tables (sized n_images: train and test images)."""

    def __init__(self, n_images: int, feat_dim: int, hidden: int, color_layers: int, transient_layers: int,
                 n_dir_freq: int, a_dim: int, t_dim: int, encode_a: bool, encode_t: bool, a_init_std: float = 1.0):
        super().__init__()
        self.n_dir_freq = n_dir_freq
        self.a_dim = a_dim if encode_a else 0
        self.appearance = nn.Embedding(n_images, a_dim) if encode_a else None
        if self.appearance is not None:  # N(0, a_init_std^2), scaled from nn.Embedding's N(0, 1) (NeRFW-pytorch's)
            with torch.no_grad():
                self.appearance.weight.mul_(a_init_std)
        self.color = ConditionedMLP(feat_dim, self.a_dim + pe_dim(3, n_dir_freq), hidden, color_layers, 3)
        self.transient_embedding = nn.Embedding(n_images, t_dim) if encode_t else None
        self.transient = ConditionedMLP(feat_dim, t_dim, hidden, transient_layers, 5) if encode_t else None
        # Multiplies the transient density; the trainer sets 0 during its static warm-up (see NeRFW.set_transient_gate).
        self.transient_gate = 1.0

    def appearance_codes(self, image_ids: torch.Tensor, appearance: torch.Tensor | None) -> torch.Tensor | None:
        """[R] ids (+ optional override [a_dim] or [R, a_dim]) -> [R, a_dim], or None without appearance."""
        if self.appearance is None:
            return None
        if appearance is None:
            return self.appearance(image_ids)
        return appearance.to(self.appearance.weight.dtype).expand(image_ids.shape[0], self.a_dim)

    def colour_condition(self, dirs: torch.Tensor, image_ids: torch.Tensor,
                         appearance: torch.Tensor | None) -> torch.Tensor:
        """The colour head's per-ray input [R, a_dim + C]: the appearance code and the encoded direction."""
        cond = positional_encoding(dirs, self.n_dir_freq)  # [R, 27]
        codes = self.appearance_codes(image_ids, appearance)
        return cond if codes is None else torch.cat([codes, cond], dim=-1)

    def forward(self, feat: torch.Tensor, dirs: torch.Tensor, image_ids: torch.Tensor,
                appearance: torch.Tensor | None, use_transient: bool, sigma: torch.Tensor) -> FieldOutput:
        """feat [R, S, F] per sample; dirs [R, 3] unit; image_ids [R]; sigma [R, S] (computed by the field)."""
        cond = self.colour_condition(dirs, image_ids, appearance)
        out = FieldOutput(sigma=sigma, rgb=torch.sigmoid(self.color(feat, cond)))
        if use_transient and self.transient is not None:
            raw = self.transient(feat, self.transient_embedding(image_ids))  # [R, S, 5]
            out.sigma_t = F.softplus(raw[..., 0]) * self.transient_gate
            out.rgb_t = torch.sigmoid(raw[..., 1:4])
            out.beta = F.softplus(raw[..., 4])
        return out


class SkyHead(nn.Module):
    """Colour at infinity [R, 3] from the unit view direction (positional encoding, ``n_dir_freq`` frequencies) and
    the image's appearance code: the sky and whatever lies too far for parallax, lit as that photo is. It has no
    position input, so it cannot stand in for anything at a finite distance (that would not move with the camera)."""

    def __init__(self, n_dir_freq: int, a_dim: int, hidden: int, n_hidden: int = 2):
        super().__init__()
        self.n_dir_freq = n_dir_freq
        layers: list[nn.Module] = [nn.Linear(pe_dim(3, n_dir_freq) + a_dim, hidden), nn.ReLU(inplace=True)]
        for _ in range(n_hidden - 1):
            layers += [nn.Linear(hidden, hidden), nn.ReLU(inplace=True)]
        self.mlp = nn.Sequential(*layers, nn.Linear(hidden, 3))

    def forward(self, dirs: torch.Tensor, codes: torch.Tensor | None) -> torch.Tensor:
        x = positional_encoding(dirs, self.n_dir_freq)
        if codes is not None:
            x = torch.cat([codes.to(x.dtype), x], dim=-1)
        return torch.sigmoid(self.mlp(x))
