"""NeRFW-pytorch's CustomNeRFW (NeRFW-pytorch's Model): an 8 x 256 ReLU MLP on positionally encoded positions."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nerfw.fields.config import ModelConfig
from nerfw.fields.encodings import pe_dim, positional_encoding
from nerfw.fields.heads import FieldOutput, NeRFWHeads


class NeRFWMLP(nn.Module):
    """Trunk ``layers`` x ``W`` with [PE(x), h] fed to layer ``skip_layer``; softplus sigma; a linear W-wide
    feature; NeRF-W heads W // 2 wide (colour: 1 hidden layer, transient: ``transient_layers``)."""

    def __init__(self, cfg: ModelConfig, n_images: int, encode_a: bool, encode_t: bool):
        super().__init__()
        self.n_xyz_freq, self.skip_layer = cfg.N_xyz_freq, cfg.skip_layer
        in_dim = pe_dim(3, cfg.N_xyz_freq)
        widths = [in_dim] + [cfg.W] * cfg.layers
        self.trunk = nn.ModuleList(
            nn.Linear(widths[i] + (in_dim if i == cfg.skip_layer and i > 0 else 0), cfg.W) for i in range(cfg.layers))
        self.sigma = nn.Linear(cfg.W, 1)
        self.feature = nn.Linear(cfg.W, cfg.W)
        self.heads = NeRFWHeads(n_images, cfg.W, cfg.W // 2, 1, cfg.transient_layers, cfg.N_dir_freq,
                                cfg.a_dim, cfg.t_dim, encode_a, encode_t, cfg.a_init_std)

    def trunk_features(self, x: torch.Tensor) -> torch.Tensor:
        """Trunk output [..., W] for points [..., 3]."""
        enc = positional_encoding(x, self.n_xyz_freq)  # [..., 93]
        h = enc
        for i, layer in enumerate(self.trunk):
            if i == self.skip_layer and i > 0:
                h = torch.cat([enc, h], dim=-1)
            h = F.relu(layer(h))
        return h

    def static_density(self, x: torch.Tensor) -> torch.Tensor:
        """Static sigma at model-frame points [M, 3] -> [M] (view- and image-independent)."""
        return F.softplus(self.sigma(self.trunk_features(x))[..., 0])

    def forward(self, x: torch.Tensor, dirs: torch.Tensor, image_ids: torch.Tensor,
                appearance: torch.Tensor | None = None, use_transient: bool = True) -> FieldOutput:
        """x [R, S, 3] model-frame points, dirs [R, 3] unit, image_ids [R]."""
        h = self.trunk_features(x)  # [R, S, W]
        sigma = F.softplus(self.sigma(h)[..., 0])  # [R, S]
        return self.heads(self.feature(h), dirs, image_ids, appearance, use_transient, sigma)
