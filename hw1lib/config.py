"""Experiment configs: frozen dataclasses built from named profiles.

Every experiment module declares `PROFILES = {"smoke": {...}, "quick": {...},
"full": {...}}` of keyword overrides on its config dataclass. `make_config`
builds one; unknown profile names and unknown keys raise with the valid
ones listed (a typo must never silently fall back to a default), and every
field is checked against its type and range (`validate`), so that a bad value
is one ConfigError naming the field, never an error from deep inside or a
nonsense result cached as if valid.

Ranges, by field name: learning rates in (0, 1]; `label_noise` in [0, 1];
`margin` >= 0; other floats > 0 and finite; seeds and indices (`*seed*`,
`run`, `first_run`) >= 0; every other integer (epochs, batch sizes, depths,
widths, subsets, counts) >= 1; tuples non-empty.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import types
import typing
from typing import Any, Mapping, TypeVar

from .errors import ConfigError

T = TypeVar("T")


def make_config(cls: type[T], profiles: Mapping[str, Mapping[str, Any]], profile: str,
                **overrides: Any) -> T:
    """cls(**profiles[profile], **overrides), with clear errors for bad names."""
    if profile not in profiles:
        raise ConfigError(
            f"Unknown profile {profile!r} for {cls.__name__}; choose one of: {', '.join(profiles)}."
        )
    fields = {f.name for f in dataclasses.fields(cls)}
    overrides = _nest(cls, profiles[profile], overrides)
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ConfigError(
            f"Unknown {cls.__name__} key(s) {', '.join(unknown)}; valid keys: {', '.join(sorted(fields))}."
        )
    hints = typing.get_type_hints(cls)
    overrides = {k: (tuple(v) if isinstance(v, list) and _is_tuple(hints[k]) else v) for k, v in overrides.items()}
    cfg = validate(cls(**{**profiles[profile], **overrides}))
    if hasattr(cfg, "check"):
        cfg.check()
    if "device" in fields:  # nested configs (the models an experiment reads) follow the parent's device
        cfg = dataclasses.replace(cfg, **{
            f.name: dataclasses.replace(v, device=cfg.device) for f in dataclasses.fields(cfg)
            if dataclasses.is_dataclass(v := getattr(cfg, f.name)) and hasattr(v, "device")})
    return cfg


def _nest(cls: type, profile: Mapping[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Overrides of a nested config's fields ("keskar.f1_seeds") as the nested
    config itself, built from the profile's (or the default) with those fields
    replaced and checked like any config."""
    out = {k: v for k, v in overrides.items() if "." not in k}
    nested: dict[str, dict[str, Any]] = {}
    for k, v in overrides.items():
        if "." in k:
            head, _, rest = k.partition(".")
            nested.setdefault(head, {})[rest] = v
    defaults = {f.name: f.default for f in dataclasses.fields(cls)}
    for head, sub in nested.items():
        base = out.get(head, profile.get(head, defaults.get(head)))
        if not dataclasses.is_dataclass(base):
            raise ConfigError(f"{cls.__name__}.{head} is not a nested config: set it as {head}=VALUE, "
                              f"not {head}.{next(iter(sub))}=VALUE.")
        own = {f.name: getattr(base, f.name) for f in dataclasses.fields(base)}
        out[head] = make_config(type(base), {"given": own}, "given", **command_line_values(type(base), sub))
    return out


def _is_tuple(tp: Any) -> bool:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return any(_is_tuple(a) for a in typing.get_args(tp))
    return typing.get_origin(tp) is tuple


def command_line_values(cls: type, values: Mapping[str, Any]) -> dict[str, Any]:
    """`--set` values in the shape of `cls`'s fields: one value for a tuple
    field is a tuple of one (`--set 1-3d.batch_sizes=64`). Unknown fields pass
    through, for make_config to name; types and ranges are checked there."""
    hints = typing.get_type_hints(cls)
    return {k: ((v,) if k in hints and _is_tuple(hints[k]) and not isinstance(v, (tuple, list)) else v)
            for k, v in values.items()}   # nested fields ("keskar.f1_seeds") are shaped by _nest


def parse_value(text: str) -> Any:
    """A command-line value: a Python literal (3, 1e-3, (0, 1), None, True) or,
    failing that, a string; a comma-separated list is a tuple ("sinc,sign")."""
    import ast

    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        if "," in text:
            return tuple(parse_value(t.strip()) for t in text.split(",") if t.strip())
        return text


def parse_sets(items: list[str], names: list[str]) -> dict[str, dict[str, Any]]:
    """`--set NAME.FIELD=VALUE` items -> {NAME: {FIELD: value}}. NAME must be one
    of `names` (an experiment); FIELD may be a nested config's field
    (`1-3e.keskar.f1_seeds=0`); FIELD and VALUE are checked when the config is
    built (`make_config`): an unknown field or a bad value is a ConfigError."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, eq, text = item.partition("=")
        name, dot, field = key.strip().partition(".")     # experiment names hold no dot
        if not eq or not dot or not name or not field:
            raise ConfigError(f"--set {item!r}: expected NAME.FIELD=VALUE, e.g. --set 1-3d.seeds=0,1.")
        if name not in names:
            raise ConfigError(f"--set {item!r}: unknown experiment {name!r}; choose from: {', '.join(names)}.")
        out.setdefault(name, {})[field] = parse_value(text.strip())
    return out


# Tuple fields that are layer widths (a value may repeat: 784-64-64-10); every other tuple is a set of runs or
# sweep points, where a repeated value is refused.
LAYERS = frozenset({"hidden", "mnist_hidden", "mlp_hidden", "small_widths", "CriticalConfig.widths"})


def _bounds(name: str, kind: type) -> tuple[float, float, bool, str]:
    """(low, high, low_inclusive, words) of a numeric field, from its name."""
    if kind is float:
        if name == "lr" or name.endswith("_lr"):
            return 0.0, 1.0, False, "a number in (0, 1]"
        if name in ("label_noise", "fractions", "decay_to"):
            return 0.0, 1.0, True, "a number in [0, 1]"
        if name == "fit_acc":
            return 0.0, 1.0, False, "a number in (0, 1]"
        if name == "margin":
            return 0.0, math.inf, True, "a number >= 0"
        return 0.0, math.inf, False, "a positive number"
    if "seed" in name or name in ("run", "first_run", "label_draws"):
        return 0, math.inf, True, "an integer >= 0"
    return 1, math.inf, True, "an integer >= 1"


def _check_value(owner: str, name: str, value: Any, tp: Any) -> None:
    where = f"{owner}.{name} = {value!r}"
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return
        tp = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is tuple:
        if not isinstance(value, tuple) or not value:
            raise ConfigError(f"{where}: must be a non-empty tuple, e.g. {name}=(1, 2).")
        twice = sorted({v for v in value if value.count(v) > 1}, key=str)
        if twice and name not in LAYERS and f"{owner}.{name}" not in LAYERS:
            raise ConfigError(f"{where}: {twice[0]!r} is given twice; each value of {name} is one run or one "
                              "point of a sweep, and a repeated one would be counted twice.")
        for v in value:
            _check_value(owner, name, v, args[0])
        return
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, tp):
            raise ConfigError(f"{where}: must be a {tp.__name__}.")
        validate(value)
        return
    if tp is str:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{where}: must be a non-empty string.")
        return
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: must be True or False.")
        return
    low, high, inclusive, words = _bounds(name, tp)
    ok_type = (isinstance(value, int) if tp is int else isinstance(value, (int, float))) \
        and not isinstance(value, bool)
    if not ok_type or not math.isfinite(value) or value > high or value < low or (value == low and not inclusive):
        raise ConfigError(f"{where}: must be {words}.")


def validate(cfg: T) -> T:
    """Check every field of a config dataclass against its annotated type and
    its range (see the module docstring); ConfigError naming the first bad field."""
    hints = typing.get_type_hints(type(cfg))
    for f in dataclasses.fields(cfg):
        _check_value(type(cfg).__name__, f.name, getattr(cfg, f.name), hints[f.name])
    return cfg


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {k: _jsonable(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def config_dict(config: Any) -> dict:
    return {"type": type(config).__name__, **_jsonable(config)}


def config_hash(config: Any) -> str:
    """Stable 16-hex-digit hash of a config's type and every field."""
    blob = json.dumps(config_dict(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


PROFILES = ("smoke", "quick", "full")


def add_args(ap, *names: str, **changed: dict) -> None:
    """The arguments the commands share (run, report, verify, tables, the
    benchmarks), declared once: `names` among profile, device, only, set,
    jobs, no_progress; `changed[name]`: what differs for one command (a
    default, the choices, the help)."""
    specs = {
        "profile": ("--profile", dict(default="full", choices=PROFILES,
                                      help="smoke (seconds) | quick (minutes) | full (the report)")),
        "device": ("--device", dict(default="auto", help="auto | cpu | cuda")),
        "only": ("--only", dict(default=None, help="comma-separated experiment or notebook names, e.g. 1-1a,1-3d "
                                                  "(default: all)")),
        "set": ("--set", dict(action="append", default=[], metavar="NAME.FIELD=VALUE",
                              help="override one config field of one experiment, checked like the configs "
                                   "(repeatable), e.g. --set 1-3d.seeds=0,1 --set 1-3e.keskar.f1_seeds=0")),
        "jobs": ("--jobs", dict(type=int, default=1, help="units computed at once (default 1)")),
        "no_progress": ("--no-progress", dict(action="store_true", help="no tqdm bars")),
    }
    for name in names:
        flag, kw = specs[name]
        ap.add_argument(flag, **{**kw, **changed.get(name, {})})
