"""hw1lib: Deep vs Shallow, Optimization, Generalization, fast and tested."""
from .device import resolve_device
from .errors import (CacheError, ChecksumError, ConfigError, DataError, DeviceError, Hw1libError,
                     TrainingDiverged)

__all__ = ["resolve_device", "CacheError", "ChecksumError", "ConfigError", "DataError", "DeviceError",
           "Hw1libError", "TrainingDiverged"]
