"""Where the repo keeps data, cached results, figures and build output.

Every path can be moved with an environment variable (HW1LIB_DATA,
HW1LIB_RESULTS, HW1LIB_FIGURES, HW1LIB_BUILD) so that tests and CI can point
the library at a scratch directory.

A value from the environment is resolved once, when hw1lib is first
imported: `~` is expanded and a relative path is taken against the directory
the command started in. The absolute path is written back to the environment,
so the processes a command starts (notebook kernels, whose working directory
is `notebooks/`, and worker processes) read the same directory, not one of
their own. `python -m hw1lib.paths CMD ...` runs CMD with them resolved (what
`make lab` does, since Jupyter itself never imports hw1lib).
"""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
ENV_PATHS = ("HW1LIB_DATA", "HW1LIB_RESULTS", "HW1LIB_FIGURES", "HW1LIB_BUILD")


def _absolute(value: str, start: str) -> str:
    """`value` with `~` expanded, made absolute against `start` (not resolved
    through links: a results root that is a link stays that link)."""
    p = Path(value).expanduser()
    return os.path.normpath(p if p.is_absolute() else Path(start) / p)


def resolve_environment(start: str | None = None) -> dict[str, str]:
    """Rewrite every HW1LIB_* path in os.environ as an absolute path (against
    `start`, default the current directory); returns what was set. An empty
    value (an unset shell variable) means the default, and says so, never
    the current directory."""
    start = start or os.getcwd()
    out = {}
    for name in ENV_PATHS:
        value = os.environ.get(name)
        if value is None:
            continue
        if not value.strip():
            del os.environ[name]
            print(f"hw1lib: {name} is set but empty; using the default.", file=sys.stderr)
            continue
        out[name] = os.environ[name] = _absolute(value, start)
    return out


def _env_path(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    if value is None:
        return default
    return Path(_absolute(value, os.getcwd())) if value.strip() else default


def repo_root() -> Path:
    return _ROOT


def data_dir() -> Path:
    return _env_path("HW1LIB_DATA", _ROOT / "data")


def results_dir() -> Path:
    return _env_path("HW1LIB_RESULTS", _ROOT / "results")


def build_dir() -> Path:
    """Executed notebooks, logs, run records and timings (not committed)."""
    return _env_path("HW1LIB_BUILD", _ROOT / "build")


def figures_dir(profile: str) -> Path:
    """The committed `figures/` holds full-profile figures only; other
    profiles write to `build/figures/<profile>/` so a quick run can never
    overwrite the report's figures."""
    if os.environ.get("HW1LIB_FIGURES", "").strip():
        return _env_path("HW1LIB_FIGURES", _ROOT / "figures")
    if profile == "full":
        return _ROOT / "figures"
    return build_dir() / "figures" / profile


def shown(path: Path) -> str:
    """`path` relative to the repository when it lies inside it (else as is):
    what messages and notebook outputs print, so they hold no machine path."""
    try:
        return str(Path(path).resolve().relative_to(_ROOT))
    except ValueError:
        return str(path)


def file_mode() -> int:
    """The mode every output file is written with: 0644 under the usual umask
    (022), the umask respected (mkstemp's 0600 would hide a file from other users)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextmanager
def replacing(path: Path):
    """A temporary file beside `path` to write; renamed onto `path` when the
    block ends, removed if it raises: a reader sees the old file or the new
    one, never a part."""
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` through `replacing`."""
    with replacing(path) as tmp:
        tmp.write_text(text)


resolve_environment()


def main(argv: list[str] | None = None) -> int:
    """`python -m hw1lib.paths CMD ARGS...`: exec CMD with the paths resolved."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        for name in ENV_PATHS:
            print(f"{name}={os.environ.get(name, '(default)')}")
        return 0
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    raise SystemExit(main())
