"""The grid field's MLPs fused per sample for inference on the CPU (nerfw/fields/field_mlp_kernel.cpp).

After the tri-planes, a static sample goes through the density MLP (32 -> 64 -> 16: sigma and 15 features) and the
colour head (15 -> 64 + the ray's condition -> 64 -> 3). In PyTorch each layer is one matrix product over the
whole chunk (57,344 samples x 64 floats = 15 MB per activation on the fast renderer's 4,096-ray chunks), followed
by passes for the bias, the ReLU and the conditioning over the same memory; on the 2-core CPU of docs/benchmarks.md
the 64x64 product ran at about 45 % of its FMA peak and the passes (bias copies, ReLUs, additions) took half as
long again as the products. The fused op runs each sample through every layer with its activations in registers
(AVX2 accumulators, one per 8 outputs), in blocks of 32 samples so that a layer's weights stay in L1, and writes
only sigma and rgb. It computes the same function (tests/fields/test_fused_mlp.py: within 1e-5 of the modules).

It serves the fast renderer (nerfw/model/fast_render.py): no gradients, the static scene (transient head off),
float32 on the CPU, the field's standard layer structure, the extension built (nerfw/fields/fused_planes.py builds
both ops), and ``NERFW_FUSED_MLP`` not 0. Anything else runs the PyTorch modules.
"""
from __future__ import annotations

import os

import torch
from torch import nn

from nerfw.fields.fused_planes import load_extension


def fused_mlp_enabled() -> bool:
    return os.environ.get("NERFW_FUSED_MLP", "1").strip().lower() not in ("0", "false", "no", "off")


def _linear_chain(modules) -> list[nn.Linear] | None:
    """The Linear layers of [Linear, ReLU, Linear, ReLU, ..., Linear], or None for any other structure."""
    modules = list(modules)
    linears = modules[0::2]
    if not linears or not all(isinstance(m, nn.Linear) for m in linears):
        return None
    if not all(isinstance(m, nn.ReLU) for m in modules[1::2]) or len(modules) != 2 * len(linears) - 1:
        return None
    return linears


def _colour_layers(color) -> list[nn.Linear] | None:
    """first + the Linear layers after it (rest = [ReLU, Linear, ReLU, ..., Linear]) of a ConditionedMLP."""
    rest = list(color.rest)
    if not rest or not isinstance(rest[0], nn.ReLU) or color.first_cond is None or color.first_cond.bias is not None:
        return None
    chain = _linear_chain(rest[1:])
    return None if chain is None or chain[-1].out_features != 3 else [color.first, *chain]


def fused_mlp_applies(field, enc: torch.Tensor, use_transient: bool) -> bool:
    """Whether the fused op can stand in for the field's MLPs on these plane features."""
    if use_transient or enc.device.type != "cpu" or enc.dtype != torch.float32 or torch.is_grad_enabled():
        return False
    if torch.is_autocast_enabled("cpu") or not fused_mlp_enabled():
        return False
    return (_linear_chain(field.density) is not None and _colour_layers(field.heads.color) is not None
            and load_extension() is not None)


def fused_static_field(field, enc: torch.Tensor, dirs: torch.Tensor, image_ids: torch.Tensor,
                       appearance: torch.Tensor | None, samples: int) -> tuple[torch.Tensor, torch.Tensor]:
    """sigma [M] and static rgb [M, 3] of M = R * samples plane features enc [M, E] (ray-major), as
    ``field.heads(field.density(enc) ...)`` computes them with the transient head off."""
    heads = field.heads
    colour = heads.color
    cond = colour.first_cond(heads.colour_condition(dirs, image_ids, appearance)).contiguous()  # [R, C]

    def transposed(layers):
        return ([m.weight.detach().t().contiguous() for m in layers],
                [m.bias.detach() if m.bias is not None else torch.empty(0) for m in layers])

    density_w, density_b = transposed(_linear_chain(field.density))
    colour_w, colour_b = transposed(_colour_layers(colour))
    sigma, rgb = load_extension().field_mlp_forward(enc.contiguous(), cond, int(samples), density_w, density_b,
                                                   colour_w, colour_b, float(field.density_bias))
    return sigma, rgb
