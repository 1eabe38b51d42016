"""Model options. Field names of the seed's flags are kept verbatim (seed-system.md "Options").

Only bool / int / float / str fields: nerfw.training.config builds the command-line parser from them.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ModelConfig:
    """NeRF-W model options (both fields), loss weights and sampler constants."""

    field: str = "grid"
    """Scene representation: "grid" (tri-plane features + small MLPs + proposal sampler; fast on a CPU)
    or "mlp" (the seed's CustomNeRFW: 8x256 MLP, coarse + fine)."""

    # --- mlp field (the seed's network)
    layers: int = 8
    """mlp: trunk depth (seed 8)."""
    W: int = 256
    """mlp: trunk width (seed 256); the colour and transient heads are W // 2 wide as the seed."""
    skip_layer: int = 4
    """mlp: trunk layer index that takes [PE(x), h] (seed and NeRF: 4)."""
    transient_layers: int = 4
    """mlp: hidden layers of the transient head (seed 4)."""
    N_xyz_freq: int = 15
    """mlp: positional-encoding frequencies of positions (seed 15; the grid field does not use it)."""
    N_dir_freq: int = 4
    """Positional-encoding frequencies of view directions (seed 4), both fields."""
    N_c: int = 64
    """mlp: coarse samples per ray (seed 64)."""
    N_f: int = 128
    """mlp: fine samples per ray per fine network; a fine network evaluates all earlier samples too (seed 128)."""
    n_fine: int = 1
    """mlp: number of fine networks, each importance-sampling from the previous one (seed 1)."""
    use_disp: bool = False
    """mlp: coarse samples linear in disparity instead of depth (seed False)."""
    mlp_last_delta: float = 1e10
    """mlp: metric length of the last interval, so the last sample absorbs what lies behind it (NeRF 1e10;
    the seed 233, nerf_pl 100)."""
    coarse_appearance: bool = True
    """mlp: the coarse network has its own appearance embedding (the seed's updated system: True)."""

    # --- both fields
    perturb: float = 1.0
    """Jitter of the stratified samples in training, as a fraction of a bin (seed 1.0); none at test time."""
    encode_a: bool = True
    """Per-image appearance embeddings (NeRF-W Sec. 4.1)."""
    encode_t: bool = True
    """Transient head with per-image transient embeddings (NeRF-W Sec. 4.2)."""
    a_dim: int = 48
    """Appearance embedding size (seed 48)."""
    t_dim: int = 16
    """Transient embedding size (seed 16)."""
    beta_min: float = 0.1
    """Minimum uncertainty beta_min added to the rendered beta (NeRF-W Eq. 11; seed README 0.1, code 0.03)."""
    lambda_u: float = 0.01
    """Weight of the transient-density regulariser (NeRF-W Eq. 13; seed README 0.01, code 0.1)."""
    transient_warmup: int = 500
    """Steps at the start of training with the transient density switched off (the static field first learns what
    every image shares; 0: the paper's schedule, transient head on from the first step)."""
    white_back: bool = False
    """Composite onto a white background (synthetic scenes)."""
    depth_loss_weight: float = 0.0
    """Weight of the depth loss where a ground-truth depth is given (7-Scenes); 0 disables it."""
    depth_loss_type: str = "l1"
    """Depth loss on z-depth in model units: "l1" or "l2"."""
    coarse_loss_weight: float = 1.0
    """mlp: weight of the coarse (and intermediate fine) networks' colour MSE (NeRF-W Eq. 14: 1)."""

    # --- grid field
    grid_levels: int = 4
    """grid: number of plane resolutions (K-Planes' multiscale planes)."""
    grid_min_res: int = 64
    """grid: coarsest plane resolution (cells per side over the contracted [-2, 2] cube)."""
    grid_max_res: int = 512
    """grid: finest plane resolution."""
    grid_features: int = 8
    """grid: features per plane and resolution (output width grid_levels * grid_features)."""
    grid_hidden: int = 64
    """grid: width of the density MLP and of the colour / transient heads."""
    grid_geo_features: int = 15
    """grid: features passed from the density MLP to the heads."""
    grid_color_layers: int = 2
    """grid: hidden layers of the colour head."""
    grid_transient_layers: int = 2
    """grid: hidden layers of the transient head."""
    grid_samples: int = 48
    """grid: samples per ray evaluated by the field (drawn from the proposal weights)."""
    density_bias: float = -1.0
    """grid: added to the raw density before softplus, so that space starts nearly empty."""
    proposal_samples: int = 64
    """grid: samples per ray of the proposal network (uniform in the spacing coordinate)."""
    proposal_levels: int = 2
    """grid: plane resolutions of the proposal network."""
    proposal_min_res: int = 32
    """grid: coarsest plane resolution of the proposal network."""
    proposal_max_res: int = 128
    """grid: finest plane resolution of the proposal network."""
    proposal_features: int = 4
    """grid: features per plane and resolution of the proposal network."""
    proposal_hidden: int = 16
    """grid: width of the proposal density MLP."""
    plane_tv_weight: float = 0.0
    """grid: weight of the total-variation loss on the field's and the proposal network's planes (K-Planes
    Sec. 3.2; smooths the planes where few rays constrain them, which helps views away from the training path)."""
    proposal_loss_weight: float = 1.0
    """grid: weight of the mip-NeRF 360 proposal (interlevel) loss, Eq. 13 there (nerfacto: 1)."""
    unbounded: bool = True
    """grid: unbounded scene (outdoor): samples spaced linearly then in disparity out to far_background and
    points contracted (mip-NeRF 360 Eq. 10). False (bounded indoor scenes such as 7-Scenes): samples linear in
    depth between the given near and far."""
    far_background: float = 1000.0
    """grid, unbounded: rays are sampled out to max(far, far_background) model units (sky / background)."""
