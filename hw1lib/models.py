"""Model builders and parameter matching.

Models of different depth are compared at (almost) the same number of
parameters, so the helpers here solve for layer widths that hit a target
count within a relative tolerance (1% by default).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from .errors import ConfigError


def count_params(model: Any) -> int:
    """The one way to count parameters: those of ONE model, given as an
    nn.Module, an Ensemble (its architecture) or anything with a `.base` module
    (FlatLoss). Meta-device modules count too (sizing builds them there)."""
    module = getattr(model, "base", model)
    return sum(p.numel() for p in module.parameters())


def _meta_count(build: Callable[[], nn.Module]) -> int:
    """count_params of a model built on the meta device: no memory, no init cost."""
    with torch.device("meta"):
        return count_params(build())


# ---------------------------------------------------------------- MLP
ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}


def mlp(in_dim: int, widths: tuple[int, ...], out_dim: int, activation: str = "relu") -> nn.Sequential:
    """Fully connected net: in_dim -> widths[0] -> ... -> out_dim, ReLU (or tanh) between.

    Input [B, in_dim] (or [B, 1, 28, 28], flattened), output [B, out_dim].
    """
    if activation not in ACTIVATIONS:
        raise ConfigError(f"Unknown activation {activation!r}; choose one of {', '.join(ACTIVATIONS)}.")
    layers: list[nn.Module] = [nn.Flatten()]
    d = in_dim
    for w in widths:
        layers += [nn.Linear(d, w), ACTIVATIONS[activation]()]
        d = w
    layers.append(nn.Linear(d, out_dim))
    return nn.Sequential(*layers)


def mnist_mlp(hidden: tuple[int, ...]) -> Callable[[], nn.Sequential]:
    """Builder of the 784 -> hidden -> 10 ReLU MLP used by the MNIST sections."""
    return lambda: mlp(784, tuple(hidden), 10)


def _check(target: int, count: int, rtol: float, what: str) -> None:
    if abs(count - target) > rtol * target:
        raise ConfigError(
            f"No {what} has {target} parameters within {rtol:.0%} (best: {count}); "
            "choose a larger target or fewer layers."
        )


def mlp_widths_for_params(depth: int, target: int, in_dim: int = 1, out_dim: int = 1,
                          rtol: float = 0.01) -> tuple[int, ...]:
    """Hidden widths of a `depth`-hidden-layer MLP with ~`target` parameters.

    All hidden layers share one width w except the first, whose width a is
    solved for exactly (the count is linear in a); among the solutions within
    `rtol`, the one with a closest to w (the most uniform net) wins.
    """
    if depth < 1:
        raise ConfigError(f"depth must be >= 1, got {depth}.")

    def count(i, widths, o):  # = count_params(mlp(i, widths, o)) (tested), without building thousands of nets
        dims = (i, *widths, o)
        return sum(a * b + b for a, b in zip(dims[:-1], dims[1:]))

    best: tuple[float, int, tuple[int, ...]] | None = None
    for w in range(1, target + 1):
        if depth == 1:
            cands = [(w,)]
        else:
            # count(a) = c1 * a + c0 for widths (a, w, ..., w): two counts give c0 and c1
            n1, n2 = count(in_dim, (1, *[w] * (depth - 1)), out_dim), count(in_dim, (2, *[w] * (depth - 1)), out_dim)
            a = max(1, round((target - (2 * n1 - n2)) / (n2 - n1)))
            cands = [(a, *[w] * (depth - 1))]
        for widths in cands:
            n = count(in_dim, widths, out_dim)
            err = abs(n - target) / target
            score = (err > rtol, abs(widths[0] - widths[-1]), err)
            if best is None or score < best[0]:
                best = (score, n, widths)
        if count(in_dim, (1, *[w] * (depth - 1)), out_dim) > target * (1 + rtol):
            break
    assert best is not None
    _check(target, best[1], rtol, f"{depth}-hidden-layer MLP")
    return best[2]


# ---------------------------------------------------------------- CNN
@dataclass(frozen=True)
class CNNSpec:
    """Conv blocks of `channels` (3x3, ReLU), pooled to 7x7, then a ReLU
    dense layer of `hidden` units and 10 outputs. Input [B, 1, 28, 28]."""
    channels: tuple[int, ...]
    hidden: int
    n_classes: int = 10

    def build(self) -> nn.Sequential:
        layers: list[nn.Module] = []
        c_in = 1
        depth = len(self.channels)
        for i, c in enumerate(self.channels):
            layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.ReLU()]
            # Pool 28 -> 7 in total: twice by 2 after the first two blocks, or
            # once by 4 when there is a single block.
            if depth == 1:
                layers.append(nn.MaxPool2d(4))
            elif i < 2:
                layers.append(nn.MaxPool2d(2))
            c_in = c
        layers += [nn.Flatten(), nn.Linear(c_in * 49, self.hidden), nn.ReLU(),
                   nn.Linear(self.hidden, self.n_classes)]
        return nn.Sequential(*layers)

    def param_count(self) -> int:
        """count_params of the built model (built on the meta device)."""
        return _meta_count(self.build)


def cnn_for_params(depth: int, target: int, min_hidden: int = 16, rtol: float = 0.01) -> CNNSpec:
    """A `depth`-block CNN with ~`target` parameters.

    Channel width c is shared by all blocks; the dense width h is solved
    for exactly. The widest c that still leaves h >= `min_hidden` wins, so
    the convolutions hold as much of the budget as the head allows.
    """
    if depth < 1:
        raise ConfigError(f"depth must be >= 1, got {depth}.")
    best = None
    for c in range(1, 257):
        # the count is linear in the dense width h: two counts give slope and intercept
        n1, n2 = CNNSpec((c,) * depth, 1).param_count(), CNNSpec((c,) * depth, 2).param_count()
        h = round((target - (2 * n1 - n2)) / (n2 - n1))
        if h < min_hidden:
            break
        spec = CNNSpec((c,) * depth, h)
        if abs(spec.param_count() - target) <= rtol * target:
            best = spec
    if best is None:
        raise ConfigError(
            f"No {depth}-block CNN has {target} parameters within {rtol:.0%} with a dense "
            f"layer of at least {min_hidden} units; choose a larger target."
        )
    return best


def describe(model: nn.Module) -> str:
    """Layer widths as a compact string, e.g. 'Linear 1-190-1' or 'Conv 1-8-8 | Dense 392-32-10'."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    parts = []
    if convs:
        parts.append("Conv " + "-".join(str(x) for x in [convs[0].in_channels] + [c.out_channels for c in convs]))
    if linears:
        parts.append("Dense " + "-".join(str(x) for x in [linears[0].in_features] + [l.out_features for l in linears]))
    return " | ".join(parts)


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


def linear_layers(build) -> list[int]:
    """The positions of the Linear layers in the Sequential `build` makes."""
    return [i for i, m in enumerate(build()) if isinstance(m, torch.nn.Linear)]


def bn_fed_layers(build) -> list[int]:
    """The positions of the Linear layers whose output goes straight into a batch normalisation."""
    mods = list(build())
    return [i for i, m in enumerate(mods[:-1]) if isinstance(m, torch.nn.Linear)
            and isinstance(mods[i + 1], torch.nn.modules.batchnorm._BatchNorm)]


def bn_rescaled(states: dict[str, torch.Tensor], layers: list[int], factor: float) -> dict[str, torch.Tensor]:
    """Kept weights with the weight and bias of each of `layers` times `factor`: a batch normalisation
    after them (batch statistics) gives the same output, up to its epsilon."""
    return {n: v * factor if n.split(".")[0] in {str(i) for i in layers} else v for n, v in states.items()}
