"""The CUDA-graph engine: captured training steps, one stream per thread.

On a CUDA device a training step is ~20 small kernels whose launches from
Python cost more than their work, so each step (batch gather through a static
index buffer, forward, backward, Adam with capturable=True, the writing of the
step's loss and gradient norm into device buffers) is captured once as a CUDA
graph and replayed; host and device meet once per epoch. An eager step cost
2-3.5 ms, a replayed one 0.2-0.3 ms, on an H200 (benchmarks/README.md,
"captured" vs "eager").
The loops in `hw1lib.train` use it; eager execution of the same step function
is the reference, and tests/test_engine.py checks both give the same numbers.

What a capture freezes: every Python number the step reads. The learning rate
is such a number (Adam's `lr`), so a captured step refuses to replay after the
optimizer's learning rate changed (`CapturedStep(..., optimizer=opt)`): a
schedule would otherwise apply on the CPU only. Use graphs=False (or
HW1LIB_CUDA_GRAPHS=0) for a schedule.
"""
from __future__ import annotations

import contextlib
import gc
import os
import threading
import warnings
from typing import Callable

import torch

from .errors import ConfigError


def graphs_wanted(device: torch.device, graphs: bool | None = None) -> bool:
    """Whether training steps on `device` are captured: only on CUDA; `graphs`
    None means yes unless the environment sets HW1LIB_CUDA_GRAPHS=0."""
    if device.type != "cuda":
        return False
    if graphs is None:
        return os.environ.get("HW1LIB_CUDA_GRAPHS", "1") != "0"
    return graphs


@contextlib.contextmanager
def on_stream(stream: "torch.cuda.Stream | None"):
    """Run the block on `stream`, ordered after the current stream's work, and
    order the current stream after it on the way out; a no-op for None. A
    captured step keeps one stream of its own: capture needs a non-default
    stream, and warm-up, capture and replay on the same one share the
    libraries' per-stream workspaces."""
    if stream is None:
        yield
        return
    current = torch.cuda.current_stream(stream.device)
    stream.wait_stream(current)
    with torch.cuda.stream(stream):
        yield
    current.wait_stream(stream)


_CAPTURE_LOCK = threading.Lock()   # one capture at a time when units run in threads
_STREAM_LOCK = threading.Lock()
_THREAD = threading.local()
_STREAM_OWNERS: dict[int, threading.Thread] = {}


def thread_stream(device: torch.device) -> "torch.cuda.Stream":
    """This thread's own CUDA stream, shared by none of the live threads.

    `torch.cuda.Stream()` hands out streams from a fixed pool, round robin, so
    two calls can return the same stream; a unit in one thread whose kernels
    went to a stream that another thread is capturing would be captured into
    that graph. Every thread therefore takes one stream, checked to be
    distinct from those of the other live threads, and keeps it."""
    s = getattr(_THREAD, "stream", None)
    if s is not None and s.device == device:
        return s
    with _STREAM_LOCK:
        for _ in range(256):
            s = torch.cuda.Stream(device)
            owner = _STREAM_OWNERS.get(s.cuda_stream)
            if owner is None or not owner.is_alive() or owner is threading.current_thread():
                break
        else:
            raise RuntimeError("all CUDA streams of the pool are held by live threads; use fewer --jobs")
        _STREAM_OWNERS[s.cuda_stream] = threading.current_thread()
    _THREAD.stream = s
    return s


class CapturedStep:
    """`fn()` (a step that reads and writes only tensors that stay in place)
    run eagerly for its first `warmup` calls, which initialise Adam's state and
    the libraries' workspaces, then captured once as a CUDA graph and replayed.

    The captured graph does not execute while it is recorded, so every call,
    eager or replayed, is one real step. If capture fails, the step stays eager
    and says so once (the numbers are the same, only slower)."""

    def __init__(self, fn: Callable[[], None], enabled: bool, warmup: int = 3, name: str = "step",
                 optimizer=None):
        self.fn, self.enabled, self.warmup, self.name = fn, enabled, warmup, name
        self.optimizer = optimizer
        self.calls = 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.frozen_lr: list | None = None

    def learning_rates(self) -> list:
        """The optimizer's learning rates as the step reads them ([] without one)."""
        opt = getattr(self.optimizer, "adam", self.optimizer)      # MemberLrAdam wraps one Adam
        return [] if opt is None else [g["lr"] for g in opt.param_groups]

    def __call__(self) -> None:
        if self.graph is None and self.enabled and self.calls >= self.warmup:
            self._capture()
        if self.graph is not None:
            if self.learning_rates() != self.frozen_lr:
                raise ConfigError(
                    f"The learning rate changed after {self.name} was captured as a CUDA graph "
                    f"({self.frozen_lr} -> {self.learning_rates()}); a captured step would keep the old one. "
                    "Run schedules with graphs=False or HW1LIB_CUDA_GRAPHS=0.")
            self.graph.replay()
        else:
            self.fn()
        self.calls += 1

    def _capture(self) -> None:
        graph = torch.cuda.CUDAGraph()
        with _CAPTURE_LOCK:
            # A garbage collection during capture could free an old graph or
            # tensor in this thread, an operation a capturing stream forbids
            # (seen on an H200: "operation not permitted when stream is
            # capturing (function reset)"), so collect first and pause it.
            gc.collect()
            was_enabled = gc.isenabled()
            gc.disable()
            try:
                graph.capture_begin(capture_error_mode="thread_local")
                try:
                    self.fn()
                finally:
                    graph.capture_end()
            except RuntimeError as exc:
                self.enabled = False
                warnings.warn(f"CUDA graph capture of {self.name} failed ({str(exc)[:300]}); "
                              "this run continues with eager steps.", RuntimeWarning)
                return
            finally:
                if was_enabled:
                    gc.enable()
        self.graph = graph
        self.frozen_lr = self.learning_rates()

    def close(self) -> None:
        """Release the graph and its memory pool now (not at some later garbage
        collection, which might fall inside another thread's capture)."""
        self.graph = None
        self.fn = None


def record(buf: torch.Tensor | None, at: int | torch.Tensor, row: torch.Tensor | None) -> None:
    """buf[at] = row, where `at` is a Python int (eager) or a 0-d device tensor
    (a captured step, whose position must live on the device)."""
    if buf is None:
        return
    if isinstance(at, int):
        buf[at] = row
    else:
        buf.index_copy_(0, at.view(1), row.unsqueeze(0))
