"""Tri-plane sampling: a fused C++ op for the CPU and its pure-PyTorch reference twin.

`sample_triplanes(planes, x)` returns what TriPlanes computes (nerfw/fields/encodings.py): per resolution, the
bilinear features of the xy, xz and yz planes multiplied together (K-Planes Sec. 3.2), resolutions concatenated.
Planes are stored [3, R, R, F] (channels last).

* **Fused (CPU)**: nerfw/fields/triplane_kernel.cpp, built with torch's JIT extension builder on first use
  (one extension with the fast renderer's fused MLPs, field_mlp_kernel.cpp: nerfw/fields/fused_mlp.py)
  (about 40 s; `make install` builds it ahead) and cached by torch (``TORCH_EXTENSIONS_DIR``, default
  ``~/.cache/torch_extensions``). A tap reads or writes F contiguous floats, and the backward scatters each plane in
  its own thread task. Measured on the 2-core AMD EPYC of docs/benchmarks.md: see docs/model.md "Fused tri-plane
  sampling".
* **Reference**: `F.grid_sample` per resolution, used on GPUs, where the points need gradients, where the op cannot
  be built (no C++ compiler: one log line says so) and with ``NERFW_FUSED_PLANES=0``. Tests compare the two
  (outputs, gradients, gradcheck in float64).
"""
from __future__ import annotations

import logging
import os
import sys
import threading
from pathlib import Path

import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

# The CPU ops: tri-plane sampling, and the field's MLPs for inference (nerfw/fields/fused_mlp.py).
SOURCES = [Path(__file__).with_name("triplane_kernel.cpp"), Path(__file__).with_name("field_mlp_kernel.cpp")]
EXTENSION_NAME = "nerfw_triplanes"
PLANE_AXES = ((0, 1), (0, 2), (1, 2))
_lock = threading.Lock()
_state: dict = {}  # "ext": the loaded module, or "error": why it is not available


def fused_enabled() -> bool:
    return os.environ.get("NERFW_FUSED_PLANES", "1").strip().lower() not in ("0", "false", "no", "off")


def _already_built(cpp_extension) -> bool:
    try:
        return any(Path(cpp_extension._get_build_directory(EXTENSION_NAME, False)).glob(f"{EXTENSION_NAME}*.so"))
    except Exception:  # a private helper of torch: if it moves, only the note is lost
        return True


def load_extension(verbose: bool = False):
    """The compiled op (built on first use), or None with the reason logged once."""
    if "ext" in _state or "error" in _state:  # decided already: no lock on the per-call path
        return _state.get("ext")
    with _lock:
        if "ext" in _state or "error" in _state:
            return _state.get("ext")
        try:
            from torch.utils import cpp_extension

            # pip's ninja lives beside the interpreter; torch looks for it on PATH.
            bin_dir = str(Path(sys.executable).parent)
            if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
                os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
            if not _already_built(cpp_extension):
                log.warning("note: building the fused CPU ops once (about a minute; make install does it ahead)")
            _state["ext"] = cpp_extension.load(
                EXTENSION_NAME, [str(p) for p in SOURCES], extra_cflags=["-O3", "-march=native", "-fopenmp"],
                extra_ldflags=["-fopenmp"], verbose=verbose)
        except Exception as exc:  # no compiler, no ninja, no headers: the reference path still works
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            _state["error"] = reason
            log.warning("note: fused tri-plane sampling unavailable (%s); using grid_sample", reason[:200])
        return _state.get("ext")


def fused_available() -> bool:
    return fused_enabled() and load_extension() is not None


class _FusedTriPlanes(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, *planes: torch.Tensor) -> torch.Tensor:
        ext = _state["ext"]
        keep = any(ctx.needs_input_grad[1:])
        out, feats = ext.forward(list(planes), x, keep)
        if keep:
            ctx.save_for_backward(x, feats, *planes)
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        x, feats, *planes = ctx.saved_tensors
        grads = _state["ext"].backward(planes, x, feats, grad_out.contiguous())
        return (None, *grads)


def reference_triplanes(planes, x: torch.Tensor) -> torch.Tensor:
    """The pure-PyTorch twin: grid_sample per resolution (any device, gradients to the points too)."""
    coords = torch.stack([x[:, 0:2], x[:, 0::2], x[:, 1:3]])[:, :, None, :]  # [3, M, 1, 2]
    outs = []
    for plane in planes:  # [3, R, R, F] -> the [3, F, R, R] view grid_sample takes
        f = F.grid_sample(plane.permute(0, 3, 1, 2), coords, mode="bilinear", padding_mode="border",
                          align_corners=True)
        outs.append(f[..., 0].prod(0))  # [3, F, M] -> [F, M]
    return torch.cat(outs, dim=0).t()  # [M, L F]


def can_fuse(planes, x: torch.Tensor) -> bool:
    return (x.device.type == "cpu" and not x.requires_grad and x.dtype in (torch.float32, torch.float64)
            and all(p.dtype == x.dtype and p.is_contiguous() for p in planes) and fused_available())


def sample_triplanes(planes, x: torch.Tensor) -> torch.Tensor:
    """[M, 3] points in [-1, 1]^3 -> [M, L F] features; the fused op where it applies, else the reference."""
    if can_fuse(planes, x):
        return _FusedTriPlanes.apply(x.contiguous(), *planes)
    return reference_triplanes(planes, x)


def main() -> int:
    """`python -m nerfw.fields.fused_planes`: build the op now (make install does) and say whether it works."""
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    if load_extension() is None:
        print(f"fused CPU ops: not built ({_state.get('error')}); nerfw uses grid_sample and torch's MLPs")
        return 0  # not an error: the reference path works everywhere
    print(f"fused CPU ops (tri-plane sampling, inference MLPs): built ({_state['ext'].__file__})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
