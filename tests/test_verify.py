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
    spread = verify.family_spread("quick")
    ref = json.loads((repo_root() / verify.REFERENCE["quick"]).read_text())["checks"]
    families = {m["family"] for metrics in ref.values() for m in metrics.values() if not m.get("chaotic")}
    assert families <= set(spread), families - set(spread)
    assert all(np.isfinite(v) and v >= 0 for v in spread.values())
    # every family's spread rests on more than one perturbed draw
    fams = json.loads((repo_root() / verify.SPREAD).read_text())["profiles"]["quick"]["families"]
    assert all(len(f["by_machine"]) >= 3 for f in fams.values())


def test_every_single_run_number_has_a_tolerance_from_a_measurement():
    """No headline number without seeds is checked at the floor of a family no
    one measured: in each committed file, every metric with one value (and not
    skipped as chaotic) has its family's spread measured on that profile."""
    for profile in ("quick", "full"):
        spread = verify.family_spread(profile)
        ref = json.loads((repo_root() / verify.REFERENCE[profile]).read_text())["checks"]
        single = {(e, k): m["family"] for e, metrics in ref.items() for k, m in metrics.items()
                  if sum(v is not None for v in m["values"]) < 2 and not m.get("chaotic")}
        missing = {k: f for k, f in single.items() if f not in spread}
        assert not missing, (profile, missing)


def test_sigma_bound_covers_sigma_as_often_as_its_confidence():
    """Known answers: one draw of 1 gives sqrt(1 / chi2_0.05(1)) = 15.95; and over
    simulated N(0, 1) draws the bound is below sigma = 1 in about 5% of trials."""
    assert verify.sigma_bound([1.0]) == pytest.approx(1 / math.sqrt(0.0039321), rel=1e-4)
    rng = np.random.default_rng(0)
    for k in (1, 3, 10):
        below = np.mean([verify.sigma_bound(rng.standard_normal(k)) < 1.0 for _ in range(4000)])
        assert 0.04 < below < 0.06, (k, below)


def test_a_chaotic_single_run_metric_is_skipped_and_an_unmeasured_one_fails():
    m = {"family": "x/a", "scale": "log", "values": [10.0]}
    chaotic = {**m, "chaotic": True}
    rows = verify.compare({"x": {"c": chaotic, "u": m}}, {"x": {"c": {**chaotic, "values": [30.0]}, "u": m}}, {})
    by = {r["metric"]: r for r in rows}
    assert by["c"]["ok"] and by["c"]["skipped"] and by["u"]["why"] == "no measured tolerance" and not by["u"]["ok"]
    # with seeds, a chaotic metric is checked against its seed spread
    seeded = {**chaotic, "values": [10.0, 12.0]}
    assert verify.compare({"x": {"c": seeded}}, {"x": {"c": {**seeded, "values": [100.0, 120.0]}}}, {})[0]["ok"] is False


def test_validation_reports_the_left_out_machines_ratios():
    """Two machines: each left-out machine's ratio is its draw over K_MACHINE
    times the bound from the other's draw; a chaotic single-run metric is
    neither in the family nor validated."""
    one = {"family": "x/a", "scale": "lin", "values": [50.0]}
    measured = {"x": {"a": {**one, "draws": {"a": 0.1, "b": 0.2}},
                      "c": {**one, "chaotic": True, "draws": {"a": 5.0, "b": 9.0}}}}
    entry = verify.merge_spread({}, measured, ["a", "b"])
    assert entry["families"] == {"x/a": {"scale": "lin", "by_machine": {"a": 0.1, "b": 0.2}}}
    v = verify.validate(entry)
    expected = [0.1 / (4 * verify.sigma_bound([0.2])), 0.2 / (4 * verify.sigma_bound([0.1]))]
    assert v["n"] == 2 and v["ratio_quantiles"]["1.0"] == pytest.approx(max(expected), rel=1e-9)
    assert v["beyond"]["4"]["observed"] == 0


def test_a_measurement_of_some_experiments_keeps_the_others():
    old = {"machines": {"scalar": {}}, "metrics": {"x": {"a": {"family": "x/a", "scale": "lin", "values": [1.0],
                                                               "draws": {"scalar": 0.3}}}}}
    new = {"y": {"b": {"family": "y/b", "scale": "log", "values": [2.0], "draws": {"scalar": 0.01}}}}
    entry = verify.merge_spread(old, new, ["scalar"])
    assert entry["experiments"] == ["x", "y"] and set(entry["families"]) == {"x/a", "y/b"}
    assert entry["families"]["x/a"]["by_machine"] == {"scalar": 0.3}


def test_exact_mode_on_both_sides_compares_to_the_bit():
    """Where the committed values and the computed ones both come from exact
    mode (hw1lib.exact), a value must be the committed one exactly: a change in
    the 12th digit fails, whatever its tolerance would allow."""
    m = {"family": "x/a", "scale": "lin", "values": [50.0, 51.0]}
    moved = {**m, "values": [50.0, 51.00000000001]}
    assert verify.compare({"x": {"a": m}}, {"x": {"a": moved}}, {})[0]["ok"]
    rows = verify.compare({"x": {"a": m}}, {"x": {"a": moved}}, {}, exact=True)
    assert not rows[0]["ok"] and rows[0]["why"] == "exact mode, not identical"
    assert verify.compare({"x": {"a": m}}, {"x": {"a": dict(m)}}, {}, exact=True)[0]["ok"]


def test_a_seeded_full_metric_falls_back_on_the_quick_spread_and_a_single_run_one_does_not():
    seeded = {"family": "x/a", "scale": "lin", "values": [5.0, 5.0]}
    single = {"family": "x/a", "scale": "lin", "values": [5.0]}
    ref = {"x": {"s": seeded, "o": single}}
    here = {"x": {"s": {**seeded, "values": [5.3, 5.3]}, "o": {**single, "values": [5.0]}}}
    rows = {r["metric"]: r for r in verify.compare(ref, here, {}, seeded_spread={"x/a": 0.1})}
    assert rows["s"]["ok"] and rows["s"]["why"] == "machines" and rows["s"]["tol"] == pytest.approx(0.4)
    assert not rows["o"]["ok"] and rows["o"]["why"] == "no measured tolerance"


def test_a_count_may_move_by_one_on_one_seed():
    """Epochs to a target, equal over 5 seeds: one seed one epoch later is within
    the tolerance (the resolution of the computed side's declaration counts
    where the committed file predates it); two epochs on every seed are not."""
    from hw1lib.headline import one_count

    ref = {"x": {"e": {"family": "x/e", "scale": "log", "values": [4.0] * 5}}}
    later = [5.0] + [4.0] * 4
    here = {"x": {"e": {"family": "x/e", "scale": "log", "values": later, "resolution": one_count(later)}}}
    assert verify.compare(ref, here, {"x/e": 0.0})[0]["ok"]
    here["x"]["e"]["values"] = [6.0] * 5
    assert not verify.compare(ref, here, {"x/e": 0.0})[0]["ok"]
