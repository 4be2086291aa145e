"""Exact mode: one switch, `HW1LIB_EXACT=1` (`make report EXACT=1`), that pins
every CPU code path whose rounding differs between x86 CPUs.

By default torch picks the fastest kernels this CPU has: ATen's AVX-512 or
AVX2 loops, oneDNN's newest ISA, MKL's branch for this CPU and vendor, and as
many threads as it is given. Each choice changes how sums are split and
fused, so the last bits of a result (and, after training amplifies them, the
digits of a headline number) depend on the machine. Exact mode fixes them all:

- MKL_CBWR=COMPATIBLE,STRICT: MKL's conditional numerical reproducibility on
  its COMPATIBLE branch (SSE2 without the approximate-reciprocal instructions
  rcpps/rsqrtps, whose results differ between vendors), strict (bitwise) mode.
  Its AVX2 branch would be cheaper, but by Intel's documentation it gives way
  to the CPU's own ("AUTO") on non-Intel CPUs (benchmarks/README.md measures
  both);
- torch.backends.mkldnn off: convolutions through ATen's im2col and MKL's
  GEMM (pinned above) instead of oneDNN, whose blocking follows the CPU's
  cache sizes;
- ATEN_CPU_CAPABILITY=avx2: ATen's vectorised loops at AVX2, not AVX-512;
- ONEDNN_MAX_CPU_ISA=AVX2: oneDNN's convolutions and matmuls at AVX2;
- OPENBLAS_CORETYPE=Haswell: the AVX2 kernels of the OpenBLAS inside numpy and
  scipy (SciPy's L-BFGS-B, numpy's linear algebra), not this CPU's own;
- NPY_DISABLE_CPU_FEATURES: on a CPU with AVX-512, numpy's AVX-512 loops
  (its dispatch targets above AVX2) are turned off, so its ufuncs take the
  AVX2 loops an AVX2 CPU takes;
- one thread per process (OMP_, MKL_ and OPENBLAS_NUM_THREADS=1): a reduction is
  split the same way whatever the core count.

These are read when torch and numpy load their libraries, so the switch must
be set before either is imported: `hw1lib` applies it on import, and refuses (with the
fix) if torch was imported first with other settings. Results computed in
exact mode are cached under a code version of their own (`VERSION_SUFFIX`),
so a default-mode entry is never served as an exact one, nor the reverse.
What it costs and what it was measured to hold: README, "Reproducible";
benchmarks/README.md.
"""
from __future__ import annotations

import os
import sys

SWITCH = "HW1LIB_EXACT"
ENV = {"MKL_CBWR": "COMPATIBLE,STRICT", "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2",
       "OPENBLAS_CORETYPE": "Haswell", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
       "OPENBLAS_NUM_THREADS": "1"}
VERSION_SUFFIX = "x"      # appended to a unit's code version in exact mode (its cache key)
# numpy 2.4's dispatch targets above AVX2 (numpy._core._multiarray_umath.__cpu_dispatch__)
NUMPY_ABOVE_AVX2 = "X86_V4 AVX512_ICL AVX512_SPR"


def environment() -> dict[str, str]:
    """What exact mode sets: ENV, and numpy's AVX-512 loops off where the CPU
    has them (naming a feature the CPU lacks makes numpy warn on every import)."""
    env = dict(ENV)
    try:
        flags = next((ln for ln in open("/proc/cpuinfo") if ln.startswith("flags")), "").split()
    except OSError:
        flags = []
    if "avx512f" in flags:
        env["NPY_DISABLE_CPU_FEATURES"] = NUMPY_ABOVE_AVX2
    return env


def enabled() -> bool:
    """Whether exact mode is on (HW1LIB_EXACT set to 1, true or yes)."""
    return os.environ.get(SWITCH, "").strip().lower() in ("1", "true", "yes")


def apply() -> None:
    """Set exact mode's environment if the switch is on; called by `import hw1lib`.
    Raises if torch was imported before with settings that differ (its
    libraries read them once, when they load)."""
    if not enabled():
        return
    env = environment()
    wrong = {k: os.environ.get(k) for k, v in env.items() if os.environ.get(k) != v}
    if wrong and ("torch" in sys.modules or "numpy" in sys.modules):
        from .errors import ConfigError

        raise ConfigError(f"{SWITCH}=1, but torch or numpy was imported before hw1lib with {wrong}: exact mode "
                          f"must be set before torch loads. Import hw1lib first, or export "
                          + " ".join(f"{k}='{v}'" for k, v in env.items()) + ".")
    os.environ.update(env)


def configure_torch() -> None:
    """What exact mode sets inside torch (once torch is loaded): no oneDNN."""
    if enabled():
        import torch

        torch.backends.mkldnn.enabled = False
        torch.set_num_threads(1)


def check_threads(threads: int | None) -> int | None:
    """The torch threads per process a run may use: exact mode allows only 1."""
    if not enabled():
        return threads
    if threads not in (None, 1):
        from .errors import ConfigError

        raise ConfigError(f"{SWITCH}=1 computes with one thread per process; --threads {threads} would split "
                          "reductions another way. Leave --threads out, or unset the switch.")
    return 1


def check_device(device) -> None:
    """Exact mode pins CPU code paths; a GPU's kernels are another matter."""
    if enabled() and str(device).startswith("cuda"):
        from .errors import ConfigError

        raise ConfigError(f"{SWITCH}=1 is a CPU mode (it pins MKL, ATen and oneDNN paths); use --device cpu, "
                          "or unset the switch for a GPU run.")


def marked(version: str) -> str:
    """A code version as the cache keys it in the current mode."""
    return version + VERSION_SUFFIX if enabled() else version


def mode() -> str:
    """'exact' or 'default': what a record of a run says it was computed in."""
    return "exact" if enabled() else "default"
