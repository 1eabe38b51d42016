"""One entry point for every dataset: `load_scene` recognises the format and dispatches to its parser."""
from __future__ import annotations

from pathlib import Path

from nerfw.data.parsers import colmap, phototourism
from nerfw.data.parsers.cambridge import load_cambridge
from nerfw.data.parsers.colmap import load_colmap
from nerfw.data.parsers.llff import load_llff
from nerfw.data.parsers.phototourism import load_phototourism
from nerfw.data.parsers.sevenscenes import load_sevenscenes
from nerfw.data.parsers.transforms import load_transforms
from nerfw.data.scene import SceneData
from nerfw.errors import DatasetError

FORMATS = ("cambridge", "7scenes", "colmap", "phototourism", "llff", "transforms")
# What auto-detection looks for, in order (also the text of the error when nothing matches).
DETECTION = (
    ("cambridge", "dataset_train.txt / dataset_test.txt"),
    ("7scenes", "TrainSplit.txt / TestSplit.txt, or frame-XXXXXX.pose.txt files (in seq-XX/ or the folder)"),
    ("llff", "poses_bounds.npy"),
    ("transforms", "transforms.json / transforms_train.json"),
    ("phototourism", "<scene>.tsv beside a COLMAP model"),
    ("colmap", "cameras/images(.bin|.txt) in any subfolder"),
)


def scene_folder(data_root_dir, scene: str | None) -> Path:
    root = Path(data_root_dir).expanduser()
    folder = root / scene if scene else root
    if not folder.is_dir():
        raise DatasetError(folder, "expected a dataset folder (not found)")
    return folder.resolve()


def _has_7scenes_frames(root: Path) -> bool:
    if any(root.glob("frame-*.pose.txt")):
        return True
    return any(any(p.glob("frame-*.pose.txt")) for p in root.glob("seq-*") if p.is_dir())


def detect_format(root: Path) -> str:
    """The format of a scene folder, from the files it holds."""

    if (root / "dataset_train.txt").is_file() or (root / "dataset_test.txt").is_file():
        return "cambridge"
    if (root / "TrainSplit.txt").is_file() or (root / "TestSplit.txt").is_file():
        return "7scenes"
    if (root / "poses_bounds.npy").is_file():
        return "llff"
    if (root / "transforms.json").is_file() or any((root / f"transforms_{s}.json").is_file()
                                                    for s in ("train", "val", "test")):
        return "transforms"
    if _has_7scenes_frames(root):
        return "7scenes"
    if colmap.find_model_dir(root) is not None:
        return "phototourism" if phototourism.find_tsv(root) else "colmap"
    looked = "; ".join(f"{name}: {what}" for name, what in DETECTION)
    raise DatasetError(root, f"unknown dataset layout; looked for {looked}")


def load_scene(data_root_dir, scene: str | None = None, dataset: str = "auto", img_downscale: float = 1,
               focal: float | None = None, sevenscenes_focal: float = 525.0, test_every: int = 8) -> SceneData:
    """Read the scene folder data_root_dir/scene (or data_root_dir itself when scene is None or "").

    dataset: "auto" (recognise from the files; the choice is SceneData.format) or one of FORMATS.
    img_downscale N: images become round(W/N) x round(H/N); intrinsics scale by the actual size ratio.
    focal: Cambridge focal (pixels at the files' resolution) when there is no reconstruction.nvm; it
    overrides the NVM's when given. sevenscenes_focal: 525 (colour camera, default) or 585 (depth camera).
    test_every: COLMAP / LLFF / single transforms.json hold out every test_every-th image as test.
    """
    root = scene_folder(data_root_dir, scene)
    fmt = detect_format(root) if dataset in ("auto", "", None) else dataset
    if fmt not in FORMATS:
        raise DatasetError(root, f"unknown --dataset {dataset!r}; expected auto or one of {', '.join(FORMATS)}")
    if fmt == "cambridge":
        return load_cambridge(root, img_downscale, focal=focal)
    if fmt == "7scenes":
        return load_sevenscenes(root, img_downscale, focal=sevenscenes_focal, test_every=test_every)
    if fmt == "colmap":
        return load_colmap(root, img_downscale, test_every=test_every)
    if fmt == "phototourism":
        return load_phototourism(root, img_downscale)
    if fmt == "llff":
        return load_llff(root, img_downscale, test_every=test_every)
    return load_transforms(root, img_downscale, test_every=test_every)
