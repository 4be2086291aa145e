import dataclasses

import numpy as np
import pytest
import torch

from hw1lib import cache
from hw1lib.config import config_hash
from hw1lib.device import resolve_device
from hw1lib.errors import ConfigError, DeviceError
from hw1lib.experiments import experiment

function_fit_config = experiment("1-1a").make_config
mnist_models_config = experiment("1-1b").make_config


def test_bad_profile_lists_valid_ones():
    with pytest.raises(ConfigError, match="Unknown profile 'fast'.*smoke, quick, full"):
        function_fit_config("fast")


def test_unknown_key_is_an_error_not_a_default():
    with pytest.raises(ConfigError, match="Unknown MnistModelsConfig key.*epocs.*valid keys"):
        mnist_models_config("quick", epocs=3)


def test_configs_are_frozen():
    cfg = function_fit_config("quick")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.epochs = 1


def test_cuda_without_gpu_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(DeviceError, match="no usable CUDA GPU.*device='cpu'"):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu"
    with pytest.raises(DeviceError, match="Unknown device"):
        resolve_device("tpu")


def test_hash_is_stable_and_sensitive():
    a, b = function_fit_config("quick"), function_fit_config("quick")
    assert config_hash(a) == config_hash(b)
    assert config_hash(a) != config_hash(dataclasses.replace(a, lrs=(2e-3,)))
    assert config_hash(a) != config_hash(function_fit_config("full"))


def _result(value):
    return cache.Result({"a": np.arange(3) * value}, {"value": value},
                        weights={"w": torch.full((2,), float(value))})


@pytest.mark.exact
def test_cache_hit_does_not_recompute_and_change_does():
    """Exact anywhere: the values compared to the bit involve no float arithmetic (stored and loaded back)."""
    calls = []
    cfg = function_fit_config("smoke")

    def compute(v=1):
        calls.append(v)
        return _result(v)

    first = cache.cached("t", cfg, compute)
    again = cache.cached("t", cfg, compute)
    assert calls == [1] and not first.from_cache and again.from_cache
    np.testing.assert_array_equal(again.arrays["a"], [0, 1, 2])
    assert torch.equal(again.weights["w"], torch.ones(2)) and again.summary == {"value": 1}
    assert (again.path / "summary.json").exists() and (again.path / "config.json").exists()
    cache.cached("t", dataclasses.replace(cfg, lrs=(0.5,)), lambda: compute(2))
    assert calls == [1, 2]


def test_interrupted_compute_leaves_no_entry():
    cfg = function_fit_config("smoke")

    def boom():
        raise KeyboardInterrupt

    class Interrupted:  # Ctrl-C arrives while the weights are being written
        def detach(self):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cache.save("t", cfg, cache.Result({"a": np.zeros(1)}, {}, weights={"w": Interrupted()}))
    assert cache.load("t", cfg) is None
    assert not [p for p in cache.entry_dir("t", cfg, "").parent.iterdir()]  # no temp dir left behind
    with pytest.raises(KeyboardInterrupt):
        cache.cached("t", cfg, boom)
    assert cache.load("t", cfg) is None


@pytest.mark.parametrize("key,value,words", [
    ("depths", 3, "non-empty tuple"),
    ("batch_size", "64", "integer >= 1"),
    ("epochs", -5, "integer >= 1"),
    ("epochs", -1, "integer >= 1"),
    ("epochs", 2.5, "integer >= 1"),
    ("seeds", (), "non-empty tuple"),
    ("train_subset", 0, "integer >= 1"),
    ("lr", 0, r"number in \(0, 1\]"),
    ("lr", 1e4, r"number in \(0, 1\]"),
    ("lr", float("nan"), r"number in \(0, 1\]"),
    ("seeds", (0, -1), "integer >= 0"),
    ("decay_to", -0.1, r"number in \[0, 1\]"),
    ("decay_to", 1.5, r"number in \[0, 1\]"),
])
def test_bad_config_value_is_a_config_error_naming_the_field(key, value, words):
    with pytest.raises(ConfigError, match=rf"MnistModelsConfig\.{key} = .*: must be .*{words}"):
        mnist_models_config("quick", **{key: value})


def test_a_plateau_window_as_long_as_the_training_is_a_config_error():
    with pytest.raises(ConfigError, match="plateau_epochs must be between 1 and epochs - 1"):
        mnist_models_config("quick", epochs=3, plateau_epochs=3)


def test_every_profile_of_every_experiment_is_valid_and_nested_configs_follow_the_device():
    from hw1lib.experiments import REGISTRY
    surface_config, sharpness_config = experiment("1-2d").make_config, experiment("1-3e").make_config

    for e in REGISTRY:
        for profile in ("smoke", "quick", "full"):
            e.make_config(profile)
    assert surface_config("quick", device="cpu").trajectory.device == "cpu"
    assert sharpness_config("quick", device="cpu").sweep.device == "cpu"
    with pytest.raises(ConfigError, match=r"BatchSweepConfig\.max_epochs = 0"):     # 1-3d's, checked for 1-3e
        sharpness_config("quick", sets={"1-3d": {"max_epochs": 0}})
    with pytest.raises(ConfigError, match=r"KeskarConfig\.max_epochs = 0"):         # a nested config of its own
        sharpness_config("quick", **{"keskar.max_epochs": 0})
