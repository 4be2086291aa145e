import pytest
import torch


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
