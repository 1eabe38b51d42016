"""Image metrics. PSNR by definition; SSIM from scikit-image (Wang et al. 2004, 7x7 Gaussian-free default
window as skimage implements it); no LPIPS: its backbone weights would have to be downloaded, so evaluation reports it as null (never faked)."""
from __future__ import annotations

import numpy as np


def psnr(image: np.ndarray, reference: np.ndarray) -> float:
    """PSNR in dB of float images in [0, 1]: -10 log10(mean squared error)."""
    mse = float(np.mean((np.asarray(image, np.float64) - np.asarray(reference, np.float64)) ** 2))
    return float("inf") if mse == 0 else -10.0 * np.log10(mse)


def ssim(image: np.ndarray, reference: np.ndarray) -> float:
    """Mean SSIM over an RGB image pair in [0, 1] (scikit-image)."""
    from skimage.metrics import structural_similarity

    image = np.asarray(image, np.float64)
    reference = np.asarray(reference, np.float64)
    side = min(image.shape[:2])
    win = 7 if side >= 7 else max(3, side - (1 - side % 2))  # skimage needs an odd window <= the image side
    return float(structural_similarity(image, reference, channel_axis=-1, data_range=1.0, win_size=win))


def mask_iou(predicted: np.ndarray, truth: np.ndarray) -> float | None:
    """Intersection over union of two boolean masks; None when both are empty."""
    p, t = np.asarray(predicted, bool), np.asarray(truth, bool)
    union = np.logical_or(p, t).sum()
    return None if union == 0 else float(np.logical_and(p, t).sum() / union)
