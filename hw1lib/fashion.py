"""Fashion-MNIST, the second task of 1-1b: a `data.Source`, fetched and loaded
by the same path as MNIST (`data.fetch`, `data.load`).

The way to get it SPEC.md gives: Debian's package `dataset-fashion-mnist`
(fetched with `apt-get download`, unpacked with `dpkg-deb -x`, no root needed),
whose .deb is checked against its SHA-256 and whose gzipped IDX files are
decompressed into `<data>/FashionMNIST/raw/`. The .gz files are recompressed
by Debian, so the uncompressed files are what is checked, against the table
in SPEC.md.

`python -m hw1lib.fashion` (part of `make data`) fetches it.
"""
from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch

from .data import Dataset, Source, fetch, load, verify_file
from .errors import ChecksumError, DataError

FASHION = Source("FashionMNIST", "Fashion-MNIST", {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}, 0.2860, 0.3530, "python -m hw1lib.fashion")   # the usual normalisation of its training pixels
DEB_PACKAGE = "dataset-fashion-mnist"
DEB_VERSION = "0.0~git20200523.55506a9-1"
DEB_SHA256 = "39e172fe32dd318ebb3e512220c3beea2fa47d7e20bab348fb4e0922d6beefc0"
DEB_DATA = "usr/share/datasets/fashion-mnist"


def _from_deb(deb: Path, raw: Path) -> None:
    """Unpack the verified .deb and decompress its four IDX files into `raw`."""
    verify_file(deb, DEB_SHA256)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["dpkg-deb", "-x", str(deb), tmp], check=True, capture_output=True)
        for name, digest in FASHION.sha256.items():
            src = Path(tmp) / DEB_DATA / f"{name}.gz"
            if not src.exists():
                raise DataError(f"{deb.name} has no {DEB_DATA}/{name}.gz")
            part = raw / f".{name}.part"
            with gzip.open(src) as fin, open(part, "wb") as fout:
                shutil.copyfileobj(fin, fout)
            try:
                verify_file(part, digest)
            except ChecksumError:
                part.unlink()
                raise
            os.replace(part, raw / name)


def _download_deb(raw: Path, timeout: float) -> None:
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise DataError("apt-get and dpkg-deb are needed (a Debian-based system)")
    with tempfile.TemporaryDirectory() as tmp:
        cmd = ["apt-get", "download", f"{DEB_PACKAGE}={DEB_VERSION}"]
        done = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise DataError(f"`{' '.join(cmd)}` failed ({done.stderr.strip()[:160]}); if it finds nothing, "
                            "run `apt-get update` first")
        debs = list(Path(tmp).glob(f"{DEB_PACKAGE}_*.deb"))
        if len(debs) != 1:
            raise DataError(f"apt-get download produced {len(debs)} .deb files")
        _from_deb(debs[0], raw)


def fetch_fashion(root: Path | None = None, *, deb: Path | None = None, timeout: float = 300.0,
                  verbose: bool = True) -> Path:
    """Fashion-MNIST's four IDX files in `<root>/FashionMNIST/raw`, verified
    (`data.fetch`): the files in place, else the given `deb`, else `apt-get download`."""
    way = ((str(deb), lambda raw: _from_deb(Path(deb), raw)) if deb is not None else
           (f"Debian package {DEB_PACKAGE} {DEB_VERSION}", lambda raw: _download_deb(raw, timeout)))
    return fetch(FASHION, [way], root, verbose)


def load_fashion(device: str | torch.device = "cpu", root: Path | None = None) -> Dataset:
    """Fashion-MNIST (`data.load`), normalised like MNIST. Run `make data` first."""
    return load(FASHION, device, root)


if __name__ == "__main__":
    from .errors import run_cli

    run_cli(fetch_fashion)
