"""`nerfw render`: a split, a Cambridge-format poses file, or a smooth camera path -> PNG frames and MP4.

Outputs under OUTDIR: rgb/, static/, transient/, depth/ (colour-mapped PNG and raw z-depth .npy in dataset
units), beta/ (colour-mapped), and rgb.mp4 (and depth.mp4) for paths and poses files. Frames keep the
dataset's relative names (seq3/frame00001.png). Rendering is deterministic (no jitter at test time).

Lens: frames are undistorted pinhole images of the cameras' intrinsics by default; with --keep_distortion a
camera with lens distortion (COLMAP OPENCV, transforms.json k1.., NVM radial, ...) is rendered as its lens saw
it, pixel for pixel comparable with the dataset's photographs (nerfw eval always scores that way).

--appearance: "mean" (default), an image id or name ("12", "seq1/frame00003.png"), an explicit vector
("vec:0.1,-0.3,..."), or "interp:A,B[,t]" (a fixed mix at t, or, without t, a sweep from A to B over the frames).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy.spatial.transform import Rotation, Slerp

from nerfw.cameras.conventions import make_T
from nerfw.data.poses_file import read_poses_file
from nerfw.data.scene import CameraView
from nerfw.errors import ConfigError
from nerfw.model.view_rendering import render_camera

OUTPUTS = {"rgb": "rgb", "static": "rgb_static", "transient": "rgb_transient", "depth": "depth_vis",
           "beta": "beta_vis"}


# ----------------------------------------------------------------------------- camera paths
def interpolate_path(keyframes: list[CameraView], n_frames: int) -> list[np.ndarray]:
    """Smooth path through keyframe poses: positions by piecewise cubic (Catmull-Rom), rotations by slerp."""
    if len(keyframes) == 1:
        return [keyframes[0].T_world_cam.copy() for _ in range(n_frames)]
    P = np.stack([c.center for c in keyframes])
    rots = Rotation.from_matrix(np.stack([c.T_world_cam[:3, :3] for c in keyframes]))
    key_t = np.arange(len(keyframes), dtype=float)
    slerp = Slerp(key_t, rots)
    ts = np.linspace(0, len(keyframes) - 1, n_frames)
    poses = []
    for t in ts:
        i = min(int(t), len(keyframes) - 2)
        f = t - i
        p0, p1, p2, p3 = P[max(i - 1, 0)], P[i], P[i + 1], P[min(i + 2, len(P) - 1)]
        pos = 0.5 * ((2 * p1) + (-p0 + p2) * f + (2 * p0 - 5 * p1 + 4 * p2 - p3) * f ** 2
                     + (-p0 + 3 * p1 - 3 * p2 + p3) * f ** 3)
        poses.append(make_T(slerp([t]).as_matrix()[0], pos))
    return poses


def spiral_path(cameras: list[CameraView], n_frames: int, radius_fraction: float = 0.1) -> list[np.ndarray]:
    """A circle around the mean training pose, in its image plane, looking at a point ahead of it."""
    centers = np.stack([c.center for c in cameras])
    mean_center = centers.mean(axis=0)
    R_mean = Rotation.from_matrix(np.stack([c.T_world_cam[:3, :3] for c in cameras])).mean().as_matrix()
    spread = np.linalg.norm(np.percentile(centers, 90, axis=0) - np.percentile(centers, 10, axis=0))
    focus_depth = float(np.median([0.5 * (c.near + c.far) for c in cameras]))
    radius = max(spread * radius_fraction, 0.02 * focus_depth)
    target = mean_center + R_mean[:, 2] * focus_depth
    poses = []
    for a in np.linspace(0, 2 * np.pi, n_frames, endpoint=False):
        pos = mean_center + radius * (np.cos(a) * R_mean[:, 0] + np.sin(a) * R_mean[:, 1])
        forward = target - pos
        forward /= np.linalg.norm(forward)
        right = np.cross(R_mean[:, 1], forward)  # keep the mean camera's down axis as the reference
        right /= np.linalg.norm(right)
        down = np.cross(forward, right)
        poses.append(make_T(np.stack([right, down, forward], axis=1), pos))
    return poses


# ----------------------------------------------------------------------------- appearance
def parse_appearance(spec: str, run, n_frames: int) -> list[tuple[torch.Tensor, int]]:
    """One (appearance vector, image id for the transient head) per frame."""
    model = run.model
    if spec in ("", "mean"):
        return [(model.appearance_vector(mean=True), 0)] * n_frames
    if spec.startswith("vec:"):
        try:
            values = [float(v) for v in spec[4:].split(",")]
        except ValueError:
            raise ConfigError(f"--appearance {spec}: expected vec:v1,v2,... numbers") from None
        vec = torch.tensor(values, dtype=torch.float32)
        expected = model.appearance_vector(mean=True).numel()
        if vec.numel() != expected:
            raise ConfigError(f"--appearance vec: expected {expected} values, got {vec.numel()}")
        return [(vec, 0)] * n_frames
    if spec.startswith("interp:"):
        parts = spec[7:].split(",")
        if len(parts) not in (2, 3):
            raise ConfigError(f"--appearance {spec}: expected interp:A,B or interp:A,B,t")
        a, b = run.image_id(parts[0]), run.image_id(parts[1])
        ts = [float(parts[2])] * n_frames if len(parts) == 3 else np.linspace(0, 1, n_frames)
        return [(model.appearance_vector(interpolate=(a, b, float(t))), a) for t in ts]
    image_id = run.image_id(spec)
    return [(model.appearance_vector(image_id=image_id), image_id)] * n_frames


# ----------------------------------------------------------------------------- output
def save_frame(out_dir: Path, name: str, out: dict) -> None:
    rel = Path(name).with_suffix(".png")
    for folder, key in OUTPUTS.items():
        target = out_dir / folder / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((np.clip(out[key], 0, 1) * 255 + 0.5).astype(np.uint8)).save(target)
    np.save(out_dir / "depth" / rel.with_suffix(".npy"), out["depth"].astype(np.float32))


def write_video(path: Path, frames: list[np.ndarray], fps: int = 15) -> Path:
    import imageio.v2 as imageio

    with imageio.get_writer(str(path), fps=fps, codec="libx264", quality=8, macro_block_size=1) as writer:
        for frame in frames:
            # H.264 with yuv420p needs even sides: repeat the last row/column where a side is odd
            h, w = frame.shape[:2]
            frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
            writer.append_data((np.clip(frame, 0, 1) * 255 + 0.5).astype(np.uint8))
    return path


def with_intrinsics(camera: CameraView, args) -> CameraView:
    """The camera with the --width/--height/--fx/--fy/--cx/--cy given. A new size alone keeps the field of view
    (intrinsics scaled per axis); a given --fx without --fy sets both (square pixels); the principal point not
    given is scaled with the size."""
    if not any((args.width, args.height, args.fx, args.fy, args.cx, args.cy)):
        return camera
    width, height = args.width or camera.width, args.height or camera.height
    sx, sy = width / camera.width, height / camera.height
    fx = args.fx or camera.fx * sx
    fy = args.fy or args.fx or camera.fy * sy
    return dataclasses.replace(camera, width=width, height=height, fx=fx, fy=fy, cx=args.cx or camera.cx * sx,
                               cy=args.cy or camera.cy * sy)


def cameras_to_render(run, args) -> tuple[list[CameraView], bool]:
    """(cameras, whether they are dataset images) for --split / --poses / --path, with the intrinsics options
    applied and at most --max_frames of them."""
    scene = run.scene
    train = scene.split("train")
    template = with_intrinsics(train[0], args)
    from_dataset = False
    if args.poses:

        cams = read_poses_file(Path(args.poses), template, split="render")
    elif args.path:
        keyframes = train[:: max(1, len(train) // 8)]
        poses = (interpolate_path(keyframes, args.n_frames) if args.path == "interp"
                 else spiral_path(train, args.n_frames))
        cams = [dataclasses.replace(template, name=f"path/frame{i:05d}.png", T_world_cam=T, split="render")
                for i, T in enumerate(poses)]
    else:
        cams = [with_intrinsics(c, args) for c in scene.split(args.split)]
        if not cams:
            raise ConfigError(f"no '{args.split}' images in the dataset")
        from_dataset = True
    return (cams[: args.max_frames] if args.max_frames else cams), from_dataset


def render_all(run, args, log=print) -> dict:
    out_dir = Path(args.out)
    cameras, from_dataset = cameras_to_render(run, args)
    appearances = parse_appearance(args.appearance, run, len(cameras))
    rgb_frames, depth_frames = [], []
    names = run.image_names
    for k, (camera, (vec, image_id)) in enumerate(zip(cameras, appearances)):
        own_id = names.index(camera.name) if from_dataset and camera.name in names else image_id
        use_transient = from_dataset and camera.split == "train" and args.appearance in ("", "mean", camera.name)
        if from_dataset and camera.split == "train" and args.appearance in ("", "mean"):
            vec = run.model.appearance_vector(image_id=own_id)
        out = render_camera(run.model, camera, run.normalization, args.chunk, appearance=vec, image_id=own_id,
                            use_transient=use_transient, fast=args.quality == "fast",
                            distortion=args.keep_distortion)
        save_frame(out_dir, camera.name, out)
        rgb_frames.append(out["rgb"])
        depth_frames.append(out["depth_vis"])
        log(f"[{k + 1}/{len(cameras)}] {camera.name}")
    videos = {}
    if len(rgb_frames) > 1 and not args.no_video:
        videos["rgb"] = str(write_video(out_dir / "rgb.mp4", rgb_frames, args.fps))
        videos["depth"] = str(write_video(out_dir / "depth.mp4", depth_frames, args.fps))
    return {"frames": len(cameras), "out": str(out_dir), "videos": videos}


