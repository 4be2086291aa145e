"""Errors a user can cause. Each carries one sentence: what went wrong and what to do."""


class Hw1libError(Exception):
    """Base class: a problem with the user's input, data or machine, not a bug."""


class ConfigError(Hw1libError, ValueError):
    """A profile name or a config key that does not exist."""


class DeviceError(Hw1libError, RuntimeError):
    """A device was asked for that this machine does not have."""


class DataError(Hw1libError, RuntimeError):
    """Data missing, corrupted or impossible to fetch."""


class ChecksumError(DataError):
    """A data file whose SHA-256 does not match the published one."""


class TrainingDiverged(Hw1libError, FloatingPointError):
    """The loss became NaN or infinite."""


class CacheError(Hw1libError, OSError):
    """The results directory cannot be written (permissions, full disk)."""


def run_cli(fn, *args) -> None:
    """Run a command-line entry point: a user error (Hw1libError) becomes its one
    sentence on stderr and exit status 1, never a traceback."""
    import sys

    try:
        fn(*args)
    except Hw1libError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1)


def command(main, argv: list[str] | None = None) -> None:
    """The `__main__` of a command: exit with `main`'s status. A Ctrl-C
    (KeyboardInterrupt, which `main` lets through after saying what was kept,
    so that a caller in the same process, such as a test, is interrupted too)
    exits with status 130 and no traceback."""
    try:
        code = main(argv)
    except KeyboardInterrupt:
        code = 130
    raise SystemExit(code)
