"""Where a result came from: the commit and the version of the code that computed it.

`code_version(fn)` hashes exactly the definitions a computation can reach:
starting from `fn`'s top-level function, every function, class and constant
it names, followed through imports into the library (`from .train import
fit`, `cache.Result`, a name re-exported by a package), wherever each lives.
A definition is hashed by its name and its syntax tree without docstrings
and comments (`code_text`), never by its module: moving a definition to
another module, or editing a function it does not reach, recomputes
nothing; changing a reached definition recomputes what it feeds. A module
used as a value (not through `module.name`) counts whole. Definitions in
modules that only present, store or schedule results (`NOT_COMPUTE`) are not
followed: editing a plot or the cache's messages invalidates nothing.

What an object's methods do counts where the code names its class (a call,
a base, an annotation): a function that only receives an object names
nothing, which is why configs and ensembles are annotated.
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
PACKAGES = (PACKAGE,)    # whose definitions are followed (tests add a package of their own)
_PKG_DIR = Path(__file__).resolve().parent
# (hw1lib.stats is compute: 1-1a's plateau rule decides how long its runs train.)
NOT_COMPUTE = frozenset({"hw1lib.cache", "hw1lib.errors", "hw1lib.paths", "hw1lib.plotting",
                         "hw1lib.provenance", "hw1lib.report", "hw1lib.run", "hw1lib.experiments",
                         "hw1lib.tables", "hw1lib.headline", "hw1lib.site",
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
    """The source file of a module of one of `PACKAGES`, or None outside them."""
    top = module.split(".")[0]
    if top not in PACKAGES:
        return None
    root = _PKG_DIR if top == PACKAGE else _package_dir(top)
    if root is None:
        return None
    rel = Path(*module.split(".")[1:])
    for p in (root / rel.with_suffix(".py"), root / rel / "__init__.py"):
        if p.is_file():
            return p
    return None


@functools.lru_cache(maxsize=None)
def _package_dir(top: str) -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec(top)
    return Path(spec.origin).parent if spec and spec.origin else None


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


def _bindings(module: str, nodes) -> dict[str, tuple[str, str | None]]:
    """Names bound by the imports among `nodes`: name -> (module, None) for a
    module, (module, attribute) for a name taken from a module."""
    bound: dict[str, tuple[str, str | None]] = {}
    for node in nodes:
        if isinstance(node, ast.ImportFrom):
            src = _absolute(module, node)
            for a in node.names:
                sub = f"{src}.{a.name}"
                bound[a.asname or a.name] = (sub, None) if module_file(sub) else (src, a.name)
        elif isinstance(node, ast.Import):
            for a in node.names:
                bound[a.asname or a.name.split(".")[0]] = (a.name if a.asname else a.name.split(".")[0], None)
    return bound


@functools.lru_cache(maxsize=None)
def _top(module: str) -> tuple[dict[str, ast.AST], dict[str, tuple[str, str | None]]]:
    """A module's top-level definitions (name -> node) and import bindings."""
    defs: dict[str, ast.AST] = {}
    body = _parsed(module).body
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defs[node.name] = node
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for t in (node.targets if isinstance(node, ast.Assign) else [node.target]):
                if isinstance(t, ast.Name):
                    defs[t.id] = node
    return defs, _bindings(module, body)


def _resolve(module: str, name: str, seen=()) -> tuple[str, str | None] | None:
    """Where `name`, looked up in `module`'s top level, is defined: (module,
    name) for a definition, (module, None) for a module, ("", "ext:...") for a
    name imported from outside the packages, None for nothing (a builtin)."""
    if (module, name) in seen:
        return None
    defs, bound = _top(module)
    if name in defs:
        return module, name
    if name not in bound:
        sub = f"{module}.{name}"
        return (sub, None) if module_file(sub) else None
    return _bound(*bound[name], seen + ((module, name),))


def _bound(src: str, attr: str | None, seen=()) -> tuple[str, str | None] | None:
    """Where an import binding (module, attribute or None) leads (`_resolve`'s answers)."""
    if not module_file(src):
        return "", f"ext:{src}" + (f".{attr}" if attr else "")
    return (src, None) if attr is None else _resolve(src, attr, seen)


def _reached(module: str, node: ast.AST) -> set[tuple[str, str | None]]:
    """What one definition names: definitions, whole modules and outside
    names, each resolved to where it lives."""
    local = _bindings(module, [n for n in ast.walk(node) if isinstance(n, (ast.Import, ast.ImportFrom))])
    as_value = {id(n.value) for n in ast.walk(node) if isinstance(n, ast.Attribute)}
    out = set()

    def lookup(name):
        return _bound(*local[name]) if name in local else _resolve(module, name)

    def chain(n):          # a.b.c -> (base Name, [b, c])
        attrs = []
        while isinstance(n, ast.Attribute):
            attrs.append(n.attr)
            n = n.value
        return (n, attrs[::-1]) if isinstance(n, ast.Name) else (None, [])

    for n in ast.walk(node):
        if isinstance(n, ast.Attribute) and id(n) not in as_value:
            base, attrs = chain(n)
            if base is None:
                continue
            hit = lookup(base.id)
            while hit and hit[1] is None and attrs:            # module.attr...: into that module
                hit = _resolve(hit[0], attrs.pop(0))
            if hit:
                out.add(hit)
        elif isinstance(n, ast.Name) and id(n) not in as_value:
            hit = lookup(n.id)
            if hit:
                out.add(hit)
    return out


def dependencies(fn: Callable) -> list[str]:
    """Every definition ("module:name") whose source can change what `fn`
    computes, and every module that counts whole ("module:*"). A closure or
    lambda counts as the top-level function that defines it."""
    return list(_dependencies(fn.__module__, fn.__qualname__.split(".")[0]))


@functools.lru_cache(maxsize=None)
def _dependencies(module: str, top: str) -> tuple[str, ...]:
    todo, done, whole = [(module, top)], set(), set()
    while todo:
        mod, name = todo.pop()
        if (mod, name) in done or mod in NOT_COMPUTE:
            continue
        if name is None:                       # a module used as a value: all of it
            done.add((mod, None))
            todo += [(mod, d) for d in _top(mod)[0]]
            continue
        defs, _ = _top(mod)
        if name not in defs:
            continue
        done.add((mod, name))
        for hit in _reached(mod, defs[name]):
            if hit[0] == "":
                whole.add(hit[1])
            else:
                todo.append(hit)
    return tuple(sorted(f"{m}:{n or '*'}" for m, n in done)) + tuple(sorted(whole))


def clear_caches() -> None:
    """Forget every parsed source (after a file changed in this process)."""
    for f in (_source, _parsed, _top, _dependencies, _version, _package_dir):
        getattr(f, "cache_clear", lambda: None)()   # a test may have replaced one


def code_version(fn: Callable) -> str:
    """16 hex digits: the hash of the definitions `fn`'s results depend on (see
    the module docstring). Outside the packages (a test's function) it is the
    hash of fn's own source, or "" where that is unavailable."""
    if module_file(fn.__module__) is None:
        try:
            src = inspect.getsource(fn)
        except (OSError, TypeError):
            return ""
        return hashlib.sha256(src.encode()).hexdigest()[:16]
    return _version(_dependencies(fn.__module__, fn.__qualname__.split(".")[0]))


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
    leaves it unchanged; any change of code changes it. Written field by
    field, leaving out the empty ones, so that a field a newer Python adds
    empty (3.12's `type_params`, 3.13's defaults of `ast.dump`) changes nothing:
    the same code has the same version on Python 3.11 to 3.13."""
    return _canonical(_without_docstrings(node))


def _canonical(node) -> str:
    if isinstance(node, ast.JoinedStr):     # 3.12.1 ends a nested format spec with an empty string
        node = ast.JoinedStr(values=[v for v in node.values if not (isinstance(v, ast.Constant) and v.value == "")])
    if isinstance(node, ast.AST):
        fields = [f"{k}={_canonical(v)}" for k, v in ast.iter_fields(node) if v is not None and v != []]
        return f"{type(node).__name__}({','.join(fields)})"
    if isinstance(node, list):
        return "[" + ",".join(_canonical(x) for x in node) + "]"
    return repr(node)


@functools.lru_cache(maxsize=None)
def _version(deps: tuple[str, ...]) -> str:
    """The hash of each reached definition's name and code (not its module:
    a move changes nothing) and of each outside name it imports."""
    texts = set()
    for dep in deps:
        if dep.startswith("ext:"):
            texts.add(dep)
            continue
        mod, name = dep.rsplit(":", 1)
        if name != "*":
            node = _top(mod)[0][name]
            texts.add(f"{name}\n{code_text(node)}")
    h = hashlib.sha256()
    for t in sorted(texts):
        h.update(t.encode() + b"\n")
    return h.hexdigest()[:16]
