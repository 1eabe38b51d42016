"""Pictures of `nerfw export`'s cloud and mesh seen from training cameras, for a person to look at.

    .venv/bin/python benchmarks/geometry_pictures.py --run RUN --out docs/figures/geometry_square.jpg [--rows 3]

Both geometries are exported with their defaults, then each row shows a training photo, the cloud and the mesh's
vertices splatted into that photo's camera (nearest first: a z-buffer, 2x2-pixel splats). Works on any run,
real captures included (there is no ground truth to score: the eye decides).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from common import log
from nerfw.outputs.geometry import MeshOptions, PointOptions, export_mesh, export_points, spread

ROW_WIDTH = 320  # pixels of each panel


def splat(points: np.ndarray, colors: np.ndarray, camera) -> np.ndarray:
    """[H, W, 3] uint8: the points drawn into the undistorted pinhole view of `camera`, the nearest on top,
    on a white background."""
    from nerfw.cameras.conventions import intrinsics_matrix, project_points

    uv, z = project_points(intrinsics_matrix(camera.fx, camera.fy, camera.cx, camera.cy), camera.T_world_cam, points)
    image = np.full((camera.height, camera.width, 3), 255, np.uint8)
    ok = (z > 0) & np.all(np.isfinite(uv), axis=1)
    u, v, z, c = np.floor(uv[ok, 0]).astype(int), np.floor(uv[ok, 1]).astype(int), z[ok], colors[ok]
    order = np.argsort(-z)  # far first, so nearer points overwrite them
    for du in (0, 1):
        for dv in (0, 1):
            uu, vv = u[order] + du, v[order] + dv
            inside = (uu >= 0) & (uu < camera.width) & (vv >= 0) & (vv < camera.height)
            image[vv[inside], uu[inside]] = c[order][inside]
    return image


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, help="a trained run folder")
    parser.add_argument("--out", required=True, help="the picture to write (.jpg or .png)")
    parser.add_argument("--rows", type=int, default=3, help="training cameras shown (evenly spread)")
    parser.add_argument("--max_depth_spread", type=float, default=PointOptions.max_depth_spread,
                        help="the exports' --max_depth_spread (inf keeps unsure depths)")
    args = parser.parse_args(argv)

    import torch

    from nerfw.training.run_io import load_run

    run = load_run(Path(args.run))
    torch.set_grad_enabled(False)
    cloud = export_points(run, PointOptions(max_depth_spread=args.max_depth_spread))
    mesh = export_mesh(run, MeshOptions(max_depth_spread=args.max_depth_spread))
    log(f"cloud: {len(cloud.points)} points; mesh: {len(mesh.points)} vertices, {len(mesh.faces)} faces")
    rows = []
    for camera in spread(run.scene.split("train"), args.rows):
        small = camera.at_width(ROW_WIDTH)
        photo = np.asarray(Image.open(camera.image_path).convert("RGB").resize((small.width, small.height)))
        rows.append(np.concatenate([photo, splat(cloud.points, cloud.colors, small),
                                    splat(mesh.points, mesh.colors, small)], axis=1))
    Image.fromarray(np.concatenate(rows, axis=0)).save(args.out, quality=80)
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
