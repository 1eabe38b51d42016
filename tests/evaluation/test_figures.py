"""Labelled evaluation panels and the training / test plot (nerfw/evaluation/figures.py)."""
from __future__ import annotations

import numpy as np
import pytest

from nerfw.evaluation.figures import PANEL_LABELS, labelled_panel, plot_training, read_loss_log


@pytest.mark.parametrize("size", [(45, 80), (270, 480)])
def test_labelled_panel_keeps_the_tiles_and_adds_labels(size):
    H, W = size
    rng = np.random.default_rng(0)
    tiles = [rng.random((H, W, 3)) for _ in PANEL_LABELS]
    panel = labelled_panel(tiles, psnr=23.4)
    strip = panel.shape[0] - H
    assert panel.dtype == np.uint8 and panel.shape[1] == 6 * W and 8 <= strip <= 40
    expected = (np.clip(np.concatenate(tiles, axis=1), 0, 1) * 255 + 0.5).astype(np.uint8)
    assert np.array_equal(panel[strip:], expected)  # the images themselves untouched
    for k in range(6):  # every tile has dark text on its white strip
        label = panel[:strip, k * W + 1:(k + 1) * W - 1]
        assert (label.min(axis=-1) < 100).sum() > 10, f"no text over tile {k} ({PANEL_LABELS[k]})"


def test_psnr_is_written_on_the_render_label():
    tiles = [np.zeros((60, 120, 3))] * 6
    with_psnr, without = labelled_panel(tiles, psnr=31.25), labelled_panel(tiles)
    strip = with_psnr.shape[0] - 60
    ink = lambda p, k: int((p[:strip, k * 120:(k + 1) * 120].min(-1) < 100).sum())  # noqa: E731
    assert ink(with_psnr, 1) > ink(without, 1) + 20 and ink(with_psnr, 0) == ink(without, 0)


def test_read_loss_log(tmp_path):
    log = tmp_path / "loss_log.txt"
    log.write_text("training grid field on ...\nframing: points ...\n"
                   "step 50 loss -0.68 psnr 14.82 lr 1e-2 beta 0.1\nstep 100 loss -0.9 psnr 16.5 lr 1e-2\n"
                   "resumed from step 50\nstep 100 loss -1.0 psnr 17.0 lr 1e-2\nstep 150 loss nan psnr nan\n")
    got = read_loss_log(log)
    assert got["step"].tolist() == [50, 100, 150]
    assert got["psnr"][1] == 17.0 and got["loss"][0] == -0.68 and np.isnan(got["psnr"][2])
    assert len(read_loss_log(tmp_path / "missing.txt")["step"]) == 0


def test_plot_training_writes_a_png(tmp_path):
    from PIL import Image

    log = tmp_path / "loss_log.txt"
    log.write_text("".join(f"step {s} loss {1 / s:.4f} psnr {10 + s / 50:.2f}\n" for s in range(50, 1001, 50)))
    rows = [{"name": f"seq1/frame{i:05d}.png", "psnr": 18.0 + i} for i in range(5)]
    out = plot_training(log, rows, tmp_path / "plots" / "training.png", step=1000)
    image = np.asarray(Image.open(out).convert("RGB"))
    assert image.shape[0] > 300 and image.shape[1] > 1000 and image.std() > 10
    empty = plot_training(tmp_path / "none.txt", [], tmp_path / "empty.png")  # no log, no images: still a PNG
    assert Image.open(empty).size[0] > 1000


def test_nerfw_eval_writes_labelled_panels_and_the_plot(tiny_run, tmp_path, capsys):
    from PIL import Image

    from nerfw.cli import main

    out = tmp_path / "eval"
    assert main(["eval", "--run", str(tiny_run), "--max_images", "1", "--fit_steps", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"panels (ground truth | render | static | transient | depth | beta, labelled): {out / 'panels'}" in printed
    assert f"{out / 'plots.png'}" in printed
    panel = np.asarray(Image.open(next((out / "panels").rglob("*.png"))))
    assert panel.shape[1] == 6 * 80 and panel.shape[0] > 45  # the tiny scene's 80x45 tiles under a label strip
    assert Image.open(out / "plots.png").size[0] > 1000
    import json

    assert json.loads((out / "metrics.json").read_text())["figures"]["plot"] == str(out / "plots.png")
