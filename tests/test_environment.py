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
