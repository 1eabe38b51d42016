"""Pictures of an evaluation: labelled per-image panels and a plot of how training went.

* :func:`labelled_panel`: ground truth | render | static | transient | depth | beta side by side, each tile
  named in a strip above it, the render's tile with the image's PSNR (Pillow's own default font; nothing is
  downloaded).
* :func:`read_loss_log`: the (step, loss, PSNR) of a run's ``loss_log.txt`` (lines
  ``step 50 loss -0.68 psnr 14.82 ...``; a resumed run's repeated steps keep the latest line).
* :func:`plot_training`: a PNG (matplotlib, no display needed) with training loss and PSNR over steps, the test
  mean PSNR at the evaluated step, and the test PSNR per image.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

PANEL_LABELS = ("ground truth", "render", "static", "transient", "depth", "beta")
LOG_LINE = re.compile(r"^step (\d+) loss (\S+) psnr (\S+)")


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1 with FreeType: a scalable built-in font
    except TypeError:
        return ImageFont.load_default()


def _fitting_font(texts: list[str], width: int, size: int):
    """The largest default font (<= size, >= 6) in which every text fits ``width`` pixels."""
    from PIL import Image, ImageDraw

    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    font = _font(size)
    while size > 6 and max(draw.textlength(t, font=font) for t in texts) > width:
        size -= 1
        font = _font(size)
    return font


def labelled_panel(tiles: list[np.ndarray], labels: list[str] | tuple[str, ...] = PANEL_LABELS,
                   psnr: float | None = None) -> np.ndarray:
    """Tiles (float [H, W, 3] in [0, 1], or uint8) side by side under a white strip naming each one; the
    second tile's label (the render) carries ``psnr`` in dB. Returns uint8 [H + strip, n W, 3]."""
    from PIL import Image, ImageDraw

    if len(tiles) != len(labels):
        raise ValueError(f"{len(tiles)} tiles but {len(labels)} labels")
    as_u8 = [t if t.dtype == np.uint8 else (np.clip(t, 0, 1) * 255 + 0.5).astype(np.uint8) for t in tiles]
    H, W = as_u8[0].shape[:2]
    texts = list(labels)
    if psnr is not None and len(texts) > 1:
        texts[1] = f"{texts[1]} {psnr:.2f} dB"
    font = _fitting_font(texts, W - 4, max(10, min(22, H // 8)))
    ascent, descent = font.getmetrics() if hasattr(font, "getmetrics") else (10, 2)
    strip = ascent + descent + 6
    canvas = Image.new("RGB", (W * len(tiles), H + strip), (255, 255, 255))
    canvas.paste(Image.fromarray(np.concatenate(as_u8, axis=1)), (0, strip))
    draw = ImageDraw.Draw(canvas)
    for k, text in enumerate(texts):
        draw.text((k * W + 3, 3), text, fill=(0, 0, 0), font=font)
        if k:
            draw.line([(k * W, 0), (k * W, strip - 1)], fill=(180, 180, 180))
    return np.asarray(canvas)


def read_loss_log(path: Path) -> dict[str, np.ndarray]:
    """{"step", "loss", "psnr"} arrays from a run's loss_log.txt (empty arrays when it has no step lines)."""
    by_step: dict[int, tuple[float, float]] = {}
    path = Path(path)
    if path.is_file():
        for line in path.read_text(errors="replace").splitlines():
            m = LOG_LINE.match(line)
            if m:
                try:
                    by_step[int(m.group(1))] = (float(m.group(2)), float(m.group(3)))
                except ValueError:
                    continue
    steps = np.array(sorted(by_step), dtype=np.int64)
    values = np.array([by_step[s] for s in steps], dtype=np.float64).reshape(-1, 2)
    return {"step": steps, "loss": values[:, 0], "psnr": values[:, 1]}


def plot_training(loss_log: Path, per_image: list[dict], out: Path, step: int | None = None,
                  split: str = "test") -> Path:
    """Write ``out`` (PNG): training loss and PSNR over steps from ``loss_log``, the split's mean PSNR at
    ``step``, and the PSNR of every image of ``per_image`` (rows with "name" and "psnr")."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    log = read_loss_log(loss_log)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), constrained_layout=True)
    ax_loss, ax_psnr, ax_img = axes
    if len(log["step"]):
        ax_loss.plot(log["step"], log["loss"], color="tab:red", lw=1.2)
        ax_psnr.plot(log["step"], log["psnr"], color="tab:blue", lw=1.2, label="train (batch)")
    else:
        for ax in (ax_loss, ax_psnr):
            ax.text(0.5, 0.5, f"no step lines in\n{Path(loss_log).name}", ha="center", va="center",
                    transform=ax.transAxes, color="grey")
    ax_loss.set(title="training loss", xlabel="step", ylabel="loss")
    psnrs = [float(r["psnr"]) for r in per_image]
    if psnrs and step is not None:
        ax_psnr.scatter([step], [np.mean(psnrs)], color="tab:orange", zorder=3, s=40,
                        label=f"{split} mean {np.mean(psnrs):.2f} dB")
    ax_psnr.set(title="PSNR over training", xlabel="step", ylabel="PSNR (dB)")
    if len(log["step"]) or psnrs:
        ax_psnr.legend(loc="lower right", fontsize=8)
    for ax in (ax_loss, ax_psnr):
        ax.grid(alpha=0.3)
    if psnrs:
        x = np.arange(len(psnrs))
        ax_img.bar(x, psnrs, color="tab:orange")
        ax_img.axhline(np.mean(psnrs), color="k", lw=1, ls="--", label=f"mean {np.mean(psnrs):.2f} dB")
        names = [Path(r["name"]).stem if len(per_image) > 12 else r["name"] for r in per_image]
        ax_img.set_xticks(x, names, rotation=60 if len(psnrs) > 4 else 0, ha="right" if len(psnrs) > 4 else "center",
                          fontsize=7 if len(psnrs) > 12 else 8)
        ax_img.legend(loc="upper right", fontsize=8)
        ax_img.set_ylim(0, max(psnrs) * 1.12)
    ax_img.set(title=f"{split} PSNR per image", ylabel="PSNR (dB)")
    ax_img.grid(alpha=0.3, axis="y")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
