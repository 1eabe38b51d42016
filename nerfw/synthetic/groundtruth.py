"""`GroundTruth`: re-create a generated scene from its ground-truth folder and query it.

All poses and points are in the DATASET frame (what the split files / pose.txt use); the renderer works
in the generator's local frame, related by the rigid ``T_dataset_local`` stored in scene.json.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from nerfw.cameras.conventions import Distortion, invert_T
from nerfw.errors import DatasetError
from nerfw.synthetic import geometry, render
from nerfw.synthetic.geometry import Primitives


class GroundTruth:
    """The analytic scene behind a generated dataset (static content only; transients are per image)."""

    def __init__(self, root: Path, scene: dict, appearance: dict, cameras: dict):
        self.root = Path(root)
        self.scene = scene
        self.materials: list[dict] = scene["materials"]
        self.prims = Primitives.from_json(scene["primitives"], self.materials)
        self.T_dataset_local = np.asarray(scene["world"]["T_dataset_local"], dtype=np.float64)  # [4, 4]
        self.T_local_dataset = invert_T(self.T_dataset_local)
        self._appearance = appearance
        self.cameras: dict = cameras["images"]  # name -> {split, fx, fy, cx, cy, width, height, T_world_cam}

    @classmethod
    def load(cls, gt_dir) -> "GroundTruth":
        gt_dir = Path(gt_dir)
        try:
            scene = json.loads((gt_dir / "scene.json").read_text())
            appearance = json.loads((gt_dir / "appearance.json").read_text())
            cameras = json.loads((gt_dir / "cameras.json").read_text())
        except FileNotFoundError as exc:
            raise DatasetError(exc.filename, "missing ground-truth file (is this a <scene>.groundtruth folder?)")
        return cls(gt_dir, scene, appearance, cameras)

    # ----------------------------------------------------------------------- queries
    def appearance(self, name: str) -> dict:
        """Appearance parameters of image `name` ("canonical" gives the canonical appearance)."""
        if name == "canonical":
            return dict(self._appearance["canonical"])
        if name not in self._appearance["images"]:
            raise KeyError(f"no appearance for image '{name}'")
        return dict(self._appearance["images"][name])

    def render(self, T_world_cam: np.ndarray, fx: float, fy: float, cx: float, cy: float, width: int, height: int,
               appearance: dict | str = "canonical", distortion: Distortion | dict | None = None) -> dict:
        """Render the static scene (no transients) from a camera-to-world pose [4,4] in the dataset frame.

        distortion: the lens (``conventions.Distortion`` or its dict, as cameras.json stores it) of the
        distorted image to render; None renders a pinhole image.
        Returns dict(rgb float32 [H,W,3] in [0,1] (2x2 supersampled, as the dataset images),
        depth float32 [H,W] z-depth at pixel centres (inf where the ray sees the sky))."""
        app = self.appearance(appearance) if isinstance(appearance, str) else appearance
        lens = Distortion.from_dict(distortion) if isinstance(distortion, dict) else distortion
        T_local_cam = self.T_local_dataset @ np.asarray(T_world_cam, dtype=np.float64)
        out = render.render_image(self.prims, self.materials, T_local_cam, fx, fy, cx, cy, int(width), int(height),
                                  app, sky=bool(self.scene["sky"]), distortion=lens)
        return {"rgb": out["rgb"], "depth": out["depth"]}

    def render_image(self, name: str, appearance: dict | str | None = None) -> dict:
        """Render the static scene at a dataset image's camera and lens (default: that image's own appearance)."""
        c = self.cameras[name]
        app = name if appearance is None else appearance
        return self.render(np.asarray(c["T_world_cam"]), c["fx"], c["fy"], c["cx"], c["cy"], c["width"], c["height"],
                           app, distortion=c.get("distortion"))

    def signed_distance(self, points: np.ndarray) -> np.ndarray:
        """Exact distance [N] from dataset-frame points [N,3] to the nearest static solid (negative inside)."""
        p = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        p_local = p @ self.T_local_dataset[:3, :3].T + self.T_local_dataset[:3, 3]
        return geometry.signed_distance(self.prims, p_local)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Axis-aligned (dataset frame) bounds (min [3], max [3]) of the scene content (ground slab excluded);
        for the collection preset the exact box of the landmark (statue and plinth)."""
        if "landmark" in self.scene:
            lo, hi = self.scene["landmark"]["bounds_world"]
            return np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
        lo, hi = (np.asarray(b, dtype=np.float64) for b in self.scene["content_bounds_local"])
        corners = np.array([np.where(np.array(bits, bool), hi, lo) for bits in np.ndindex(2, 2, 2)])
        c = corners @ self.T_dataset_local[:3, :3].T + self.T_dataset_local[:3, 3]
        return c.min(0), c.max(0)

    # ----------------------------------------------------------------------- stored per-image files
    def landmarks(self) -> list[dict]:
        return json.loads((self.root / "landmarks.json").read_text())

    def _png(self, folder: str, name: str) -> Path:
        """<folder>/<name> (PNG datasets), else <folder>/<name with .png> (JPEG datasets: collection preset)."""
        path = self.root / folder / name
        return path if path.is_file() else (self.root / folder / name).with_suffix(".png")

    def mask(self, name: str) -> np.ndarray:
        """Transient mask bool [H,W] of image `name` (True = a transient occluder covers the pixel)."""
        return np.asarray(Image.open(self._png("masks", name))) > 127

    def landmark_mask(self, name: str) -> np.ndarray:
        """Collection preset: bool [H,W], True where the pixel centre sees the landmark (statue or plinth)."""
        return np.asarray(Image.open(self._png("landmark_masks", name))) > 127

    def depth(self, name: str) -> np.ndarray:
        """Exact z-depth float32 [H,W] of image `name` as photographed (transients included; inf = sky)."""
        return np.load(self.root / "depth" / Path(name).with_suffix(".npy"))

    def clean(self, name: str) -> np.ndarray:
        """Clean render uint8 [H,W,3] of test image `name` at the canonical appearance."""
        return np.asarray(Image.open(self._png("clean", name)).convert("RGB"))
