"""Results cached under `results/<experiment>/<config hash>-<code version>/`.

An entry is a directory holding `config.json`, `arrays.npz` (numpy arrays,
loaded with allow_pickle=False), optionally `weights.pt` (tensors, loaded with
weights_only=True), `summary.json` (headline numbers) and `meta.json` (commit,
torch version, device, code version and the SHA-256 of every other file).

The cache never lies:
- the key holds the code version (`provenance.code_version`): a change to the
  code a result depends on is a miss, a change elsewhere is not;
- a load checks meta.json, config.json and every checksum before reading;
  a damaged, mismatched or unreadable entry is moved aside to
  `results/<experiment>/.quarantine/`, named in a warning, and recomputed;
- an entry is written in a temporary directory and renamed into place in one
  step; an entry that already exists is kept, never replaced; a second
  process that wants an entry being computed waits for it (a lock file per
  entry) and then reuses it; a killed writer's temporary directory is removed
  by the next writer of that entry;
- the results directory is checked writable before anything is computed, and
  a full disk or a missing permission is reported naming the directory;
- nothing is read or written through a symbolic link inside the results
  directory (an experiment directory, an entry, a file of an entry, a lock
  file): a link there is damage, moved aside to `.quarantine/` (the link
  itself, never what it points to) with a warning naming it, and the next
  computation proceeds as if it had never been there. The results directory
  itself may be a link (a shared disk): `python -m hw1lib.run` says where it
  points.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import stat
import sys
import tempfile
import time
import warnings
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch

from .config import config_dict, config_hash
from .data import sha256
from .errors import CacheError
from .paths import results_dir
from . import exact
from .provenance import code_version, git_commit

FORMAT = 1
_DATA_FILES = ("config.json", "arrays.npz", "weights.pt", "summary.json")


class CacheWarning(UserWarning):
    """An entry was damaged or mismatched: it was moved aside and is recomputed."""


@dataclass
class Result:
    """What an experiment produces: arrays, optional tensors, a JSON summary."""
    arrays: dict[str, np.ndarray]
    summary: dict[str, Any]
    weights: dict[str, torch.Tensor] = field(default_factory=dict)
    from_cache: bool = False
    path: Path | None = None


def entry_dir(experiment: str, config: Any, version: str) -> Path:
    return results_dir() / experiment / f"{config_hash(config)}-{version or 'none'}"


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(results_dir().parent))
    except ValueError:
        return str(path)


def check_writable(directory: Path | None = None) -> Path:
    """Create `directory` (default: the results directory) if needed and prove
    it writable with a probe file; CacheError naming it otherwise."""
    directory = Path(directory or results_dir())
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".probe-", dir=directory)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise CacheError(f"The results directory {directory} is not writable ({exc.strerror}); "
                         "fix its permissions or set HW1LIB_RESULTS to a writable directory.") from None
    return directory


def describe_root() -> str:
    """The results directory, and where it points when it is a link (allowed:
    only links inside it are refused)."""
    root = results_dir()
    return f"{root} (a link to {root.resolve()})" if root.is_symlink() else str(root)


def _write_error(exc: OSError, directory: Path) -> CacheError:
    why = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
           errno.EACCES: "permission denied", errno.EROFS: "the file system is read-only",
           errno.EPERM: "permission denied"}.get(exc.errno, exc.strerror or str(exc))
    return CacheError(f"Could not save results in {directory}: {why}; free space or set "
                      "HW1LIB_RESULTS to another directory, then run again (finished units are kept).")


def save(experiment: str, config: Any, result: Result, version: str = "") -> Path:
    """Write the entry atomically. If it already exists (another process
    finished first) the existing entry is kept and returned."""
    final = entry_dir(experiment, config, version)
    parent = check_writable(experiment_dir(experiment))
    if final.is_symlink():
        quarantine(final, _LINK)
    tmp = None
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=parent))
        (tmp / "config.json").write_text(json.dumps(config_dict(config), indent=2, sort_keys=True))
        np.savez(tmp / "arrays.npz", **result.arrays)
        if result.weights:
            torch.save({k: v.detach().cpu() for k, v in result.weights.items()}, tmp / "weights.pt")
        (tmp / "summary.json").write_text(json.dumps(result.summary, indent=2, sort_keys=True))
        meta = {"format": FORMAT, "experiment": experiment, "code_version": version,
                "commit": git_commit(), "torch": torch.__version__, "mode": exact.mode(),
                "device": str(getattr(config, "device", "n/a")), "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "files": {p.name: sha256(p) for p in sorted(tmp.iterdir())}}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
        tmp.chmod(0o755)  # mkdtemp's 0700 would hide a shared results directory from its other users
        try:
            os.rename(tmp, final)  # atomic; fails if `final` exists, which is then kept
            tmp = None
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY) or not final.is_dir():
                raise
    except OSError as exc:
        raise _write_error(exc, parent) from None
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    result.path = final
    return final


class _Invalid(Exception):
    pass


def _read(path: Path, config: Any, version: str, decode: bool = True) -> Result | None:
    """Load and verify an entry; _Invalid (with the reason) if anything is off.
    decode=False: verify only (meta, every checksum, the config), load nothing."""
    try:
        meta = json.loads((path / "meta.json").read_text())
    except FileNotFoundError:
        raise _Invalid("meta.json is missing") from None
    except (OSError, ValueError) as exc:
        raise _Invalid(f"meta.json is unreadable ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise _Invalid(f"meta.json has format {meta.get('format') if isinstance(meta, dict) else '?'}, "
                       f"expected {FORMAT}")
    if meta.get("code_version") != version:
        raise _Invalid(f"it was computed by code version {meta.get('code_version')}, not {version}")
    files = meta.get("files") or {}
    for name in set(files) | {"meta.json"}:
        if (path / name).is_symlink():
            raise _Invalid(f"{name} is a symbolic link")
    if not {"config.json", "arrays.npz", "summary.json"} <= set(files) or not set(files) <= set(_DATA_FILES):
        raise _Invalid(f"meta.json lists the files {sorted(files)}")
    for name, digest in files.items():
        try:
            actual = sha256(path / name)
        except OSError as exc:
            raise _Invalid(f"{name} is unreadable ({exc.strerror})") from None
        if actual != digest:
            raise _Invalid(f"the checksum of {name} does not match meta.json")
    try:
        stored = json.loads((path / "config.json").read_text())
        if stored != json.loads(json.dumps(config_dict(config))):
            raise _Invalid("config.json is another config's")
        if not decode:
            return None
        with np.load(path / "arrays.npz", allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        weights = {}
        if "weights.pt" in files:
            weights = torch.load(path / "weights.pt", weights_only=True, map_location="cpu")
        summary = json.loads((path / "summary.json").read_text())
    except _Invalid:
        raise
    except Exception as exc:  # pickle refused, zip damaged, bad JSON, ...
        raise _Invalid(f"it could not be read ({type(exc).__name__}: {exc})") from None
    return Result(arrays, summary, weights, from_cache=True, path=path)


_LINK = "it is a symbolic link, and the cache never reads or writes through a link inside the results directory"


def _quarantine_dir(parent: Path) -> Path:
    """`parent/.quarantine`, a real directory (a link or file of that name is
    renamed aside first)."""
    q = parent / ".quarantine"
    if q.is_symlink() or (q.exists() and not q.is_dir()):
        aside = parent / f".quarantine.aside-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        os.rename(q, aside)
        warnings.warn(f"hw1lib cache: {_display(q)} was not a directory ({_LINK}); renamed to {_display(aside)}.",
                      CacheWarning, stacklevel=4)
    q.mkdir(exist_ok=True)
    return q


def quarantine(path: Path, reason: str) -> Path | None:
    """Move a bad entry, or a link or stray file where an entry or an experiment
    directory belongs, aside into `.quarantine/` beside it (never delete it,
    never follow a link) and say so."""
    try:
        holder = Path(tempfile.mkdtemp(prefix=f"{path.name}.{time.strftime('%Y%m%d-%H%M%S')}.",
                                       dir=_quarantine_dir(path.parent)))
        if path.is_dir() and not path.is_symlink():
            dest = holder
            os.rename(path, dest)  # onto the empty directory just made: a unique name
        else:
            dest = holder / path.name   # a link or a file cannot replace a directory: moved into it
            os.rename(path, dest)
    except FileNotFoundError:
        return None  # another process moved it first
    except OSError as exc:
        raise _write_error(exc, path.parent) from None
    warnings.warn(f"hw1lib cache: entry {_display(path)} is damaged or mismatched ({reason}); "
                  f"moved to {_display(dest)} and recomputed.", CacheWarning, stacklevel=3)
    return dest


def _regular(path: Path) -> bool:
    """A regular file, not a link (to one or to anything else)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def experiment_dir(experiment: str) -> Path:
    """`results/<experiment>/`, created if needed, as a real directory: a link
    or a file in its place is quarantined first (with a warning naming it)."""
    path = results_dir() / experiment
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        quarantine(path, _LINK if path.is_symlink() else "it is a file, not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        check_writable(path)     # names the directory that cannot be written
        raise _write_error(exc, path.parent) from None
    return path


def load(experiment: str, config: Any, version: str = "") -> Result | None:
    """The verified entry, or None (a bad entry, or a link where an entry or
    its experiment directory belongs, is quarantined first)."""
    return _checked(experiment, config, version, decode=True)[1]


def sound(experiment: str, config: Any, version: str = "") -> bool:
    """Whether the entry is in place and verifies as `load` verifies it (a bad
    one is quarantined the same way), without decoding its arrays or weights:
    what the runner asks before deciding a unit need not be computed."""
    return _checked(experiment, config, version, decode=False)[0]


def _checked(experiment: str, config: Any, version: str, decode: bool) -> tuple[bool, Result | None]:
    """(whether the entry is sound, the entry if decoded)."""
    path = entry_dir(experiment, config, version)
    if path.parent.is_symlink():
        experiment_dir(experiment)
        return False, None
    if path.is_symlink():
        quarantine(path, _LINK)
        return False, None
    if not path.is_dir():
        return False, None
    try:
        return True, _read(path, config, version, decode)
    except _Invalid as exc:
        quarantine(path, str(exc))
        return False, None


@contextmanager
def _entry_lock(final: Path):
    """An exclusive lock on one entry (a lock file beside it), held while it is
    computed and saved; says so when it has to wait for another process."""
    lock = final.parent / f".lock-{final.name}"
    if lock.is_symlink() or (lock.exists() and not _regular(lock)):
        quarantine(lock, _LINK)
    try:
        # O_NOFOLLOW: a link made between the check and here is an error, never followed
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        raise _write_error(exc, final.parent) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"[cache] waiting for another process computing {_display(final)}", file=sys.stderr)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _remove_stale_temps(final: Path) -> None:
    """Temporary directories of this entry left by a killed writer (we hold the
    entry's lock, so no live writer owns them)."""
    for p in final.parent.glob(f".tmp-{final.name}-*"):
        _remove(p)


def _remove(path: Path) -> None:
    """Delete a file, a link (not what it points to) or a directory tree."""
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


def clean_stale_temps(root: Path | None = None) -> list[Path]:
    """Remove every temporary directory under the results directory whose
    entry no process is writing (its lock can be taken at once): what killed
    writers of any entry left behind. Returns what was removed."""
    root = Path(root or results_dir())
    removed = []
    for tmp in root.glob("*/.tmp-*"):
        if tmp.parent.is_symlink():
            continue    # not ours to clean: the next run quarantines that link
        name = tmp.name[len(".tmp-"):].rsplit("-", 1)[0]   # .tmp-<entry>-<random>
        with _unless_locked(tmp.parent / f".lock-{name}") as free:
            if free:                                         # else a live writer owns it
                _remove(tmp)
                removed.append(tmp)
    return removed


@contextmanager
def _unless_locked(lock: Path):
    """Yields whether no process holds this entry lock; when none does, it is
    held by us for the block (removing an entry or its temporary directory).
    A lock file that cannot be opened without following a link counts as held."""
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError:
        yield False
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        yield False
        return
    try:
        yield True
    finally:
        os.close(fd)


def cached(experiment: str, config: Any, compute: Callable[[], Result],
           version: str | None = None) -> Result:
    """Load the entry for `config` if present and sound, else compute and save
    it. `version` defaults to the code version of `compute`."""
    version = code_version(compute) if version is None else version
    hit = load(experiment, config, version)
    if hit is not None:
        return hit
    final = entry_dir(experiment, config, version)
    check_writable(experiment_dir(experiment))
    with _entry_lock(final):
        hit = load(experiment, config, version)  # computed by another process while we waited
        if hit is not None:
            return hit
        _remove_stale_temps(final)
        result = compute()
        save(experiment, config, result, version)
    return result


def _size(path: Path) -> int:
    """Bytes under `path` (a link counts as itself, never followed)."""
    if path.is_symlink() or not path.is_dir():
        return os.lstat(path).st_size
    return sum(os.lstat(os.path.join(d, f)).st_size for d, _, files in os.walk(path) for f in files)


@dataclass
class Pruned:
    """What `prune` removed (or would remove) and kept."""
    removed: dict[str, tuple[int, int]] = field(default_factory=dict)   # what -> (entries, bytes)
    kept: tuple[int, int] = (0, 0)

    @property
    def total(self) -> tuple[int, int]:
        return sum(n for n, _ in self.removed.values()), sum(b for _, b in self.removed.values())


def prune(current: Mapping[str, set[str]], dry_run: bool = False) -> Pruned:
    """Remove every entry that no experiment of the current code would read:
    under `results/<dir>/`, entries whose code version is not in current[dir]
    (all of them where `dir` is not in `current`), with their lock files; and
    what `.quarantine/` folders and killed writers left. Links are removed,
    never followed. An entry being written (its lock held) is kept."""
    root = results_dir()
    out = Pruned()
    kept_n = kept_b = 0

    def drop(what: str, path: Path, lock: Path | None = None) -> None:
        """Count `path` under `what` and remove it, unless its entry lock is
        held (it is being written); a dry run only counts."""
        with (_unless_locked(lock) if lock and not dry_run else nullcontext(True)) as free:
            if free:
                n, b = out.removed.get(what, (0, 0))
                out.removed[what] = (n + 1, b + _size(path))
                if not dry_run:
                    _remove(path)

    if not root.is_dir():
        return out
    if not dry_run:
        clean_stale_temps(root)
    for d in sorted(root.iterdir()):
        shown_dir = _display(d)
        if d.name.startswith("."):
            if d.name.startswith(".quarantine"):
                drop(f"{shown_dir}/ (damaged entries set aside)", d)
            continue
        if d.is_symlink() or not d.is_dir():
            drop(f"{shown_dir} (a link or file where an experiment directory belongs)", d)
            continue
        versions = current.get(d.name)
        for p in sorted(d.iterdir()):
            if p.name.startswith(".quarantine"):
                drop(f"{shown_dir}/.quarantine/ (damaged entries set aside)", p)
                continue
            if p.name.startswith((".tmp-", ".probe-")):
                continue        # a live writer's (killed writers' were cleaned above)
            if p.name.startswith(".lock-"):
                continue        # removed with its entry, or below once its entry is gone
            version = p.name.rsplit("-", 1)[-1]
            if versions is not None and version in versions and not p.is_symlink():
                kept_n, kept_b = kept_n + 1, kept_b + _size(p)
                continue
            why = ("no experiment of this code reads it" if versions is None
                   else "a link where an entry belongs" if p.is_symlink()
                   else f"code version {version}, not read by this code")
            drop(f"{shown_dir}/ ({why})", p, lock=d / f".lock-{p.name}")
        if not dry_run:
            for lock in d.glob(".lock-*"):           # locks whose entry is gone and that nobody holds
                entry = d / lock.name[len(".lock-"):]
                if not entry.exists() and not entry.is_symlink():
                    with _unless_locked(lock) as free:
                        if free:
                            lock.unlink(missing_ok=True)
        if versions is None and not dry_run:
            try:
                d.rmdir()       # kept if a live writer is still in it
            except OSError:
                pass
    out.kept = (kept_n, kept_b)
    return out
