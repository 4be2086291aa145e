"""Exact mode (hw1lib.exact): one switch sets every pinned path before torch
loads, refuses what would undo it, and keeps its results apart in the cache."""
import os
import platform
import subprocess
import sys

import pytest

from hw1lib import exact
from hw1lib.errors import ConfigError
from hw1lib.paths import repo_root

PROBE = ("import hw1lib, os, torch; from hw1lib.experiments import experiment; e = experiment('1-3b'); "
         "u = e.units(e.make_config('smoke', 'cpu'))[0]; "
         "print(torch.get_num_threads(), torch.backends.mkldnn.enabled, torch.backends.cpu.get_cpu_capability(), "
         "os.environ.get('MKL_CBWR'), u.version)")


def _cpu_flags() -> str:
    try:
        return next(ln for ln in open("/proc/cpuinfo") if ln.startswith("flags")) + " "
    except (OSError, StopIteration):
        return ""


def _probe(**env):
    base = {k: v for k, v in os.environ.items() if k not in exact.ENV and k != exact.SWITCH}
    p = subprocess.run([sys.executable, "-c", PROBE], env={**base, **env}, cwd=repo_root(), capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return p.stdout.split()


def test_the_switch_pins_threads_paths_and_the_cache_key():
    threads, mkldnn, capability, cbwr, version = _probe(HW1LIB_EXACT="1")
    default = _probe()
    assert (threads, mkldnn, cbwr) == ("1", "False", exact.ENV["MKL_CBWR"])
    if platform.machine() in ("x86_64", "AMD64") and " avx2" in _cpu_flags():
        assert capability == "AVX2"
    assert version == default[4] + exact.VERSION_SUFFIX      # exact results are cached apart
    assert default[1] == "True" and default[3] == "None"


@pytest.mark.subprocess
def test_torch_loaded_first_with_other_settings_is_refused():
    base = {k: v for k, v in os.environ.items() if k not in exact.ENV}
    p = subprocess.run([sys.executable, "-c", "import torch, hw1lib"], env={**base, exact.SWITCH: "1"},
                       cwd=repo_root(), capture_output=True, text=True, timeout=120)
    assert p.returncode != 0 and "exact mode must be set before torch loads" in p.stderr


def test_exact_mode_refuses_other_thread_counts_and_gpus(monkeypatch):
    monkeypatch.setenv(exact.SWITCH, "1")
    assert exact.check_threads(None) == 1 and exact.check_threads(1) == 1
    with pytest.raises(ConfigError, match="one thread per process"):
        exact.check_threads(2)
    with pytest.raises(ConfigError, match="CPU mode"):
        exact.check_device("cuda:0")
    monkeypatch.setenv(exact.SWITCH, "0")
    assert exact.check_threads(2) == 2 and exact.mode() == "default"
