"""Weight-space analysis: PCA of trajectories, 2-D loss surfaces, straight lines between models."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

from .data import Split
from .ensemble import Ensemble
from .train import evaluate


def pca_2d(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One PCA (scikit-learn, centred) fitted on ALL rows of `points` [M, P].

    Returns coords [M, 2], components [2, P] (orthonormal rows) and the
    explained variance ratio [2]. Fit it on the snapshots of every run
    together so the runs share axes.
    """
    from sklearn.decomposition import PCA

    pca = PCA(n_components=2, svd_solver="full").fit(points)
    return pca.transform(points), pca.components_, pca.explained_variance_ratio_


def filter_normalized_direction(ens: Ensemble, i: int, generator: torch.Generator) -> torch.Tensor:
    """A random direction [P] for member i, normalised filter by filter (Li et al. 2018).

    Each row of a weight matrix (one output unit; for a conv, one output
    filter) is Gaussian, rescaled to the norm of the same row of the
    weights. Biases get 0, as in the paper's default (`ignore biasbn`).
    """
    parts = []
    for name, p in ens.params.items():
        w = p[i].detach()
        d = torch.randn(w.shape, generator=generator, dtype=w.dtype).to(w.device)
        if w.dim() <= 1:
            d.zero_()
        else:
            wn = w.flatten(1).norm(dim=1, keepdim=True)
            dn = d.flatten(1).norm(dim=1, keepdim=True)
            d = (d.flatten(1) * wn / (dn + 1e-10)).view_as(w)
        parts.append(d.flatten())
    return torch.cat(parts)


def plane_grid(center: torch.Tensor, d1: torch.Tensor, d2: torch.Tensor, a: np.ndarray, b: np.ndarray
               ) -> torch.Tensor:
    """theta(a_j, b_k) = center + a_j d1 + b_k d2 for all grid points -> [len(b) * len(a), P]
    (row-major: b is the slow index, so reshape to [len(b), len(a)] for contour plots)."""
    A, B = np.meshgrid(a, b)
    A = torch.as_tensor(A.reshape(-1, 1), dtype=center.dtype, device=center.device)
    B = torch.as_tensor(B.reshape(-1, 1), dtype=center.dtype, device=center.device)
    return center + A * d1 + B * d2


def evaluate_points(build: Callable[[], nn.Module], template: Ensemble, thetas: torch.Tensor,
                    split: Split, group: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """Loss and accuracy [G] of G flat parameter vectors `thetas` [G, P] over the
    whole `split`, evaluated `group` points at a time as one vmapped ensemble
    (no Python loop over points or samples)."""
    losses, accs = [], []
    for s in range(0, len(thetas), group):
        state = template.unflatten(thetas[s:s + group])
        ens = Ensemble.from_stacked(build, state, thetas.device)
        loss, acc = evaluate(ens, split)
        losses.append(loss), accs.append(acc)
    return np.concatenate(losses), np.concatenate(accs)


def interpolate_flat(theta_a: torch.Tensor, theta_b: torch.Tensor, alphas: np.ndarray) -> torch.Tensor:
    """[A, P] rows (1 - alpha) theta_a + alpha theta_b for flat parameter vectors [P]."""
    al = torch.as_tensor(np.asarray(alphas), dtype=theta_a.dtype, device=theta_a.device).unsqueeze(1)
    return (1 - al) * theta_a + al * theta_b
