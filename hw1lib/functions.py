"""Target functions for section 1-1a, x in [-1, 1]."""
from __future__ import annotations

import math

import torch

FUNCTIONS = {
    # sin(5 pi x) / (5 pi x), with its limit 1 at x = 0 (torch.sinc is sin(pi t)/(pi t)).
    "sinc": (r"$\sin(5\pi x)/(5\pi x)$", lambda x: torch.sinc(5 * x)),
    # A square wave: discontinuous, the hardest for a smooth fit.
    "sign": (r"$\mathrm{sign}(\sin(5\pi x))$", lambda x: torch.sign(torch.sin(5 * math.pi * x))),
    # A chirp: frequency grows with |x|, so capacity must go where the wiggles are.
    "chirp": (r"$\sin(4\pi x^2)$", lambda x: torch.sin(4 * math.pi * x * x)),
}


def target(name: str, x: torch.Tensor) -> torch.Tensor:
    if name not in FUNCTIONS:
        from .errors import ConfigError

        raise ConfigError(f"Unknown function {name!r}; choose from {', '.join(FUNCTIONS)}.")
    return FUNCTIONS[name][1](x)


def label(name: str) -> str:
    return FUNCTIONS[name][0]
