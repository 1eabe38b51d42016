"""Model options. Field names of NeRFW-pytorch's flags are kept verbatim (NeRFW-pytorch's Options).

Only bool / int / float / str fields: nerfw.training.config builds the command-line parser from them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass
class ModelConfig:
    """NeRF-W model options (both fields), loss weights and sampler constants. Each field's docstring is its
    `nerfw train --help` text (the default is appended); "NeRFW-pytorch flag" marks NeRFW-pytorch's options."""

    field: Literal["grid", "mlp"] = "grid"
    """Scene representation: "grid" (tri-plane features + small MLPs + proposal sampler; fast on a CPU, the
    default) or "mlp" (NeRFW-pytorch's CustomNeRFW: 8x256 MLP, coarse + fine; the paper's model, about 50x slower)."""

    # --- mlp field (NeRFW-pytorch's network)
    layers: int = 8
    """NeRFW-pytorch flag. mlp: trunk depth in layers (NeRFW-pytorch: 8). Fewer layers train faster with less detail."""
    W: int = 256
    """NeRFW-pytorch flag. mlp: trunk width in units (NeRFW-pytorch: 256); the colour and transient heads are W // 2 wide as
    NeRFW-pytorch's. Halve it for quick CPU experiments."""
    skip_layer: int = 4
    """mlp: trunk layer index that takes [PE(x), h] again (NeRFW-pytorch and NeRF: 4); keep it below --layers."""
    transient_layers: int = 4
    """mlp: hidden layers of the transient head (NeRFW-pytorch: 4)."""
    N_xyz_freq: int = 15
    """NeRFW-pytorch flag. mlp: positional-encoding frequencies of positions (NeRFW-pytorch: 15; the grid field does not use it).
    Fewer give smoother, blurrier scenes."""
    N_dir_freq: int = 4
    """NeRFW-pytorch flag. Positional-encoding frequencies of view directions (NeRFW-pytorch: 4), both fields; 0-4 is typical."""
    N_c: int = 64
    """NeRFW-pytorch flag. mlp: coarse samples per ray (NeRFW-pytorch: 64); more for deep scenes, at a linear cost."""
    N_f: int = 128
    """NeRFW-pytorch flag. mlp: fine samples per ray per fine network; a fine network evaluates all earlier samples too
    (NeRFW-pytorch: 128)."""
    n_fine: int = 1
    """mlp: number of fine networks, each importance-sampling from the previous one (NeRFW-pytorch: 1)."""
    use_disp: bool = False
    """NeRFW-pytorch flag. mlp: coarse samples linear in disparity (1/depth) instead of depth (NeRFW-pytorch: False); True for
    scenes reaching far away."""
    mlp_last_delta: float = 1e10
    """mlp: length in model units of the last sample interval, so the last sample absorbs what lies behind it
    (NeRF 1e10; NeRFW-pytorch 233, nerf_pl 100)."""
    coarse_appearance: bool = True
    """mlp: the coarse network has its own appearance embedding (NeRFW-pytorch's updated system: True)."""

    # --- both fields
    perturb: float = 1.0
    """NeRFW-pytorch flag. Jitter of the stratified samples in training, as a fraction of a bin (NeRFW-pytorch: 1.0; 0: none); never
    at test time."""
    encode_a: bool = True
    """NeRFW-pytorch flag. Per-image appearance embeddings (NeRF-W Sec. 4.1): lighting / exposure per photo. False for
    scenes shot under constant light."""
    encode_t: bool = True
    """NeRFW-pytorch flag. Transient head with per-image transient embeddings and uncertainty beta (NeRF-W Sec. 4.2):
    people, cars. False when nothing moves between photos."""
    a_dim: int = 48
    """NeRFW-pytorch flag. Appearance embedding size, numbers per image (NeRFW-pytorch: 48)."""
    a_init_std: float = 1.0
    """Standard deviation of the appearance embeddings' normal initialisation (NeRFW-pytorch: 1, nn.Embedding's).
    0.01 starts every photo at the same appearance, so the codes learn a shared lighting space: measured better on a
    scene whose sun direction changes from photo to photo, worse on a real capture under steady light
    (docs/model.md)."""
    t_dim: int = 16
    """NeRFW-pytorch flag. Transient embedding size, numbers per image (NeRFW-pytorch: 16)."""
    beta_min: float = 0.1
    """NeRFW-pytorch flag. Minimum uncertainty beta_min added to the rendered beta, in colour units (NeRF-W Eq. 11;
    NeRFW-pytorch's README 0.1, its code 0.03). Larger values trust every pixel more evenly."""
    lambda_u: float = 0.01
    """NeRFW-pytorch flag. Weight of the transient-density regulariser (NeRF-W Eq. 13; NeRFW-pytorch's README 0.01,
    its code 0.1). Raise it if the transient head explains away static content."""
    transient_warmup: int = -1
    """Steps at the start of training with the transient density switched off (the static field first learns what
    every image shares; 0: the paper's schedule, transient head on from the first step). -1: automatic, 4 % of an
    epoch (rays per training pixel, so it scales with the collection's size and the batch; see docs/model.md)."""
    white_back: bool = False
    """Composite onto a white background instead of black (synthetic object scenes on white)."""
    depth_loss_weight: float = 0.0
    """Weight of the depth loss where a ground-truth depth map is given (7-Scenes); 0 disables it. Try 0.1 for
    RGB-D data."""
    depth_loss_type: Literal["l1", "l2"] = "l1"
    """Depth loss on z-depth in model units: "l1" (robust to wrong depth pixels) or "l2"."""
    coarse_loss_weight: float = 1.0
    """mlp: weight of the coarse (and intermediate fine) networks' colour MSE (NeRF-W Eq. 14: 1)."""

    # --- grid field
    grid_levels: int = 4
    """grid: number of plane resolutions, coarse to fine (K-Planes' multiscale planes)."""
    grid_min_res: int = 64
    """grid: coarsest plane resolution in cells per side over the contracted [-2, 2] cube."""
    grid_max_res: int = 512
    """grid: finest plane resolution in cells per side; sets the finest detail and most of the memory. Lower it
    (256) for small images, raise it for large scenes."""
    grid_features: int = 8
    """grid: features per plane and resolution (the field's feature width is grid_levels * grid_features)."""
    grid_hidden: int = 64
    """grid: width in units of the density MLP and of the colour / transient heads."""
    grid_geo_features: int = 15
    """grid: features passed from the density MLP to the colour and transient heads (geometry features, as in
    Instant-NGP / nerfacto)."""
    grid_color_layers: int = 2
    """grid: hidden layers of the colour head."""
    grid_transient_layers: int = 2
    """grid: hidden layers of the transient head."""
    grid_samples: int = 24
    """grid: samples per ray evaluated by the field (drawn from the proposal weights); the main cost per ray. 24
    rather than nerfacto's 48: half the field's work per step, so a time budget buys about 1.6x the steps, and
    every scene measured scored as well or better in 5 minutes (docs/model.md, "Field samples per ray")."""
    density_bias: float = -1.0
    """grid: added to the raw density before softplus, so that space starts nearly empty (negative: emptier).
    Rarely changed."""
    proposal_samples: int = 64
    """grid: samples per ray of the proposal network (uniform in the spacing coordinate)."""
    proposal_levels: int = 2
    """grid: plane resolutions of the proposal network."""
    proposal_min_res: int = 32
    """grid: coarsest plane resolution of the proposal network, cells per side."""
    proposal_max_res: int = 128
    """grid: finest plane resolution of the proposal network, cells per side."""
    proposal_features: int = 4
    """grid: features per plane and resolution of the proposal network."""
    proposal_hidden: int = 16
    """grid: width in units of the proposal density MLP."""
    plane_tv_weight: float = 0.0
    """grid: weight of the total-variation loss on the field's and the proposal network's planes (K-Planes
    Sec. 3.2; smooths the planes where few rays constrain them, which helps views away from the training path)."""
    distortion_loss_weight: float = 0.01
    """grid: weight of the mip-NeRF 360 distortion loss (Eq. 15 there), which pulls each ray's weights into one
    compact interval and so removes floaters in front of the cameras (mip-NeRF 360: 0.01, nerfacto: 0.002; 0: off)."""
    proposal_loss_weight: float = 1.0
    """grid: weight of the mip-NeRF 360 proposal (interlevel) loss, Eq. 13 there (nerfacto: 1)."""
    unbounded: bool = True
    """grid: unbounded scene (outdoor): samples spaced linearly then in disparity out to far_background and
    points contracted (mip-NeRF 360 Eq. 10). False (bounded indoor scenes such as 7-Scenes): samples linear in
    depth between the given near and far."""
    sky: bool = False
    """grid, unbounded: a sky head, a small MLP of the view direction and the image's appearance embedding giving
    the colour at infinity behind everything the field renders (the light its samples let through). Off by default:
    measured, it did not stop the field from painting per-photo clouds as floaters, and cost the fox 0.4 dB
    (docs/model.md)."""
    far_background: float = 1000.0
    """grid, unbounded: rays are sampled out to max(far, far_background) model units, so the sky and distant
    background have somewhere to go."""
