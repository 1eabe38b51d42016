"""CUDA paths against the CPU: float32 agreement, bfloat16 mixed precision, training on a GPU and loading on a
CPU. Skipped on machines without a CUDA GPU (CI); run on a GPU with `pytest tests/test_cuda.py`."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import train_argv, trained_like_model
from nerfw.model.fast_render import FastGridRenderer, FastRenderSettings
from nerfw.evaluation import metrics

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _rays(n: int, device, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    o = 0.2 * torch.randn(n, 3, generator=g)
    d = torch.randn(n, 3, generator=g)
    d[:, 2] = 1.0  # camera-z = 1 convention
    rays = (o, d, torch.full((n,), 0.05), torch.full((n,), 2.0), torch.full((n,), 1, dtype=torch.long))
    return tuple(t.to(device) for t in rays)


@pytest.fixture(autouse=True)
def _exact_float32_matmuls():
    """TF32 would change float32 results at the 1e-3 level; these tests compare float32 to float32."""
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32 = previous


@pytest.mark.parametrize("field", ["grid", "mlp"])
def test_float32_render_on_cuda_equals_cpu(field):
    model = trained_like_model(field)
    with torch.no_grad():
        cpu = model(*_rays(512, "cpu"), perturb=False)
        gpu = model.to("cuda")(*_rays(512, "cuda"), perturb=False)
    # The mlp's positional encoding takes sin(2^14 x): float32 rounding of x differs between the devices' kernels
    # and is multiplied by 2^14, so its tolerance is wider.
    tol = 2e-4 if field == "grid" else 2e-3
    for name in ("rgb", "depth", "opacity", "beta"):
        torch.testing.assert_close(getattr(gpu, name).cpu(), getattr(cpu, name), atol=tol, rtol=tol)


def test_bfloat16_training_step_close_to_float32():
    """The trainer's mixed precision (bfloat16 autocast on CUDA): finite loss and float32 gradients close to
    the float32 step's (same weights, same batch)."""
    from nerfw.training.trainer import TrainStep

    model = trained_like_model("grid").train().to("cuda")
    step = TrainStep(model)
    o, d, near, far, ids = _rays(2048, "cuda")
    rgb = torch.rand(2048, 3, generator=torch.Generator().manual_seed(1)).to("cuda")
    losses, grads = {}, {}
    for amp in (False, True):
        torch.manual_seed(3)  # the same stratified jitter in both steps
        model.zero_grad(set_to_none=True)
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=amp):
            terms = step(o, d, near, far, ids, rgb)
        terms["total"].float().backward()
        losses[amp] = float(terms["mse"])
        grads[amp] = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
        assert all(p.grad.dtype == torch.float32 for p in model.parameters() if p.grad is not None)
    assert np.isfinite(losses[True]) and bool(torch.isfinite(grads[True]).all())
    assert losses[True] == pytest.approx(losses[False], rel=0.05)
    cosine = torch.nn.functional.cosine_similarity(grads[True], grads[False], dim=0)
    assert float(cosine) > 0.95, float(cosine)


def test_fast_renderer_on_cuda_matches_cpu_and_bfloat16_is_close():
    model = trained_like_model("grid")
    with torch.no_grad():
        on_cpu = FastGridRenderer(model.renderer, FastRenderSettings(bf16=False))(*_rays(4096, "cpu"))
        model.to("cuda")
        rays = _rays(4096, "cuda")
        fast32 = FastGridRenderer(model.renderer, FastRenderSettings(bf16=False))(*rays)
        fast = FastGridRenderer(model.renderer, FastRenderSettings(bf16=None))(*rays)  # None: bf16 on this GPU
    assert fast.rgb.dtype == torch.float32 and bool(torch.isfinite(fast.rgb).all())
    # the same bake and samples on both devices (float32)
    assert metrics.psnr(fast32.rgb.cpu().numpy(), on_cpu.rgb.numpy()) > 50.0
    # bfloat16 MLPs against float32 MLPs, same samples: the rounding alone
    assert metrics.psnr(fast.rgb.cpu().numpy(), fast32.rgb.cpu().numpy()) > 40.0


def test_train_on_cuda_then_evaluate_on_cpu_and_cuda(tiny_cambridge, tmp_path):
    """A short GPU run (bfloat16 autocast) learns; its checkpoint loads on the CPU and renders the same image."""
    from nerfw.evaluation.evaluate import evaluate
    from nerfw.model.appearance_fit import FitOptions
    from nerfw.model.view_rendering import render_camera
    from nerfw.training.run_io import load_run
    from nerfw.training.config import parse_config
    from nerfw.training.trainer import train

    run_dir = train(parse_config(train_argv(tiny_cambridge, tmp_path, "gpu", "--device", "cuda", "--max_steps",
                                            "300", "--batch_size", "1024", "--save_latest_freq", "1000")))
    gpu_run, cpu_run = load_run(run_dir, device="cuda"), load_run(run_dir, device="cpu")
    assert next(gpu_run.model.parameters()).is_cuda and not next(cpu_run.model.parameters()).is_cuda
    result = evaluate(gpu_run, "test", "fit_left_half", FitOptions(steps=5), write_panels=False, log=lambda m: None)
    assert result["psnr"] > 15.0, result["psnr"]
    camera = cpu_run.scene.split("test")[0]
    app = cpu_run.model.appearance_vector(mean=True)
    on_cpu = render_camera(cpu_run.model, camera, cpu_run.normalization, appearance=app)["rgb"]
    on_gpu = render_camera(gpu_run.model, camera, gpu_run.normalization, appearance=app)["rgb"]
    assert metrics.psnr(on_gpu, on_cpu) > 45.0
