"""hw1lib: Deep vs Shallow, Optimization, Generalization, fast and tested."""
from . import exact as _exact

_exact.apply()    # HW1LIB_EXACT=1: pins the CPU code paths, before anything below loads torch

from .device import resolve_device
from .errors import (CacheError, ChecksumError, ConfigError, DataError, DeviceError, Hw1libError,
                     TrainingDiverged)

_exact.configure_torch()

__all__ = ["resolve_device", "CacheError", "ChecksumError", "ConfigError", "DataError", "DeviceError",
           "Hw1libError", "TrainingDiverged"]
