"""Every experiment of the report, in one registry.

One module per report section holds the config dataclasses, profiles and run
functions; `REGISTRY` below is the only list of experiments. The headless
runner (`python -m hw1lib.run`), the report (`python -m hw1lib.report`), the
benchmarks and the tests all read it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from .. import cache
from ..errors import ConfigError
from . import deep_vs_shallow as _s1, generalization as _s3, optimization as _s2
from .common import Unit


@dataclass(frozen=True)
class Experiment:
    """name: the id `--only` takes; notebook: file name in notebooks/;
    config(profile, **overrides) -> config; run(config, progress) -> Result;
    units(config) -> the independently computable pieces; after: experiments
    whose cached results this one reads (they are computed first); host: it
    computes on the CPU whatever device a run or notebook asks for, and a
    threaded GPU run gives its units worker processes on the cores its GPU
    threads leave free, one thread each. 1-2c is such an experiment: float64
    Hessians and eigendecompositions of 141 x 141 matrices, a chain of small
    dependent steps that is latency-bound on a GPU (measured with autodiff
    Hessians: a 10-run block took 82-94 s on an H200 shared with 5 others, about
    43 s on one CPU thread; see benchmarks/README.md)."""
    name: str
    title: str
    notebook: str
    config: Callable[..., Any]
    run: Callable[..., cache.Result]
    units: Callable[[Any], list[Unit]]
    after: tuple[str, ...] = ()
    host: bool = False

    def make_config(self, profile: str, device: str = "auto"):
        """The config a notebook builds for `profile` and `device` (so both
        address the same cache entries); "cpu" for a host experiment."""
        return self.config(profile, device="cpu" if self.host else device)


REGISTRY: tuple[Experiment, ...] = (
    Experiment("1-1a", "function fit", "1-1a_simulate_function.ipynb",
               _s1.function_fit_config, _s1.run_function_fit, _s1.function_fit_units),
    Experiment("1-1b", "MNIST CNNs", "1-1b_train_on_mnist.ipynb",
               _s1.mnist_models_config, _s1.run_mnist_models, _s1.mnist_models_units),
    Experiment("1-2a", "trajectories", "1-2a_optimization_trajectory.ipynb",
               _s2.trajectory_config, _s2.run_trajectory, _s2.trajectory_units),
    Experiment("1-2b", "gradient norm", "1-2b_gradient_norm.ipynb",
               _s2.grad_norm_config, _s2.run_grad_norm, _s2.grad_norm_units),
    Experiment("1-2c", "critical points", "1-2c_gradient_near_zero.ipynb",
               _s2.critical_config, _s2.run_critical, _s2.critical_units, host=True),
    Experiment("1-2d", "error surface", "1-2d_error_surface.ipynb",
               _s2.surface_config, _s2.run_surface, _s2.surface_units, after=("1-2a",)),
    Experiment("1-3a", "random labels", "1-3a_random_labels.ipynb",
               _s3.random_labels_config, _s3.run_random_labels, _s3.random_labels_units),
    Experiment("1-3b", "parameter sweep", "1-3b_parameters_vs_generalization.ipynb",
               _s3.params_sweep_config, _s3.run_params_sweep, _s3.params_sweep_units),
    Experiment("1-3b-noise", "label-noise sweep", "1-3b_parameters_vs_generalization.ipynb",
               _s3.noisy_sweep_config, _s3.run_params_sweep, _s3.params_sweep_units),
    Experiment("1-3c", "interpolation", "1-3c_flatness_interpolation.ipynb",
               _s3.interpolation_config, _s3.run_interpolation, _s3.interpolation_units),
    Experiment("1-3d", "batch sweep", "1-3d_flatness_sensitivity.ipynb",
               _s3.batch_sweep_config, _s3.run_batch_sweep, _s3.batch_sweep_units),
    Experiment("1-3e", "sharpness", "1-3e_sharpness.ipynb",
               _s3.sharpness_config, _s3.run_sharpness, _s3.sharpness_units, after=("1-3d",)),
)


def experiment(name: str) -> Experiment:
    for e in REGISTRY:
        if e.name == name:
            return e
    raise ConfigError(f"Unknown experiment {name!r}; choose from: {', '.join(e.name for e in REGISTRY)}.")


def select(names: list[str]) -> list[Experiment]:
    """The experiments a list of names asks for, in registry order: a name is an
    experiment (`1-3e`) or a notebook (`1-3b`, `1-3b_parameters_vs_generalization`
    or its .ipynb file name: every experiment of that notebook)."""
    chosen = []
    for name in names:
        stem = name.removesuffix(".ipynb").rsplit("/", 1)[-1]
        hits = [e for e in REGISTRY if stem == e.name or e.notebook.removesuffix(".ipynb") == stem
                or e.notebook.startswith(stem + "_")]
        if not hits:
            raise ConfigError(f"Unknown experiment or notebook {name!r}; choose from: "
                              f"{', '.join(e.name for e in REGISTRY)}.")
        chosen += hits
    return [e for e in REGISTRY if e in chosen]


def notebooks() -> list[str]:
    """The report's notebooks, in report order, each once."""
    return list(dict.fromkeys(e.notebook for e in REGISTRY))
