"""The plain scene description every parser returns, and its reversible normalisation.

A parser reads a dataset as it ships and returns a :class:`SceneData`: one :class:`CameraView` per image
(in the dataset's own frame and units, OpenCV axes, ``T_world_cam``) plus optional sparse points. Training
works in a normalised frame (:class:`Normalization`: recentre, turn to z-up, uniform scale) that is saved
with every model, so every pose nerfw writes goes back into the dataset's frame and units.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from nerfw.cameras.conventions import Distortion
from nerfw.data.framing import choose_framing
from nerfw.data.orientation import orient_scene


@dataclass
class CameraView:
    """One image of a dataset. Poses and bounds are in the dataset's own frame and units."""

    name: str  # path relative to the scene folder as the dataset lists it, e.g. "seq3/frame00001.png"
    image_path: Path  # absolute path of the image file
    split: str  # "train" | "test" | other split names a dataset uses ("val", "synth")
    width: int  # pixels, after --img_downscale
    height: int
    fx: float  # pixels, after --img_downscale
    fy: float
    cx: float  # continuous pixel coordinates (pixel centres at +0.5)
    cy: float
    T_world_cam: np.ndarray  # [4, 4] camera-to-world, OpenCV axes
    near: float  # z-depth bounds (dataset units)
    far: float
    depth_path: Path | None = None  # optional depth map (7-Scenes), z-depth
    depth_scale: float = 1000.0  # depth file units per dataset unit (uint16 mm -> 1000)
    # Lens distortion of the image (normalised coordinates, so independent of --img_downscale); None: pinhole.
    distortion: Distortion | None = None

    @property
    def K(self) -> np.ndarray:
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def center(self) -> np.ndarray:
        return self.T_world_cam[:3, 3]

    def at_width(self, width: int) -> CameraView:
        """The same camera at most ``width`` pixels wide (never wider than it is): intrinsics scaled with the
        image, for cheap low-resolution renders."""
        s = min(1.0, width / self.width)
        w, h = max(1, round(self.width * s)), max(1, round(self.height * s))
        sx, sy = w / self.width, h / self.height
        return replace(self, width=w, height=h, fx=self.fx * sx, fy=self.fy * sy, cx=self.cx * sx, cy=self.cy * sy)

    def to_json(self) -> dict:
        return {
            "name": self.name, "split": self.split, "width": self.width, "height": self.height,
            "fx": self.fx, "fy": self.fy, "cx": self.cx, "cy": self.cy,
            "T_world_cam": np.asarray(self.T_world_cam).tolist(), "near": self.near, "far": self.far,
            "distortion": None if self.distortion is None else self.distortion.to_dict(),
        }


@dataclass
class SceneData:
    """Everything nerfw needs to know about a dataset, independent of its on-disk format."""

    format: str  # "cambridge" | "7scenes" | "colmap" | "phototourism" | "llff" | "transforms"
    root: Path  # the scene folder
    cameras: list[CameraView]
    points: np.ndarray | None = None  # [N, 3] sparse SfM points, dataset frame
    point_colors: np.ndarray | None = None  # [N, 3] uint8
    points_origin: str = "sparse points"  # what the points are, for logs ("points triangulated from the photos")
    warnings: list[str] = field(default_factory=list)

    def split(self, name: str) -> list[CameraView]:
        return [c for c in self.cameras if c.split == name]

    def split_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for c in self.cameras:
            counts[c.split] = counts.get(c.split, 0) + 1
        return counts

    def to_json(self) -> dict:
        return {
            "format": self.format,
            "splits": self.split_counts(),
            "cameras": [c.to_json() for c in self.cameras],
            "warnings": list(self.warnings),
        }


@dataclass
class Normalization:
    """x_model = scale * rotation @ (x_dataset - center): a similarity transform (the only place that maps between
    the dataset frame and the model frame). ``rotation`` turns the dataset's axes into the model's (z up; see
    nerfw.data.orientation); the identity keeps the dataset's axes, as runs made before it did."""

    center: np.ndarray  # [3]
    scale: float
    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))  # [3, 3], rows = model axes in dataset coords

    def points_to_model(self, x: np.ndarray) -> np.ndarray:
        return ((np.asarray(x, dtype=np.float64) - self.center) @ self.rotation.T) * self.scale

    def points_to_dataset(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, dtype=np.float64) / self.scale) @ self.rotation + self.center

    def pose_to_model(self, T_world_cam: np.ndarray) -> np.ndarray:
        T = np.asarray(T_world_cam, dtype=np.float64).copy()
        T[:3, :3] = self.rotation @ T[:3, :3]
        T[:3, 3] = self.points_to_model(T[:3, 3])
        return T

    def pose_to_dataset(self, T_model_cam: np.ndarray) -> np.ndarray:
        T = np.asarray(T_model_cam, dtype=np.float64).copy()
        T[:3, :3] = self.rotation.T @ T[:3, :3]
        T[:3, 3] = self.points_to_dataset(T[:3, 3])
        return T

    def to_dict(self) -> dict:
        return {"center": [float(v) for v in self.center], "scale": float(self.scale),
                "rotation": [[float(v) for v in row] for row in self.rotation]}

    @classmethod
    def from_dict(cls, d: dict) -> "Normalization":
        rotation = np.asarray(d.get("rotation", np.eye(3)), dtype=np.float64).reshape(3, 3)
        return cls(center=np.asarray(d["center"], dtype=np.float64), scale=float(d["scale"]), rotation=rotation)

    @classmethod
    def fit(cls, scene: SceneData, target_radius: float = 1.0, method: str = "auto",
            scene_box: np.ndarray | None = None, orient: str = "auto") -> "Normalization":
        """Centre and scale so that the scene's content ball (nerfw.data.framing) becomes the ball of radius
        target_radius, the part of the model frame a scene contraction leaves uncontracted; axes turned by
        nerfw.data.orientation (``orient`` "none": the dataset's axes)."""

        framing = choose_framing(scene, method, scene_box)
        return cls.from_framing(framing, target_radius, orient_scene(scene, framing, orient).rotation)

    @classmethod
    def from_framing(cls, framing, target_radius: float = 1.0, rotation: np.ndarray | None = None
                     ) -> "Normalization":
        """The frame in which a framing's content ball (nerfw.data.framing.Framing) is the ball of target_radius,
        with the model axes ``rotation`` (rows in dataset coordinates; None: the dataset's axes)."""
        return cls(center=np.asarray(framing.center, dtype=np.float64), scale=target_radius / framing.radius,
                   rotation=np.eye(3) if rotation is None else np.asarray(rotation, dtype=np.float64))
