"""Device selection with a clear error instead of a CUDA traceback."""
from __future__ import annotations

import os

import torch

from .errors import DeviceError

VALID = ("auto", "cpu", "cuda")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Map "auto" | "cpu" | "cuda" (or "cuda:N") to a torch.device that exists here."""
    name = str(device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(
                f"device={name!r} was requested but this machine has no usable CUDA GPU; "
                "use device='cpu' or device='auto'."
            )
        return torch.device(name)
    raise DeviceError(f"Unknown device {name!r}; choose one of {', '.join(VALID)}.")


def describe(device: torch.device) -> str:
    """The device in words, as run records and timings name it."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({os.cpu_count()} cores, torch {torch.get_num_threads()} threads)"
