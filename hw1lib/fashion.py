"""Fashion-MNIST, the second task of 1-1b: fetch, verify by SHA-256, load once.

The source SPEC.md gives: Debian's package `dataset-fashion-mnist` (fetched with
`apt-get download`, unpacked with `dpkg-deb -x`, no root needed), whose .deb is
checked against its SHA-256 and whose gzipped IDX files are decompressed into
`<data>/FashionMNIST/raw/`, where torchvision's `FashionMNIST` reads them. The
.gz files are recompressed by Debian, so the uncompressed files are what is
checked, against the table in SPEC.md. Same format and splits as MNIST, so the
loaded dataset is a `data.Dataset` like MNIST's.

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

from .data import Dataset, load_cached, read_idx_dataset, verify_file
from .errors import ChecksumError, DataError
from .paths import data_dir

FASHION_SHA256 = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
DEB_PACKAGE = "dataset-fashion-mnist"
DEB_VERSION = "0.0~git20200523.55506a9-1"
DEB_SHA256 = "39e172fe32dd318ebb3e512220c3beea2fa47d7e20bab348fb4e0922d6beefc0"
DEB_DATA = "usr/share/datasets/fashion-mnist"
# Mean and std of the Fashion-MNIST training pixels (the usual normalisation).
FASHION_MEAN, FASHION_STD = 0.2860, 0.3530


def fashion_raw_dir(root: Path | None = None) -> Path:
    """Where torchvision's FashionMNIST(download=False) looks for the IDX files."""
    return Path(root or data_dir()) / "FashionMNIST" / "raw"


def missing_files(root: Path | None = None) -> list[str]:
    """Names of the Fashion-MNIST files that are missing. Raises ChecksumError on a bad file."""
    raw = fashion_raw_dir(root)
    missing = [n for n in FASHION_SHA256 if not (raw / n).exists()]
    for name in set(FASHION_SHA256) - set(missing):
        verify_file(raw / name, FASHION_SHA256[name])
    return missing


def _from_deb(deb: Path, raw: Path) -> None:
    """Unpack the verified .deb and decompress its four IDX files into `raw`."""
    verify_file(deb, DEB_SHA256)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["dpkg-deb", "-x", str(deb), tmp], check=True, capture_output=True)
        for name, digest in FASHION_SHA256.items():
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


def _download_deb(tmp: Path, timeout: float) -> Path:
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise DataError("apt-get and dpkg-deb are needed (a Debian-based system)")
    cmd = ["apt-get", "download", f"{DEB_PACKAGE}={DEB_VERSION}"]
    done = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise DataError(f"`{' '.join(cmd)}` failed ({done.stderr.strip()[:160]}); if it finds nothing, "
                        "run `apt-get update` first")
    debs = list(tmp.glob(f"{DEB_PACKAGE}_*.deb"))
    if len(debs) != 1:
        raise DataError(f"apt-get download produced {len(debs)} .deb files")
    return debs[0]


def fetch_fashion(root: Path | None = None, *, deb: Path | None = None, timeout: float = 300.0,
                  verbose: bool = True) -> Path:
    """Make sure the four Fashion-MNIST IDX files are in `<root>/FashionMNIST/raw`
    and verified: the files in place, else the given `deb`, else `apt-get download`.
    Returns the raw directory; DataError says what to do if nothing works."""
    raw = fashion_raw_dir(root)
    raw.mkdir(parents=True, exist_ok=True)
    source = "present"
    if missing_files(root):
        try:
            if deb is not None:
                _from_deb(Path(deb), raw)
                source = str(deb)
            else:
                with tempfile.TemporaryDirectory() as tmp:
                    _from_deb(_download_deb(Path(tmp), timeout), raw)
                source = f"Debian package {DEB_PACKAGE} {DEB_VERSION}"
        except (subprocess.SubprocessError, OSError) as exc:
            raise DataError(f"Could not get Fashion-MNIST: {type(exc).__name__}: {str(exc)[:160]}. Put the four "
                            f"uncompressed IDX files ({', '.join(FASHION_SHA256)}) in {raw} by hand.") from exc
        left = missing_files(root)
        if left:
            raise DataError(f"Fashion-MNIST files still missing from {raw}: {', '.join(left)}.")
    if verbose:
        print(f"Fashion-MNIST: 4 files verified by SHA-256 in {raw} (source: {source})")
    return raw


def load_fashion(device: str | torch.device = "cpu", root: Path | None = None) -> Dataset:
    """Fashion-MNIST once per (root, device), normalised like MNIST, on `device`
    (resolved at the edge, as for load_mnist). Thread-safe. Run `make data` first."""
    raw = fashion_raw_dir(root)

    def read(dev: torch.device) -> Dataset:
        missing = missing_files(root)
        if missing:
            raise DataError(f"Fashion-MNIST files missing from {raw}: {', '.join(missing)}; run `make data` "
                            "(or `python -m hw1lib.fashion`) to fetch and verify them.")
        from torchvision.datasets import FashionMNIST

        return read_idx_dataset(FashionMNIST, raw, FASHION_MEAN, FASHION_STD, dev)

    return load_cached(raw, torch.device(device), read)


if __name__ == "__main__":
    from .errors import run_cli

    run_cli(fetch_fashion)
