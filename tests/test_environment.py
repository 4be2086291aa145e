"""pyproject.toml pins every version; environment.yml must list the same ones."""
import re
import tomllib

from hw1lib.paths import repo_root


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((repo_root() / "pyproject.toml").read_text())["project"]
    pinned = set(project["dependencies"]) | set(project["optional-dependencies"]["dev"])
    assert all("==" in p for p in pinned), "every dependency is pinned exactly"
    yml = (repo_root() / "environment.yml").read_text()
    listed = set(re.findall(r"^\s*-\s*([A-Za-z0-9_.\-]+==[^\s#]+)", yml, flags=re.M))
    assert listed == pinned
    assert "python=3.11" in yml


def _lock() -> dict[str, str]:
    text = (repo_root() / "requirements.lock").read_text()
    entries = re.findall(r"^([A-Za-z0-9_.\-]+)==(\S+) \\\n\s+--hash=sha256:([0-9a-f]{64})$", text, flags=re.M)
    lines = [ln for ln in text.splitlines() if ln and not ln.startswith(("#", " "))]
    assert len(entries) == len(lines), "every locked package is pinned with a sha256 hash"
    return {name.lower().replace("_", "-"): version for name, version, _ in entries}


def test_lock_file_agrees_with_pyproject_and_environment_yml():
    project = tomllib.loads((repo_root() / "pyproject.toml").read_text())["project"]
    lock = _lock()
    for pin in project["dependencies"] + project["optional-dependencies"]["dev"]:
        name, version = pin.split("==")
        assert lock.get(name.lower().replace("_", "-")) == version.split()[0], f"{pin} not in requirements.lock"
    assert "hw1lib" not in lock


def test_installed_environment_is_the_lock_file():
    from importlib.metadata import distributions

    installed = {d.metadata["Name"].lower().replace("_", "-"): d.version for d in distributions()}
    drift = {n: (v, installed.get(n)) for n, v in _lock().items() if installed.get(n) != v}
    assert not drift, f"installed packages differ from requirements.lock (run make setup): {drift}"
