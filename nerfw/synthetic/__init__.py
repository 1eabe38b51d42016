"""Built-in synthetic "wild" scene: an analytically ray-traced town square (Cambridge layout) or room
(7-Scenes layout) with per-image appearance and transient occluders, plus exact ground truth; and the
"collection" preset: a landmark's internet photo collection (per-photo cameras and lens distortion, far
photos, sky-dominated framings) as a COLMAP model.

See docs/synthetic_scene.md. Entry points: :func:`generate_scene`, :class:`GroundTruth`, `nerfw make-scene`.
"""
from nerfw.synthetic.generate import generate_scene
from nerfw.synthetic.groundtruth import GroundTruth

__all__ = ["generate_scene", "GroundTruth"]
