"""Training batches: rays made on the fly from the uint8 image cache.

The seed cached every ray as 12 floats and never reshuffled. Here a training pixel is identified by one
integer in [0, n_pixels); each epoch visits every pixel once in a pseudo-random order given by a keyed
bijection (a Feistel network with cycle walking), so the order costs O(1) memory for any dataset size,
changes every epoch, and is the same on every rank. Step s of an epoch takes the global slice
[s * B_global, (s + 1) * B_global) of that order and rank r its r-th part: ranks are disjoint by construction.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from nerfw.data.scene import CameraView, Normalization

_MASK32 = np.uint64(0xFFFFFFFF)


def _round_hash(x: np.ndarray, key: int, round_index: int) -> np.ndarray:
    """A cheap 64-bit mixing function (splitmix64 finaliser) of x, the key and the round."""
    with np.errstate(over="ignore"):
        z = x + np.uint64((key * 0x9E3779B97F4A7C15 + round_index * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def permute(indices: np.ndarray, n: int, key: int, rounds: int = 4) -> np.ndarray:
    """Image of `indices` under a keyed pseudo-random bijection of [0, n). [k] int64 -> [k] int64."""
    half_bits = max(1, int(np.ceil(np.log2(max(n, 2)) / 2)))
    half_mask = np.uint64((1 << half_bits) - 1)
    x = np.asarray(indices, dtype=np.uint64).copy()
    todo = np.ones(len(x), dtype=bool)
    while todo.any():  # cycle walking: re-apply until the value falls inside [0, n)
        left, right = x[todo] >> np.uint64(half_bits), x[todo] & half_mask
        for r in range(rounds):
            left, right = right, left ^ (_round_hash(right, key, r) & half_mask)
        x[todo] = (left << np.uint64(half_bits)) | right
        todo = x >= np.uint64(n)
    return x.astype(np.int64)


@dataclass
class RayBatch:
    rays_o: torch.Tensor  # [B, 3] model frame
    rays_d: torch.Tensor  # [B, 3] model frame, camera-z = 1 (t is z-depth)
    near: torch.Tensor  # [B]
    far: torch.Tensor  # [B]
    image_ids: torch.Tensor  # [B] long, index into scene.cameras
    rgb: torch.Tensor  # [B, 3] float in [0, 1]
    depth: torch.Tensor | None  # [B] model-frame z-depth (NaN invalid) or None

    def to(self, device) -> "RayBatch":
        move = lambda t: None if t is None else t.to(device, non_blocking=True)  # noqa: E731
        return RayBatch(*(move(getattr(self, f)) for f in self.__dataclass_fields__))


class CameraTable:
    """Per-image camera arrays in the model frame, for making rays of any pixel of any image."""

    def __init__(self, cameras: list[CameraView], normalization: Normalization):
        poses = np.stack([normalization.pose_to_model(c.T_world_cam) for c in cameras])
        self.R = torch.tensor(poses[:, :3, :3], dtype=torch.float32)  # [n, 3, 3]
        self.t = torch.tensor(poses[:, :3, 3], dtype=torch.float32)  # [n, 3]
        self.intrinsics = torch.tensor([[c.fx, c.fy, c.cx, c.cy] for c in cameras], dtype=torch.float32)
        self.near = torch.tensor([c.near * normalization.scale for c in cameras], dtype=torch.float32)
        self.far = torch.tensor([c.far * normalization.scale for c in cameras], dtype=torch.float32)
        self.widths = torch.tensor([c.width for c in cameras])

    def rays(self, image_ids: torch.Tensor, u: torch.Tensor, v: torch.Tensor):
        """Rays through continuous pixel coordinates (u, v) of images image_ids -> (o, d, near, far)."""
        fx, fy, cx, cy = self.intrinsics[image_ids].unbind(-1)
        d_cam = torch.stack([(u - cx) / fx, (v - cy) / fy, torch.ones_like(u)], dim=-1)  # [B, 3]
        d_world = torch.einsum("bij,bj->bi", self.R[image_ids], d_cam)
        return self.t[image_ids], d_world, self.near[image_ids], self.far[image_ids]

    def image_rays(self, image_id: int, width: int, height: int):
        """All rays of one image, row-major, pixel centres at +0.5."""
        v, u = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
        ids = torch.full((height * width,), image_id, dtype=torch.long)
        return self.rays(ids, u.reshape(-1).float(), v.reshape(-1).float())


class RayBatcher:
    """Makes the training batch of (epoch, step, rank) from the image cache."""

    def __init__(self, cache, cameras: list[CameraView], train_ids: list[int], normalization: Normalization,
                 batch_size: int, world_size: int = 1, seed: int = 0):
        self.cache, self.table = cache, CameraTable(cameras, normalization)
        self.train_ids = np.asarray(train_ids, dtype=np.int64)
        sizes = np.asarray([cameras[i].width * cameras[i].height for i in train_ids], dtype=np.int64)
        self.starts = np.concatenate([[0], np.cumsum(sizes)])  # [n_train + 1]
        self.n_pixels = int(self.starts[-1])
        self.batch_size, self.world_size, self.seed = batch_size, world_size, seed
        self.depth_scale = normalization.scale
        self.steps_per_epoch = max(1, self.n_pixels // (batch_size * world_size))

    def pixel_indices(self, epoch: int, step: int, rank: int) -> np.ndarray:
        """Global training-pixel ids of this rank's share of the step. [batch_size] int64."""
        first = (step * self.world_size + rank) * self.batch_size
        positions = (first + np.arange(self.batch_size)) % self.n_pixels
        return permute(positions, self.n_pixels, key=self.seed * 1_000_003 + epoch)

    def batch(self, epoch: int, step: int, rank: int = 0) -> RayBatch:
        pix = self.pixel_indices(epoch, step, rank)
        k = np.searchsorted(self.starts, pix, side="right") - 1  # which training image
        image_ids = self.train_ids[k]
        local = pix - self.starts[k]
        widths = self.table.widths.numpy()[image_ids]
        flat = self.cache.offsets[image_ids] + local  # index into the flat pixel array
        order = np.argsort(flat)  # memmap reads in file order are faster
        rgb = np.empty((len(flat), 3), dtype=np.uint8)
        rgb[order] = self.cache.pixels[flat[order]]
        ids = torch.from_numpy(image_ids)
        u = torch.from_numpy(local % widths).float() + 0.5
        v = torch.from_numpy(local // widths).float() + 0.5
        o, d, near, far = self.table.rays(ids, u, v)
        depth = None
        if getattr(self.cache, "depth", None) is not None:
            depth = torch.from_numpy(np.asarray(self.cache.depth[flat], dtype=np.float32)) * self.depth_scale
        return RayBatch(o, d, near, far, ids, torch.from_numpy(rgb).float() / 255.0, depth)
