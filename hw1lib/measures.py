"""Measures of a trained model (section 1-3): input-Jacobian sensitivity and
Keskar epsilon-sharpness, for every member of an ensemble at once.

All functions are pure: they take what they use, return new tensors and
never change a model's train/eval mode.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call, jacrev, vmap

from .ensemble import Ensemble
from .train import member_cross_entropy


def sensitivity(ens: Ensemble, x: torch.Tensor, chunk: int = 1000) -> torch.Tensor:
    """Per-sample Frobenius norm of the Jacobian of the softmax output with
    respect to the input, ||d softmax(f(x)) / dx||_F (Novak et al. 2018).

    x: [B, ...] one batch shared by all members. Returns [N, B]. This is the
    input-output Jacobian, not the gradient of the loss nor of the parameters.
    Evaluate it with the model in eval mode (the caller's choice: this
    function does not switch modes).
    """
    base = ens.base

    def probs(p, b, xi):  # one member, one sample [*in] -> [C]
        return F.softmax(functional_call(base, (p, b), (xi.unsqueeze(0),))[0], dim=-1)

    jac = vmap(vmap(jacrev(probs, argnums=2), in_dims=(None, None, 0)), in_dims=(0, 0, None))
    params = {k: v.detach() for k, v in ens.params.items()}
    out = []
    for s in range(0, len(x), chunk):
        J = jac(params, ens.buffers, x[s:s + chunk])          # [N, b, C, *in]
        out.append(J.flatten(2).norm(dim=2))
    return torch.cat(out, 1)


def epsilon_sharpness(loss_fn: Callable[[dict[str, torch.Tensor]], torch.Tensor],
                      params: dict[str, torch.Tensor], eps: float, *, steps: int = 20) -> torch.Tensor:
    """Keskar et al. 2017 epsilon-sharpness of every member, [N]:

        100 * (max_{y in C_eps} f(theta + y) - f(theta)) / (1 + f(theta)),
        C_eps = { y : |y_i| <= eps * (|theta_i| + 1) },

    the max found by projected gradient ascent (sign steps of a quarter of the
    box, projected back onto it after each step) started at the box centre.
    `loss_fn(stacked_params) -> [N]` must return each member's loss.
    """
    theta = {k: v.detach() for k, v in params.items()}
    box = {k: eps * (v.abs() + 1) for k, v in theta.items()}
    with torch.no_grad():
        f0 = loss_fn(theta)
    y = {k: torch.zeros_like(v, requires_grad=True) for k, v in theta.items()}
    best = f0.clone()
    for _ in range(steps):
        f = loss_fn({k: theta[k] + y[k] for k in theta})
        best = torch.maximum(best, f.detach())
        grads = torch.autograd.grad(f.sum(), list(y.values()))
        with torch.no_grad():
            for (k, yk), g in zip(y.items(), grads):
                yk.add_(0.25 * box[k] * g.sign()).clamp_(min=-box[k], max=box[k])
    with torch.no_grad():
        best = torch.maximum(best, loss_fn({k: theta[k] + y[k] for k in theta}))
    return 100 * (best - f0) / (1 + f0)


def epsilon_sharpness_lbfgsb(loss_fn: Callable[[dict[str, torch.Tensor]], torch.Tensor], ens: Ensemble,
                             eps: float, *, iters: int = 10) -> np.ndarray:
    """The same epsilon-sharpness as `epsilon_sharpness`, [N], maximised as
    Keskar et al. (2017) did: scipy's L-BFGS-B over the box C_eps, `iters`
    iterations, started at the box centre, one member at a time (float64 on
    the host for the optimiser; the loss and its gradient on the model's device)."""
    from scipy.optimize import minimize

    theta = ens.flat_params()                                   # [N, P]
    out = np.zeros(len(ens))
    with torch.no_grad():
        f0 = loss_fn(ens.unflatten(theta)).double().cpu().numpy()
    for i in range(len(ens)):
        box = (eps * (theta[i].abs() + 1)).double().cpu().numpy()

        def neg(yv: np.ndarray, i: int = i) -> tuple[float, np.ndarray]:
            t = torch.tensor(yv, dtype=theta.dtype, device=theta.device, requires_grad=True)
            rows = [theta[j] + t if j == i else theta[j] for j in range(len(ens))]
            loss = loss_fn(ens.unflatten(torch.stack(rows)))[i]
            (g,) = torch.autograd.grad(loss, t)
            return -loss.item(), -g.double().cpu().numpy()

        res = minimize(neg, np.zeros_like(box), jac=True, method="L-BFGS-B", bounds=list(zip(-box, box)),
                       options={"maxiter": iters})
        out[i] = 100 * (max(-res.fun, f0[i]) - f0[i]) / (1 + f0[i])
    return out


def ensemble_loss_fn(ens: Ensemble, x: torch.Tensor, y: torch.Tensor) -> Callable:
    """stacked params -> [N] mean cross-entropy of each member on (x, y), shared data."""
    return lambda params: member_cross_entropy(ens(x, shared=True, params=params), y).mean(1)


def lbfgsb_per_member(build, ens: Ensemble, split: Split, eps: float, iters: int) -> np.ndarray:
    """Keskar's L-BFGS-B sharpness of every member [N], each maximised on an
    ensemble of that member alone (so that an evaluation computes one model's
    loss, not the whole ensemble's)."""
    out = np.zeros(len(ens))
    for i in range(len(ens)):
        one = Ensemble.from_stacked(build, {k: v[i:i + 1].detach() for k, v in ens.params.items()}, ens.device)
        out[i] = epsilon_sharpness_lbfgsb(ensemble_loss_fn(one, split.x, split.y), one, eps, iters=iters)[0]
    return out
