"""Training loops on device-resident tensors.

Batches are index slices of a per-model random permutation; there is no
DataLoader and no per-sample transform in the hot loop. Evaluation runs
over whole splits in large chunks under `torch.inference_mode()`.

The loops and their stopping rules live here: fixed epochs (`fit_classifier`),
a plateau or members leaving when they fit (`fit_full_batch`), loss or
accuracy targets and Keskar et al.'s stopping rule (`fit_to_targets`: models
kept at matched training losses, members leaving when done). Every loop checks
for divergence the same way, once per epoch or check interval
(`_raise_diverged`), and drops finished members the same way
(`train_on_without`).

On a CUDA device each step is captured once as a CUDA graph and replayed: the
engine for that lives in `hw1lib.cuda`, beside these loops. Eager execution of
the very same step function stays the reference (`graphs=False`), and the
tests check that both give the same numbers.
"""
from __future__ import annotations

import math
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .cuda import CapturedStep, graphs_wanted, on_stream, record, thread_stream
from .data import Split
from .ensemble import Ensemble
from .errors import ConfigError, TrainingDiverged


def shuffle_generator(seed: int) -> torch.Generator:
    """The generator that orders a run's batches; derived from, but not equal
    to, the seed used for its initial weights."""
    state = int(np.random.SeedSequence([seed, 0x5EED]).generate_state(1)[0])
    return torch.Generator().manual_seed(state)


def make_adam(ens: Ensemble, lr: float | Sequence[float],
              scheduled: bool = False) -> "torch.optim.Adam | MemberLrAdam":
    """torch.optim.Adam over the stacked parameters. Adam is elementwise, so each
    member is updated exactly as by its own optimizer. See `_adam`. One rate per
    member, or a schedule (`scheduled`: its rates are tensors that
    MemberLrAdam.scale_rates sets, which a captured step reads): MemberLrAdam."""
    if isinstance(lr, (int, float)):
        if not scheduled:
            return _adam(ens, lr)
        lr = [float(lr)] * len(ens)
    return MemberLrAdam(ens, lr)


def _adam(ens: Ensemble, lr: float) -> torch.optim.Adam:
    """torch.optim.Adam as every training loop here builds it. foreach=True:
    the multi-tensor implementation, which the CPU does not pick by default;
    it is equal to the default one to the bit (tested) and 3.3x faster on a
    CPU (the Adam step of five 784-1024-10 MLPs: 20.7 -> 6.3 ms, 1 thread; a
    quarter of their training step). fused=True (1.8 ms) is not bitwise equal
    to the default: not taken. On CUDA (where foreach is the default anyway),
    capturable=True keeps its step count on the device, which a captured step
    needs; eager CUDA steps use the same setting so that the two paths run
    the same arithmetic."""
    return torch.optim.Adam(ens.parameters(), lr=lr, foreach=True, capturable=ens.device.type == "cuda")


class MemberLrAdam:
    """Adam over stacked parameters with one learning rate per member.

    Adam's moments do not depend on the learning rate, and its update is the rate
    times a direction; so one torch.optim.Adam step at rate 1, then each
    member's displacement scaled by its own rate (`torch.lerp` from the old
    weights), is Adam at the per-member rates, to rounding. Capturable like
    the plain one. zero_grad/step as torch.optim.Adam."""

    def __init__(self, ens: Ensemble, lrs: Sequence[float]):
        if len(lrs) != len(ens):
            raise ConfigError(f"{len(lrs)} learning rates given for an ensemble of {len(ens)} members.")
        self.params = ens.parameters()
        self.lrs = [float(r) for r in lrs]
        self.adam = _adam(ens, 1.0)
        rates = torch.tensor(self.lrs, dtype=torch.float64)
        self.base = [rates.to(p.device, p.dtype).view(-1, *[1] * (p.dim() - 1)) for p in self.params]
        self.rates = [b.clone() for b in self.base]

    def scale_rates(self, factor: float) -> None:
        """Every member's rate set to its own times `factor` (a schedule), in
        place: a captured step reads the new rates when it is replayed."""
        for r, b in zip(self.rates, self.base):
            torch.mul(b, factor, out=r)

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.adam.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        old = [p.detach().clone() for p in self.params]
        self.adam.step()
        with torch.no_grad():
            for p, o, r in zip(self.params, old, self.rates):
                p.copy_(torch.lerp(o, p, r))


def _backward_step(ens: Ensemble, opt: torch.optim.Optimizer, losses: Iterable[torch.Tensor],
                   record_grad_norm: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Backward of the summed member losses and one Adam step. `losses` gives
    the per-member losses [N] whole, or chunk by chunk of members (lazily, so
    that each chunk's backward runs before the next chunk's forward). Returns
    the losses (detached, [N]) and, if asked, the per-member gradient norms [N]
    (before the step)."""
    opt.zero_grad(set_to_none=True)
    done = []
    for loss in losses:
        loss.sum().backward()  # members are independent: d(sum)/d(theta_i) = dL_i/d(theta_i)
        done.append(loss.detach())
    gn = ens.grad_norms().detach() if record_grad_norm else None
    opt.step()
    return (done[0] if len(done) == 1 else torch.cat(done)), gn


GROWTH_LIMIT = 1e3   # a loss this many times its starting value has diverged, even if finite


def _raise_diverged(losses: torch.Tensor, first_epoch: int, what: str = "epoch",
                    start: torch.Tensor | None = None, members: Sequence[int] | None = None) -> None:
    """losses [T, N]: raise naming the first row that is non-finite or, given
    each member's starting loss `start` [N], more than GROWTH_LIMIT times it.
    members: the ensemble indices of the N columns, when they are the members
    still training of a larger ensemble (the error names the member as the
    caller knows it)."""
    bad = ~torch.isfinite(losses)
    if start is not None:
        bad |= losses > GROWTH_LIMIT * start.clamp_min(1e-12)
    if bad.any():
        row, model = (int(i) for i in bad.nonzero()[0])
        value = losses[row, model].item()
        how = (f"became {value}" if not math.isfinite(value) else
               f"grew from {start[model].item():.3g} to {value:.3g}")
        raise TrainingDiverged(
            f"Training diverged: the loss {how} in {what} {first_epoch + row} "
            f"(model {model if members is None else int(members[model])}); "
            "lower the learning rate or check the data."
        )


def _check_epoch(losses: torch.Tensor, epoch: int, start: torch.Tensor | None,
                 members: Sequence[int] | None = None) -> torch.Tensor:
    """The one host sync of a minibatch epoch: raise if any step's loss [steps, N]
    is non-finite or the worst is far above the first step's. Returns the start
    (the first epoch's first-step losses [N]), to pass back next epoch."""
    start = losses[0] if start is None else start
    _raise_diverged(losses.amax(0, keepdim=True), epoch, start=start, members=members)   # amax keeps NaN
    return start


def member_cross_entropy(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-sample cross-entropy of every member: out [N, B, C], y [N, B] or [B] -> [N, B]."""
    N, B, C = out.shape
    return F.cross_entropy(out.reshape(N * B, C), y.expand(N, B).reshape(-1), reduction="none").view(N, B)


def eval_chunk(device: torch.device) -> int:
    """Samples per evaluation chunk. A GPU wants few large launches; on a CPU
    a chunk that fits in cache is 2-3x faster for the CNNs (measured on 2
    cores: 10k test images through a 2-member CNN-2, 0.94 s at 256 vs 2.2 s at
    4096) and no slower for the MLPs."""
    return 4096 if device.type == "cuda" else 256


@torch.inference_mode()
def evaluate(ens: Ensemble, split: Split, chunk: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean cross-entropy and accuracy of every member over the whole split.

    split.y is [n], or [N, n] for labels of each member's own. Returns
    (loss [N], accuracy [N]) as float64 numpy arrays.
    """
    n = len(split)
    chunk = chunk or eval_chunk(split.x.device)
    loss = torch.zeros(len(ens), dtype=torch.float64, device=split.x.device)
    correct = torch.zeros(len(ens), dtype=torch.float64, device=split.x.device)
    for s in range(0, n, chunk):
        x, y = split.x[s:s + chunk], split.y[..., s:s + chunk]
        out = ens(x, shared=True)  # [N, b, C]
        loss += member_cross_entropy(out, y).sum(1)
        correct += (out.argmax(-1) == y).sum(1)
    return (loss / n).cpu().numpy(), (correct / n).cpu().numpy()


def gather(t: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """t[idx] for a 2-D index [N, B] -> [N, B, *t.shape[1:]], via index_select on a
    flat view (about 3x faster on CPU than advanced indexing)."""
    return t.reshape(len(t), -1).index_select(0, idx.flatten()).view(*idx.shape, *t.shape[1:])


def gather_labels(y: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Labels of the batch idx [N, B]: from shared labels y [n], or from each
    member's own labels y [N, n]. -> [N, B]."""
    return y.gather(1, idx) if y.dim() == 2 else gather(y, idx)


class MinibatchTrainer:
    """Minibatch Adam steps of one ensemble on device-resident data, epoch by epoch.

    Every member draws its own permutation from its generator; batches are
    slices of it, gathered from the device-resident tensors. The last batch
    may be smaller, as with DataLoader(drop_last=False). On CUDA (unless
    graphs=False) the full-size step and the smaller last step are each
    captured once and replayed: the permutation sits in a static device
    buffer and a device counter says which slice is next. static=True runs
    that same step without capture (on any device: how the tests check the
    captured step's indexing on a CPU).
    """

    def __init__(self, ens: Ensemble, opt: torch.optim.Optimizer, train: Split, batch_size: int,
                 gens: list[torch.Generator], record_grad_norm: bool = False, graphs: bool | None = None,
                 static: bool | None = None):
        self.ens, self.opt, self.train, self.B, self.gens = ens, opt, train, batch_size, gens
        dev = train.x.device
        self.n, N = len(train), len(ens)
        self.steps = math.ceil(self.n / batch_size)
        self.record_grad_norm = record_grad_norm
        self.losses = torch.zeros(self.steps, N, device=dev)
        self.grad_norms = torch.zeros(self.steps, N, device=dev) if record_grad_norm else None
        self.captured = graphs_wanted(dev, graphs)
        self.static = self.captured or bool(static)
        self.stream = thread_stream(dev) if self.captured else None
        self.full_step = self.tail_step = None
        if self.static:
            self.perm = torch.zeros(N, self.n, dtype=torch.long, device=dev)
            self.pos = torch.zeros((), dtype=torch.long, device=dev)
            self.arange = torch.arange(batch_size, device=dev)
            full, tail = divmod(self.n, batch_size)
            self.full_step = CapturedStep(lambda: self._device_step(batch_size), self.captured,
                                          name=f"a batch-{batch_size} step", optimizer=opt)
            self.tail_step = (CapturedStep(lambda: self._device_step(tail), self.captured,
                                           name=f"the last batch-{tail} step", optimizer=opt) if tail else None)

    def _step(self, idx: torch.Tensor, at: int | torch.Tensor) -> None:
        x, y = gather(self.train.x, idx), gather_labels(self.train.y, idx)   # [N, B, ...], [N, B]
        loss, gn = _backward_step(self.ens, self.opt, [member_cross_entropy(self.ens(x), y).mean(1)],
                                  self.record_grad_norm)
        record(self.losses, at, loss)
        record(self.grad_norms, at, gn)

    def _device_step(self, b: int) -> None:
        cols = self.pos * self.B + self.arange[:b]                          # [b], on the device
        self._step(self.perm.index_select(1, cols), self.pos)
        self.pos.add_(1)

    def close(self) -> None:
        """Release the captured graphs (the steps refer back to the trainer, a
        cycle that only the cyclic garbage collector would otherwise break)."""
        for step in (self.full_step, self.tail_step):
            if step is not None:
                step.close()

    def epoch(self, max_steps: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One epoch (or its first `max_steps`). Returns the per-step training
        loss [steps, N] and, if recorded, gradient norm [steps, N] (device
        tensors, not synchronised)."""
        perm = torch.stack([torch.randperm(self.n, generator=g) for g in self.gens])
        steps = self.steps if max_steps is None else min(max_steps, self.steps)
        if self.static:
            with on_stream(self.stream):
                self.perm.copy_(perm)
                self.pos.zero_()
                full = min(steps, self.n // self.B)
                for _ in range(full):
                    self.full_step()
                if steps > full:
                    self.tail_step()
        else:
            perm = perm.to(self.train.x.device)
            for s in range(steps):
                self._step(perm[:, s * self.B:(s + 1) * self.B], s)
        gn = self.grad_norms[:steps].clone() if self.grad_norms is not None else None
        return self.losses[:steps].clone(), gn


def train_epoch(ens: Ensemble, opt: torch.optim.Optimizer, train: Split, batch_size: int,
                gens: list[torch.Generator], max_steps: int | None = None) -> torch.Tensor:
    """One epoch of minibatch steps (see MinibatchTrainer); returns the per-step
    loss [steps, N]. A one-off: loops over epochs should keep one trainer."""
    trainer = MinibatchTrainer(ens, opt, train, batch_size, gens)
    try:
        return trainer.epoch(max_steps)[0]
    finally:
        trainer.close()


def fit_classifier(ens: Ensemble, train: Split, test: Split | None, *, epochs: int,
                   batch_size: int, lr: float | Sequence[float], record_steps: bool = False,
                   snapshot_every: int = 0, eval_every: int = 1, progress: bool = True,
                   desc: str = "train", graphs: bool | None = None,
                   decay_to: float | None = None, curve_subset: int | None = None) -> dict[str, np.ndarray]:
    """Train every member with Adam and cross-entropy on `train`.

    Each member shuffles with its own generator (from its seed). After every
    `eval_every` epochs, before the first and after the last, all members are
    evaluated on the whole of `train` and `test`; with `curve_subset` = n, the
    training curve before the last epoch is measured on the first n images of
    `train` (a fixed sample: a sixth of the evaluation work of a 60,000-image
    epoch), the last epoch on all of it. Returns numpy arrays:
      train_loss, train_acc, test_loss, test_acc: [E, N] at eval_epochs [E]
        (with eval_every=1, E = epochs + 1 and row e is epoch e)
      step_loss, grad_norm: [steps, N] (when record_steps)
      snapshots [K, N, P], snapshot_epochs [K] (when snapshot_every > 0):
        the flattened weights at epoch 0 and every `snapshot_every` epochs.
    train.y may be [N, n], each member with labels of its own; lr may be one
    rate per member (see MemberLrAdam).
    decay_to: the rates follow a cosine decay over the epochs, epoch by epoch
      (epoch e, from 1, at lr * cosine_factor(e - 1, epochs, decay_to)); None:
      constant.
    graphs: capture the CUDA steps (None: yes on CUDA; see `graphs_wanted`).
    """
    opt = make_adam(ens, lr, scheduled=decay_to is not None)
    snaps, snap_epochs = [], []
    gens = [shuffle_generator(s) for s in ens.seeds]
    splits = {"train": train} | ({"test": test} if test is not None else {})
    hist: dict[str, list] = {f"{k}_{m}": [] for k in splits for m in ("loss", "acc")}
    eval_epochs: list[int] = []
    step_loss: list[torch.Tensor] = []
    grad_norm: list[torch.Tensor] = []
    trainer = MinibatchTrainer(ens, opt, train, batch_size, gens, record_steps, graphs)

    def log_eval(epoch):
        if epoch % eval_every and epoch != epochs:
            return
        eval_epochs.append(epoch)
        for k, split in splits.items():
            if k == "train" and epoch != epochs:
                split = split.subset(curve_subset)
            loss, acc = evaluate(ens, split)
            hist[f"{k}_loss"].append(loss)
            hist[f"{k}_acc"].append(acc)

    def snapshot(epoch):
        if snapshot_every and epoch % snapshot_every == 0:
            snaps.append(ens.flat_params().cpu())
            snap_epochs.append(epoch)

    log_eval(0)
    snapshot(0)
    start = None
    bar = tqdm(range(1, epochs + 1), desc=desc, disable=not progress, leave=False)
    try:
        for epoch in bar:
            if decay_to is not None:
                opt.scale_rates(cosine_factor(epoch - 1, epochs, decay_to))
            losses, gn = trainer.epoch()
            start = _check_epoch(losses, epoch, start)
            step_loss.append(losses)
            if gn is not None:
                grad_norm.append(gn)
            log_eval(epoch)
            snapshot(epoch)
            bar.set_postfix(step_loss=f"{losses[-1].mean().item():.4f}",
                            train_acc=f"{hist['train_acc'][-1].mean():.4f}")
    finally:
        trainer.close()
    result = {k: np.stack(v) for k, v in hist.items()}
    result["eval_epochs"] = np.array(eval_epochs)
    if record_steps:
        result["step_loss"] = torch.cat(step_loss).cpu().numpy()
        result["grad_norm"] = torch.cat(grad_norm).cpu().numpy()
    if snapshot_every:
        result["snapshots"] = torch.stack(snaps).numpy()
        result["snapshot_epochs"] = np.array(snap_epochs)
    return result


def subset_adam(opt: "torch.optim.Adam | MemberLrAdam", training: Ensemble, keep: torch.Tensor
                ) -> "torch.optim.Adam | MemberLrAdam":
    """A fresh Adam over `training` (members `keep` of the ensemble `opt` steps) that
    carries on where `opt` was: its moments sliced to those members, its step
    count copied, each member's learning rate kept. Adam is elementwise, so
    the kept members step on exactly as before."""
    if isinstance(opt, MemberLrAdam):
        new = MemberLrAdam(training, [opt.lrs[i] for i in keep.tolist()])
        old_adam, new_adam = opt.adam, new.adam
    else:
        new = make_adam(training, opt.param_groups[0]["lr"])
        old_adam, new_adam = opt, new
    for old_p, new_p in zip(old_adam.param_groups[0]["params"], training.parameters()):
        state = old_adam.state[old_p]
        new_adam.state[new_p] = {k: (v[keep].clone() if k != "step" else v.clone()) for k, v in state.items()}
    return new


def train_on_without(ens: Ensemble, active, keep, opt: "torch.optim.Adam | MemberLrAdam"):
    """Members leave a training ensemble: of the members `active` (indices into
    `ens`, whose weights `ens` holds now), those at positions `keep` train on.
    Returns (the smaller ensemble, its Adam carried over by `subset_adam`, their
    indices into `ens`). The one way fit_full_batch and fit_to_targets
    drop members that are done."""
    keep = np.asarray(keep)
    training = ens.subset([int(active[i]) for i in keep])
    return training, subset_adam(opt, training, torch.as_tensor(keep, device=ens.device)), active[keep]


def cosine_factor(epoch: int, epochs: int, decay_to: float) -> float:
    """The rate factor of step `epoch` (0-based) of `epochs` under a cosine
    decay from 1 to `decay_to`: 1 at the first step, decay_to after the last."""
    return decay_to + (1 - decay_to) * 0.5 * (1 + math.cos(math.pi * epoch / epochs))


def fit_full_batch(ens: Ensemble, x: torch.Tensor, y: torch.Tensor, *, epochs: int, lr: float | Sequence[float],
                   progress: bool = True, desc: str = "fit", check_every: int = 200,
                   record_grad_norm: bool = False, graphs: bool | None = None,
                   static: bool = False, decay_to: float | None = None,
                   stop: Callable[[np.ndarray], np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Full-batch Adam on mean squared error, each member on its own data.

    lr: one rate, or one per member. decay_to: the rates follow a cosine decay
    over the `epochs` steps from lr to lr * decay_to (`cosine_factor`); None:
    constant.

    x, y: [N, n, d]. One epoch is one step on the whole set. Returns
      loss [epochs + 1, N]: the training loss of every epoch, measured before
        that epoch's step; row `epochs` is the loss of the final weights;
      grad_norm [epochs, N] (when record_grad_norm): each step's per-member
        gradient norm of the same loss, before the step.
    On CUDA the step is captured once and replayed (see CapturedStep); the
    host looks at the losses every `check_every` steps, to stop on NaN.
    static=True runs the captured step's code eagerly (for tests on a CPU).

    stop: a rule that, every `check_every` steps, is given the loss history
    [T, n] of the members still training (rows 0 .. T-1, T steps done) and
    returns which of them have converged [n] (bool). Those stop there: their
    row T is the loss of their final weights, later rows are NaN, and the
    ensemble trains on without them (smaller, so cheaper). With a rule, the
    result also has stopped_at [N]: the number of steps each member took
    (`epochs` for those the rule never stopped).
    """
    N = len(ens)
    dev = x.device
    losses = torch.full((epochs + 1, N), float("nan"), dtype=x.dtype, device=dev)
    gnorms = torch.full((epochs, N), float("nan"), dtype=x.dtype, device=dev) if record_grad_norm else None
    stopped_at = np.full(N, epochs)
    active = torch.arange(N, device=dev)        # members (indices into ens) still training
    training, cx, cy = ens, x, y
    opt = make_adam(ens, lr, scheduled=decay_to is not None)
    captured = graphs_wanted(dev, graphs)
    static = captured or static
    bar = tqdm(total=epochs, desc=desc, disable=not progress, leave=False)
    e, seg_start = 0, 0
    with on_stream(thread_stream(dev) if captured else None):
        while e < epochs:
            n = len(training)
            seg = torch.empty(epochs + 1, n, dtype=x.dtype, device=dev)
            seg_g = torch.empty(epochs, n, dtype=x.dtype, device=dev) if record_grad_norm else None
            pos = torch.full((), e, dtype=torch.long, device=dev)

            chunk = training.members_per_chunk(cx.shape[1])

            def member_mse(training=training, cx=cx, cy=cy, chunk=chunk):
                for s in range(0, len(training), chunk):
                    p = {k: v[s:s + chunk] for k, v in training.params.items()} if chunk < len(training) else None
                    yield (training(cx[s:s + chunk], params=p) - cy[s:s + chunk]).pow(2).mean(dim=(1, 2))

            def step(at, training=training, opt=opt, seg=seg, seg_g=seg_g, member_mse=member_mse) -> None:
                loss, gn = _backward_step(training, opt, member_mse(), record_grad_norm)
                record(seg, at, loss)
                record(seg_g, at, gn)

            def device_step(step=step, pos=pos) -> None:
                step(pos)
                pos.add_(1)

            run = CapturedStep(device_step, captured, name=f"the full-batch step of {desc!r}", optimizer=opt)
            done = None
            while e < epochs and done is None:
                if decay_to is not None:
                    opt.scale_rates(cosine_factor(e, epochs, decay_to))
                run() if static else step(e)
                e += 1
                if e % check_every == 0 or e == epochs:
                    start = max(seg_start, e - check_every)
                    _raise_diverged(seg[start:e], start + 1, start=losses[0, active] if seg_start else seg[0],
                                    members=active.tolist())
                    losses[start:e, active] = seg[start:e]
                    if record_grad_norm:
                        gnorms[start:e, active] = seg_g[start:e]
                    bar.update(e - bar.n)
                    bar.set_postfix(loss=f"{seg[e - 1].mean().item():.2e}", training=n)
                    if stop is not None and e < epochs:
                        conv = np.asarray(stop(losses[:e, active].cpu().numpy()), dtype=bool)
                        if conv.any():
                            done = conv
            run.close()
            with torch.no_grad():       # row e: the loss of the weights after e steps
                losses[e, active] = (training(cx) - cy).pow(2).mean(dim=(1, 2))
            if training is not ens:
                ens.assign(active.tolist(), training)
            if done is None:
                break
            stopped_at[active.cpu().numpy()[done]] = e
            keep = np.nonzero(~done)[0]
            if len(keep) == 0:
                break
            training, opt, active = train_on_without(ens, active, keep, opt)
            cx, cy = cx[torch.as_tensor(keep, device=dev)], cy[torch.as_tensor(keep, device=dev)]
            seg_start = e
        bar.close()
    out = {"loss": losses.cpu().numpy()}
    if record_grad_norm:
        out["grad_norm"] = gnorms.cpu().numpy()
    if stop is not None:
        out["stopped_at"] = stopped_at
    return out


def max_evals(iters: int) -> int:
    """The loss evaluations `polish_lbfgs` allows for `iters` L-BFGS iterations (LBFGS's default ratio)."""
    return iters * 5 // 4


def polish_lbfgs(build: Callable[[], torch.nn.Module], ens: Ensemble, x: torch.Tensor, y: torch.Tensor, *,
                 iters: int, history: int = 50, progress: bool = False, desc: str = "L-BFGS"
                 ) -> dict[str, np.ndarray]:
    """Full-batch L-BFGS (torch.optim.LBFGS, strong-Wolfe line search) on each
    member's mean squared error on its own data (x, y [N, n, d]), one member
    at a time, in float64 on the CPU, from the member's current weights, for
    `iters` iterations (fewer where LBFGS's own tolerances stop it: it has
    nowhere left to go). The polished weights are written back into `ens`.
    Then, at the polished weights, the gradient and the full Hessian of the
    loss (for small nets: P x P). Returns numpy arrays:
      loss [max_evals(iters) + 2, N]: at every evaluation of the loss (the
        line search's included; row 0: before the first step), then the
        polished weights' loss, repeated to the end where L-BFGS stopped early;
      grad_norm, hess_min, hess_max [N]: the gradient's norm and the extreme
        Hessian eigenvalues at the end (their last bits depend on the number
        of torch threads, through LAPACK: bit for bit only at one count);
      pred [N, n, d]: the polished nets' outputs on x (float64).
    """
    from .curvature import FlatLoss, hessian

    N = len(ens)
    out = {"loss": np.full((max_evals(iters) + 2, N), np.nan), "grad_norm": np.zeros(N), "hess_min": np.zeros(N),
           "hess_max": np.zeros(N), "pred": np.zeros((N, *y.shape[1:]))}
    xs, ys = x.detach().cpu().double(), y.detach().cpu().double()
    for i in tqdm(range(N), desc=desc, disable=not progress, leave=False):
        model = build().double()
        model.load_state_dict({k: v.detach().cpu().double() for k, v in ens.state_dict(i).items()})
        f = FlatLoss(model, F.mse_loss, xs[i], ys[i])
        theta = f.theta0.clone().requires_grad_(True)
        # one call for all iterations: LBFGS keeps its line search's state within a call (a call per
        # iteration stalls it); the closure records the loss of every evaluation
        opt = torch.optim.LBFGS([theta], lr=1, max_iter=iters, max_eval=max_evals(iters), history_size=history,
                                line_search_fn="strong_wolfe", tolerance_grad=1e-12, tolerance_change=1e-15)
        trace: list[float] = []

        def closure():
            opt.zero_grad()
            value = f(theta)
            value.backward()
            trace.append(value.item())
            return value

        opt.step(closure)
        with torch.no_grad():
            trace.append(f(theta).item())               # the polished weights' loss
        out["loss"][:len(trace), i] = trace
        out["loss"][len(trace):, i] = trace[-1]
        _raise_diverged(torch.as_tensor(out["loss"][:, i:i + 1]), 0, "L-BFGS evaluation", members=[i])
        final = theta.detach()
        g = torch.autograd.grad(f(final.requires_grad_(True)), final)[0]
        ev = torch.linalg.eigvalsh(hessian(f, final.detach()))
        out["grad_norm"][i], out["hess_min"][i], out["hess_max"][i] = g.norm().item(), ev[0].item(), ev[-1].item()
        with torch.no_grad():
            out["pred"][i] = f.output(final.detach()).numpy()
            for k, v in f.unflatten(final.detach()).items():
                ens.params[k][i].copy_(v.to(ens.params[k].dtype))
    return out


def final_metrics(hist: dict) -> dict:
    """The last evaluation of a fit_classifier history: {train,test}_{loss,acc} [N]."""
    return {k: hist[k][-1] for k in ("train_loss", "train_acc", "test_loss", "test_acc")}


# ------------------------------------------------------------------ to loss targets and a stopping rule (1-3a, 1-3c to 1-3e)
STOP = "stop"      # the name of the stopping rule's row among the kept conditions


def fit_to_targets(ens: Ensemble, train: Split, test: Split, *, targets: Sequence[float], max_epochs: int,
                   batch_size: int, lr: float | Sequence[float], patience: int | None = None,
                   on: str = "loss", chunk: int | None = None, progress: bool = False, desc: str = "train"
                   ) -> tuple[dict[str, np.ndarray], dict[str, torch.Tensor]]:
    """Train every member (Adam, cross-entropy, its own shuffling) and keep its
    weights at each of C conditions:

    - each target t in `targets`: the first epoch at which ITS loss on the
      whole of `train` is <= t (with on="acc": its accuracy on the whole of
      `train`, against its own labels, is >= t); a member that never gets
      there by `max_epochs` keeps its last weights, and `reached` says so;
    - with `patience`, the stopping rule (`STOP`, the last row): the weights at
      the member's lowest training loss, once `patience` epochs have passed
      without a lower one (Keskar et al.'s "until the loss ceased to
      improve"); `reached` says whether the rule fired before `max_epochs`.

    A member that has met every condition stops training there; the others
    train on as a smaller ensemble (each with its own Adam moments, learning
    rate and batch order carried over, so its steps are those it would have
    taken in the whole ensemble), until every member is done or for
    `max_epochs`. The training loss is evaluated after every epoch on all of
    `train` (in chunks of `chunk` samples). Returns (arrays, states):
      arrays: epochs, steps, reached, {train,test}_{loss,acc} [C, N] of the kept
        weights; loss_curve, acc_curve [E + 1, N] (the training loss and
        accuracy after each epoch run, row 0 at the start; NaN once a member
        has stopped);
      states: {name: [C, N, *shape]} the kept weights.
    """
    if on not in ("loss", "acc"):
        raise ValueError(f"fit_to_targets: on must be 'loss' or 'acc', not {on!r}.")
    N = len(ens)
    conds = list(targets) + ([STOP] if patience else [])
    C = len(conds)
    if not C:
        raise ValueError("fit_to_targets needs a target or a patience.")
    gens = [shuffle_generator(s) for s in ens.seeds]
    active = np.arange(N)                     # members still training (indices into ens)
    training, training_data, opt = ens, train, make_adam(ens, lr)
    trainer = MinibatchTrainer(training, opt, training_data, batch_size, gens)
    kept = {k: v.detach().clone().unsqueeze(0).repeat(C, *[1] * v.dim()) for k, v in ens.params.items()}
    epochs = np.full((C, N), max_epochs)
    reached = np.zeros((C, N), bool)
    loss0, acc0 = evaluate(ens, train, chunk)
    curve, acc_curve = [loss0], [acc0]
    best, best_epoch = curve[0].copy(), np.zeros(N, int)
    start = None
    bar = tqdm(range(1, max_epochs + 1), desc=desc, disable=not progress, leave=False)
    try:
        for epoch in bar:
            steps, _ = trainer.epoch()
            start = _check_epoch(steps, epoch, start, members=active)
            loss, acc = np.full(N, np.nan), np.full(N, np.nan)
            loss[active], acc[active] = evaluate(training, training_data, chunk)
            _raise_diverged(torch.as_tensor(loss[active])[None], epoch, members=active)   # kept weights: finite too
            curve.append(loss), acc_curve.append(acc)
            now = np.zeros(N, bool)
            now[active] = True
            with np.errstate(invalid="ignore"):
                met = [(loss <= t) if on == "loss" else (acc >= t) for t in targets]
            for c, t in enumerate(targets):
                new = now & met[c] & ~reached[c]
                _keep(kept, training, active, c, new)
                epochs[c, new], reached[c] = epoch, reached[c] | new
            if patience:
                better = now & (loss < best) & ~reached[-1]
                _keep(kept, training, active, C - 1, better)
                best[better], best_epoch[better] = loss[better], epoch
                epochs[-1, better] = epoch
                reached[-1] |= now & (epoch - best_epoch >= patience)
            done = reached.all(0)
            bar.set_postfix(met=f"{done.sum()}/{N}", loss=f"{np.nanmax(loss):.3f}")
            if done.all() or epoch == max_epochs:
                break
            if done[active].any():
                # members that met every condition leave: the rest train on as a smaller ensemble, each
                # with its own Adam state and batch order carried over (so exactly as before)
                if training is not ens:
                    ens.assign(active.tolist(), training)
                keep = np.nonzero(~done[active])[0]
                trainer.close()
                start = start[torch.as_tensor(keep, device=start.device)]
                training, opt, active = train_on_without(ens, active, keep, opt)
                training_data = Split(train.x, train.y[active]) if train.y.dim() == 2 else train
                trainer = MinibatchTrainer(training, opt, training_data, batch_size, [gens[i] for i in active])
    finally:
        trainer.close()
        if training is not ens:
            ens.assign(active.tolist(), training)
    for c in range(len(targets)):       # a target not met: the last weights
        _keep(kept, ens, np.arange(N), c, ~reached[c])
    out: dict[str, list] = {f"{s}_{m}": [] for s in ("train", "test") for m in ("loss", "acc")}
    with torch.no_grad():
        for c in range(C):
            for k, v in ens.params.items():
                v.copy_(kept[k][c])
            for name, split in (("train", train), ("test", test)):
                loss, acc = evaluate(ens, split, chunk)
                out[f"{name}_loss"].append(loss), out[f"{name}_acc"].append(acc)
    arrays = {k: np.stack(v) for k, v in out.items()}
    arrays |= {"epochs": epochs, "steps": epochs * -(-len(train) // batch_size), "reached": reached,
               "loss_curve": np.stack(curve), "acc_curve": np.stack(acc_curve)}
    return arrays, kept


def _keep(kept: dict[str, torch.Tensor], training: Ensemble, active: np.ndarray, row: int, members: np.ndarray) -> None:
    """kept[name][row, i] = member i's current weights, for the members flagged
    (a mask over all N members); `training` holds the members `active`, in order."""
    if members.any():
        dev = next(iter(kept.values())).device
        to = torch.as_tensor(np.nonzero(members)[0], device=dev)
        frm = torch.as_tensor(np.nonzero(members[active])[0], device=dev)
        for k, v in training.params.items():
            kept[k][row][to] = v.detach()[frm]
