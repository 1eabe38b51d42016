"""Settings of the NeRF-W left-half appearance fit on a trained run, side by side on the same model.

    python benchmarks/appearance_fit.py --run RUN_DIR [--variants 100x512,100x1024,300x512] [--seeds 0,1,2] [--lr 0.05]

Each test image's left part (the fitted columns) and right half (the scored ones) are rendered once into
`ColourCache`s (geometry does not depend on the appearance: tests/model/test_appearance_fit.py); every variant
(STEPSxRAYS) then fits the embedding on the left cache exactly as `nerfw eval` does, once per pixel-draw seed, and
is scored on the right cache. Prints the mean right-half PSNR per variant and seed (the seeds show how much the
draws alone move it) and the fit's CPU time; `nerfw eval` with the same settings and seed 0 gives the same PSNR
(its default is 100x512). Writes no results file.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from common import machine, machine_line  # (importing common puts this checkout's nerfw on the path)


def main(argv: list[str] | None = None) -> int:
    from nerfw.evaluation import evaluate as ev
    from nerfw.model import appearance_fit as fit_api
    from nerfw.model.appearance_fit import FitOptions
    from nerfw.evaluation import metrics
    from nerfw.model.view_rendering import camera_rays_model
    from nerfw.training.run_io import load_run

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, help="a trained run folder")
    parser.add_argument("--variants", default="100x512,100x1024,300x512", help="comma-separated STEPSxRAYS")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds of the pixel draws (nerfw eval: 0)")
    parser.add_argument("--lr", type=float, default=0.05, help="Adam rate of the fit (nerfw eval: 0.05)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(machine_line(machine()))
    seeds = [int(x) for x in args.seeds.split(",") if x]
    variants = [(*(int(v) for v in item.split("x")), seed) for item in args.variants.split(",") if item
                for seed in seeds]
    run = load_run(args.run)
    model = run.model
    scores = {v: [] for v in variants}
    seconds = dict.fromkeys(variants, 0.0)
    for image_id, cam in [(i, c) for i, c in enumerate(run.scene.cameras) if c.split == "test"]:
        gt = ev.load_image(cam.image_path, cam.width, cam.height)
        o, d, near, far = camera_rays_model(cam, run.normalization, "cpu")
        left = fit_api.left_part(cam)
        right = fit_api.scored_part(cam)
        left_cache = fit_api.ColourCache.build(model, o[left], d[left], near[left], far[left], image_id)
        right_cache = fit_api.ColourCache.build(model, o[right], d[right], near[right], far[right], image_id)
        target = gt.reshape(-1, 3)[right.numpy()]
        for steps, rays, seed in variants:
            t0 = time.process_time()
            vec = fit_api.fit_appearance(model, cam, run.normalization, gt, image_id, model.appearance_vector(mean=True),
                                    FitOptions(steps=steps, lr=args.lr, rays_per_step=rays, seed=seed), left_cache)
            seconds[(steps, rays, seed)] += time.process_time() - t0
            with torch.no_grad():
                scores[(steps, rays, seed)].append(metrics.psnr(right_cache.rgb(vec).numpy(), target))
    for v in variants:
        print(f"{v[0]:>5} steps x {v[1]:>5} pixels, seed {v[2]}: right-half PSNR {np.mean(scores[v]):.3f} dB "
              f"(per image {', '.join(f'{x:.2f}' for x in scores[v])}), fit {seconds[v]:.1f} CPU-s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
