"""Curvature of a loss over ALL parameters of a model, seen as one flat vector.

`FlatLoss` turns (model, loss, data) into a function theta [P] -> scalar, so
the exact Hessian is a plain [P, P] matrix (never per-layer blocks); it and the
Hessian-vector product (which never forms H) are reverse-over-reverse autodiff,
except the Hessian of a tanh MLP's mean squared error, which has a closed form.
Everything is a pure function of its inputs: no module is mutated and no
train/eval mode is flipped.
"""
from __future__ import annotations

import copy
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, grad, grad_and_value, jacrev, vjp, vmap

from .ensemble import mlp_plan, run_mlp_plan


class FlatLoss:
    """loss(theta) for theta [P], the model's parameters flattened in
    `named_parameters()` order. Buffers are held fixed.

    `loss_fn(output, target) -> scalar` is applied to the model's output on
    the whole of `x` (pass the full training set to get the full-batch loss).
    """

    def __init__(self, model: nn.Module, loss_fn: Callable, x: torch.Tensor, y: torch.Tensor):
        self.names = [n for n, _ in model.named_parameters()]
        self.shapes = [p.shape for _, p in model.named_parameters()]
        self.sizes = [p.numel() for _, p in model.named_parameters()]
        self.buffers = {n: b.detach() for n, b in model.named_buffers()}
        self.base = copy.deepcopy(model).to("meta")
        self.loss_fn, self.x, self.y = loss_fn, x, y
        self.theta0 = flatten(dict(model.named_parameters())).detach()
        # layer widths when f is the mean squared error of a tanh MLP with one output:
        # its Hessian then has a closed form (`tanh_mlp_mse_hessian`); None otherwise
        self.tanh_mlp_dims = _tanh_mlp_dims(model) if loss_fn is nn.functional.mse_loss else None
        if self.tanh_mlp_dims and not (x.dim() >= 2 and x.flatten(1).shape[1] == self.tanh_mlp_dims[0]
                                       and y.shape == (len(x), 1)):
            self.tanh_mlp_dims = None

    def unflatten(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        return {n: t.view(s) for n, t, s in zip(self.names, theta.split(self.sizes), self.shapes)}

    def output(self, theta: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        return functional_call(self.base, (self.unflatten(theta), self.buffers),
                               (self.x if x is None else x,))

    def __call__(self, theta: torch.Tensor) -> torch.Tensor:
        return self.loss_fn(self.output(theta), self.y)


def _tanh_mlp_dims(model: nn.Module) -> tuple[int, ...] | None:
    """(d0, d1, ..., 1) when `model` is a plain MLP (see ensemble.mlp_plan) of
    Linear layers with tanh between them and one output; else None."""
    plan = mlp_plan(model)
    if plan is None or [s[0] for s in plan] != ["linear", "act"] * (len(plan) // 2) + ["linear"] \
            or any(s[1] is not torch.tanh for s in plan if s[0] == "act"):
        return None
    params = dict(model.named_parameters())
    weights = [params[s[1]] for s in plan if s[0] == "linear"]
    if weights[-1].shape[0] != 1:
        return None
    return (weights[0].shape[1], *(w.shape[0] for w in weights))


def flatten(tensors: dict[str, torch.Tensor]) -> torch.Tensor:
    """Concatenate tensors (in dict order) into one vector [P]."""
    return torch.cat([t.reshape(-1) for t in tensors.values()])


def hessian(f: Callable[[torch.Tensor], torch.Tensor], theta: torch.Tensor,
            batched: bool | None = None) -> torch.Tensor:
    """The exact, full Hessian of f: theta [P] -> [P, P], or many points at
    once, theta [N, P] -> [N, P, P]. For small models only: memory is P^2.

    Where f is a FlatLoss of a tanh MLP with one output under mean squared
    error (1-2c's nets), the closed form `tanh_mlp_mse_hessian` (10 Hessians of
    1-2c's 141-parameter net on 256 points: about 11 ms on one CPU thread,
    against about 0.1-0.14 s by autodiff). Otherwise the Jacobian of the
    gradient by autodiff (reverse over reverse), with
    batched: all points in one vmapped call (None: on a GPU, where one launch
    sequence for them all is what counts) or one point at a time (None: on a
    CPU, where the loop was faster: 0.09 s against 0.12 s vmapped, and 0.18-0.21 s
    forward over reverse, for the 10 Hessians above).
    """
    dims = f.tanh_mlp_dims if isinstance(f, FlatLoss) else None
    if dims:
        x = f.x.flatten(1)
        if theta.dim() == 1:
            return tanh_mlp_mse_hessian(theta.unsqueeze(0), x, f.y, dims)[0]
        return tanh_mlp_mse_hessian(theta, x, f.y, dims)
    h = jacrev(jacrev(f))
    if theta.dim() == 1:
        return h(theta)
    if batched is None:
        batched = theta.device.type == "cuda"
    return vmap(h)(theta) if batched else torch.stack([h(t) for t in theta])


def loss_and_grad(f: Callable[[torch.Tensor], torch.Tensor], theta: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """f and its gradient at every row of theta [N, P]: (loss [N], grad [N, P]).

    Where f is a FlatLoss of a tanh MLP with one output under mean squared error
    (1-2c's nets), one batched forward of all N nets (`bmm`) and one backward
    (about 1 ms for 10 of 1-2c's nets on one CPU thread, against about 0.1 s for
    `vmap(grad(f))`, whose per-call overhead dominates at this size). Otherwise
    `vmap` of torch.func's `grad_and_value`."""
    dims = f.tanh_mlp_dims if isinstance(f, FlatLoss) else None
    if dims:
        return tanh_mlp_mse_loss_and_grad(f, theta)
    g, value = vmap(grad_and_value(f))(theta)
    return value, g


def _tanh_mlp_layers(theta: torch.Tensor, dims: tuple[int, ...]):
    """Views of each layer's weight [N, d_l, d_{l-1}] and bias [N, d_l] in theta
    [N, P] (each layer's weight, row-major, then its bias)."""
    N = theta.shape[0]
    Ws, bs, o = [], [], 0
    for l in range(1, len(dims)):
        dl, dp = dims[l], dims[l - 1]
        Ws.append(theta[:, o:o + dl * dp].view(N, dl, dp))
        bs.append(theta[:, o + dl * dp:o + dl * dp + dl])
        o += dl * (dp + 1)
    return Ws, bs


def tanh_mlp_mse_loss_and_grad(f: "FlatLoss", theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """L = mean((f(x) - y)^2) and dL/dtheta for N of f's nets at once (theta [N, P]
    -> (loss [N], grad [N, P])): the ensembles' written-out forward
    (`ensemble.run_mlp_plan`) over theta's rows, and one backward. The nets are
    independent, so the gradient of the sum of their losses is each net's own."""
    with torch.enable_grad():
        theta = theta.detach().requires_grad_(True)
        params = {n: t.view(-1, *s) for n, t, s in zip(f.names, theta.split(f.sizes, 1), f.shapes)}
        out = run_mlp_plan(mlp_plan(f.base), params, f.x, shared=True)
        loss = (out - f.y).square().mean((1, 2))
        g, = torch.autograd.grad(loss.sum(), theta)
    return loss.detach(), g


def tanh_mlp_mse_hessian(theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
                         dims: tuple[int, ...]) -> torch.Tensor:
    """The exact Hessian of L = mean((f(x) - y)^2) for an MLP d0 -> ... -> 1 with
    tanh between its Linear layers, in closed form: theta [N, P] (each layer's
    weight, row-major, then its bias), x [n, d0], y [n, 1] -> [N, P, P].

    Second-order adjoints: H = (2/n) J^T J (the Gauss-Newton part, J = df/dtheta)
    plus, for every hidden layer m, (a) the term of the product a_{m+1} = W_{m+1} h_m,
    which pairs W_{m+1}'s entries with dh_m/dtheta, weighted by dL/da_{m+1}; and
    (b) the term of h_m = tanh(a_m): (da_m/dtheta)^T diag(dL/dh_m * tanh''(a_m))
    (da_m/dtheta). A layer's own parameters enter da_m/dtheta as the structured
    e_j (x) [h_{m-1}, 1], which is never formed densely; that is what makes this
    about 10x faster than autodiff (reverse over reverse) for 1-2c's net.
    Equal to autodiff to rounding (tested on nets of 0 to 4 hidden layers).
    """
    N, P = theta.shape
    n, L = x.shape[0], len(dims) - 1
    dev, dt = theta.device, theta.dtype
    Ws, bs = _tanh_mlp_layers(theta, dims)
    perm, boff = [], []
    o = b = 0
    for l in range(1, L + 1):
        dl, dp = dims[l], dims[l - 1]
        # block order of layer l: (row j, input k-hat), k-hat = dp meaning the bias
        perm.append(torch.cat([o + torch.arange(dl * dp, device=dev).view(dl, dp),
                               o + dl * dp + torch.arange(dl, device=dev).view(dl, 1)], 1).reshape(-1))
        boff.append(b)
        o += dl * (dp + 1)
        b += dl * (dp + 1)
    Q = [dims[l] * (dims[l - 1] + 1) for l in range(1, L + 1)]
    sl = [slice(boff[m], boff[m] + Q[m]) for m in range(L)]          # block m (0-based: layer m + 1)
    # forward, with tangents T[l][m] = d a_l / d theta_m (dense for m < l; E_l implicit for m = l)
    h = x.expand(N, n, dims[0])
    hat, s1, s2, T = [], [], [], []
    for l in range(L):                     # 0-based layer index
        hat.append(torch.cat([h, h.new_ones(N, n, 1)], -1))
        a = torch.baddbmm(bs[l].unsqueeze(1), h, Ws[l].transpose(1, 2))
        Tl = []
        if l > 0:
            for m in range(l - 1):
                Tl.append(torch.einsum("Nqj,Nijp->Niqp", Ws[l], s1[l - 1].unsqueeze(-1) * T[l - 1][m]))
            Tl.append(torch.einsum("Nqj,Nij,Nik->Niqjk", Ws[l], s1[l - 1], hat[l - 1]).reshape(N, n, dims[l + 1], Q[l - 1]))
        T.append(Tl)
        if l < L - 1:
            hn = torch.tanh(a)
            s1.append(1 - hn * hn)
            s2.append(-2 * hn * s1[-1])
            h = hn
    Hb = theta.new_zeros(N, P, P)
    # Gauss-Newton part, (2/n) J^T J
    J = torch.cat([t[:, :, 0, :] for t in T[L - 1]] + [hat[L - 1]], -1)           # [N, n, P] block order
    Hb += (2.0 / n) * J.transpose(1, 2) @ J
    nu = (2.0 / n) * (a - y)                                                      # dL/da_L
    for l in range(L - 1, 0, -1):          # 0-based layer l, reading layer l - 1's output
        dl, dp, dpp = dims[l + 1], dims[l], dims[l - 1]
        m = l - 1                          # the hidden layer below
        # (a) a_l = W_l h_{l-1}: rows W_l[j, k] against d h_{l-1} / d theta
        rows = (boff[l] + torch.arange(dl, device=dev).view(dl, 1) * (dp + 1)
                + torch.arange(dp, device=dev).view(1, dp)).reshape(-1)
        for b in range(m):
            M = torch.einsum("Nij,Nikp->Njkp", nu, s1[m].unsqueeze(-1) * T[m][b]).reshape(N, dl * dp, Q[b])
            Hb[:, rows, sl[b]] += M
            Hb[:, sl[b], rows] += M.transpose(1, 2)
        R = torch.einsum("Nij,Nik,Nim->Njkm", nu, s1[m], hat[m])                   # [N, dl, dp, dpp + 1]
        M = R.new_zeros(N, dl, dp, dp, dpp + 1)
        M.diagonal(dim1=2, dim2=3).copy_(R.permute(0, 1, 3, 2))
        M = M.reshape(N, dl * dp, Q[m])
        Hb[:, rows, sl[m]] += M
        Hb[:, sl[m], rows] += M.transpose(1, 2)
        # (b) h_m = tanh(a_m): weight mu * tanh'' on d a_m / d theta
        mu = nu @ Ws[l]                                                            # dL/dh_m [N, n, dp]
        w = mu * s2[m]
        K = torch.einsum("Nij,Nik,Nim->Njkm", w, hat[m], hat[m])                   # own block, diagonal in j
        B = K.new_zeros(N, dp, dpp + 1, dp, dpp + 1)
        B.diagonal(dim1=1, dim2=3).copy_(K.permute(0, 2, 3, 1))
        Hb[:, sl[m], sl[m]] += B.reshape(N, Q[m], Q[m])
        for b in range(m):
            Tw = T[m][b] * w.unsqueeze(-1)
            for b2 in range(m):
                Hb[:, sl[b], sl[b2]] += Tw.reshape(N, n * dp, Q[b]).transpose(1, 2) @ T[m][b2].reshape(N, n * dp, Q[b2])
            G = torch.einsum("Nijp,Nik->Njkp", Tw, hat[m]).reshape(N, Q[m], Q[b])
            Hb[:, sl[m], sl[b]] += G
            Hb[:, sl[b], sl[m]] += G.transpose(1, 2)
        nu = mu * s1[m]
    p = torch.cat(perm)                    # block position -> theta index
    inv = torch.empty_like(p)
    inv[p] = torch.arange(P, device=dev)
    return Hb[:, inv][:, :, inv]


def hvp(f: Callable[[torch.Tensor], torch.Tensor], theta: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """H(theta) @ v, [P], without forming H: the vector-Jacobian product of
    the gradient (reverse-over-reverse; H is symmetric so v^T H = (H v)^T).
    Forward-over-reverse `jvp` fails on mse_loss in this torch release."""
    return vjp(grad(f), theta)[1](v)[0]


def top_eigenvalues(f: Callable[[torch.Tensor], torch.Tensor], theta: torch.Tensor, k: int = 1,
                    *, seed: int = 0, tol: float = 1e-6, maxiter: int | None = None) -> np.ndarray:
    """The k largest (algebraic) eigenvalues of the Hessian of f at theta,
    descending, from Hessian-vector products only (Lanczos via scipy's
    `eigsh` on a LinearOperator). The start vector is drawn from `seed`.
    """
    from scipy.sparse.linalg import LinearOperator, eigsh

    P = theta.numel()
    theta = theta.detach()

    def matvec(v: np.ndarray) -> np.ndarray:
        vt = torch.as_tensor(np.ascontiguousarray(v).reshape(-1), dtype=theta.dtype, device=theta.device)
        return hvp(f, theta, vt).detach().cpu().double().numpy()

    op = LinearOperator((P, P), matvec=matvec, dtype=np.float64)
    v0 = np.random.default_rng(seed).standard_normal(P)
    vals = eigsh(op, k=k, which="LA", v0=v0, tol=tol, maxiter=maxiter, return_eigenvectors=False)
    return np.sort(vals)[::-1]


def minimal_ratio(eigenvalues, tol: float = 0.0):
    """Fraction of eigenvalues strictly greater than `tol` (1 at a strict minimum),
    over the last axis: a spectrum [P] gives a number, spectra [R, P] give [R]."""
    return (np.asarray(eigenvalues) > tol).mean(axis=-1)
