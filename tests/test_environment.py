"""pyproject.toml pins every version; environment.yml lists the same ones; the
lock pins everything `make setup` installs, with hashes, for every supported
Python and platform."""
import re
import sys
import tomllib

from packaging.markers import Marker
from packaging.specifiers import SpecifierSet

from hw1lib.paths import repo_root

SUPPORTED = ("3.11", "3.12", "3.13")


def _project() -> dict:
    return tomllib.loads((repo_root() / "pyproject.toml").read_text())["project"]


def test_environment_yml_matches_pyproject():
    project = _project()
    pinned = set(project["dependencies"]) | set(project["optional-dependencies"]["dev"])
    assert all("==" in p for p in pinned), "every dependency is pinned exactly"
    yml = (repo_root() / "environment.yml").read_text()
    listed = set(re.findall(r"^\s*-\s*([A-Za-z0-9_.\-]+==[^\s#]+)", yml, flags=re.M))
    assert listed == pinned
    assert re.search(r"^\s*-\s*python>=3\.11,<3\.14\s*$", yml, flags=re.M)


def test_requires_python_is_every_supported_version():
    spec = SpecifierSet(_project()["requires-python"])
    assert all(v in spec for v in SUPPORTED) and "3.10" not in spec and "3.14" not in spec


def _lock() -> list[tuple[str, str, str, list[str]]]:
    """(name, version, marker, hashes) per entry of requirements.lock."""
    text = (repo_root() / "requirements.lock").read_text()
    entries = re.findall(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)(?: ; ([^\\\n]+))? \\\n((?:\s+--hash=sha256:[0-9a-f]{64}"
                         r"(?: \\)?\n?)+)", text, flags=re.M)
    lines = [ln for ln in text.splitlines() if ln and not ln.startswith(("#", " "))]
    assert len(entries) == len(lines), "every locked package is pinned with sha256 hashes"
    return [(n.lower().replace("_", "-"), v, m.strip(), re.findall(r"[0-9a-f]{64}", h)) for n, v, m, h in entries]


def _for(env: dict) -> dict[str, str]:
    """The lock's {name: version} on a platform (markers evaluated in `env`)."""
    out = {}
    for name, version, marker, hashes in _lock():
        assert hashes, name
        if not marker or Marker(marker).evaluate(env):
            assert name not in out, f"{name} locked twice for {env}"
            out[name] = version
    return out


def test_lock_file_agrees_with_pyproject_on_every_supported_python_and_platform():
    pins = _project()["dependencies"] + _project()["optional-dependencies"]["dev"]
    for py in SUPPORTED:
        for system, machine in (("linux", "x86_64"), ("linux", "aarch64"), ("darwin", "arm64")):
            lock = _for({"python_version": py, "python_full_version": f"{py}.0", "sys_platform": system,
                         "platform_system": system.title() if system == "linux" else "Darwin",
                         "platform_machine": machine})
            for pin in pins:
                name, version = pin.split("==")
                assert lock.get(name.lower().replace("_", "-")) == version.split()[0], f"{pin}: {py} {system}"
            assert "hw1lib" not in lock
            assert ("nvidia-cudnn-cu13" in lock) == (system == "linux")   # CUDA wheels only where torch needs them


def test_installed_environment_is_the_lock_file():
    from importlib.metadata import distributions

    installed = {d.metadata["Name"].lower().replace("_", "-"): d.version for d in distributions()}
    here = _for({})   # markers evaluated on this machine
    drift = {n: (v, installed.get(n)) for n, v in here.items() if installed.get(n) != v}
    assert not drift, f"installed packages differ from requirements.lock (run make setup): {drift}"
    assert sys.version_info[:2] >= (3, 11)
