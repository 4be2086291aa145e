"""Shared fixtures, and the conditions of the exactness tests.

A test that asserts equality to the bit is marked `@pytest.mark.exact` and says
in its docstring under which condition the equality holds. Where that
condition is a thread count (`@pytest.mark.exact(threads=1)`: MKL's and ATen's
multi-threaded kernels split a product or a sum by the shapes and the thread
count, so an ensemble of 3 and of 1 round differently at 2 threads on some
CPUs), the test sets it itself, here, and restores the previous count after.
Otherwise the claim is that equality holds in one process at any thread
count and on any vector path: `make test` runs the exact tests a second time
under another MKL branch, ATen capability and thread count
(`HW1LIB_TEST_THREADS`, see the Makefile), so a claim that holds only on one
CPU's path fails on that CPU too.
"""
import os

import pytest
import torch

if os.environ.get("HW1LIB_TEST_THREADS"):       # the second run of the exact tests (Makefile: test)
    torch.set_num_threads(int(os.environ["HW1LIB_TEST_THREADS"]))


def pytest_configure(config):
    config.addinivalue_line("markers", "exact(threads=None): asserts equality to the bit; threads=N: holds at N "
                                       "threads, which the test runs at")
    config.addinivalue_line("markers", "threads(n): the test runs at n torch threads (a tolerance that holds at "
                                       "equal thread counts on both sides of a comparison)")


@pytest.fixture(autouse=True)
def _exact_condition(request):
    """Sets the thread count an exact test states, or a `threads(n)` test
    asks for (and restores it)."""
    mark = request.node.get_closest_marker("exact")
    threads = mark.kwargs.get("threads") if mark else None
    if request.node.get_closest_marker("threads"):
        threads = request.node.get_closest_marker("threads").args[0]
    if threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _scratch_results(tmp_path, monkeypatch):
    """Every test caches into its own scratch directory, never into results/."""
    monkeypatch.setenv("HW1LIB_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("HW1LIB_FIGURES", str(tmp_path / "figures"))


@pytest.fixture(scope="session")
def mnist():
    from hw1lib.data import load_mnist

    return load_mnist("cpu")


@pytest.fixture
def cpu():
    return torch.device("cpu")
