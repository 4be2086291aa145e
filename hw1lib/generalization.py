"""Generalization tools (section 1-3): random labels, interpolation between
two models, input-Jacobian sensitivity and Keskar epsilon-sharpness.

All functions are pure: they take the generator or seed they use, return new
tensors and never change a model's train/eval mode.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call, jacrev, vmap

from .ensemble import Ensemble
from .train import member_cross_entropy


def random_labels(y: torch.Tensor, seed: int, n_classes: int = 10) -> torch.Tensor:
    """A one-time relabelling: labels drawn uniformly at random from `seed`,
    independent of the true ones. Returns a new tensor like `y`."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, n_classes, y.shape, generator=g).to(y.device, y.dtype)


def noisy_labels(y: torch.Tensor, fraction: float, seed: int, n_classes: int = 10) -> torch.Tensor:
    """Labels with a seeded `fraction` of entries replaced by uniformly random
    labels (which may, by chance, equal the true one). Returns a new tensor."""
    g = torch.Generator().manual_seed(seed)
    replace = (torch.rand(y.shape, generator=g) < fraction).to(y.device)
    return torch.where(replace, random_labels(y, seed + 1, n_classes), y)


def interpolate(state_a: dict[str, torch.Tensor], state_b: dict[str, torch.Tensor],
                alpha: float) -> dict[str, torch.Tensor]:
    """theta(alpha) = (1 - alpha) theta_a + alpha theta_b for every parameter AND
    floating-point buffer (BatchNorm running statistics included; integer
    buffers such as `num_batches_tracked` are taken from the nearer end)."""
    if state_a.keys() != state_b.keys():
        raise ValueError("the two models have different parameter names; they must share an architecture")
    out = {}
    for k, a in state_a.items():
        b = state_b[k]
        if a.is_floating_point():
            out[k] = a if alpha == 0 else b.clone() if alpha == 1 else (1 - alpha) * a + alpha * b
        else:
            out[k] = (a if alpha < 0.5 else b).clone()
    return out


def interpolate_flat(theta_a: torch.Tensor, theta_b: torch.Tensor, alphas: np.ndarray) -> torch.Tensor:
    """[A, P] rows (1 - alpha) theta_a + alpha theta_b for flat parameter vectors [P]."""
    al = torch.as_tensor(np.asarray(alphas), dtype=theta_a.dtype, device=theta_a.device).unsqueeze(1)
    return (1 - al) * theta_a + al * theta_b


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


def ensemble_loss_fn(ens: Ensemble, x: torch.Tensor, y: torch.Tensor) -> Callable:
    """stacked params -> [N] mean cross-entropy of each member on (x, y), shared data."""
    return lambda params: member_cross_entropy(ens(x, shared=True, params=params), y).mean(1)
