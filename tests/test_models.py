import pytest
import torch

from hw1lib.errors import ConfigError
from hw1lib.models import CNNSpec, cnn_for_params, count_params, mlp, mlp_widths_for_params


@pytest.mark.parametrize("depth", [1, 2, 3, 4, 6, 8])
@pytest.mark.parametrize("target", [571, 2000, 50_000])
def test_mlp_widths_hit_target_within_1pct(depth, target):
    widths = mlp_widths_for_params(depth, target)
    assert len(widths) == depth
    n = count_params(mlp(1, widths, 1))
    dims = (1, *widths, 1)
    assert n == sum(a * b + b for a, b in zip(dims[:-1], dims[1:]))   # weights + biases, by hand
    assert abs(n - target) <= 0.01 * target


def test_mlp_widths_are_nearly_uniform():
    widths = mlp_widths_for_params(4, 571)
    assert max(widths) - min(widths) <= 2


def test_impossible_target_is_a_clear_error():
    with pytest.raises(ConfigError, match="parameters within 1%"):
        mlp_widths_for_params(8, 20)
    with pytest.raises(ConfigError, match="larger target"):
        cnn_for_params(4, 500)


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
@pytest.mark.parametrize("target", [10_000, 25_000])
def test_cnn_matches_target_and_runs(depth, target):
    spec = cnn_for_params(depth, target)
    model = spec.build()
    assert count_params(model) == spec.param_count()
    assert abs(spec.param_count() - target) <= 0.01 * target
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_cnn_param_count_by_hand():
    # conv 1->2: 2*9+2=20; flatten 2*49=98 -> 3: 98*3+3=297; 3 -> 10: 40
    assert CNNSpec((2,), 3).param_count() == 20 + 297 + 40
