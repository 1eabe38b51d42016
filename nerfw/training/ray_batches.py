"""Training batches: rays made on the fly from the uint8 image cache.

NeRFW-pytorch cached every ray as 12 floats and never reshuffled. Here a training pixel is identified by one
integer in [0, n_pixels); each epoch visits every pixel once in a pseudo-random order given by a keyed
bijection (a Feistel network with cycle walking), so the order costs O(1) memory for any dataset size,
changes every epoch, and is the same on every rank. Step s of an epoch takes the global slice
[s * B_global, (s + 1) * B_global) of that order and rank r its r-th part: ranks are disjoint by construction.

Rays of images with a lens distortion go through the real lens: their pixels are undistorted in float64 by
conventions.pixels_to_normalized (one call per lens in the batch). A pixel outside the lens model's invertible
domain (NaN there, or a solution on the far side of the model's fold: see in_lens_domain) has no ray the model
can define: a strong barrel term fitted by COLMAP to a whole collection (k1 = -0.55 folds at a distorted radius of
0.52 focal lengths) puts image corners there. Training never uses such a pixel: the batcher draws another pixel of
the same image in its place (a fixed pseudo-random one inside the domain) and says so once. CameraTable, asked for
the ray of such a pixel directly, falls back to its pinhole direction and counts it.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

from nerfw.cameras.conventions import Distortion
from nerfw.cameras.pixels import (
    border_pixels,
    lens_normalized,
    outside_domain_message,
    pixel_centre_table,
    pixels_without_ray,
    tables_pay_off,
)
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

    def __init__(self, cameras: list[CameraView], normalization: Normalization, warn: bool = True):
        poses = np.stack([normalization.pose_to_model(c.T_world_cam) for c in cameras])
        self.R = torch.tensor(poses[:, :3, :3], dtype=torch.float32)  # [n, 3, 3]
        self.t = torch.tensor(poses[:, :3, 3], dtype=torch.float32)  # [n, 3]
        self.intrinsics = torch.tensor([[c.fx, c.fy, c.cx, c.cy] for c in cameras], dtype=torch.float32)
        self.near = torch.tensor([c.near * normalization.scale for c in cameras], dtype=torch.float32)
        self.far = torch.tensor([c.far * normalization.scale for c in cameras], dtype=torch.float32)
        self.sizes = np.array([(c.width, c.height) for c in cameras], dtype=np.int64).reshape(-1, 2)  # [n, (W, H)]
        # Lenses: images with the same distortion and intrinsics share one (one undistortion call per batch).
        self.lens_of_image = np.full(len(cameras), -1, dtype=np.int64)  # [n] index into self.lenses, -1: pinhole
        self.lenses: list[tuple[float, float, float, float, Distortion]] = []
        index: dict[tuple, int] = {}
        border: dict[tuple, list[int]] = {}  # (lens, W, H) -> [border pixels outside the domain, images]
        for i, c in enumerate(cameras):
            if c.distortion is None or c.distortion.is_identity:
                continue
            key = (float(c.fx), float(c.fy), float(c.cx), float(c.cy), c.distortion)
            self.lens_of_image[i] = index.setdefault(key, len(index))
            if len(self.lenses) < len(index):
                self.lenses.append(key)
            size = (self.lens_of_image[i], c.width, c.height)
            if size not in border:
                border[size] = [lens_normalized(*key[:4], border_pixels(c.width, c.height), c.distortion)[1], 0]
            border[size][1] += 1
        self.build_tables([])  # none until the caller names the images it will draw pixel centres from
        self.outside_domain = 0  # rays made so far whose pixel lay outside its lens model's domain
        affected = [(n, k) for n, k in border.values() if n]
        self._warned = bool(affected) or not warn  # warn once: here, or at the first batch that meets such a pixel
        if affected and warn:
            warnings.warn(outside_domain_message(sum(n * k for n, k in affected), sum(k for _, k in affected),
                                                 "border pixels"), RuntimeWarning, stacklevel=2)

    def _lens_directions(self, image_ids: torch.Tensor, u: torch.Tensor, v: torch.Tensor,
                         d_cam: torch.Tensor) -> torch.Tensor:
        """d_cam with the x, y of pixels of distorted images replaced by their undistorted coordinates."""
        ids = image_ids.cpu().numpy()
        lens = self.lens_of_image[ids]
        todo = lens >= 0
        if not todo.any():
            return d_cam
        uv = torch.stack([u, v], dim=-1).detach().cpu().numpy().astype(np.float64)  # [B, 2]
        xy = d_cam[:, :2].detach().cpu().numpy().astype(np.float64)
        n_bad, rest = self._from_tables(ids, uv, xy, todo)
        for k in np.unique(lens[rest]):  # no table, or not a pixel centre: through the lens model
            rows = rest & (lens == k)
            xy[rows], bad = lens_normalized(*self.lenses[k][:4], uv[rows], self.lenses[k][4])
            n_bad += bad
        if n_bad:
            self.outside_domain += n_bad
            if not self._warned:
                self._warned = True
                n_images = len(np.unique(ids[todo]))
                warnings.warn(outside_domain_message(n_bad, n_images, "ray pixels of a batch"), RuntimeWarning,
                              stacklevel=3)
        d_cam = d_cam.clone()
        d_cam[:, :2] = torch.from_numpy(xy).to(device=d_cam.device, dtype=d_cam.dtype)
        return d_cam

    def build_tables(self, image_ids) -> None:
        """Pixel-centre tables for the distorted images among image_ids (the ones batches draw from): per image,
        the offset of its lens's table in the flat table_xy / table_bad (-1: none). All of them, or none when they
        would not pay back soon (tables_pay_off)."""
        self.table_offset = np.full(len(self.lens_of_image), -1, dtype=np.int64)
        self.table_xy, self.table_bad = np.zeros((0, 2)), np.zeros(0, dtype=bool)
        keys = {i: (int(self.lens_of_image[i]), *map(int, self.sizes[i])) for i in image_ids
                if self.lens_of_image[i] >= 0}  # image -> (lens, width, height)
        unique = list(dict.fromkeys(keys.values()))
        if not unique or not tables_pay_off(len(unique), sum(w * h for _, w, h in unique)):
            return
        starts = dict(zip(unique, np.cumsum([0] + [w * h for _, w, h in unique])))
        for i, key in keys.items():
            self.table_offset[i] = starts[key]
        parts = [pixel_centre_table(self.lenses[k], w, h) for k, w, h in unique]
        self.table_xy = np.concatenate([xy for xy, _ in parts])
        self.table_bad = np.concatenate([bad for _, bad in parts])

    def _from_tables(self, ids: np.ndarray, uv: np.ndarray, xy: np.ndarray, todo: np.ndarray):
        """Fill xy for the rows of ``todo`` whose image has a table and whose pixel is a pixel centre; returns
        (how many of them lie outside the lens domain, the rows still to do)."""
        offset = self.table_offset[ids]
        px = uv - 0.5
        width, height = self.sizes[ids, 0], self.sizes[ids, 1]
        hit = (todo & (offset >= 0) & np.all(px == np.floor(px), axis=-1) & np.all(px >= 0, axis=-1)
               & (px[:, 0] < width) & (px[:, 1] < height))
        if not hit.any():
            return 0, todo
        index = offset[hit] + px[hit, 1].astype(np.int64) * width[hit] + px[hit, 0].astype(np.int64)
        xy[hit] = self.table_xy[index]
        return int(self.table_bad[index].sum()), todo & ~hit

    def rays(self, image_ids: torch.Tensor, u: torch.Tensor, v: torch.Tensor):
        """Rays through continuous pixel coordinates (u, v) of images image_ids -> (o, d, near, far)."""
        fx, fy, cx, cy = self.intrinsics[image_ids].unbind(-1)
        d_cam = torch.stack([(u - cx) / fx, (v - cy) / fy, torch.ones_like(u)], dim=-1)  # [B, 3]
        if len(self.lenses):
            d_cam = self._lens_directions(image_ids, u, v, d_cam)
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
        self.cache, self.table = cache, CameraTable(cameras, normalization, warn=False)
        self.train_ids = np.asarray(train_ids, dtype=np.int64)
        self.table.build_tables(self.train_ids)
        self.inside = self.pixels_inside_lens_domain()
        sizes = np.asarray([cameras[i].width * cameras[i].height for i in train_ids], dtype=np.int64)
        self.starts = np.concatenate([[0], np.cumsum(sizes)])  # [n_train + 1]
        self.n_pixels = int(self.starts[-1])
        self.batch_size, self.world_size, self.seed = batch_size, world_size, seed
        self.depth_scale = normalization.scale
        self.steps_per_epoch = max(1, self.n_pixels // (batch_size * world_size))

    def pixels_inside_lens_domain(self) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """For each training image whose lens model folds inside it: (outside [W H] bool, the row-major indices of
        its pixels inside the domain). Warns once with how many training pixels are left out."""
        table, per_size, inside = self.table, {}, {}
        for i in self.train_ids:
            if table.lens_of_image[i] < 0:
                continue
            size = (int(table.lens_of_image[i]), *map(int, table.sizes[i]))
            if size not in per_size:
                outside = pixels_without_ray(table.lenses[size[0]], size[1], size[2])
                per_size[size] = None if outside is None else (outside, np.flatnonzero(~outside))
            if per_size[size] is not None and len(per_size[size][1]):  # none inside: the pinhole fallback stays
                inside[int(i)] = per_size[size]
        if inside:
            n_out = sum(int(inside[i][0].sum()) for i in inside)
            warnings.warn(f"{n_out} pixels of {len(inside)} training image(s) lie outside their lens model's "
                          "invertible domain (the distortion polynomial folds back there, so they have no ray): "
                          "training leaves them out and draws other pixels of the same images instead",
                          RuntimeWarning, stacklevel=3)
        return inside

    def replace_outside_pixels(self, image_ids: np.ndarray, local: np.ndarray, pix: np.ndarray) -> np.ndarray:
        """local pixel indices with those outside their lens domain replaced by a pixel of the same image inside
        it, chosen by a hash of the global pixel id (the same on every rank and run)."""
        if not self.inside:
            return local
        local = local.copy()
        for i in np.unique(image_ids):
            if int(i) not in self.inside:
                continue
            outside, inside = self.inside[int(i)]
            rows = np.flatnonzero((image_ids == i) & outside[local])
            if len(rows):
                pick = _round_hash(pix[rows].astype(np.uint64), self.seed, 7) % np.uint64(len(inside))
                local[rows] = inside[pick.astype(np.int64)]
        return local

    def pixel_indices(self, epoch: int, step: int, rank: int) -> np.ndarray:
        """Global training-pixel ids of this rank's share of the step. [batch_size] int64."""
        first = (step * self.world_size + rank) * self.batch_size
        positions = (first + np.arange(self.batch_size)) % self.n_pixels
        return permute(positions, self.n_pixels, key=self.seed * 1_000_003 + epoch)

    def batch(self, epoch: int, step: int, rank: int = 0) -> RayBatch:
        pix = self.pixel_indices(epoch, step, rank)
        k = np.searchsorted(self.starts, pix, side="right") - 1  # which training image
        image_ids = self.train_ids[k]
        local = self.replace_outside_pixels(image_ids, pix - self.starts[k], pix)
        widths = self.table.sizes[image_ids, 0]
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
