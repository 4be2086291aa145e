"""Where a result came from: the commit and the version of the code that computed it.

`code_version(fn)` hashes exactly the source a computation can depend on:
inside its experiment module, the top-level definitions reachable from `fn`
(a change to 1-3e's function leaves 1-1a's results valid); in the library,
every module those definitions import, transitively, whole. What is hashed is
the syntax tree without docstrings and comments (`code_text`): editing either
recomputes nothing, a change of code always does. Modules that only
present, store or schedule results (`NOT_COMPUTE`) are left out: editing a plot
or the cache's messages invalidates nothing.
"""
from __future__ import annotations

import ast
import functools
import hashlib
import inspect
import os
import subprocess
from pathlib import Path
from typing import Callable

from .paths import repo_root

PACKAGE = "hw1lib"
_PKG_DIR = Path(__file__).resolve().parent
# (hw1lib.stats is compute: 1-1a's plateau rule decides how long its runs train.)
NOT_COMPUTE = frozenset({"hw1lib.cache", "hw1lib.errors", "hw1lib.paths", "hw1lib.plotting",
                         "hw1lib.provenance", "hw1lib.report", "hw1lib.run", "hw1lib.experiments",
                         "hw1lib.tables", "hw1lib.headline",
                         "hw1lib.experiments.common", "hw1lib.verify"})


def git_commit() -> str:
    """The checkout's commit (+dirty), or HW1LIB_COMMIT where the tree has no
    git history (e.g. a copy sent to a GPU machine)."""
    if os.environ.get("HW1LIB_COMMIT"):
        return os.environ["HW1LIB_COMMIT"]
    return _git_commit()


@functools.lru_cache(maxsize=1)
def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo_root(),
                             capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "hw1lib", "notebooks"],
                               cwd=repo_root(), capture_output=True, text=True).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "")
    except Exception:
        return "unknown"


def module_file(module: str) -> Path | None:
    """The source file of an hw1lib module name, or None outside the package."""
    if module != PACKAGE and not module.startswith(PACKAGE + "."):
        return None
    rel = Path(*module.split(".")[1:])
    for p in (_PKG_DIR / rel.with_suffix(".py"), _PKG_DIR / rel / "__init__.py"):
        if p.is_file():
            return p
    return None


@functools.lru_cache(maxsize=None)
def _source(module: str) -> str:
    return module_file(module).read_text()


@functools.lru_cache(maxsize=None)
def _parsed(module: str) -> ast.Module:
    return ast.parse(_source(module))


def _absolute(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    if module_file(module).name != "__init__.py":
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(module: str) -> dict[str, str]:
    """Names bound by the module's imports -> the hw1lib module they come from."""
    bound: dict[str, str] = {}
    for node in ast.walk(_parsed(module)):
        if isinstance(node, ast.ImportFrom):
            src = _absolute(module, node)
            for a in node.names:
                sub = f"{src}.{a.name}"
                bound[a.asname or a.name] = sub if module_file(sub) else src
        elif isinstance(node, ast.Import):
            for a in node.names:
                bound[a.asname or a.name.split(".")[0]] = a.name
    return {k: v for k, v in bound.items() if module_file(v)}


def _library_closure(module: str, seen: set[str]) -> None:
    """Every hw1lib module `module` imports, transitively (whole files)."""
    if module in seen or module in NOT_COMPUTE:
        return
    seen.add(module)
    for dep in set(_imports(module).values()):
        _library_closure(dep, seen)


def dependencies(fn: Callable) -> tuple[list[str], list[str]]:
    """(library modules, definitions of fn's own module) whose source can change
    what `fn` computes. A closure or lambda counts as the top-level function
    that defines it."""
    libs, own = _dependencies(fn.__module__, fn.__qualname__.split(".")[0])
    return list(libs), list(own)


@functools.lru_cache(maxsize=None)
def _dependencies(module: str, top: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    defs: dict[str, ast.AST] = {}
    for node in _parsed(module).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defs[node.name] = node
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                if isinstance(t, ast.Name):
                    defs[t.id] = node
    imports = _imports(module)
    todo, own, libs = [top], set(), set()
    while todo:
        name = todo.pop()
        if name in own or name not in defs:
            continue
        own.add(name)
        for n in ast.walk(defs[name]):
            if isinstance(n, ast.Name):
                if n.id in defs:
                    todo.append(n.id)
                elif n.id in imports:
                    _library_closure(imports[n.id], libs)
    return tuple(sorted(libs)), tuple(sorted(own))


def code_version(fn: Callable) -> str:
    """16 hex digits: the hash of the source `fn`'s results depend on (see the
    module docstring). Outside hw1lib (a test's function) it is the hash of
    fn's own source, or "" where that is unavailable."""
    if module_file(fn.__module__) is None:
        try:
            src = inspect.getsource(fn)
        except (OSError, TypeError):
            return ""
        return hashlib.sha256(src.encode()).hexdigest()[:16]
    libs, own = dependencies(fn)
    return _version(fn.__module__, tuple(own), tuple(libs))


def _without_docstrings(node: ast.AST) -> ast.AST:
    """A copy of `node` with the docstring of every module, class and function
    in it removed (comments are not in the tree at all)."""
    import copy

    node = copy.deepcopy(node)
    for n in ast.walk(node):
        body = getattr(n, "body", None)
        if (isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            n.body = body[1:] or [ast.Pass()]
    return node


def code_text(node: ast.AST) -> str:
    """What of `node`'s source a result can depend on: its syntax tree without
    docstrings, comments, line numbers or layout. A docstring or comment edit
    leaves it unchanged; any change of code changes it."""
    return ast.dump(_without_docstrings(node), annotate_fields=False)


@functools.lru_cache(maxsize=None)
def _version(module: str, own: tuple[str, ...], libs: tuple[str, ...]) -> str:
    h = hashlib.sha256()
    defs = {}
    for node in _parsed(module).body:
        names = ([node.name] if hasattr(node, "name") else
                 [t.id for t in getattr(node, "targets", [getattr(node, "target", None)])
                  if isinstance(t, ast.Name)])
        for n in names:
            defs[n] = code_text(node)
    for name in own:
        h.update(f"{module}:{name}\n{defs[name]}\n".encode())
    for lib in libs:
        h.update(f"{lib}\n{code_text(_parsed(lib))}\n".encode())
    return h.hexdigest()[:16]
