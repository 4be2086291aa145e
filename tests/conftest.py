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
    config.addinivalue_line("markers", "subprocess: starts other processes (a command line, make, Jupyter, "
                                       "worker pools, Dask): kept and run once by make test; -m 'not subprocess' "
                                       "for a quick loop")


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


@pytest.fixture(scope="session")
def smoke_cache(tmp_path_factory):
    """The smoke profile of every experiment, computed once per session by the
    runner's command line into a directory of its own (its timings record
    beside it: timings.json): the tests that only read smoke results share
    it (`smoke_results`), instead of each computing them again."""
    from hw1lib.run import main

    root = tmp_path_factory.mktemp("smoke-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HW1LIB_RESULTS", str(root / "results"))
        assert main(["--profile", "smoke", "--device", "cpu", "--no-progress", "--out", str(root / "timings.json")]) == 0
    return root


@pytest.fixture
def smoke_results(smoke_cache, monkeypatch):
    """This test reads the session's smoke results (HW1LIB_RESULTS points there)."""
    monkeypatch.setenv("HW1LIB_RESULTS", str(smoke_cache / "results"))
    return smoke_cache / "results"


@pytest.fixture
def toy(monkeypatch):
    """The registry with the toy experiment (tests/toy.py) added: the one line a new experiment adds."""
    import hw1lib.experiments as ex
    from toy import TOY

    monkeypatch.setattr(ex, "REGISTRY", (*ex.REGISTRY, TOY))
    return TOY
