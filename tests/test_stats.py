"""The statistics and generated tables the report quotes."""
import json

import numpy as np
import pytest
from scipy import stats as sps

from hw1lib import headline, stats, tables
from hw1lib.paths import repo_root


def test_mean_ci_is_the_student_t_interval():
    x = np.array([1.0, 2.0, 4.0, 7.0])
    m, h = stats.mean_ci(x)
    lo, hi = sps.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=sps.sem(x))
    assert m == pytest.approx(x.mean()) and h == pytest.approx((hi - lo) / 2)
    m2, h2 = stats.mean_ci(np.stack([x, 2 * x]))          # along the last axis, row by row
    np.testing.assert_allclose(m2, [m, 2 * m]) and np.testing.assert_allclose(h2, [h, 2 * h])
    assert np.isnan(stats.mean_ci([3.0])[1])                 # one seed: no interval


def test_proportion_interval_is_the_t_interval_of_the_quoted_mean_cut_at_0_and_1():
    """Oracle: scipy's t-interval of the mean, cut at 1 where a handful of seeds near 100% reaches past it:
    the interval printed is the interval of the number quoted beside it (never a logit interval widened
    to contain the plain mean)."""
    p = np.array([0.9990, 0.9700, 0.9995, 0.9980, 0.9999])
    out = stats.proportion_ci(p, n_items=60_000)
    lo, hi = sps.t.interval(0.95, len(p) - 1, loc=p.mean(), scale=sps.sem(p))
    assert hi > 1 and out["lo"] == pytest.approx(lo) and out["hi"] == 1.0      # cut at 1, not moved
    assert out["mean"] == pytest.approx(p.mean()) and out["n"] == 5
    q = np.array([0.91, 0.93, 0.92, 0.95])
    lo, hi = sps.t.interval(0.95, 3, loc=q.mean(), scale=sps.sem(q))
    assert (stats.proportion_ci(q, 100)["lo"], stats.proportion_ci(q, 100)["hi"]) == pytest.approx((lo, hi))
    rng = np.random.default_rng(0)
    for _ in range(200):                                  # any spread, exact 0s and 1s included
        q = np.clip(rng.beta(0.3, 0.3, size=rng.integers(2, 8)).round(2), 0, 1)
        d = stats.proportion_ci(q, n_items=100)
        assert 0 <= d["lo"] <= d["mean"] <= d["hi"] <= 1
    with pytest.raises(ValueError, match="divide by 100"):
        stats.proportion_ci([99.4, 98.0])


def test_proportion_interval_covers_the_mean_at_its_level():
    """Seeds whose accuracies scatter around 90% (logit-normal): the interval covers the distribution's
    mean in about 95% of repeats of a 5-seed experiment (Monte Carlo, 2,000 repeats; the true mean from
    10^6 draws)."""
    from scipy.special import expit

    rng = np.random.default_rng(3)
    mu, sd = 2.2, 0.3
    true_mean = expit(rng.normal(mu, sd, 10**6)).mean()
    hits = 0
    for _ in range(2000):
        d = stats.proportion_ci(expit(rng.normal(mu, sd, 5)), n_items=10**9)
        hits += d["lo"] <= true_mean <= d["hi"]
    assert 0.93 <= hits / 2000 <= 0.97


def test_wilson_interval_is_scipys_and_one_seed_gets_it():
    for k, n in ((0, 10), (10, 10), (81, 263), (9946, 10_000)):
        ref = sps.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        assert stats.wilson_ci(k, n) == pytest.approx((ref.low, ref.high), abs=1e-12)
    one = stats.proportion_ci([0.9946], n_items=10_000)
    assert (one["lo"], one["hi"]) == pytest.approx(stats.wilson_ci(9946, 10_000)) and one["n"] == 1
    assert np.isnan(stats.proportion_ci([0.5])["lo"])       # one seed and no item count: no interval


def test_positive_quantities_are_quoted_as_the_geometric_mean_with_its_log_interval():
    x = np.array([2.8e-3, 2.9e-3, 3.1e-3, 5.7e-3, 2.83e-3])
    d = headline.pos_ci(x)
    lo, hi = sps.t.interval(0.95, 4, loc=np.log(x).mean(), scale=sps.sem(np.log(x)))
    assert d["gmean"] == pytest.approx(np.exp(np.log(x).mean()), rel=1e-3) and "mean" not in d
    assert (d["lo"], d["hi"]) == pytest.approx((np.exp(lo), np.exp(hi)), rel=1e-3)
    assert 0 < d["lo"] < d["gmean"] < d["hi"] and d["hi"] - d["gmean"] > d["gmean"] - d["lo"]
    assert headline.fmt_interval(d, 2, spec="e").startswith(f"{d['gmean']:.2e} [")   # the centre printed is the gmean
    with pytest.raises(ValueError):
        headline.pos_ci([1.0, 0.0])
    z = headline.nonneg_ci([0.0, 1.0, 2.0])                  # a 0: no logarithm, the mean and its t-interval
    assert z["mean"] == 1.0 and z["lo"] == 0.0 and "gmean" not in z
    assert headline.fmt_interval(stats.proportion_ci([0.99, 0.98, 0.995], 10_000), scale=100).startswith("98.83 [")
    assert headline.fmt_interval({"mean": 0.5, "lo": float("nan"), "hi": float("nan"), "n": 1}) == "0.50 (n = 1)"


def test_a_skewed_handful_of_seeds_keeps_the_mean_inside_its_interval():
    """One run far below four near-perfect ones: the t-interval of the mean, cut at 1, contains the mean."""
    p = np.array([0.5, 0.9999, 0.9999, 0.9999, 0.9999])
    d = stats.proportion_ci(p, n_items=10_000)
    assert d["lo"] <= d["mean"] <= d["hi"] == 1.0


def test_geometric_interval_is_the_t_interval_of_the_logs():
    x = np.array([2.0, 3.0, 5.0, 4.0, 8.0, 6.0])
    out = stats.geometric_ci(x)
    lo, hi = sps.t.interval(0.95, len(x) - 1, loc=np.log(x).mean(), scale=sps.sem(np.log(x)))
    assert out["gmean"] == pytest.approx(np.exp(np.log(x).mean()))
    assert (out["lo"], out["hi"]) == pytest.approx((np.exp(lo), np.exp(hi))) and out["n"] == 6
    # a table of crossed factors: the crossed interval of the logs, mapped back
    table = x.reshape(2, 3)
    m, h = stats.crossed_mean_ci(np.log(table))
    crossed = stats.geometric_ci(table)
    assert (crossed["gmean"], crossed["lo"], crossed["hi"]) == pytest.approx((np.exp(m), np.exp(m - h), np.exp(m + h)))
    one = stats.geometric_ci([3.0])
    assert one["gmean"] == pytest.approx(3.0) and np.isnan(one["lo"]) and np.isnan(one["hi"])
    for bad in ([1.0, 0.0], [1.0, np.nan], []):
        with pytest.raises(ValueError):
            stats.geometric_ci(bad)


def test_crossed_interval_is_the_two_way_anova_one_and_covers_where_row_means_do_not():
    # one row or column: the ordinary t-interval over the other
    y = np.array([[1.0, 2.0, 4.0]])
    assert stats.crossed_mean_ci(y) == pytest.approx(tuple(map(float, stats.mean_ci(y[0]))))
    assert stats.crossed_mean_ci(y.T) == pytest.approx(tuple(map(float, stats.mean_ci(y[0]))))
    # an additive table (no residual): Var(mean) = (MS_rows + MS_cols) / (R C), Satterthwaite's df
    r, c = np.array([0.0, 1.0, 3.0]), np.array([0.0, 2.0])
    y = r[:, None] + c[None, :]
    ms_r, ms_c = 2 * r.var(ddof=1), 3 * c.var(ddof=1)
    df = (ms_r + ms_c) ** 2 / (ms_r ** 2 / 2 + ms_c ** 2 / 1)
    m, h = stats.crossed_mean_ci(y)
    assert m == pytest.approx(y.mean()) and h == pytest.approx(np.sqrt((ms_r + ms_c) / 6) * sps.t.ppf(0.975, df))
    assert stats.crossed_mean_ci(np.ones((3, 3))) == (1.0, 0.0)
    # Monte Carlo, 3 labellings x 3 seeds with a seed effect: the crossed interval covers at about its
    # level; the interval over the labellings' means (which share the seeds) does not
    rng = np.random.default_rng(0)
    hits = np.zeros(2)
    for _ in range(1000):
        y = rng.normal(0, 1, (1, 3)) + rng.normal(0, 0.3, (3, 3))
        m, h = stats.crossed_mean_ci(y)
        m2, h2 = stats.mean_ci(y.mean(1))
        hits += [abs(m) <= h, abs(m2) <= h2]
    assert 0.93 <= hits[0] / 1000 <= 0.98 and hits[1] / 1000 < 0.6


def test_proportion_interval_of_a_crossed_table_is_the_crossed_interval_of_its_mean():
    p = np.array([[0.10, 0.12, 0.09], [0.11, 0.08, 0.10]])
    m, h = stats.crossed_mean_ci(p)
    out = stats.proportion_ci(p, 10_000)
    assert out["n"] == 6 and out["mean"] == pytest.approx(p.mean()) == pytest.approx(m)
    assert (out["lo"], out["hi"]) == pytest.approx((m - h, m + h))


def test_crossing_interpolates_between_epochs():
    assert stats.crossing([0.5, 0.9, 1.0], 0.99) == pytest.approx(1.9)
    assert stats.crossing([0.995, 1.0], 0.99) == 0.0
    assert np.isnan(stats.crossing([0.1, 0.5, np.nan], 0.99))
    assert stats.crossing([0.2, 0.4, 0.99], 0.99) == 2.0


def test_bootstrap_of_an_everywhere_undefined_statistic_is_nan_not_an_error():
    lo, hi = stats.bootstrap_ci(stats.spearman, np.ones(6), np.arange(6.0))
    assert np.isnan(lo) and np.isnan(hi)
    assert np.isnan(stats.spearman_ci(np.ones(6), np.arange(6.0))["ci"][0])


def test_bootstrap_interval_of_spearman_covers_and_is_seeded():
    rng = np.random.default_rng(1)
    x = rng.standard_normal(400)
    y = x + rng.standard_normal(400)
    out = stats.spearman_ci(x, y)
    assert out["rho"] == pytest.approx(sps.spearmanr(x, y).statistic)
    assert out["ci"][0] < out["rho"] < out["ci"][1] and out["ci"][1] - out["ci"][0] < 0.2
    assert stats.spearman_ci(x, y) == out                     # same seed, same interval
    assert stats.first_at_least([0.1, 0.5, 0.99, 1.0], 0.99) == 2
    assert stats.first_at_least([0.1], 0.99) is None
    assert headline.fmt_ci(98.141, 0.052) == "98.14 ± 0.05" and headline.fmt_ci(1.0, float("nan")) == "1.00"


def test_partial_spearman_removes_a_shared_driver():
    """x and y both follow z and are otherwise independent: their plain rank
    correlation is high, controlling for z leaves about 0. With y = x + noise
    (and z irrelevant) the partial correlation stays near the plain one. The
    oracle for the partial value is the textbook formula on Spearman rhos."""
    rng = np.random.default_rng(0)
    z = rng.standard_normal(400)
    x, y = z + 0.3 * rng.standard_normal(400), z + 0.3 * rng.standard_normal(400)
    assert stats.spearman(x, y) > 0.8 and abs(stats.partial_spearman(x, y, z)) < 0.1
    rxy, rxz, ryz = sps.spearmanr(x, y).statistic, sps.spearmanr(x, z).statistic, sps.spearmanr(y, z).statistic
    formula = (rxy - rxz * ryz) / np.sqrt((1 - rxz ** 2) * (1 - ryz ** 2))
    assert stats.partial_spearman(x, y, z) == pytest.approx(formula, abs=1e-10)
    w, y2 = rng.standard_normal(400), x + 0.5 * rng.standard_normal(400)
    assert stats.partial_spearman(x, y2, w) == pytest.approx(stats.spearman(x, y2), abs=0.05)
    out = stats.partial_spearman_ci(x, y, z, n_boot=200)
    assert out["n"] == 400 and out["ci"][0] <= out["rho"] <= out["ci"][1]


def test_results_json_names_the_code_versions_head_computes():
    """figures/results.json records each experiment's code versions (tables.code_versions, the hash of what
    its units' computations reach); HEAD must compute the same, so that `make report` at HEAD rebuilds the
    file from the cache without recomputing. A change that re-keys a full-profile unit fails here until the
    full profile is recomputed at one commit."""
    results = json.loads((repo_root() / tables.RESULTS_JSON).read_text())
    timings = json.loads((repo_root() / tables.TIMINGS_FULL).read_text())
    assert timings["complete"] and timings["cached_units"] == 0 and not timings["failures"]   # one run from empty
    assert results["computed"]["commit"] == timings["commit"] and results["profile"] == "full"
    recorded, here = results["code_versions"], tables.code_versions("full")
    assert recorded.keys() == here.keys()
    differ = {name: (recorded[name], v) for name, v in here.items() if recorded[name] != v}
    assert not differ, f"recorded vs HEAD's code versions differ (recompute the full profile): {differ}"


def test_readme_and_results_md_are_what_results_json_generates():
    """`python -m hw1lib.tables --check`: no number in the README's tables or
    RESULTS.md is typed by hand or left stale."""
    assert tables.main(["--check"]) == 0


def test_check_fails_on_a_hand_edited_number(tmp_path, monkeypatch):
    results = json.loads((repo_root() / tables.RESULTS_JSON).read_text())
    readme = (repo_root() / tables.README).read_text()
    want_readme, want_md = tables.render(results, readme)
    assert want_readme == readme and want_md == (repo_root() / tables.RESULTS_MD).read_text()
    from hw1lib.headline import fmt_m

    shown = fmt_m(results["experiments"]["1-3a"]["rows"][-1]["test_acc"])      # random labels' test accuracy
    edited = readme.replace(shown, "12.34", 1)                   # the README's results table
    assert edited != readme and tables.render(results, edited)[0] == readme    # regenerating restores it
    # RESULTS.md edited by hand: --check fails, --render restores it
    for f in (tables.README, tables.RESULTS_MD, tables.RESULTS_JSON):
        (tmp_path / f).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / f).write_text((repo_root() / f).read_text())
    (tmp_path / tables.RESULTS_MD).write_text(want_md.replace(shown, "12.34", 1))
    monkeypatch.setattr(tables, "repo_root", lambda: tmp_path)
    assert tables.main(["--check"]) == 1
    assert tables.main(["--render"]) == 0 and tables.main(["--check"]) == 0
    assert (tmp_path / tables.RESULTS_MD).read_text() == want_md
    assert "<!-- results:summary -->" in readme
    for marker in tables.blocks(results):
        assert f"## {marker} " in want_md, f"RESULTS.md has no section for {marker}"


def test_plateau_rule_compares_best_losses_and_ignores_late_spikes():
    t = np.arange(1000)
    assert not stats.plateaued(np.exp(-t / 200))                  # still falling fast at the end
    flat = np.r_[np.exp(-t[:900] / 50), np.full(100, np.exp(-899 / 50))]
    assert stats.plateaued(flat)
    spiky = flat.copy()
    spiky[950] *= 100                                              # an Adam spike late on
    assert stats.plateaued(spiky)


def test_last_window_drop_is_the_relative_fall_of_the_best_loss():
    curve = np.r_[np.linspace(2.0, 1.0, 90), np.full(10, 0.95)]
    assert stats.last_window_drop(curve) == pytest.approx(0.05)
    assert stats.last_window_drop(np.r_[curve, np.full(20, np.nan)]) == pytest.approx(0.05)  # a stopped run
    assert not stats.plateaued(curve) and stats.plateaued(curve, rtol=0.06)


def test_log_comparison_is_welchs_test_and_says_what_it_could_detect():
    rng = np.random.default_rng(1)
    a, b = 10 ** rng.normal(-3, 0.3, 10), 10 ** rng.normal(-3.5, 0.5, 10)
    out = stats.compare_log(a, b)
    ref = sps.ttest_ind(np.log10(a), np.log10(b), equal_var=False)
    assert out["p"] == pytest.approx(ref.pvalue) and out["diff"] == pytest.approx(np.log10(a).mean() - np.log10(b).mean())
    assert (out["lo"], out["hi"]) == pytest.approx(tuple(ref.confidence_interval(0.95)))
    # at a true difference of `detectable`, the two-sample t-test rejects with probability 0.8 (noncentral t)
    n, df = 10, 18
    sp = np.sqrt((np.log10(a).var(ddof=1) + np.log10(b).var(ddof=1)) / 2)
    nc = out["detectable"] / (sp * np.sqrt(2 / n))
    crit = sps.t.ppf(0.975, df)
    power = sps.nct.sf(crit, df, nc) + sps.nct.cdf(-crit, df, nc)
    assert power == pytest.approx(0.8, abs=0.01)


def test_1_1a_converged_needs_a_plateau_a_small_gradient_no_negative_curvature_and_a_live_net():
    from hw1lib.experiments import experiment
    from hw1lib.experiments.e1_1a_simulate_function import converged_runs

    cfg = experiment("1-1a").make_config("smoke", "cpu")
    flat, falling = np.full(100, 0.01), 0.01 * np.exp(-np.arange(100) / 20)
    loss = np.stack([flat, falling, flat, flat, flat], 1)              # [evaluations, run]
    grad = np.array([1e-6, 1e-6, 1e-6, 1e-6, 1e-2])
    hmin, hmax = np.array([0.0, 0.0, -1.0, 0.0, 0.0]), np.full(5, 10.0)
    pred = np.tile(np.linspace(0, 1, 8), (5, 1))
    pred[3] = 0.5                                                       # a dead net: constant output
    got = converged_runs(cfg, loss, grad, hmin, hmax, pred)
    assert got.tolist() == [True, False, False, False, False]


def test_a_correlation_that_is_undefined_is_said_not_raised():
    """One batch size, one seed, or fewer than 3 points: no rank correlation (and no bootstrap of it)."""
    from hw1lib.headline import correlation, fmt_sp
    from hw1lib.stats import partial_spearman_ci, spearman_ci

    for x, y in (([16, 16, 16], [0.1, 0.3, 0.2]), ([1.0, 2.0], [2.0, 1.0]), ([], [])):
        d = correlation(spearman_ci, x, y)
        assert d == {"rho": None, "ci": [None, None], "n": len(x)} and fmt_sp(d) == f"undefined (n = {len(x)})"
    d = correlation(partial_spearman_ci, [1, 2, 3, 4, 5], [2, 1, 4, 3, 5], [1, 1, 2, 2, 3])
    assert d["rho"] is not None and d["ci"][0] <= d["rho"] <= d["ci"][1] and d["n"] == 5


def test_centred_spearman_removes_what_the_design_puts_into_both_and_resamples_seeds():
    """x and y both driven by the batch size and the seed (as 1-3d's sensitivity and loss gap are), with
    independent noise: the raw rank correlation is large, the centred one near 0 and its interval, over
    resampled seeds, contains 0. With noise shared between x and y, the centred correlation finds it."""
    from hw1lib.stats import centred_spearman, centred_spearman_ci, spearman

    rng = np.random.default_rng(0)
    S, C = 8, 3
    design = 3.0 * np.arange(C)[None, :] + 2.0 * rng.normal(size=(S, 1))      # cell effect + seed effect
    x, y = design + 0.3 * rng.normal(size=(S, C)), design + 0.3 * rng.normal(size=(S, C))
    assert spearman(x.ravel(), y.ravel()) > 0.8
    out = centred_spearman_ci(x, y)
    assert abs(out["rho"]) < 0.5 and out["ci"][0] < 0 < out["ci"][1] and (out["n"], out["points"]) == (S, S * C)
    shared = rng.normal(size=(S, C))
    assert centred_spearman(design + shared, design + shared + 0.1 * rng.normal(size=(S, C))) > 0.9


def test_holm_adjusts_a_family_of_p_values_step_down():
    """Holm (1979) by hand: sorted p 0.01, 0.02, 0.03, 0.04 of m = 4 -> 0.04, 0.06, 0.06 (monotone), 0.06;
    in the input's order; capped at 1. 1-1a's nine depth comparisons: only sinc 1- vs 3-hidden (p = 0.0015)
    stays below 0.05 (0.0135); sinc 3- vs 6-hidden (p = 0.017) does not (0.14)."""
    from hw1lib.stats import holm

    assert np.allclose(holm([0.03, 0.01, 0.04, 0.02]), [0.06, 0.04, 0.06, 0.06])
    assert np.allclose(holm([0.01, 0.9]), [0.02, 0.9]) and holm([0.6, 0.7]).tolist() == [1.0, 1.0]
    p = [0.1537, 0.2377, 0.7894, 0.287, 0.5434, 0.2925, 0.0015, 0.3663, 0.01743]
    adj = holm(p)
    assert adj[6] == pytest.approx(0.0135) and adj[8] == pytest.approx(0.01743 * 8) and (adj[np.arange(9) != 6] > 0.05).all()


def test_rate_batch_law_recovers_known_exponents_from_two_rules():
    """y = B^0.4 lr^-0.7 x noise at a fixed rate and at a rate scaled with the batch (1-3d's two rules):
    the fit per seed recovers a = 0.4 and b = -0.7, and a + b's interval excludes 0; with y depending on
    lr / B alone (a = -b) it contains 0. A cell not reached is left out."""
    from hw1lib.headline import rate_batch_law

    rng = np.random.default_rng(1)
    B = np.array([16, 64, 256, 1024, 4096])
    lr = np.stack([np.full(5, 1e-3), 1e-3 * B / 256], 1)                    # [B, R]
    y = B[:, None, None] ** 0.4 * lr[..., None] ** -0.7 * np.exp(0.02 * rng.normal(size=(5, 2, 6)))
    ok = np.ones(y.shape, bool)
    ok[0, 1, 0] = False
    law = rate_batch_law(B, lr, y, ok)
    assert law["a"]["mean"] == pytest.approx(0.4, abs=0.02) and law["b"]["mean"] == pytest.approx(-0.7, abs=0.02)
    assert law["a_plus_b"]["mean"] - law["a_plus_b"]["ci95"] > 0 or law["a_plus_b"]["mean"] + law["a_plus_b"]["ci95"] < 0
    ratio = (lr[..., None] / B[:, None, None]) ** -0.5 * np.exp(0.02 * rng.normal(size=(5, 2, 6)))
    lr_only = rate_batch_law(B, lr, ratio, np.ones(ratio.shape, bool))["a_plus_b"]
    assert abs(lr_only["mean"]) <= lr_only["ci95"]


def test_rate_batch_law_on_1_3d_grid_counts_each_model_once():
    """1-3d's four rules at three batch sizes: a 3 x 3 grid of rates, where two rules sharing a rate are one
    model (the same values in two rows). The fit counts each (batch, lr) cell once: 9 cells, a = 0.3 and
    b = -0.5 recovered, and a + b's t-test rejects 0; `law_fits` on the full sweep adds the other batch
    sizes' cells (13) and keeps the grid's fit beside it, while a sweep that is all grid is fitted once."""
    from hw1lib.experiments import experiment
    from hw1lib.experiments.e1_3d_flatness_sensitivity import rule_lr, trained_cells
    from hw1lib.headline import law_fits

    cfg = experiment("1-3d").make_config("full", "cpu")
    B = np.array(cfg.batch_sizes)
    lr = np.array([[rule_lr(cfg, r, int(b)) for r in cfg.lr_rules] for b in B])
    rng = np.random.default_rng(3)
    S = len(cfg.seeds)
    y = B[:, None, None] ** 0.3 * lr[..., None] ** -0.5 * np.exp(0.01 * rng.normal(size=(len(B), 1, S)))
    y = np.broadcast_to(y, (len(B), len(cfg.lr_rules), S)).copy()
    for b in range(len(B)):                # one model per (batch, lr): duplicate rules carry its value
        for r in range(len(cfg.lr_rules)):
            first = min(q for q in range(len(cfg.lr_rules)) if lr[b, q] == lr[b, r])
            y[b, r] = y[b, first]
    ok = trained_cells(cfg, B)[..., None] & np.ones(S, bool)
    fits = law_fits(cfg.grid_batch_sizes, B, lr, np.where(ok, y, np.nan), ok)
    assert fits["grid"]["cells"] == 9 and fits["all"]["cells"] == 13
    for fit in fits.values():
        assert fit["a"]["mean"] == pytest.approx(0.3, abs=0.02) and fit["b"]["mean"] == pytest.approx(-0.5, abs=0.02)
        assert fit["a_plus_b"]["p"] < 0.01
    g = np.isin(B, cfg.grid_batch_sizes)
    grid_only = law_fits(cfg.grid_batch_sizes, B[g], lr[g], y[g], ok[g])
    assert list(grid_only) == ["grid"] and grid_only["grid"]["cells"] == 9
