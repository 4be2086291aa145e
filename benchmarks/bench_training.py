"""Training throughput: hw1lib's loop against the canonical PyTorch loop.

Canonical: torchvision MNIST with ToTensor + Normalize, a shuffling
DataLoader (num_workers=0, as in most course code), the same model and the
same Adam. hw1lib: the dataset loaded once as normalised tensors, batches as
index slices of a permutation (`hw1lib.train.train_epoch`). Both time the
same number of optimizer steps at each batch size; each row is the best of
`--repeats` timings. Run with `make bench`.

Where CUDA is present (`--device cuda`, or auto) the GPU rows are: ms per
training step, eager against the captured CUDA graph (the same step code), at
batch 10/64/1024 for the MLP and the CNN; and the canonical loop (DataLoader,
batches copied to the GPU) against hw1lib's captured loop. Every row states
the device and torch version; `--json FILE` writes them all. The last rows
("full profile compute") come from `python -m hw1lib.run`'s timings files in
build/, where present.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision import transforms as T
from torchvision.datasets import MNIST

from hw1lib.data import MNIST_MEAN, MNIST_STD, load_mnist, raw_dir
from hw1lib.ensemble import Ensemble, seeded_init
from hw1lib.models import cnn_for_params, count_params, mnist_mlp
from hw1lib.paths import repo_root
from hw1lib.cuda import on_stream, thread_stream
from hw1lib.train import MinibatchTrainer, make_adam, shuffle_generator, train_epoch

MODELS = {
    "MLP 784-128-128-10": mnist_mlp((128, 128)),
    "CNN-2 (1-1b)": cnn_for_params(2, 10_000).build,
}
BATCH_SIZES = (10, 64, 1024)
SAMPLES = {10: 6_000, 64: 25_600, 1024: 61_440}  # samples timed per row (~1 epoch at 1024)


def canonical(build, batch_size: int, steps: int, device: str = "cpu") -> float:
    tf = T.Compose([T.ToTensor(), T.Normalize((MNIST_MEAN,), (MNIST_STD,))])
    ds = MNIST(str(raw_dir().parent.parent), train=True, download=False, transform=tf)
    model = seeded_init(build, 0).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    _sync(device)
    t0 = time.perf_counter()
    loader = DataLoader(ds, batch_size=batch_size, shuffle=True)
    for i, (x, y) in enumerate(loader):
        if i == steps:
            break
        x, y = x.to(device), y.to(device)
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    _sync(device)
    return time.perf_counter() - t0


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def gpu_step_ms(build, batch_size: int, steps: int, graphs: bool) -> float:
    """ms per training step of hw1lib's loop on the GPU, eager or captured:
    the same static-buffer step code either way. The trainer is built and
    warmed up (capture included) before the clock starts."""
    dev = torch.device("cuda")
    train = load_mnist(dev).train
    ens = Ensemble(build, [0], dev)
    opt = make_adam(ens, 1e-3)
    n = min(len(train), batch_size * (steps + 8))
    tr = MinibatchTrainer(ens, opt, train.subset(n - n % batch_size), batch_size, [shuffle_generator(0)],
                          graphs=graphs, static=True)
    with on_stream(thread_stream(dev)):
        tr.epoch(max_steps=8)                     # warm-up: eager steps, then capture
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        done = 0
        while done < steps:
            k = min(steps - done, tr.steps)
            tr.epoch(max_steps=k)
            done += k
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - t0
    tr.close()
    return 1e3 * elapsed / steps


def hw1lib_loop(build, batch_size: int, steps: int) -> float:
    train = load_mnist("cpu").train
    ens = Ensemble(build, [0], torch.device("cpu"))
    opt = make_adam(ens, 1e-3)
    t0 = time.perf_counter()
    train_epoch(ens, opt, train, batch_size, [shuffle_generator(0)], max_steps=steps)
    return time.perf_counter() - t0


def critical_runs(runs: int, epochs: int, together: bool) -> float:
    """Full-batch Adam on 1-2c's task (float64, 141 parameters) with `fit_full_batch`:
    `runs` nets one after another, or all as one vmapped ensemble. (1-2c's own phase 1
    now steps the flat [runs, P] parameters with the closed-form gradient instead, so
    that it can keep the weights at any epoch as start points.)"""
    from hw1lib.experiments import experiment
    from hw1lib.experiments.e1_2c_gradient_near_zero import critical_problem
    from hw1lib.train import fit_full_batch

    build, x, y, _ = critical_problem(experiment("1-2c").make_config("full"))
    groups = [list(range(runs))] if together else [[s] for s in range(runs)]
    t0 = time.perf_counter()
    for seeds in groups:
        ens = Ensemble(build, seeds, x.device, dtype=torch.float64)
        n = len(seeds)
        fit_full_batch(ens, x.expand(n, -1, -1), y.expand(n, -1, -1), epochs=epochs, lr=1e-2, progress=False)
    return time.perf_counter() - t0


def cpu_rows(repeats: int, rows: list) -> None:
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
            ref = min(canonical(build, bs, steps) for _ in range(repeats))
            ours = min(hw1lib_loop(build, bs, steps) for _ in range(repeats))
            print(f"{name:<20} {n_params:>7} {bs:>5} {steps:>5} {ref:>12.2f} {ours:>9.2f} "
                  f"{ref / ours:>5.1f}x", flush=True)
            rows.append({"device": "cpu", "model": name, "batch": bs, "steps": steps,
                         "canonical_s": ref, "hw1lib_s": ours, "ratio": ref / ours})
    epochs = 200
    seq = critical_runs(100, epochs, together=False)
    ens = critical_runs(100, epochs, together=True)
    print(f"\n1-2c: 100 runs x {epochs} full-batch steps (141 params, float64): one after another "
          f"{seq:.2f} s, one vmapped ensemble {ens:.2f} s, ratio {seq / ens:.1f}x")
    rows.append({"device": "cpu", "model": "1-2c 100 runs", "sequential_s": seq, "ensemble_s": ens,
                 "ratio": seq / ens})


def gpu_rows(repeats: int, rows: list) -> None:
    name_dev = torch.cuda.get_device_name(0)
    print(f"\nGPU: {name_dev}, torch {torch.__version__}")
    print(f"{'model':<20} {'batch':>5} {'eager ms/step':>14} {'captured ms/step':>17} {'ratio':>6}")
    for name, build in MODELS.items():
        for bs in BATCH_SIZES:
            steps = 300
            eager = min(gpu_step_ms(build, bs, steps, graphs=False) for _ in range(repeats))
            capt = min(gpu_step_ms(build, bs, steps, graphs=True) for _ in range(repeats))
            print(f"{name:<20} {bs:>5} {eager:>14.3f} {capt:>17.3f} {eager / capt:>5.1f}x", flush=True)
            rows.append({"device": name_dev, "model": name, "batch": bs, "eager_ms": eager,
                         "captured_ms": capt, "ratio": eager / capt})
    print(f"\n{'model':<20} {'batch':>5} {'steps':>5} {'canonical ms/step':>18} {'hw1lib ms/step':>15} {'ratio':>6}")
    for name, build in MODELS.items():
        for bs in BATCH_SIZES:
            steps = min(SAMPLES[bs] // bs, 300)
            canonical(build, bs, 3, "cuda")
            ref = 1e3 * min(canonical(build, bs, steps, "cuda") for _ in range(repeats)) / steps
            ours = min(gpu_step_ms(build, bs, steps, graphs=True) for _ in range(repeats))
            print(f"{name:<20} {bs:>5} {steps:>5} {ref:>18.3f} {ours:>15.3f} {ref / ours:>5.1f}x", flush=True)
            rows.append({"device": name_dev, "model": name, "batch": bs, "canonical_ms": ref,
                         "hw1lib_ms": ours, "ratio": ref / ours})


def full_profile_rows(rows: list) -> None:
    files = sorted((repo_root() / "build").glob("timings-full-*.json"))
    if files:
        print("\nfull profile compute (python -m hw1lib.run --profile full):")
    for f in files:
        rec = json.loads(f.read_text())
        cached = rec.get("cached_units", 0)
        how = "from an empty cache" if cached == 0 else f"{cached} units were already cached: not a full-profile time"
        print(f"  {rec['device']}, torch {rec['torch']}, commit {rec['commit']}, jobs {rec.get('jobs')}: "
              f"{rec['total_seconds']:.0f} s ({how})")
        rows.append({"device": rec["device"], "model": "full profile compute", "torch": rec["torch"],
                     "jobs": rec.get("jobs"), "total_seconds": rec["total_seconds"], "cached_units": cached})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "both"],
                    help="auto: the CPU rows, and the GPU rows where CUDA is present")
    ap.add_argument("--json", default=None, help="also write every row to this file")
    args = ap.parse_args()
    rows: list = []
    cuda = torch.cuda.is_available()
    if args.device in ("auto", "both", "cpu"):
        cpu_rows(args.repeats, rows)
    if args.device in ("cuda", "both") or (args.device == "auto" and cuda):
        gpu_rows(args.repeats, rows)
    full_profile_rows(rows)
    if args.json:
        Path(args.json).write_text(json.dumps({"torch": torch.__version__, "date": time.strftime("%Y-%m-%d"),
                                               "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
