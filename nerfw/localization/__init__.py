"""Visual localization with a trained NeRF-W as the map (`nerfw localize`).

Structure-based, without learned weights: SIFT keypoints of the map images (pycolmap, CPU) get 3-D points from
the model's rendered static depth along exactly their rays; a query is matched to the top-k images of a VLAD
retrieval over RootSIFT, its pose solved by LO-RANSAC PnP + non-linear refinement (pycolmap), then refined by
rendering the model at the estimate and matching the query to the render. See docs/localization.md.

Modules: features (images, SIFT, matching), retrieval (VLAD), mapping (the map and its cache), pose (PnP, errors,
recall), refine (render-and-match), queries (what to localize), outputs (files), cli (the command).
"""
from nerfw.errors import ConfigError, NerfwError


class LocalizationError(NerfwError):
    """A localization input problem, reported as one line."""


class ImageError(LocalizationError):
    """An image file that cannot be read."""


class IntrinsicsError(ConfigError):
    """Query images whose camera intrinsics are unknown."""
