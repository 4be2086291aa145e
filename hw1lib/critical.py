"""Near-zero-gradient points and critical points of many small nets at once (section 1-2c).

Three methods, all batched over runs (theta is [N, P], float64), compared on a
landscape whose critical points are known:
- `minimize_grad_norm`, the assignment's method: minimise ||grad L||^2 with
  Levenberg-Marquardt (the residual is g = grad L, whose Jacobian is the exact
  Hessian H) until the TRUE full-batch ||grad L|| is below a tolerance. Plain
  gradient descent on ||g||^2 (the usual choice) moves along H g and stalls
  where H is ill-conditioned.
- `refine_critical`, a descent method on L itself (exact trust-region Newton
  steps in H's eigenbasis): it accepts only steps that lower L, so it is drawn
  to minima and finds no saddle (the oracle shows it).
- `newton_mr`, Newton-MR as Frye et al. (2021) ran it: MINRES-QLP's inexact
  solve of H p = -g (`mr_direction`) and a backtracking line search on
  ||grad L||^2; every critical point attracts it, and it records how far each
  run moved from its start.

Any method whose merit is ||grad L|| can stop where H g = 0 with g != 0 (g in
H's near-null space): the gradient-flat regions of Frye et al. (2021), not
critical points. `endpoint_spectrum` measures ||H g|| / (||H|| ||g||), beside
the same ratio for random directions (its null), and `classify` sorts end
points into critical, gradient-flat and not converged; `trivial` marks the
critical points where a net predicts a constant; `resolved_spectrum` counts
only the eigenvalues the residual gradient cannot flip. `linear_autoencoder`
and `linear_autoencoder_critical_points` are the analytic oracle (Baldi and
Hornik 1989) the methods are tested on.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from .curvature import hessian, loss_and_grad
from .headline import correlation, rnd, rounded
from .stats import proportion_ci, spearman_ci


def minimize_grad_norm(f: Callable[[torch.Tensor], torch.Tensor], theta: torch.Tensor, *,
                       tol: float, max_iters: int = 200, progress: bool = False
                       ) -> dict[str, torch.Tensor]:
    """Minimise ||grad f||^2 for every row of theta [N, P] until ||grad f|| < tol.

    Runs that reach the tolerance stop moving. Returns theta [N, P] (a new
    tensor), grad_norm [N], reached [N] bool, and trace [iters + 1, N], the
    true gradient norm after each iteration.
    """
    theta = theta.detach().clone()
    N, P = theta.shape
    eye = torch.eye(P, dtype=theta.dtype, device=theta.device)
    g_all = loss_and_grad(f, theta)[1]           # kept up to date: never recomputed at an unchanged point
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
            g_new = loss_and_grad(f, cand)[1]
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


def _trust_region_step(lam: torch.Tensor, c: torch.Tensor, radius: torch.Tensor) -> torch.Tensor:
    """Exact trust-region step in the eigenbasis (rows = runs): minimise
    c.d + d.diag(lam).d / 2 subject to ||d|| <= radius. The Newton step when H is
    positive definite and the step fits; otherwise d = -c / (lam + mu) with the
    smallest mu > max(0, -lam_min) that fits (found by bisection on the secular
    equation; the measure-zero 'hard case' is ignored)."""
    newton = -c / lam
    use_newton = (lam[:, 0] > 0) & (newton.norm(dim=1) <= radius)
    lo = (-lam[:, 0]).clamp_min(0) * (1 + 1e-12) + torch.finfo(lam.dtype).tiny
    hi = lo + c.norm(dim=1) / radius + torch.finfo(lam.dtype).tiny   # ||d(hi)|| <= radius
    for _ in range(100):
        mid = (lo + hi) / 2
        big = (c / (lam + mid[:, None])).norm(dim=1) > radius
        lo, hi = torch.where(big, mid, lo), torch.where(big, hi, mid)
    return torch.where(use_newton[:, None], newton, -c / (lam + hi[:, None]))


FLAT = 1e-9   # relative |lambda| below which a direction is flat: no step along it while the
              # gradient along the other directions is larger


def refine_critical(f: Callable[[torch.Tensor], torch.Tensor], theta: torch.Tensor, *, tol: float = 1e-8,
                    max_iters: int = 300, checkpoints: tuple[float, ...] = (), progress: bool = False
                    ) -> dict[str, torch.Tensor]:
    """Trust-region Newton on L itself, for every row of theta [N, P], until the
    true ||grad L|| <= tol (those runs stop moving) or max_iters.

    A step is accepted when L falls by at least a tenth of what the quadratic model
    predicts (or, where rounding hides L's change, when L and ||g|| both fall).
    Returns theta, grad_norm [N], loss [N], reached [N] bool, trace [iters + 1, N]
    (||g||), loss_trace [iters + 1, N], and for every tolerance t in `checkpoints`
    the spectrum at the first iterate with ||g|| <= t: `spectrum_at` [T, N, P] and
    `grad_norm_at` [T, N] (NaN where a run never got there).
    """
    theta = theta.detach().clone()
    N, P = theta.shape
    radius = torch.ones(N, dtype=theta.dtype, device=theta.device)
    L, g = loss_and_grad(f, theta)
    gn = g.norm(dim=1)
    nan = float("nan")
    spectrum_at = torch.full((len(checkpoints), N, P), nan, dtype=theta.dtype, device=theta.device)
    grad_norm_at = torch.full((len(checkpoints), N), nan, dtype=theta.dtype, device=theta.device)
    trace, loss_trace = [gn.clone()], [L.clone()]
    # The spectrum of each run's current point, kept while a run's steps are
    # rejected (its point does not move): about a third of all iterations.
    lam_at = torch.zeros(N, P, dtype=theta.dtype, device=theta.device)
    V_at = torch.zeros(N, P, P, dtype=theta.dtype, device=theta.device)
    known = torch.zeros(N, dtype=torch.bool, device=theta.device)

    def record(idx, lam):
        for k, t in enumerate(checkpoints):
            new = (gn[idx] <= t) & torch.isnan(grad_norm_at[k, idx])
            spectrum_at[k, idx[new]], grad_norm_at[k, idx[new]] = lam[new], gn[idx[new]]

    bar = tqdm(range(max_iters + 1), desc="refine: Newton on L", disable=not progress, leave=False)
    for it in bar:
        # Spectra at every run still moving, and once at each checkpoint a run has just passed.
        need = gn > tol
        for k, t in enumerate(checkpoints):
            need |= (gn <= t) & torch.isnan(grad_norm_at[k])
        idx = need.nonzero().squeeze(1)
        if len(idx) == 0:
            break
        new = idx[~known[idx]]
        if len(new):
            H = hessian(f, theta[new])
            lam_at[new], V_at[new] = torch.linalg.eigh((H + H.transpose(1, 2)) / 2)
            known[new] = True
        lam, V = lam_at[idx], V_at[idx]
        record(idx, lam)
        move = gn[idx] > tol
        if it == max_iters or not move.any():
            break
        idx, lam, V = idx[move], lam[move], V[move]
        c = (V.transpose(1, 2) @ g[idx].unsqueeze(-1)).squeeze(-1)
        flat = lam.abs() <= FLAT * lam.abs().amax(1, keepdim=True)
        c_steep = torch.where(flat, torch.zeros_like(c), c)
        # No step along flat directions, unless most of the gradient left lies along them
        # (then nothing else would lower ||g||).
        along_flat = (c - c_steep).norm(dim=1) > c_steep.norm(dim=1)
        c = torch.where(along_flat[:, None], c, c_steep)
        dc = _trust_region_step(lam, c, radius[idx])
        predicted = (c * dc).sum(1) + 0.5 * (lam * dc * dc).sum(1)           # < 0
        cand = theta[idx] + (V @ dc.unsqueeze(-1)).squeeze(-1)
        L_new, g_new = loss_and_grad(f, cand)
        gn_new = g_new.norm(dim=1)
        rho = (L_new - L[idx]) / predicted
        ok = torch.isfinite(gn_new) & ((rho > 0.1) | ((L_new <= L[idx]) & (gn_new < gn[idx])))
        step = dc.norm(dim=1)
        # Shrinking to step / 8 on a poor model (not the textbook step / 4) keeps the runs in
        # 1-2c's curved valleys: 30 of its runs reached 1e-8 in a quarter fewer iterations in all.
        radius[idx] = torch.where(rho > 0.75, torch.maximum(radius[idx], 2 * step),
                                  torch.where(rho < 0.25, step / 8, radius[idx])).clamp(1e-12, 1e3)
        done = idx[ok]
        theta[done], L[done], g[done], gn[done] = cand[ok], L_new[ok], g_new[ok], gn_new[ok]
        known[done] = False
        trace.append(gn.clone())
        loss_trace.append(L.clone())
        bar.set_postfix(reached=int((gn <= tol).sum()), median_gn=f"{gn.median().item():.1e}")
    return {"theta": theta, "grad_norm": gn, "loss": L, "reached": gn <= tol, "trace": torch.stack(trace),
            "loss_trace": torch.stack(loss_trace), "spectrum_at": spectrum_at, "grad_norm_at": grad_norm_at}


def resolved_spectrum(eigenvalues, grad_norm, factor: float = 1e3) -> dict:
    """Counts of eigenvalues the residual gradient cannot flip. At distance d from a
    critical point, g ~ H d and an eigenvalue moves by about ||third derivative|| * d;
    we call an eigenvalue resolved when |lambda| > factor * ||g|| and count the rest
    as near-zero. eigenvalues [..., P], grad_norm [...]. Returns negative, near_zero,
    positive counts [...] and the resolved ratio positive / (positive + negative)
    (NaN where nothing is resolved), next to the raw ratio (fraction > 0)."""
    ev = np.asarray(eigenvalues, dtype=float)
    cut = factor * np.asarray(grad_norm, dtype=float)[..., None]
    neg, pos = (ev < -cut).sum(-1), (ev > cut).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(neg + pos > 0, pos / np.maximum(neg + pos, 1), np.nan)
    return {"negative": neg, "near_zero": ev.shape[-1] - neg - pos, "positive": pos, "resolved_ratio": ratio,
            "raw_ratio": (ev > 0).mean(-1)}


# ------------------------------------------------------------------ Newton-MR (Roosta et al.; Frye et al. 2021)
LEVELS = 4       # line-search step lengths tried at once per run
ACONDLIM = 1e7   # the MR step leaves out Krylov directions whose curvature is below 1/ACONDLIM of the largest
                 # (Frye et al.'s MINRES-QLP stops at that condition estimate)


def mr_direction(H: torch.Tensor, g: torch.Tensor, k: int = 25, acondlim: float = ACONDLIM) -> torch.Tensor:
    """The Newton-MR direction of every row: the minimum-length least-squares solution of H p = -g within
    the Krylov subspace K_k(H, g), which is what MINRES-QLP returns after k iterations (Frye et al. ran
    k <= 25). H [n, P, P] symmetric, g [n, P] -> p [n, P]. Lanczos with full reorthogonalisation builds an
    orthonormal basis Q of K_k and T = Q^T H Q (with the next basis vector's row); the small problem
    min ||beta e_1 - T y|| is solved by the pseudo-inverse, leaving out singular values below 1/acondlim of
    the largest. With k = P (or once the space stops growing) and acondlim large, p = -H^+ g."""
    n, P = g.shape
    k = min(k, P)
    beta = g.norm(dim=1).clamp_min(torch.finfo(g.dtype).tiny)
    Q = torch.zeros(n, k + 1, P, dtype=g.dtype, device=g.device)
    T = torch.zeros(n, k + 1, k, dtype=g.dtype, device=g.device)
    Q[:, 0] = -g / beta[:, None]
    scale = H.abs().amax((1, 2)).clamp_min(torch.finfo(g.dtype).tiny)
    for j in range(k):
        w = (H @ Q[:, j, :, None]).squeeze(-1)
        for _ in range(2):                        # Gram-Schmidt twice: the basis stays orthonormal to rounding
            c = (Q[:, :j + 1] @ w[..., None]).squeeze(-1)
            w = w - (c[:, None, :] @ Q[:, :j + 1]).squeeze(1)
            T[:, :j + 1, j] += c
        b = w.norm(dim=1)
        grows = b > 1e-12 * scale                 # else K_k has stopped growing: no further direction
        T[:, j + 1, j] = torch.where(grows, b, 0.0)
        Q[:, j + 1] = torch.where(grows[:, None], w / b.clamp_min(torch.finfo(g.dtype).tiny)[:, None], 0.0)
    rhs = torch.zeros(n, k + 1, 1, dtype=g.dtype, device=g.device)
    rhs[:, 0, 0] = beta
    y = torch.linalg.pinv(T, rtol=1.0 / acondlim) @ rhs
    return (y.transpose(1, 2) @ Q[:, :k]).squeeze(1)


def newton_mr(f: Callable[[torch.Tensor], torch.Tensor], theta: torch.Tensor, *, tol: float = 1e-8,
              max_iters: int = 200, krylov: int = 25, rho: float = 1e-4, beta: float = 0.5, halvings: int = 32,
              radius: float | None = None, checkpoints: tuple[float, ...] = (), progress: bool = False,
              desc: str = "Newton-MR") -> dict[str, torch.Tensor]:
    """Newton-MR on grad L = 0 (Roosta et al. 2018), as Frye et al. (2021) ran it, for every row of theta
    [N, P], until the true ||grad L|| <= tol (those runs stop moving), the line search finds no acceptable
    step (the run stalls there) or max_iters.

    Each iteration forms the exact Hessian H, takes the MR direction p (`mr_direction`: MINRES-QLP's
    inexact solve of H p = -g in `krylov` Krylov steps) and a backtracking line search on ||grad L||^2:
    the largest alpha = alpha_0 beta^j (j < halvings) with ||g(theta + alpha p)||^2 <= ||g||^2 + 2 rho alpha
    <H p, g> (sufficient decrease). alpha_0 starts at 1 and is the last accepted alpha / beta after each
    step (at most 1). radius: a trust region on the distance from the start (candidates farther are
    rejected; None: none, as Frye et al.).

    Returns theta [N, P], loss [N], grad [N, P], grad_norm [N], reached [N] bool, stalled [N] bool, trace
    [iters + 1, N] (||grad L|| after each iteration), distance [N] (||theta_end - theta_start||),
    start_loss [N], and for every tolerance t in `checkpoints` the Hessian spectrum at the first iterate
    with tol < ||grad L|| <= t: spectrum_at [T, N, P], grad_norm_at [T, N] (NaN where a run had none).
    """
    start = theta.detach().clone()
    theta = start.clone()
    N, P = theta.shape
    dev, dt = theta.device, theta.dtype
    L, g = loss_and_grad(f, theta)
    L0 = L.clone()
    gn = g.norm(dim=1)
    alpha0 = torch.ones(N, dtype=dt, device=dev)
    stalled = torch.zeros(N, dtype=torch.bool, device=dev)
    levels = beta ** torch.arange(halvings, dtype=dt, device=dev)                  # [J]
    spectrum_at = torch.full((len(checkpoints), N, P), float("nan"), dtype=dt, device=dev)
    grad_norm_at = torch.full((len(checkpoints), N), float("nan"), dtype=dt, device=dev)
    trace = [gn.clone()]
    bar = tqdm(range(max_iters), desc=desc, disable=not progress, leave=False)
    for _ in bar:
        idx = ((gn > tol) & ~stalled).nonzero().squeeze(1)
        if len(idx) == 0:
            break
        H = hessian(f, theta[idx])
        finite = torch.isfinite(H).all(2).all(1)
        if not finite.all():            # a run whose Hessian overflowed stops where it is
            stalled[idx[~finite]] = True
            idx, H = idx[finite], H[finite]
            if len(idx) == 0:
                break
        H = (H + H.transpose(1, 2)) / 2
        for k, t in enumerate(checkpoints):
            new = ((gn[idx] <= t) & torch.isnan(grad_norm_at[k, idx])).nonzero().squeeze(1)
            if len(new):
                spectrum_at[k, idx[new]], grad_norm_at[k, idx[new]] = torch.linalg.eigvalsh(H[new]), gn[idx[new]]
        p = mr_direction(H, g[idx], krylov)
        slope = 2 * rho * ((H @ p.unsqueeze(-1)).squeeze(-1) * g[idx]).sum(1)     # 2 rho <H p, g>
        # Backtracking, a few levels at a time: most runs accept one of the first (alpha_0 or alpha_0 beta), so
        # a batch of LEVELS gradients per run, then the next levels only for the runs that accepted none.
        pending = torch.arange(len(idx), device=dev)
        for first in range(0, halvings, LEVELS):
            rows = idx[pending]
            alphas = alpha0[rows, None] * levels[None, first:first + LEVELS]            # [n, J], falling
            n, J = alphas.shape
            cand = theta[rows, None, :] + alphas[..., None] * p[pending, None, :]
            Lc, gc = loss_and_grad(f, cand.reshape(n * J, P))
            gnc = gc.norm(dim=1).view(n, J)
            ok = torch.isfinite(gnc) & (gnc ** 2 <= gn[rows, None] ** 2 + alphas * slope[pending, None])
            if radius is not None:
                ok &= (cand - start[rows, None, :]).norm(dim=2) <= radius
            hit = ok.any(1)
            j = ok.int().argmax(1)[hit]                                                 # the largest acceptable alpha
            at, sel = hit.nonzero().squeeze(1), rows[hit]
            theta[sel], g[sel] = cand[at, j], gc.view(n, J, P)[at, j]
            L[sel], gn[sel] = Lc.view(n, J)[at, j], gnc[at, j]
            alpha0[sel] = (alphas[at, j] / beta).clamp_max(1.0)
            pending = pending[~hit]
            if len(pending) == 0:
                break
        stalled[idx[pending]] = True
        trace.append(gn.clone())
        bar.set_postfix(reached=int((gn <= tol).sum()), median_gn=f"{gn.median().item():.1e}")
    return {"theta": theta, "loss": L, "grad": g, "grad_norm": gn, "reached": gn <= tol, "stalled": stalled,
            "trace": torch.stack(trace), "distance": (theta - start).norm(dim=1), "start_loss": L0,
            "spectrum_at": spectrum_at, "grad_norm_at": grad_norm_at}


def endpoint_spectrum(f: Callable[[torch.Tensor], torch.Tensor], theta: torch.Tensor, grad: torch.Tensor,
                      null_draws: int = 0, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """At every row of theta [N, P] with gradient grad [N, P]: the Hessian's eigenvalues
    [N, P] (ascending), the gradient-flatness ratio ||H g|| / (||H|| ||g||) [N] (0: g
    entirely in H's null space; NaN where g = 0) and its null: the same ratio for
    `null_draws` random unit directions u at each point [N, null_draws] (seeded: how small
    the ratio is for a direction that has nothing to do with the gradient)."""
    H = hessian(f, theta)
    H = (H + H.transpose(1, 2)) / 2
    ev = torch.linalg.eigvalsh(H)
    top = ev.abs().amax(1)
    u = torch.randn(null_draws, *theta.shape, generator=torch.Generator().manual_seed(seed), dtype=theta.dtype)
    u = u.to(theta.device).permute(1, 2, 0)                                           # [N, P, draws]
    with torch.no_grad():
        ratio = (H @ grad.unsqueeze(-1)).squeeze(-1).norm(dim=1) / (top * grad.norm(dim=1))
        null = (H @ u).norm(dim=1) / (top[:, None] * u.norm(dim=1))
    return ev, ratio, null


def trivial(loss, target_variance: float, rel: float = 1e-6) -> np.ndarray:
    """Which critical points are the trivial ones where the net predicts a constant: their
    loss equals the target's variance (the loss of its mean) to a relative `rel`."""
    return np.abs(np.asarray(loss, float) - target_variance) <= rel * target_variance


CRITICAL, GRADIENT_FLAT, NOT_CONVERGED = 0, 1, 2
STATUS_NAMES = ("critical", "gradient_flat", "not_converged")
FLAT_RATIO = 1e-2      # gradient-flat: ||H g|| <= FLAT_RATIO ||H|| ||g|| where ||g|| stalled
STALL_FACTOR = 0.5     # ... stalled: ||g|| fell by less than this factor over the last quarter of the iterations


def classify(grad_norm, flat_ratio, trace, stalled, *, tol: float = 1e-8,
             flat_ratio_max: float = FLAT_RATIO) -> np.ndarray:
    """One status per end point (arrays [N]; trace [iters + 1, N], ||g|| per iteration):
    CRITICAL where ||g|| <= tol; GRADIENT_FLAT where not, ||g|| has stalled (the finder
    stopped because no step lowered it, or over the last quarter of the iterations it
    fell by less than STALL_FACTOR) and the gradient lies mostly in the Hessian's
    near-null space, ||H g|| / (||H|| ||g||) <= flat_ratio_max (Frye et al. 2021: there
    ||g||^2 has a stationary point, H g = 0, that is not a critical point of L);
    NOT_CONVERGED otherwise (still falling at the cap, or stalled with g outside H's
    near-null space)."""
    gn, fr, tr, stalled = (_numpy(v) for v in (grad_norm, flat_ratio, trace, stalled))
    q = tr[max(0, len(tr) - 1 - (len(tr) - 1) // 4)]
    with np.errstate(invalid="ignore", divide="ignore"):
        stall = stalled.astype(bool) | ~(gn < STALL_FACTOR * q)
    out = np.full(gn.shape, NOT_CONVERGED)
    out[stall & (fr <= flat_ratio_max)] = GRADIENT_FLAT
    out[gn <= tol] = CRITICAL
    return out


def _numpy(x) -> np.ndarray:
    """An array on the host: tensors (on any device) or array-likes."""
    return x.detach().cpu().numpy() if torch.is_tensor(x) else np.asarray(x)


# ------------------------------------------------------------------ the analytic oracle
def linear_autoencoder(eigenvalues=(8.0, 4.0, 2.0, 1.0), hidden: tuple[int, ...] = (2,), n: int = 64,
                       seed: int = 0):
    """A linear autoencoder L = 1/(2n) ||X - X W1^T ... Wm^T||^2 (no biases) whose data
    covariance X^T X / n has exactly the given (distinct) eigenvalues, along the columns
    of a random orthogonal U. Returns (FlatLoss, U [d, d])."""
    from torch import nn

    from .curvature import FlatLoss

    gen = torch.Generator().manual_seed(seed)
    lam = torch.tensor(eigenvalues, dtype=torch.float64)
    d = len(lam)
    U = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))[0]
    Q = torch.linalg.qr(torch.randn(n, d, generator=gen, dtype=torch.float64))[0]
    X = n ** 0.5 * Q @ torch.diag(lam.sqrt()) @ U.T
    dims = (d, *hidden, d)
    model = nn.Sequential(*(nn.Linear(a, b, bias=False) for a, b in zip(dims[:-1], dims[1:]))).double()
    return FlatLoss(model, _half_squared_error, X, X), U


def _half_squared_error(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return 0.5 * (out - y).square().sum(1).mean()


def linear_autoencoder_critical_points(eigenvalues=(8.0, 4.0, 2.0, 1.0), hidden: int = 2) -> list[dict]:
    """Every critical value of the one-hidden-layer linear autoencoder above (Baldi and
    Hornik 1989): for each subset I of at most `hidden` eigen-directions, W2 W1 = the
    projection on them and L = half the sum of the eigenvalues left out. Its index (the
    number of negative Hessian eigenvalues, the same at every point of the critical
    set): one per pair (i in I, j not in I) with lambda_j > lambda_i (rotating unit i
    towards the larger direction j lowers L; the 2 x 2 block of that pair is
    [[lambda_j, -lambda_j], [-lambda_j, lambda_i]]), plus d - |I| for each of the
    hidden - |I| unused units (their encoder a and decoder b enter L only through
    -b^T R a, R the covariance left out, whose eigenvalues are +-lambda_c, c not in I).
    Returns dicts with subset, value and index; the top subset alone has index 0."""
    from itertools import combinations

    lam = [float(v) for v in eigenvalues]
    d = len(lam)
    out = []
    for size in range(hidden + 1):
        for subset in combinations(range(d), size):
            rest = [j for j in range(d) if j not in subset]
            index = sum(lam[j] > lam[i] for i in subset for j in rest) + (hidden - size) * len(rest)
            out.append({"subset": subset, "value": 0.5 * sum(lam[j] for j in rest), "index": index})
    return out


def linear_autoencoder_point(U: torch.Tensor, subset, hidden: tuple[int, ...] = (2,)) -> torch.Tensor:
    """A point of the critical set of `subset` (theta [P] in the model's parameter
    order): the first layer reads the subset's eigen-directions, the inner layers pass
    them on (identity), the last writes them back; unused units are zero."""
    d = U.shape[0]
    dims = (d, *hidden, d)
    mats = [torch.zeros(b, a, dtype=U.dtype) for a, b in zip(dims[:-1], dims[1:])]
    for r, i in enumerate(subset):
        mats[0][r] = U[:, i]
        for M in mats[1:-1]:
            M[r, r] = 1.0
        mats[-1][:, r] = U[:, i]
    return torch.cat([M.reshape(-1) for M in mats])


def linear_autoencoder_starts(U: torch.Tensor, points: list[dict], hidden: tuple[int, ...] = (2,), *,
                              per_point: int = 3, random: int = 20, scale: float = 1e-2, seed: int = 1
                              ) -> tuple[torch.Tensor, np.ndarray]:
    """Start points for the oracle: `per_point` of them `scale` (times a standard normal
    per coordinate) from each critical set's point, then `random` drawn N(0, 0.5^2).
    Returns theta [N, P] and, per start, the index into `points` it was drawn near (-1:
    random)."""
    gen = torch.Generator().manual_seed(seed)
    starts, near = [], []
    for k, pt in enumerate(points):
        c = linear_autoencoder_point(U, pt["subset"], hidden)
        starts += [c + scale * torch.randn(len(c), generator=gen, dtype=torch.float64) for _ in range(per_point)]
        near += [k] * per_point
    P = sum(a * b for a, b in zip((U.shape[0], *hidden), (*hidden, U.shape[0])))
    starts += [0.5 * torch.randn(P, generator=gen, dtype=torch.float64) for _ in range(random)]
    return torch.stack(starts), np.array(near + [-1] * random)


# ------------------------------------------------------------------ what the end points say (1-2c's headline)
def status_counts(status) -> dict:
    """{critical, gradient_flat, not_converged}: how many end points have each status."""
    st = np.asarray(status).ravel()
    return {name: int((st == k).sum()) for k, name in enumerate(STATUS_NAMES)}


def index_at_critical(res: dict, loss, params: int) -> dict:
    """The index (resolved negative eigenvalues, `resolved_spectrum`'s `res`) and its relation to the
    loss over critical points (of nets with `params` parameters)."""
    index = res["negative"]
    return {"index_positive": int((index > 0).sum()),
            "index_median": rnd(np.median(index)) if len(index) else None,
            "index_max": int(index.max()) if len(index) else None,
            "near_zero_median": rnd(np.median(res["near_zero"])) if len(index) else None,
            # a fraction of the resolved eigenvalues, over critical points: mean and t-interval, inside [0, 1]
            "resolved_ratio": (rounded(proportion_ci(res["resolved_ratio"][np.isfinite(res["resolved_ratio"])],
                                                     params)) if np.isfinite(res["resolved_ratio"]).any() else None),
            "index_vs_loss": correlation(spearman_ci, index, loss_levels(loss))}


def loss_levels(loss, rel: float = 1e-6) -> np.ndarray:
    """Each loss replaced by the smallest loss of its level: critical points whose losses agree to a
    relative 1e-6 (rounding, not a different critical value) are one level, tied in a rank correlation."""
    v = np.asarray(loss, float)
    order = np.argsort(v)
    new = np.r_[True, np.diff(v[order]) > rel * np.maximum(np.abs(v[order][1:]), 1e-300)] if len(v) else np.zeros(0, bool)
    out = np.empty_like(v)
    out[order] = v[order][np.flatnonzero(new)[np.cumsum(new) - 1]]
    return out


def levels_of(loss, index, top: int = 8) -> list[dict]:
    """Per loss level of a set of critical points (`loss_levels`), by falling loss: its loss, how many
    points and their index (min, median, max); the `top` most populated levels."""
    lv = loss_levels(loss)
    out = [{"loss": rnd(v), "n": int((lv == v).sum()), "index": [int(index[lv == v].min()),
                                                                 rnd(np.median(index[lv == v])),
                                                                 int(index[lv == v].max())]}
           for v in np.unique(lv)]
    return sorted(sorted(out, key=lambda d: -d["n"])[:top], key=lambda d: -d["loss"])


def flatness(ratio, null) -> dict:
    """The flatness ratio ||H g|| / (||H|| ||g||) of end points against its null (random directions at the
    same points): medians, and how many end points have a ratio below every one of their null draws."""
    if not len(ratio):
        return {"n": 0, "median": None, "null_median": None, "below_null": 0}
    return {"n": int(len(ratio)), "median": rnd(np.median(ratio)), "null_median": rnd(np.median(null)),
            "below_null": int((ratio < null.min(1)).sum())}


def oracle_summary(a, resolve_factor: float) -> dict:
    """Per method on the linear autoencoder: end points at ||g|| <= find_tol, how many sit on an
    analytic critical value (to 1e-6) with the analytic index, how many of those are saddles, and
    how many distinct critical values were found."""
    values, index = a["oracle_values"], a["oracle_index"]
    out = {"starts": int(len(a["oracle_start_near"])), "critical_values": len(values),
           "saddle_values": int((index > 0).sum())}
    for m in ("min_grad_norm_sq", "descent_on_L", "newton_mr"):
        loss, gn = a[f"oracle_{m}_loss"], a[f"oracle_{m}_grad_norm"]
        crit = a[f"oracle_{m}_status"] == CRITICAL
        k = np.abs(loss[:, None] - values[None]).argmin(1)
        on = crit & (np.abs(loss - values[k]) <= 1e-6)
        neg = resolved_spectrum(a[f"oracle_{m}_eigenvalues"], gn, resolve_factor)["negative"]
        out[m] = {**status_counts(a[f"oracle_{m}_status"]), "on_analytic_value": int(on.sum()),
                  "analytic_index": int((on & (neg == index[k])).sum()),
                  "saddles": int((on & (index[k] > 0)).sum()), "values_found": int(len(set(k[on].tolist()))),
                  "saddle_values_found": int(len(set(k[on & (index[k] > 0)].tolist())))}
    return out
