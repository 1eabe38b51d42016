"""Render whole images from a trained model at any camera (dataset frame), chunked to bound memory.

Lens: with ``distortion=True`` (the default, what evaluation needs: its ground-truth images are the distorted
photographs) a camera with a Distortion is rendered as its lens saw it, pixel by pixel through the lens model
(pixels outside the model's domain use their pinhole direction, as in training). ``distortion=False`` renders
the ideal pinhole camera of the same intrinsics: an undistorted image (what ``nerfw render`` writes by default).
"""
from __future__ import annotations

import numpy as np
import torch

from nerfw.cameras.conventions import pixel_centers
from nerfw.cameras.pixels import lens_normalized
from nerfw.data.scene import CameraView, Normalization


def camera_rays_model(camera: CameraView, normalization: Normalization, device="cpu", distortion: bool = True):
    """All rays of a camera in the model frame: (o [HW,3], d [HW,3], near [HW], far [HW]) float32 tensors.

    distortion: through the camera's lens model (True) or as an undistorted pinhole camera (False)."""
    uv = pixel_centers(camera.width, camera.height)
    T_model_cam = normalization.pose_to_model(camera.T_world_cam)
    xy, _ = lens_normalized(camera.fx, camera.fy, camera.cx, camera.cy, uv,
                            camera.distortion if distortion else None)
    d = np.concatenate([xy, np.ones((len(uv), 1))], axis=-1) @ T_model_cam[:3, :3].T  # camera z = 1
    o = np.broadcast_to(T_model_cam[:3, 3], d.shape)
    n = len(uv)
    as_t = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32, device=device)  # noqa: E731
    near = torch.full((n,), camera.near * normalization.scale, dtype=torch.float32, device=device)
    far = torch.full((n,), camera.far * normalization.scale, dtype=torch.float32, device=device)
    return as_t(o), as_t(d), near, far


def colorize(values: np.ndarray, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """Map a [H, W] array to an RGB image in [0, 1] with a perceptual-ish colormap (turbo-like via matplotlib-free
    piecewise gradient). NaN/inf become black."""
    v = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(v)
    if not finite.any():
        return np.zeros(v.shape + (3,), dtype=np.float32)
    lo = np.percentile(v[finite], 1) if lo is None else lo
    hi = np.percentile(v[finite], 99) if hi is None else hi
    x = np.clip((np.where(finite, v, lo) - lo) / max(hi - lo, 1e-12), 0, 1)
    stops = np.array([[0.05, 0.03, 0.25], [0.1, 0.35, 0.8], [0.1, 0.75, 0.6], [0.95, 0.85, 0.2], [0.8, 0.1, 0.1]])
    pos = x * (len(stops) - 1)
    i = np.minimum(pos.astype(int), len(stops) - 2)
    f = (pos - i)[..., None]
    rgb = stops[i] * (1 - f) + stops[i + 1] * f
    rgb[~finite] = 0
    return rgb.astype(np.float32)


@torch.no_grad()
def render_camera(model, camera: CameraView, normalization: Normalization, chunk: int = 4096,
                  appearance: torch.Tensor | None = None, image_id: int = 0, use_transient: bool = False,
                  device=None, fast: bool = False, distortion: bool = True) -> dict:
    """Render one view. Returns numpy arrays: rgb, rgb_static, rgb_transient [H,W,3] in [0,1]; depth [H,W]
    (median z-depth, dataset units; see nerfw.rendering.compositing.median_depth), depth_expected, depth_spread
    (its interquartile range, dataset units), opacity,
    beta [H,W]; depth_vis and beta_vis colour-mapped [H,W,3].
    fast=True: the static scene with nerfw.model.fast_render's approximations (grid field, transient head off).
    distortion: render through the camera's lens model (True, as the photographs were taken) or as an undistorted
    pinhole image (False)."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    o, d, near, far = camera_rays_model(camera, normalization, device, distortion=distortion)
    ids = torch.full((len(o),), int(image_id), dtype=torch.long, device=device)
    if appearance is not None:
        appearance = appearance.to(device)
    out = model.render_chunked(o, d, near, far, ids, chunk=chunk, appearance=appearance,
                               use_transient=use_transient, perturb=False, fast=fast)
    model.train(was_training)
    H, W = camera.height, camera.width
    img = lambda t: t.detach().float().reshape(H, W, -1).cpu().numpy()  # noqa: E731
    result = {"rgb": img(out.rgb), "rgb_static": img(out.rgb_static), "rgb_transient": img(out.rgb_transient),
              "depth": img(out.depth_median)[..., 0] / normalization.scale,
              "depth_expected": img(out.depth)[..., 0] / normalization.scale,
              "depth_spread": img(out.depth_spread)[..., 0] / normalization.scale, "opacity": img(out.opacity)[..., 0],
              "beta": img(out.beta)[..., 0], "transient_opacity": img(out.transient_opacity)[..., 0]}
    result["depth_vis"] = colorize(result["depth"])
    result["beta_vis"] = colorize(result["beta"])
    return result


def render_view(model, table, image_id: int, camera: CameraView, chunk: int, appearance=None) -> dict:
    """Training-time preview of a dataset image (used by the TensorBoard logger)."""
    # The table already holds model-frame poses; rebuild a CameraView in the model frame with identity
    # normalisation so render_camera can be reused unchanged.
    T = np.eye(4)
    T[:3, :3] = table.R[image_id].numpy()
    T[:3, 3] = table.t[image_id].numpy()
    cam = CameraView(camera.name, camera.image_path, camera.split, camera.width, camera.height, camera.fx,
                     camera.fy, camera.cx, camera.cy, T, float(table.near[image_id]), float(table.far[image_id]),
                     distortion=camera.distortion)
    return render_camera(model, cam, Normalization(np.zeros(3), 1.0), chunk, appearance=appearance, image_id=image_id,
                         use_transient=True)
