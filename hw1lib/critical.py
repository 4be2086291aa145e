"""Near-zero-gradient points of many small nets at once (section 1-2c).

Phase 1 trains each net on the loss L; phase 2 changes the objective to
||grad L||^2 and minimises it with Levenberg-Marquardt until the TRUE
gradient norm ||grad L|| (of the original full-batch loss) is below a
tolerance. LM is the textbook minimiser of a sum of squares: here the
residual is g = grad L, whose Jacobian is the exact Hessian H, cheap at
~100 parameters. Plain gradient descent on ||g||^2 (the usual choice)
moves along H g and stalls where H is ill-conditioned.
Everything is vmapped over the runs; theta is [N, P], float64.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch.func import grad, vmap
from tqdm.auto import tqdm

from .curvature import hessian


def minimize_grad_norm(f: Callable[[torch.Tensor], torch.Tensor], theta: torch.Tensor, *,
                       tol: float, max_iters: int = 200, progress: bool = False
                       ) -> dict[str, torch.Tensor]:
    """Minimise ||grad f||^2 for every row of theta [N, P] until ||grad f|| < tol.

    Runs that reach the tolerance stop moving. Returns theta [N, P] (a new
    tensor), grad_norm [N], reached [N] bool, and trace [iters + 1, N], the
    true gradient norm after each iteration.
    """
    g_fn = vmap(grad(f))
    theta = theta.detach().clone()
    N, P = theta.shape
    eye = torch.eye(P, dtype=theta.dtype, device=theta.device)
    g_all = g_fn(theta)                          # kept up to date: never recomputed at an unchanged point
    gn = g_all.norm(dim=1)
    mu = torch.full((N,), float("nan"), dtype=theta.dtype, device=theta.device)
    trace = [gn.clone()]
    bar = tqdm(range(max_iters), desc="min ||grad L||^2", disable=not progress, leave=False)
    for _ in bar:
        # Only runs still above the tolerance are computed: the cost falls as they converge.
        idx = (gn >= tol).nonzero().squeeze(1)
        if len(idx) == 0:
            break
        th, g = theta[idx], g_all[idx]
        H = hessian(f, th)
        HH = H @ H
        m = mu[idx]
        m = torch.where(torch.isnan(m), 1e-3 * HH.diagonal(dim1=1, dim2=2).mean(1).clamp_min(1e-12), m)
        rhs = (H @ g.unsqueeze(-1)).squeeze(-1)                   # H g = (1/2) grad ||g||^2
        # A few damping levels per iteration, so a rejected step costs no Hessian;
        # each try evaluates only the runs still waiting for an accepted step.
        pending = torch.arange(len(idx), device=theta.device)
        for _try in range(4):
            step = -torch.linalg.solve(HH[pending] + m[pending, None, None] * eye,
                                       rhs[pending].unsqueeze(-1)).squeeze(-1)
            cand = th[pending] + step
            g_new = g_fn(cand)
            gn_new = g_new.norm(dim=1)
            ok = torch.isfinite(gn_new) & (gn_new < gn[idx[pending]])
            done = pending[ok]
            th[done], g[done] = cand[ok], g_new[ok]
            gn[idx[done]] = gn_new[ok]
            m[pending] = torch.where(ok, m[pending] * 0.3, m[pending] * 10).clamp(1e-15, 1e15)
            pending = pending[~ok]
            if len(pending) == 0:
                break
        theta[idx], g_all[idx], mu[idx] = th, g, m
        trace.append(gn.clone())
        bar.set_postfix(reached=int((gn < tol).sum()), max_gn=f"{gn.max().item():.1e}")
    return {"theta": theta, "grad_norm": gn, "reached": gn < tol, "trace": torch.stack(trace)}


def hessian_spectrum(f: Callable[[torch.Tensor], torch.Tensor], theta: torch.Tensor) -> torch.Tensor:
    """Eigenvalues (ascending) of the full Hessian of f at every row of theta [N, P] -> [N, P].
    `eigvalsh`, since a Hessian is symmetric (general `eig` can return complex noise)."""
    H = hessian(f, theta)
    return torch.linalg.eigvalsh((H + H.transpose(1, 2)) / 2)
