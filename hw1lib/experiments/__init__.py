"""Every experiment of the report, in one registry.

Each experiment is declared once, in a module of its own named like its
notebook (`e1_3d_flatness_sensitivity.py` for `1-3d_flatness_sensitivity.ipynb`;
a control sits beside its parent: 1-1b-long, 1-3b-noise), as an `Experiment`
(config, profiles, units, assembly, headline numbers, generated text, checked
metrics, published comparison: see `common.Experiment`). `REGISTRY` below is
the only list of experiments; the runner (`python -m hw1lib.run`), the report,
`tables`, `verify`, the benchmarks and the tests all read it. Adding an
experiment: a module with its declaration, one line here, one notebook.
"""
from __future__ import annotations

from typing import Any

from ..config import command_line_values, parse_sets
from ..errors import ConfigError
from .common import Experiment, Unit
from .e1_1a_simulate_function import FUNCTION_FIT
from .e1_1b_train_on_mnist import MNIST_MODELS, MNIST_MODELS_LONG
from .e1_2a_optimization_trajectory import TRAJECTORY
from .e1_2b_gradient_norm import GRAD_NORM
from .e1_2c_gradient_near_zero import CRITICAL
from .e1_2d_error_surface import SURFACE
from .e1_3a_random_labels import RANDOM_LABELS
from .e1_3b_parameters_vs_generalization import NOISY_SWEEP, PARAMS_SWEEP
from .e1_3c_flatness_interpolation import INTERPOLATION
from .e1_3d_flatness_sensitivity import BATCH_SWEEP
from .e1_3e_sharpness import SHARPNESS

REGISTRY: tuple[Experiment, ...] = (
    FUNCTION_FIT, MNIST_MODELS, MNIST_MODELS_LONG,
    TRAJECTORY, GRAD_NORM, CRITICAL, SURFACE,
    RANDOM_LABELS, PARAMS_SWEEP, NOISY_SWEEP, INTERPOLATION, BATCH_SWEEP, SHARPNESS,
)

__all__ = ["REGISTRY", "Experiment", "Unit", "experiment", "names", "select", "overrides", "notebooks"]


def names(given: str | list[str] | None, what: str = "--only") -> list[str] | None:
    """Experiment or notebook names as `--only` and `NB=` take them: comma
    lists, in one string or several. None when nothing was given (every
    experiment); ConfigError when something was given that names nothing (an
    empty shell variable must not mean everything)."""
    if given is None:
        return None
    out = [n.strip() for arg in ([given] if isinstance(given, str) else given) for n in arg.split(",") if n.strip()]
    if not out:
        raise ConfigError(f"{what} was given but names nothing; leave it out to select every experiment.")
    return out


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


def overrides(items: list[str], profile: str, device: str = "auto") -> dict[str, dict[str, Any]]:
    """`--set NAME.FIELD=VALUE` items -> {NAME: {FIELD: value}}, each checked now
    by building its config (an unknown experiment or field, or a bad value, is a
    ConfigError naming it, before anything runs)."""
    out = {name: command_line_values(experiment(name).config, fields)
           for name, fields in parse_sets(items, [e.name for e in REGISTRY]).items()}
    for name in out:
        experiment(name).make_config(profile, device, out)
    return out


def notebooks() -> list[str]:
    """The report's notebooks, in report order, each once."""
    return list(dict.fromkeys(e.notebook for e in REGISTRY))
