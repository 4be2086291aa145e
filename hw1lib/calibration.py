"""A short fixed workload of the report's own kinds, timed on one thread: what a
timings file records at the start and the end of a run, so that runs on boxes of
different speed (or one box under another load) can be compared, and so that a
run's time left can be estimated from another box's timings (`hw1lib.run`)."""
from __future__ import annotations

import time

import torch

from .ensemble import Ensemble
from .models import cnn_for_params, mnist_mlp
from .train import make_adam, member_cross_entropy


def _best_of(fn, repeats: int = 2) -> float:
    """Seconds of the fastest of `repeats` calls (after one warm-up call)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _steps(ens: Ensemble, x: torch.Tensor, y: torch.Tensor, n: int):
    opt = make_adam(ens, 1e-3)

    def run():
        for _ in range(n):
            opt.zero_grad(set_to_none=True)
            member_cross_entropy(ens(x), y).mean(1).sum().backward()
            opt.step()
    return run


def calibrate() -> dict[str, float]:
    """Milliseconds, one CPU thread, best of 2 (about half a second in all): `cnn_step`, one Adam step of 1-1b's
    two-block CNN, 5 members at batch 128; `mlp_step`, one of 1-3d's 784-64-64-10 MLP, 15 members at batch
    64; `eigh`, a batched symmetric eigendecomposition of 64 matrices 141 x 141 (1-2c's Hessians);
    `total`: their sum, the scale one box's timings are converted to another's by."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        g = torch.Generator().manual_seed(0)
        cpu = torch.device("cpu")
        cnn = Ensemble(cnn_for_params(2, 10_000).build, range(5), cpu)
        mlp = Ensemble(mnist_mlp((64, 64)), range(15), cpu)
        a = torch.randn(64, 141, 141, generator=g, dtype=torch.float64)
        out = {"cnn_step": _best_of(_steps(cnn, torch.randn(5, 128, 1, 28, 28, generator=g),
                                           torch.randint(0, 10, (5, 128), generator=g), 1)),
               "mlp_step": _best_of(_steps(mlp, torch.randn(15, 64, 784, generator=g),
                                           torch.randint(0, 10, (15, 64), generator=g), 5)) / 5,
               "eigh": _best_of(lambda: torch.linalg.eigh(a + a.transpose(1, 2)))}
    finally:
        torch.set_num_threads(threads)
    out = {k: round(1000 * v, 3) for k, v in out.items()}
    out["total"] = round(sum(out.values()), 3)
    return out
