"""Image retrieval without learned weights: VLAD over RootSIFT with a vocabulary fitted on the map.

VLAD (Jegou et al. 2010, with the intra-normalisation of Arandjelovic & Zisserman 2013): each descriptor is
assigned to its nearest of K centres; per centre the residuals are summed, each block L2-normalised
(intra-normalisation), the vector signed-square-rooted (power normalisation) and L2-normalised. Images are
compared by the dot product of their vectors. The centres are k-means (k-means++ seeding, Lloyd iterations,
fixed seed) over a subsample of the map's descriptors.
"""
from __future__ import annotations

import numpy as np
import torch

DEFAULT_CLUSTERS = 64
MAX_TRAIN_DESCRIPTORS = 60_000
KMEANS_ITERATIONS = 15


def fit_vocabulary(descriptors: np.ndarray, k: int = DEFAULT_CLUSTERS, seed: int = 0,
                   iterations: int = KMEANS_ITERATIONS) -> np.ndarray:
    """k-means centres [k, D] of unit descriptors [N, D] (a fixed-seed subsample of at most 60 000)."""
    rng = np.random.default_rng(seed)
    x = np.asarray(descriptors, np.float32)
    if len(x) > MAX_TRAIN_DESCRIPTORS:
        x = x[rng.choice(len(x), MAX_TRAIN_DESCRIPTORS, replace=False)]
    k = max(1, min(k, len(x)))
    X = torch.from_numpy(np.ascontiguousarray(x))
    # k-means++ seeding
    centres = [X[int(rng.integers(len(X)))]]
    d2 = ((X - centres[0]) ** 2).sum(1)
    for _ in range(1, k):
        p = (d2 / d2.sum().clamp_min(1e-12)).numpy().astype(np.float64)
        p /= p.sum()
        c = X[int(rng.choice(len(X), p=p))]
        centres.append(c)
        d2 = torch.minimum(d2, ((X - c) ** 2).sum(1))
    C = torch.stack(centres)
    for _ in range(iterations):
        assign = torch.cdist(X, C).argmin(1)
        sums = torch.zeros_like(C).index_add_(0, assign, X)
        counts = torch.bincount(assign, minlength=k).float()[:, None]
        C = torch.where(counts > 0, sums / counts.clamp_min(1.0), C)
    return C.numpy()


def vlad(descriptors: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """The VLAD vector [k * D] (unit norm; zeros for an image without descriptors)."""
    k, dim = centres.shape
    if len(descriptors) == 0:
        return np.zeros(k * dim, np.float32)
    X, C = torch.from_numpy(np.ascontiguousarray(descriptors, np.float32)), torch.from_numpy(centres)
    assign = torch.cdist(X, C).argmin(1)
    v = torch.zeros_like(C).index_add_(0, assign, X - C[assign])  # [k, D] summed residuals
    v = v / v.norm(dim=1, keepdim=True).clamp_min(1e-12)  # intra-normalisation
    v = v.flatten()
    v = torch.sign(v) * torch.sqrt(v.abs())  # power normalisation
    return (v / v.norm().clamp_min(1e-12)).numpy().astype(np.float32)


def top_k(query: np.ndarray, database: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices [k], similarities [k]) of the k database vectors [M, k*D] most similar to query [k*D]."""
    sims = database @ query
    order = np.argsort(-sims, kind="stable")[:k]
    return order, sims[order]
