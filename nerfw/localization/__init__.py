"""Visual localization with a trained NeRF-W as the map (`nerfw localize`).

Structure-based, without learned weights: SIFT keypoints of the map images (pycolmap, CPU) get 3-D points from
the model's rendered static depth along exactly their rays; a query is matched to the top-k images of a VLAD
retrieval over RootSIFT, its pose solved by LO-RANSAC PnP + non-linear refinement (pycolmap), then refined by
rendering the model at the estimate and matching the query to the render. See docs/localization.md.

Modules: retrieval (VLAD), mapping (the map and its cache), pose (PnP, errors, recall), refine (render-and-match),
queries (what to localize), outputs (files), cli (the command). Images, SIFT and matching are nerfw.data.features
(framing uses them too).
"""
from nerfw.errors import ConfigError, ImageError, NerfwError


class LocalizationError(NerfwError):
    """A localization input problem, reported as one line."""


class IntrinsicsError(ConfigError):
    """Query images whose camera intrinsics are unknown."""


__all__ = ["ImageError", "IntrinsicsError", "LocalizationError"]  # ImageError is nerfw.errors' (data reads images too)
