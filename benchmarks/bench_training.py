"""Training throughput: hw1lib's loop against the canonical PyTorch loop.

Canonical: torchvision MNIST with ToTensor + Normalize, a shuffling
DataLoader (num_workers=0, as in most course code), the same model and the
same Adam. hw1lib: the dataset loaded once as normalised tensors, batches as
index slices of a permutation (`hw1lib.train.train_epoch`). Both time the
same number of optimizer steps at each batch size; each row is the best of
`--repeats` timings. Run with `make bench`.
"""
from __future__ import annotations

import argparse
import platform
import time

import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision import transforms as T
from torchvision.datasets import MNIST

from hw1lib.data import MNIST_MEAN, MNIST_STD, load_mnist, raw_dir
from hw1lib.ensemble import Ensemble, seeded_init
from hw1lib.models import cnn_for_params, count_params, mnist_mlp
from hw1lib.train import make_adam, shuffle_generator, train_epoch

MODELS = {
    "MLP 784-128-128-10": mnist_mlp((128, 128)),
    "CNN-2 (1-1b)": cnn_for_params(2, 10_000).build,
}
BATCH_SIZES = (10, 64, 1024)
SAMPLES = {10: 6_000, 64: 25_600, 1024: 61_440}  # samples timed per row (~1 epoch at 1024)


def canonical(build, batch_size: int, steps: int) -> float:
    tf = T.Compose([T.ToTensor(), T.Normalize((MNIST_MEAN,), (MNIST_STD,))])
    ds = MNIST(str(raw_dir().parent.parent), train=True, download=False, transform=tf)
    model = seeded_init(build, 0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    t0 = time.perf_counter()
    loader = DataLoader(ds, batch_size=batch_size, shuffle=True)
    for i, (x, y) in enumerate(loader):
        if i == steps:
            break
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return time.perf_counter() - t0


def hw1lib_loop(build, batch_size: int, steps: int) -> float:
    train = load_mnist("cpu").train
    ens = Ensemble(build, [0], torch.device("cpu"))
    opt = make_adam(ens, 1e-3)
    t0 = time.perf_counter()
    train_epoch(ens, opt, train, batch_size, [shuffle_generator(0)], max_steps=steps)
    return time.perf_counter() - t0


def critical_runs(runs: int, epochs: int, together: bool) -> float:
    """Phase 1 of section 1-2c (full-batch Adam, float64, 141 parameters):
    `runs` nets one after another, or all as one vmapped ensemble."""
    from hw1lib.experiments.optimization import critical_config, critical_problem
    from hw1lib.train import fit_full_batch

    build, x, y, _ = critical_problem(critical_config("full"))
    groups = [list(range(runs))] if together else [[s] for s in range(runs)]
    t0 = time.perf_counter()
    for seeds in groups:
        ens = Ensemble(build, seeds, x.device, dtype=torch.float64)
        n = len(seeds)
        fit_full_batch(ens, x.expand(n, -1, -1), y.expand(n, -1, -1), epochs=epochs, lr=1e-2, progress=False)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    load_mnist("cpu")  # loading once is part of the design, not of each step
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}")
    print(f"{'model':<20} {'params':>7} {'batch':>5} {'steps':>5} {'canonical/s':>12} "
          f"{'hw1lib/s':>9} {'ratio':>6}")
    for name, build in MODELS.items():
        n_params = count_params(build())
        for bs in BATCH_SIZES:
            steps = SAMPLES[bs] // bs
            hw1lib_loop(build, bs, 3), canonical(build, bs, 3)  # warm up
            ref = min(canonical(build, bs, steps) for _ in range(args.repeats))
            ours = min(hw1lib_loop(build, bs, steps) for _ in range(args.repeats))
            print(f"{name:<20} {n_params:>7} {bs:>5} {steps:>5} {ref:>12.2f} {ours:>9.2f} "
                  f"{ref / ours:>5.1f}x", flush=True)
    epochs = 200
    seq = critical_runs(100, epochs, together=False)
    ens = critical_runs(100, epochs, together=True)
    print(f"\n1-2c: 100 runs x {epochs} full-batch steps (141 params, float64): one after another "
          f"{seq:.2f} s, one vmapped ensemble {ens:.2f} s, ratio {seq / ens:.1f}x")


if __name__ == "__main__":
    main()
