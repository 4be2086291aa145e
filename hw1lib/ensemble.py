"""N models of one architecture, stored as stacked tensors and run at once.

`torch.func.stack_module_state` stacks the parameters of N independently
initialised modules along a new leading dimension; `functional_call` under
`vmap` then runs all N in one call. Because Adam is elementwise, one
`torch.optim.Adam` over the stacked tensors, stepped on the *sum* of the N
per-model losses, updates every model exactly as its own optimizer would.
"""
from __future__ import annotations

import copy
import threading
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap


_INIT_LOCK = threading.Lock()  # the global CPU generator is shared by threads


def seeded_init(build: Callable[[], nn.Module], seed: int) -> nn.Module:
    """Build a module with its initial weights drawn from `seed`, leaving the
    caller's global RNG state untouched (and safe when units run in threads)."""
    with _INIT_LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


_ACTIVATIONS = {nn.ReLU: torch.relu, nn.Tanh: torch.tanh}


def mlp_plan(model: nn.Module) -> list[tuple] | None:
    """The layers of a plain MLP (nn.Sequential of an optional leading Flatten,
    Linear layers and ReLU/Tanh) as [("linear", weight name, bias name) or
    ("act", fn)], or None for any other architecture."""
    if not isinstance(model, nn.Sequential):
        return None
    plan: list[tuple] = []
    for i, (name, m) in enumerate(model.named_children()):
        if isinstance(m, nn.Flatten) and i == 0 and m.start_dim == 1 and m.end_dim == -1:
            continue
        if isinstance(m, nn.Linear) and m.bias is not None:
            plan.append(("linear", f"{name}.weight", f"{name}.bias"))
        elif type(m) in _ACTIVATIONS:
            plan.append(("act", _ACTIVATIONS[type(m)]))
        else:
            return None
    return plan if any(step[0] == "linear" for step in plan) else None


def run_mlp_plan(plan: list[tuple], params: dict[str, torch.Tensor], x: torch.Tensor,
                 shared: bool) -> torch.Tensor:
    """An MLP ensemble's forward pass written out as batched matrix products:
    out_i = b_i + h_i W_i^T for every member i in one `baddbmm`. The same
    arithmetic as vmap(functional_call) (tested), without its per-call
    bookkeeping, and with layouts that keep the backward pass off strided
    elementwise kernels: a full-batch step of 1-1a's shallow net (15 members,
    1000 points, width 190) took 17.9 ms vmapped and 9.7 ms written out, a
    784-64-64-10 step at batch 64 2.2 ms and 1.5 ms (1 thread)."""
    n = next(iter(params.values())).shape[0]
    h = x.flatten(1) if shared else x.flatten(2)
    if shared:
        h = h.expand(n, *h.shape)
    for step in plan:
        if step[0] == "linear":
            w, b = params[step[1]], params[step[2]]
            h = torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2))
        else:
            h = step[1](h)
    return h


class SliceMaxPool2d(nn.MaxPool2d):
    """nn.MaxPool2d(k) (stride k, no padding) that, where no gradient is wanted,
    takes the elementwise maximum of its k*k strided slices instead of calling
    the CPU pooling kernel. Max is exact, so the output is the same to the bit
    (tested, ties and NaN included); evaluating 20k MNIST images through five
    1-1b CNNs on one thread took 2.1/4.1/3.6 s with nn.MaxPool2d and 1.5/1.6/2.0 s
    this way (1/2/4 blocks). Where a gradient flows it is nn.MaxPool2d: a
    backward pass written this way (first maximum wins, as in max_pool2d) was
    equal but slower in a training step (52 -> 68 ms, CNN-2)."""

    @staticmethod
    def fits(m: nn.Module) -> bool:
        """Whether `m` is a MaxPool2d that this pooling reproduces exactly."""
        pair = lambda v: tuple(v) if isinstance(v, (tuple, list)) else (v, v)  # noqa: E731
        return (type(m) is nn.MaxPool2d and pair(m.stride) == pair(m.kernel_size) and pair(m.padding) == (0, 0)
                and pair(m.dilation) == (1, 1) and not m.ceil_mode and not m.return_indices)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            return super().forward(x)
        kh, kw = self.kernel_size if isinstance(self.kernel_size, tuple) else (self.kernel_size,) * 2
        H, W = x.shape[-2] // kh * kh, x.shape[-1] // kw * kw
        out = x[..., 0:H:kh, 0:W:kw]
        for i in range(kh):
            for j in range(kw):
                if i or j:
                    out = torch.maximum(out, x[..., i:H:kh, j:W:kw])
        return out


def _with_slice_pooling(model: nn.Module) -> nn.Module:
    """A copy of `model` whose plain max-pooling layers are SliceMaxPool2d."""
    model = copy.deepcopy(model)
    for parent in model.modules():
        for name, child in parent.named_children():
            if SliceMaxPool2d.fits(child):
                parent._modules[name] = SliceMaxPool2d(child.kernel_size)
    return model


CHUNK_ELEMENTS = 1 << 18   # activation values of one member chunk (1 MiB in float32); see members_per_chunk


class Ensemble:
    """N copies of one architecture with independent weights.

    params[name]: [N, *shape] leaf tensors with requires_grad. Call with
    x of shape [N, B, ...] (each model its own batch) or, with
    shared=True, [B, ...] (one batch for all). Output [N, B, ...].
    """

    def __init__(self, build: Callable[[], nn.Module], seeds: Sequence[int],
                 device: torch.device, dtype: torch.dtype = torch.float32):
        models = [seeded_init(build, s).to(device=device, dtype=dtype) for s in seeds]
        params, buffers = stack_module_state(models)
        self.seeds = tuple(seeds)
        self.device, self.dtype = device, dtype
        self.params = {k: v.detach().requires_grad_(True) for k, v in params.items()}
        self.buffers = buffers
        self._base = copy.deepcopy(models[0]).to("meta")
        # what runs the members' weights: the architecture, with CPU-fast pooling on a CPU
        self._run_as = _with_slice_pooling(self._base) if device.type == "cpu" else self._base

        def call(p, b, x):
            return functional_call(self._run_as, (p, b), (x,))

        self._call = call
        self._per = vmap(call, in_dims=(0, 0, 0))
        self._shared = vmap(call, in_dims=(0, 0, None))
        # On a CPU, vmap turns N convolutions into one grouped convolution, which
        # oneDNN runs slower than N plain ones: a training step of two 1-1b CNNs
        # at batch 128 took 14.7/22.8/18.2 ms vmapped vs 7.3/14.8/15.7 ms member
        # by member (1/2/4 blocks, 2 cores). MLPs keep vmap (one batched matmul).
        self._loop = device.type == "cpu" and any(isinstance(m, nn.Conv2d) for m in models[0].modules())
        self._plan = mlp_plan(models[0])

    @classmethod
    def from_stacked(cls, build: Callable[[], nn.Module], state: dict[str, torch.Tensor],
                     device: torch.device) -> "Ensemble":
        """An ensemble holding given stacked weights [N, ...] (e.g. points of a
        loss-surface grid, or a cached run). Its seeds are -1 (not trained here)."""
        n = len(next(iter(state.values())))
        ens = cls(build, [0], device, dtype=next(iter(state.values())).dtype)
        ens.seeds = (-1,) * n
        ens.params = {k: state[k].to(device).detach().clone().requires_grad_(True) for k in ens.params}
        ens.buffers = {k: state[k].to(device).detach().clone() for k in ens.buffers}
        return ens

    def subset(self, idx: Sequence[int]) -> "Ensemble":
        """A new ensemble of members `idx` (same architecture; weights copied,
        as new leaf tensors). Write trained weights back with `assign`."""
        sub = copy.copy(self)
        sub.seeds = tuple(self.seeds[i] for i in idx)
        i = torch.as_tensor(list(idx), dtype=torch.long, device=self.device)
        sub.params = {k: v.detach()[i].clone().requires_grad_(True) for k, v in self.params.items()}
        sub.buffers = {k: v[i].clone() for k, v in self.buffers.items()}
        return sub

    def assign(self, idx: Sequence[int], other: "Ensemble") -> None:
        """Members `idx` take the weights of `other` (whose members are, in order, those)."""
        i = torch.as_tensor(list(idx), dtype=torch.long, device=self.device)
        with torch.no_grad():
            for k, v in self.params.items():
                v[i] = other.params[k].detach()
            for k, v in self.buffers.items():
                v[i] = other.buffers[k]

    def __len__(self) -> int:
        return len(self.seeds)

    @property
    def base(self) -> nn.Module:
        """The architecture, on the meta device (no weights): for functional_call."""
        return self._base

    def flat_params(self) -> torch.Tensor:
        """All members' parameters flattened, [N, P], detached copy, in params order."""
        return torch.cat([v.detach().flatten(1) for v in self.params.values()], 1)

    def param_slices(self) -> dict[str, slice]:
        """Where each named parameter lies in a flat vector of `flat_params`."""
        out, start = {}, 0
        for k, v in self.params.items():
            n = v[0].numel()
            out[k] = slice(start, start + n)
            start += n
        return out

    def unflatten(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """Inverse of `flat_params`: [N, P] -> {name: [N, *shape]}."""
        return {k: flat[:, s].reshape(len(flat), *self.params[k].shape[1:])
                for k, s in self.param_slices().items()}

    def __call__(self, x: torch.Tensor, shared: bool = False,
                 params: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Outputs [N, B, ...]. `params` ([N, ...] each) replaces the members'
        own weights for this call, e.g. perturbed weights in a sharpness search."""
        params = self.params if params is None else params
        if self._plan is not None:
            return run_mlp_plan(self._plan, params, x, shared)
        if len(self) == 1 or self._loop:
            # One model: skip vmap, whose bookkeeping costs more than the
            # forward pass of a small net at small batch sizes.
            return torch.stack([
                self._call({k: v[i] for k, v in params.items()}, {k: v[i] for k, v in self.buffers.items()},
                           x if shared else x[i])
                for i in range(len(self))])
        return (self._shared if shared else self._per)(params, self.buffers, x)

    def members_per_chunk(self, rows: int) -> int:
        """How many members a full-batch step of `rows` rows per member should
        run forward and backward at a time. On a CPU, a plain MLP whose widest
        activations over all members outgrow one core's cache runs in chunks of
        at most CHUNK_ELEMENTS activation values (fewer memory round trips):
        a step of 1-1a's shallow ensemble (15 members x 1000 points x 190 units)
        took 15.0 ms whole and 4.1 ms member by member, 1 thread; its deeper
        nets (<= 16 units) stay whole, where chunking made them slower. Other
        architectures and devices: all members at once."""
        if self.device.type != "cpu" or self._plan is None:
            return len(self)
        widest = max(self.params[step[1]].shape[1] for step in self._plan if step[0] == "linear")
        return max(1, min(len(self), CHUNK_ELEMENTS // (rows * widest)))

    def parameters(self) -> list[torch.Tensor]:
        return list(self.params.values())

    def state_dict(self, i: int) -> dict[str, torch.Tensor]:
        """Member i's weights, detached copies, as an ordinary state_dict."""
        out = {k: v[i].detach().clone() for k, v in self.params.items()}
        out.update({k: v[i].detach().clone() for k, v in self.buffers.items()})
        return out

    def stacked_state(self) -> dict[str, torch.Tensor]:
        """All weights stacked [N, ...], detached copies (what the cache stores)."""
        out = {k: v.detach().clone() for k, v in self.params.items()}
        out.update({k: v.detach().clone() for k, v in self.buffers.items()})
        return out

    def grad_norms(self) -> torch.Tensor:
        """[N] L2 norm of each member's gradient over all its parameters."""
        sq = sum(v.grad.pow(2).flatten(1).sum(1) for v in self.params.values() if v.grad is not None)
        return torch.as_tensor(sq).sqrt()


def seeded_ensemble(build: Callable[[], nn.Module], init_seeds: Sequence[int], order_seeds: Sequence[int],
                    device: torch.device) -> Ensemble:
    """An ensemble whose member i starts from the weights drawn from
    init_seeds[i] and shuffles its batches with the generator of order_seeds[i]:
    two members with one initialisation and different orders differ only by
    the noise of SGD."""
    ens = Ensemble(build, order_seeds, device)
    init = Ensemble(build, init_seeds, device)
    with torch.no_grad():
        for k, v in ens.params.items():
            v.copy_(init.params[k])
    return ens


def by_rule(v: np.ndarray, member: np.ndarray) -> np.ndarray:
    """Per-model values v [C, M, ...] as rows [C, R, S, ...] (member [R, S]); a row without a
    model (-1) is NaN, or False for a flag."""
    v = np.asarray(v)
    has = member >= 0
    out = np.full((v.shape[0], *member.shape, *v.shape[2:]), False if v.dtype == bool else np.nan,
                  dtype=bool if v.dtype == bool else float)
    out[:, has] = v[:, member[has]]
    return out
