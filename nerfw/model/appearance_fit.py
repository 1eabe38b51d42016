"""Fitting a held-out image's appearance embedding with the model frozen (the NeRF-W protocol's left-half fit).

The appearance embedding enters only the static colour head: with the transient head off, the sample positions
(stratified / proposal / importance sampling from densities), the densities, the compositing weights, the
per-sample features fed to the colour head and the view directions are all independent of it. A ray's colour
is  rest + sum_i w_i sigmoid(colour_mlp(feat_i, [a, PE(d)]))  where rest (the background term) does not
depend on it either. :class:`ColourCache` holds those appearance-independent parts for a set of rays, so the fit
runs the density network and samplers once per ray and then optimises the embedding through the colour head only.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from nerfw.cameras.pixels import pixels_without_ray
from nerfw.fields.encodings import positional_encoding
from nerfw.fields.heads import ConditionedMLP, NeRFWHeads
from nerfw.model.nerfw_model import GridRenderer, MLPRenderer
from nerfw.model.view_rendering import camera_rays_model
from nerfw.rendering.compositing import composite


def colour_heads(model):
    """The NeRF-W heads that colour the final samples (grid: the field's; mlp: the last fine network's), or None
    when the cached fit does not apply (no appearance embedding, or heads of another kind)."""

    renderer = getattr(model, "renderer", None)
    if isinstance(renderer, GridRenderer):
        heads = renderer.field.heads
    elif isinstance(renderer, MLPRenderer):
        heads = renderer.nets[-1].heads
    else:
        return None
    ok = (isinstance(heads, NeRFWHeads) and heads.appearance is not None and isinstance(heads.color, ConditionedMLP)
          and heads.color.first_cond is not None)
    return heads if ok else None


class ColourCache:
    """Appearance-independent parts of rendering ``n`` rays with the transient head off (see above).

    feat [n, S, F] (or the colour head's first layer applied to it, [n, S, hidden], whichever is narrower),
    weights [n, S], dir_enc [n, C] the encoded view directions, rest [n, 3] the colour coming neither from the
    samples nor from the sky (a constant background), and the per-ray outputs that do not depend on the
    appearance (depths, opacity, beta). With a sky head (whose colour depends on the appearance too) also
    sky_dirs [n, 3] and sky_weight [n, 1], the light the samples let through to it.
    """

    def __init__(self, heads, feat, first_applied: bool, weights, dir_enc, rest, outputs: dict, sky=None,
                 sky_dirs=None, sky_weight=None):
        self.heads, self.feat, self.first_applied = heads, feat, first_applied
        self.weights, self.dir_enc, self.rest, self.outputs = weights, dir_enc, rest, outputs
        self.sky, self.sky_dirs, self.sky_weight = sky, sky_dirs, sky_weight  # sky: the field's sky head or None

    def __len__(self) -> int:
        return self.weights.shape[0]

    @classmethod
    @torch.no_grad()
    def build(cls, model, o, d, near, far, image_id: int, chunk: int = 4096) -> "ColourCache":
        """Run the model once over the rays (no gradients, transient head off) and keep what the colour needs."""

        heads = colour_heads(model)
        if heads is None:
            raise ValueError("the cached appearance fit needs a grid or mlp NeRF-W field with appearance embeddings")
        color = heads.color
        first_applied = color.first.out_features < color.first.in_features  # keep the narrower of the two
        field = getattr(getattr(model, "renderer", None), "field", None)
        sky = getattr(field, "sky", None)  # the grid field's sky head, when it has one
        seen: list[tuple] = []
        hook = heads.register_forward_hook(lambda _m, args, out: seen.append((args[0], args[1], out.rgb)))
        parts: dict[str, list[torch.Tensor]] = {}
        was_training = model.training
        model.eval()
        try:
            probe = model.appearance_vector(mean=True)
            for i in range(0, len(o), chunk):
                sl = slice(i, i + chunk)
                seen.clear()
                ids = torch.full((len(o[sl]),), int(image_id), dtype=torch.long, device=o.device)
                out = model(o[sl], d[sl], near[sl], far[sl], ids, appearance=probe, use_transient=False, perturb=False)
                if len(seen) != 1 or out.weights is None or out.weights.shape != seen[0][2].shape[:2]:
                    raise ValueError("the colour heads did not colour the final samples exactly once: "
                                     "the cached fit does not apply to this model")
                feat, dirs, rgb_samples = seen[0]
                rest = out.rgb - composite(out.weights, rgb_samples)
                if sky is not None:  # behind the samples: sky(dirs, appearance) x the light let through
                    sky_weight = 1 - out.opacity[:, None]
                    rest = rest - sky_weight * field.sky_color(dirs, ids, probe)
                    parts.setdefault("sky_dirs", []).append(dirs.float())
                    parts.setdefault("sky_weight", []).append(sky_weight.float())
                for name, value in (("feat", color.first(feat) if first_applied else feat),
                                    ("weights", out.weights), ("dir_enc", positional_encoding(dirs, heads.n_dir_freq)),
                                    ("rest", rest),
                                    ("depth", out.depth), ("depth_median", out.depth_median), ("opacity", out.opacity),
                                    ("beta", out.beta), ("transient_opacity", out.transient_opacity)):
                    parts.setdefault(name, []).append(value.float() if name != "feat" else value)
        finally:
            hook.remove()
            model.train(was_training)
        cat = {name: torch.cat(values) for name, values in parts.items()}
        outputs = {name: cat.pop(name) for name in ("depth", "depth_median", "opacity", "beta", "transient_opacity")}
        return cls(heads, cat["feat"], first_applied, cat["weights"], cat["dir_enc"], cat["rest"], outputs, sky,
                   cat.get("sky_dirs"), cat.get("sky_weight"))

    def rgb(self, appearance: torch.Tensor, rays: torch.Tensor | slice = slice(None)) -> torch.Tensor:
        """Rendered colour [m, 3] of the cached rays ``rays`` (indices into the cache) for an appearance [a_dim]:
        differentiable in the appearance, exactly the model's colour computation on the cached samples."""
        color, feat = self.heads.color, self.feat[rays]
        n = feat.shape[0]
        codes = self.heads.appearance_codes(torch.zeros(n, dtype=torch.long, device=feat.device), appearance)
        cond = torch.cat([codes, self.dir_enc[rays]], dim=-1)  # [n, a_dim + C], as NeRFWHeads.forward
        h = (feat if self.first_applied else color.first(feat)) + color.first_cond(cond)[:, None, :]
        samples = torch.sigmoid(color.rest(h))  # [n, S, 3]
        rgb = self.rest[rays] + torch.einsum("rs,rsc->rc", self.weights[rays], samples)
        if self.sky is not None:
            rgb = rgb + self.sky_weight[rays] * self.sky(self.sky_dirs[rays], codes)
        return rgb

    @torch.no_grad()
    def render(self, appearance: torch.Tensor, chunk: int = 1024) -> dict[str, torch.Tensor]:
        """Every cached ray's per-ray outputs (as RenderOutput names) for an appearance, without gradients."""
        rgb = torch.cat([self.rgb(appearance, slice(i, i + chunk)) for i in range(0, len(self), chunk)])
        return {"rgb": rgb, "rgb_static": rgb, "rgb_transient": torch.zeros_like(rgb), **self.outputs}

    @staticmethod
    def nbytes(model, n_rays: int) -> int | None:
        """Memory of the cache for n_rays rays (float32), or None when the cached fit does not apply."""
        heads = colour_heads(model)
        if heads is None:
            return None
        cfg = model.cfg
        samples = cfg.grid_samples if cfg.field == "grid" else cfg.N_c + cfg.N_f * cfg.n_fine
        width = min(heads.color.first.in_features, heads.color.first.out_features)
        return 4 * n_rays * samples * (width + 1)


# Left-part pixels per Adam step of the appearance fit. 512 rather than 1024: half the fit's cost, with scores
# the same within the spread of the pixel draws (benchmarks/appearance_fit.py; docs/benchmarks.md).
FIT_RAYS = 512


CPU_PIECE = 256  # rays per forward/backward of the cached fit on the CPU (~1.3x faster than 1024 at once)


MAX_CACHE_MB = 4096.0  # "auto" falls back to the reference fit when the left part's cache would exceed this


def resolve_fit_method(model, camera, method: str, max_cache_mb: float = MAX_CACHE_MB) -> str:
    """Resolve "auto": "cached" when the field has the heads the cache needs and the cache of the image's left part
    fits in max_cache_mb, else "full"; "cached" and "full" as given."""
    if method not in ("auto", "cached", "full"):
        raise ValueError(f"fit method must be auto, cached or full, got {method!r}")
    if method != "auto":
        return method
    size = ColourCache.nbytes(model, camera.height * (camera.width - camera.width // 2))
    return "cached" if size is not None and size <= max_cache_mb * 2**20 else "full"


def pixel_columns(camera) -> torch.Tensor:
    """Column index of every pixel of the camera's image, row-major: [W H]."""
    return torch.arange(camera.width * camera.height) % camera.width


def left_part(camera) -> torch.Tensor:
    """Pixel indices (row-major) of the columns [0, W - W//2) on which the appearance is fitted."""
    return torch.nonzero(pixel_columns(camera) < camera.width - camera.width // 2).squeeze(-1)


def scored_part(camera) -> torch.Tensor:
    """Pixel indices (row-major) of the columns [W//2, W) on which the NeRF-W protocol scores."""
    return torch.nonzero(pixel_columns(camera) >= camera.width // 2).squeeze(-1)


def lens_defined(camera) -> torch.Tensor | None:
    """[W H] bool, row-major: the pixels that have a ray through the camera's lens model (see
    nerfw.cameras.pixels.pixels_without_ray), or None when every pixel has one."""
    outside = pixels_without_ray((camera.fx, camera.fy, camera.cx, camera.cy, camera.distortion), camera.width,
                                 camera.height)
    return None if outside is None else torch.from_numpy(~outside)


@dataclass
class FitOptions:
    """How :func:`fit_appearance` optimises an embedding."""

    steps: int = 100
    """Adam steps."""
    lr: float = 0.05
    """Adam's learning rate."""
    rays_per_step: int = FIT_RAYS
    """left-part pixels drawn (with replacement) per step"""
    seed: int = 0
    """seed of the pixel draws"""
    method: Literal["auto", "cached", "full"] = "auto"
    """cached: the left part's geometry rendered once (ColourCache), the embedding optimised through the colour head
    only; full: every drawn ray through the whole model at every step (the reference); auto: cached when the model
    has such heads and the cache fits in max_cache_mb."""
    chunk: int = 4096
    """rays per forward pass while building the cache"""
    max_cache_mb: float = MAX_CACHE_MB
    """the largest ColourCache "auto" builds"""


def fit_appearance(model, camera, normalization, gt: np.ndarray, image_id: int, init: torch.Tensor,
                   options: FitOptions | None = None, cache: ColourCache | None = None) -> torch.Tensor:
    """Optimise an appearance vector on the left part of an image (columns [0, W - W//2)) with the model frozen
    and the transient head off, starting from ``init``. Returns [a_dim]. Both methods (FitOptions.method) draw the
    same pixels and optimise the same function; ``cache`` may pass a ColourCache already built over the
    left-part pixels in left_part() order (then the fit is cached)."""
    opts = options or FitOptions()
    device = next(model.parameters()).device
    left = left_part(camera).to(device)
    method = "cached" if cache is not None else resolve_fit_method(model, camera, opts.method, opts.max_cache_mb)
    if colour_heads(model) is None and model.appearance_embedding is None:
        return init.detach().clone()  # no appearance embedding: nothing to fit
    o, d, near, far = camera_rays_model(camera, normalization, device)
    if method == "cached" and cache is None:
        cache = ColourCache.build(model, o[left], d[left], near[left], far[left], image_id, opts.chunk)
    target = torch.as_tensor(gt.reshape(-1, 3), device=device)[left]
    defined = lens_defined(camera)  # pixels without a ray (outside a folding lens's domain) are never drawn
    drawable = None if defined is None else torch.nonzero(defined.to(device)[left]).squeeze(-1)
    if drawable is not None and not len(drawable):
        return init.detach().clone()  # no pixel of the left part has a ray: nothing to fit on
    n = len(left) if drawable is None else len(drawable)  # pixels a step draws from
    vec = torch.nn.Parameter(init.detach().clone().to(device))
    optimizer = torch.optim.Adam([vec], lr=opts.lr)
    generator = torch.Generator(device="cpu").manual_seed(opts.seed)
    piece = CPU_PIECE if device.type == "cpu" else opts.rays_per_step  # on the CPU, pieces that stay in cache
    frozen = [p for p in model.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    was_training = model.training
    model.eval()
    try:
        for _ in range(opts.steps):
            pick = torch.randint(n, (min(opts.rays_per_step, n),), generator=generator).to(device)
            if drawable is not None:
                pick = drawable[pick]
            optimizer.zero_grad()
            if method == "cached":  # the mean squared error over the pick, summed in pieces (same gradient)
                for i in range(0, len(pick), piece):
                    part = pick[i:i + piece]
                    (torch.sum((cache.rgb(vec, part) - target[part]) ** 2) / (3 * len(pick))).backward()
            else:
                rays = left[pick]
                ids = torch.full((len(pick),), image_id, dtype=torch.long, device=device)
                rgb = model(o[rays], d[rays], near[rays], far[rays], ids, appearance=vec, use_transient=False,
                            perturb=False).rgb
                torch.mean((rgb - target[pick]) ** 2).backward()
            optimizer.step()
    finally:
        for p in frozen:
            p.requires_grad_(True)
        model.train(was_training)
    return vec.detach()
