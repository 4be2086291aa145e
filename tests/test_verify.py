"""Numbers are compared across machines within tolerances (hw1lib.verify):
the tolerance terms on hand-computed cases, the comparison, and the files."""
import json
import math

import numpy as np
import pytest

from hw1lib import verify
from hw1lib.experiments import REGISTRY
from hw1lib.paths import repo_root


def test_seed_term_is_z_standard_deviations_of_a_difference_of_two_means():
    # lin, seeds [1, 3]: s = sqrt(2), n = 2 -> 4 * sqrt(2) * sqrt(2 / 2)
    tol, why = verify.tolerance([1.0, 3.0], "lin", None)
    assert why == "seeds" and tol == pytest.approx(4 * math.sqrt(2))
    # log: the same on log10 of the values
    tol, why = verify.tolerance([10.0, 1000.0], "log", None)
    assert why == "seeds" and tol == pytest.approx(4 * math.sqrt(2))


def test_machine_term_and_floor_take_over_where_seeds_say_nothing():
    assert verify.tolerance([5.0], "lin", 0.1) == (pytest.approx(0.4), "machines")
    assert verify.tolerance([5.0], "lin", None) == (verify.FLOOR["lin"], "floor")
    assert verify.tolerance([5.0, 5.0], "log", 0.0) == (verify.FLOOR["log"], "floor")


def test_a_share_of_runs_gets_a_binomial_spread_even_when_all_runs_agree():
    # 0 of 20 runs: Laplace's p = 1/22; s = 100 sqrt(p (1 - p)); tol = 4 s sqrt(2 / 20)
    p = 1 / 22
    tol, why = verify.tolerance([0.0] * 20, "lin", None)
    assert why == "seeds" and tol == pytest.approx(4 * 100 * math.sqrt(p * (1 - p)) * math.sqrt(0.1))


def test_compare_passes_within_and_fails_beyond_the_tolerance():
    ref = {"x": {"a": {"family": "x/a", "scale": "lin", "values": [1.0, 3.0]},
                 "b": {"family": "x/b", "scale": "log", "values": [0.01]}}}
    tol_a = 4 * math.sqrt(2)
    here = {"x": {"a": {"family": "x/a", "scale": "lin", "values": [2 + tol_a - 0.01, 2 + tol_a - 0.01]},
                  "b": {"family": "x/b", "scale": "log", "values": [0.01 * 10 ** 0.5]}}}
    rows = {r["metric"]: r for r in verify.compare(ref, here, {"x/b": 0.1})}
    assert rows["a"]["ok"] and rows["b"]["ok"] is False            # b: 0.5 decades > 4 * 0.1
    assert rows["b"]["committed"] == pytest.approx(0.01) and rows["b"]["here"] == pytest.approx(0.01 * 10 ** 0.5)
    here["x"]["a"]["values"] = [2 + tol_a + 0.01] * 2
    assert not verify.compare(ref, here, {})[0]["ok"]
    # a metric the committed file lacks fails, rather than passing unchecked
    assert not verify.compare({}, here, {})[0]["ok"]


def test_every_experiment_has_checks_and_the_quick_reference_covers_them():
    ref = json.loads((repo_root() / verify.REFERENCE["quick"]).read_text())
    assert ref["profile"] == "quick" and set(ref["checks"]) == {e.name for e in REGISTRY}
    for name, metrics in ref["checks"].items():
        assert metrics, name
        for m in metrics.values():
            # a metric's family is its experiment's, or that of the experiment it varies (1-1b-long: 1-1b)
            assert m["scale"] in ("lin", "log") and m["values"] and name.startswith(m["family"].split("/")[0]), m


def test_machine_spread_covers_every_family_of_the_quick_reference():
    spread = verify.family_spread()
    ref = json.loads((repo_root() / verify.REFERENCE["quick"]).read_text())["checks"]
    families = {m["family"] for metrics in ref.values() for m in metrics.values()}
    assert families <= set(spread), families - set(spread)
    assert all(np.isfinite(v) and v >= 0 for v in spread.values())


def test_full_reference_has_per_seed_values_for_every_experiment():
    results = json.loads((repo_root() / verify.REFERENCE["full"]).read_text())
    assert set(results["checks"]) == {e.name for e in REGISTRY}
    assert results["checks"]["1-2b"]["function/grad_norm_last10"]["values"].__len__() >= 5


def test_unknown_experiment_is_one_sentence(capsys):
    assert verify.main(["--only", "9-9"]) == 2
    assert capsys.readouterr().err.startswith("error: Unknown experiment or notebook '9-9'")


def test_a_metric_missing_on_either_side_fails():
    m = {"family": "x/a", "scale": "lin", "values": [50.0]}
    rows = verify.compare({"x": {"a": m, "b": m}}, {"x": {"a": m}}, {})
    assert [(r["metric"], r["ok"]) for r in rows] == [("b", False), ("a", True)]


def test_an_accuracy_may_always_move_by_one_sample():
    # 500 training images: one flipped prediction is 0.2 points, whatever the seeds and machines say
    assert verify.tolerance([80.0], "lin", 0.0, resolution=100 / 500) == (pytest.approx(0.2), "one sample")
    ref = {"x": {"a": {"family": "x/a", "scale": "lin", "values": [80.0], "resolution": 0.2}}}
    here = {"x": {"a": {"family": "x/a", "scale": "lin", "values": [80.2]}}}
    assert verify.compare(ref, here, {})[0]["ok"]
