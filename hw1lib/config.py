"""Experiment configs: frozen dataclasses built from named profiles.

Every experiment module declares `PROFILES = {"smoke": {...}, "quick": {...},
"full": {...}}` of keyword overrides on its config dataclass. `make_config`
builds one; unknown profile names and unknown keys raise with the valid
ones listed (a typo must never silently fall back to a default).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any, Mapping, TypeVar

from .errors import ConfigError

PROFILE_NAMES = ("smoke", "quick", "full")
T = TypeVar("T")


def make_config(cls: type[T], profiles: Mapping[str, Mapping[str, Any]], profile: str,
                **overrides: Any) -> T:
    """cls(**profiles[profile], **overrides), with clear errors for bad names."""
    if profile not in profiles:
        raise ConfigError(
            f"Unknown profile {profile!r} for {cls.__name__}; choose one of: {', '.join(profiles)}."
        )
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ConfigError(
            f"Unknown {cls.__name__} key(s) {', '.join(unknown)}; valid keys: {', '.join(sorted(fields))}."
        )
    return cls(**{**profiles[profile], **overrides})


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
