"""Time grid encodings and whole training steps on this machine: ``.venv/bin/python benchmarks/encodings.py``.

The numbers in docs/model.md come from this script (2-core CPU, float32). Timings are the best of
``--repeats`` runs, because other processes on a shared machine only ever make a run slower.
"""
from __future__ import annotations

import argparse
import time

import torch

from nerfw.fields.encodings import HashGrid, TriPlanes


def time_encoding(enc: torch.nn.Module, n_points: int, repeats: int) -> float:
    """Median seconds of forward + backward of sum(features) for n_points random points."""
    x = torch.rand(n_points, 3) * 2 - 1
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        enc(x).square().sum().backward()
        times.append(time.perf_counter() - start)
        enc.zero_grad(set_to_none=True)
    return sorted(times[1:])[len(times[1:]) // 2]


def time_training_step(field: str, n_rays: int, repeats: int) -> tuple[float, int]:
    """Best seconds of one Adam training step (forward, loss, backward, step) and field samples per ray."""
    from nerfw.fields.config import ModelConfig
    from nerfw.model.nerfw_model import build_model

    cfg = ModelConfig(field=field)
    model = build_model(cfg, n_images=100).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-15)
    o = torch.randn(n_rays, 3) * 0.3
    d = torch.cat([torch.randn(n_rays, 2) * 0.5, torch.ones(n_rays, 1)], dim=-1)
    near, far = torch.full((n_rays,), 0.1), torch.full((n_rays,), 3.0)
    ids, gt = torch.randint(0, 100, (n_rays,)), torch.rand(n_rays, 3)
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        loss = model.loss(model(o, d, near, far, ids), gt)["total"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    per_ray = cfg.grid_samples if field == "grid" else cfg.N_c + (cfg.N_c + cfg.N_f) * cfg.n_fine
    return min(times[1:]), per_ray


def candidates() -> dict[str, torch.nn.Module]:
    """Encodings of comparable capacity (parameters) and output width."""
    return {
        "hash L16 F2 T2^19 (16.8M params, 32 dims)": HashGrid(16, 2, 19, 16, 2048),
        "hash L16 F2 T2^17 (4.2M params, 32 dims)": HashGrid(16, 2, 17, 16, 1024),
        "hash L8 F4 T2^17 (4.2M params, 32 dims)": HashGrid(8, 4, 17, 16, 1024),
        "planes R64-512 F8 (8.4M params, 32 dims)": TriPlanes([64, 128, 256, 512], 8),
        "planes R64-512 F16 (16.8M params, 64 dims)": TriPlanes([64, 128, 256, 512], 16),
        "planes R32-256 F8 (2.1M params, 32 dims)": TriPlanes([32, 64, 128, 256], 8),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--points", type=int, default=65536)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rays", type=int, default=4096, help="rays per training step")
    parser.add_argument("--what", choices=["all", "encodings", "model"], default="all")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    if args.what in ("all", "model"):
        for field, n_rays in (("grid", args.rays), ("mlp", args.rays // 4)):
            seconds, per_ray = time_training_step(field, n_rays, args.repeats)
            print(f"{field} training step: {n_rays} rays x {per_ray} samples in {seconds * 1e3:.0f} ms = "
                  f"{n_rays * per_ray / seconds / 1e3:.0f}k samples/s")
    if args.what == "model":
        return 0
    for name, enc in candidates().items():
        seconds = time_encoding(enc, args.points, args.repeats)  # median
        n_params = sum(p.numel() for p in enc.parameters())
        print(f"{name:48s} params {n_params / 1e6:5.1f}M  fwd+bwd {seconds * 1e3:7.1f} ms  "
              f"{args.points / seconds / 1e6:5.2f} M points/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
