"""Training for the flatness sections (1-3c, 1-3d, 1-3e): models kept at matched
training losses or at a stopping rule, initial weights chosen apart from the
batch order, and Keskar et al.'s (2017) network F1.

`fit_to_targets` keeps every member at several loss targets from one run
(the weights kept the first time each target is met) and at a stopping rule
(the weights at a member's lowest training loss, once it has not improved
for `patience` epochs), so that a factorial over targets costs one run per
cell, not one per target; members that are done leave the ensemble, so a
cell's slow members do not make its fast ones train on.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .data import Split
from .ensemble import Ensemble
from .train import (MinibatchTrainer, _check_epoch, _raise_diverged, evaluate, make_adam, shuffle_generator,
                    train_on_without)

STOP = "stop"      # the name of the stopping rule's row among the kept conditions


def keskar_f1(width: int = 512) -> Callable[[], nn.Sequential]:
    """Builder of Keskar et al.'s (2017, appendix B.1) network F1 for MNIST: 784
    inputs, five hidden layers of 512 units (`width`; smaller only in the smoke
    and quick profiles), each Linear -> batch normalisation -> ReLU, and 10
    outputs (softmax in the loss). Batch normalisation keeps no running
    statistics: it normalises with the statistics of the batch it is given, in
    training and in evaluation alike, as the Keras `BatchNormalization(mode=2)`
    of the authors' code does; evaluate it on large chunks (`F1_CHUNK`)."""
    def build() -> nn.Sequential:
        layers: list[nn.Module] = [nn.Flatten()]
        d = 784
        for _ in range(5):
            layers += [nn.Linear(d, width), nn.BatchNorm1d(width, track_running_stats=False), nn.ReLU()]
            d = width
        layers.append(nn.Linear(d, 10))
        return nn.Sequential(*layers)
    return build


F1_CHUNK = 10_000   # samples per evaluation chunk of F1 (its batch statistics come from each chunk)


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
    cur, cur_train, opt = ens, train, make_adam(ens, lr)
    trainer = MinibatchTrainer(cur, opt, cur_train, batch_size, gens)
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
            loss[active], acc[active] = evaluate(cur, cur_train, chunk)
            _raise_diverged(torch.as_tensor(loss[active])[None], epoch, members=active)   # kept weights: finite too
            curve.append(loss), acc_curve.append(acc)
            now = np.zeros(N, bool)
            now[active] = True
            with np.errstate(invalid="ignore"):
                met = [(loss <= t) if on == "loss" else (acc >= t) for t in targets]
            for c, t in enumerate(targets):
                new = now & met[c] & ~reached[c]
                _keep(kept, cur, active, c, new)
                epochs[c, new], reached[c] = epoch, reached[c] | new
            if patience:
                better = now & (loss < best) & ~reached[-1]
                _keep(kept, cur, active, C - 1, better)
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
                if cur is not ens:
                    ens.assign(active.tolist(), cur)
                keep = np.nonzero(~done[active])[0]
                trainer.close()
                start = start[torch.as_tensor(keep, device=start.device)]
                cur, opt, active = train_on_without(ens, active, keep, opt)
                cur_train = Split(train.x, train.y[active]) if train.y.dim() == 2 else train
                trainer = MinibatchTrainer(cur, opt, cur_train, batch_size, [gens[i] for i in active])
    finally:
        trainer.close()
        if cur is not ens:
            ens.assign(active.tolist(), cur)
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


def _keep(kept: dict[str, torch.Tensor], cur: Ensemble, active: np.ndarray, row: int, members: np.ndarray) -> None:
    """kept[name][row, i] = member i's current weights, for the members flagged
    (a mask over all N members); `cur` holds the members `active`, in order."""
    if members.any():
        dev = next(iter(kept.values())).device
        to = torch.as_tensor(np.nonzero(members)[0], device=dev)
        frm = torch.as_tensor(np.nonzero(members[active])[0], device=dev)
        for k, v in cur.params.items():
            kept[k][row][to] = v.detach()[frm]
