"""Open a trained run: its config, newest good checkpoint, model, normalisation and dataset."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from nerfw.data.dataset_options import load_from_args
from nerfw.data.scene import Normalization, SceneData
from nerfw.errors import NerfwError
from nerfw.model.nerfw_model import build_model
from nerfw.training.checkpoint import load_latest_checkpoint
from nerfw.training.config import Config


@dataclass
class Run:
    run_dir: Path
    cfg: Config
    model: torch.nn.Module
    normalization: Normalization
    image_names: list[str]
    step: int
    checkpoint: Path
    _scene: SceneData | None = None

    @property
    def scene(self) -> SceneData:
        """The run's dataset, read again with the run's options (lazily)."""
        if self._scene is None:

            self._scene = load_from_args(self.cfg.train)
            names = [c.name for c in self._scene.cameras]
            if names != self.image_names:
                raise NerfwError(f"{self._scene.root}: the dataset's images no longer match the run "
                                 f"({len(names)} images now, {len(self.image_names)} at training time)")
        return self._scene

    def image_id(self, name_or_index: str | int) -> int:
        if isinstance(name_or_index, int) or str(name_or_index).isdigit():
            idx = int(name_or_index)
            if not 0 <= idx < len(self.image_names):
                raise NerfwError(f"image id {idx} out of range (the run has {len(self.image_names)} images)")
            return idx
        if name_or_index in self.image_names:
            return self.image_names.index(name_or_index)
        raise NerfwError(f"no image named '{name_or_index}' in the run")


def load_run(run_dir: str | Path, device: str = "cpu") -> Run:

    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise NerfwError(f"{run_dir}: not a nerfw run folder (no config.json)")
    found = load_latest_checkpoint(run_dir)
    if found is None:
        raise NerfwError(f"{run_dir}: no readable checkpoint in {run_dir / 'checkpoints'}")
    path, state = found
    cfg = Config.from_dict(state["config"], source=str(path))
    names = list(state["image_names"])
    model = build_model(cfg.model, n_images=len(names))
    model.load_state_dict(state["model"])
    model.to(device).eval()
    return Run(run_dir, cfg, model, Normalization.from_dict(state["normalization"]), names, int(state["step"]), path)
