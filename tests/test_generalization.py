"""Section 1-3 tools (label transforms, interpolation, measures) against oracles."""
import numpy as np
import pytest
import torch
from torch import nn

from hw1lib import cache
from hw1lib.ensemble import Ensemble
from hw1lib.landscape import interpolate_flat
from hw1lib.data import random_labels
from hw1lib.errors import ConfigError
from hw1lib.experiments import experiment
from hw1lib.measures import ensemble_loss_fn, epsilon_sharpness, sensitivity
from hw1lib.models import cnn_for_params, mlp

CPU = torch.device("cpu")


@pytest.mark.exact
def test_random_labels_are_seeded_uniform_and_leave_the_input_alone():
    """Exact anywhere: the values compared to the bit involve no float arithmetic (integer labels from a
    seeded generator)."""
    y = torch.arange(10).repeat(1000)
    before = y.clone()
    a, b, c = random_labels(y, 0), random_labels(y, 0), random_labels(y, 1)
    assert torch.equal(y, before) and torch.equal(a, b) and not torch.equal(a, c)
    counts = torch.bincount(a, minlength=10)
    assert counts.min() > 850 and counts.max() < 1150  # 1000 each expected
    assert 0.85 < (a != y).float().mean() < 0.95      # 90% expected to differ


@pytest.mark.exact
def test_interpolate_flat_ends_and_agreement():
    """Exact anywhere at alpha 0 and 1: (1 - 0) * a + 0 * b is a, elementwise, with no reduction."""
    g = torch.Generator().manual_seed(0)
    ta, tb = torch.randn(50, generator=g), torch.randn(50, generator=g)
    rows = interpolate_flat(ta, tb, np.linspace(-1, 2, 61))
    assert rows.shape == (61, 50)
    assert torch.equal(rows[20], ta) and torch.equal(rows[40], tb)  # alpha 0 and 1
    torch.testing.assert_close(rows[0], 2 * ta - tb)


@pytest.mark.parametrize("build", [lambda: mlp(784, (16,), 10), cnn_for_params(2, 10_000).build])
def test_sensitivity_matches_autograd_jacobian(build, mnist):
    ens = Ensemble(build, [0, 1], CPU)
    x = mnist.test.x[:5]
    sens = sensitivity(ens, x, chunk=3)
    assert sens.shape == (2, 5)
    for i in range(2):
        model = build()
        model.load_state_dict(ens.state_dict(i))
        model.eval()
        for j in range(5):
            J = torch.autograd.functional.jacobian(lambda xi: torch.softmax(model(xi.unsqueeze(0))[0], -1), x[j])
            assert sens[i, j].item() == pytest.approx(J.norm().item(), rel=1e-4)


def test_sensitivity_is_not_the_loss_gradient(mnist):
    ens = Ensemble(lambda: mlp(784, (16,), 10), [0], CPU)
    x, y = mnist.test.x[:4].clone().requires_grad_(True), mnist.test.y[:4]
    loss = nn.functional.cross_entropy(ens(x, shared=True)[0], y, reduction="sum")
    (gx,) = torch.autograd.grad(loss, x)
    assert not torch.allclose(sensitivity(ens, x.detach())[0], gx.flatten(1).norm(dim=1), rtol=1e-2)


def test_epsilon_sharpness_against_lbfgsb():
    """Oracle: scipy's L-BFGS-B maximising the same loss in the same box."""
    from scipy.optimize import minimize

    torch.manual_seed(0)
    x, y = torch.randn(64, 5, dtype=torch.float64), torch.randint(0, 3, (64,))
    build = lambda: mlp(5, (6,), 3)
    ens = Ensemble(build, [0], CPU, dtype=torch.float64)
    f = ensemble_loss_fn(ens, x, y)
    eps = 5e-2
    ours = epsilon_sharpness(f, ens.params, eps, steps=30).item()

    theta = ens.flat_params()[0]
    box = (eps * (theta.abs() + 1)).numpy()

    def neg(yv):
        t = torch.tensor(yv, requires_grad=True)
        loss = f(ens.unflatten((theta + t).unsqueeze(0)))[0]
        (g,) = torch.autograd.grad(loss, t)
        return -loss.item(), -g.numpy()

    res = minimize(neg, np.zeros_like(box), jac=True, method="L-BFGS-B", bounds=list(zip(-box, box)))
    f0 = f(ens.unflatten(theta.unsqueeze(0)))[0].item()
    ref = 100 * (-res.fun - f0) / (1 + f0)
    assert ref > 0 and ours > 0
    assert ours >= 0.9 * ref   # projected sign ascent finds (at least nearly) as high a point
    assert ours <= 1.1 * ref   # and stays inside the same box


def test_interpolation_evaluated_at_the_ends_equals_the_trained_models(mnist):
    from hw1lib.landscape import evaluate_points
    from hw1lib.train import evaluate

    build = lambda: mlp(784, (8,), 10)
    a, b = Ensemble(build, [0], CPU), Ensemble(build, [1], CPU)
    thetas = interpolate_flat(a.flat_params()[0], b.flat_params()[0], np.array([0.0, 0.5, 1.0]))
    split = mnist.test.subset(500)
    loss, acc = evaluate_points(build, a, thetas, split)
    for i, ens in ((0, a), (2, b)):
        l, c = evaluate(ens, split)
        assert loss[i] == pytest.approx(l[0], rel=1e-6) and acc[i] == c[0]
    assert not np.isclose(loss[1], loss[0])  # the midpoint is really evaluated, not copied


@pytest.mark.exact
def test_noisy_labels_replace_the_stated_fraction():
    """Exact anywhere: the values compared to the bit involve no float arithmetic (integer labels from a
    seeded generator)."""
    from hw1lib.data import noisy_labels

    y = torch.arange(10).repeat(2000)
    n = noisy_labels(y, 0.2, seed=3)
    changed = (n != y).float().mean().item()
    assert 0.2 * 0.9 * 0.9 < changed < 0.2 * 0.9 * 1.1  # 20% replaced, 1 in 10 by chance the same
    assert torch.equal(n, noisy_labels(y, 0.2, seed=3)) and torch.equal(noisy_labels(y, 0.0, seed=3), y)


def test_lbfgsb_sharpness_matches_an_independent_scipy_run_per_member():
    """The library's L-BFGS-B (Keskar's maximiser) on a 2-member ensemble equals
    scipy run by hand on each member alone, and is close to the projected ascent."""
    from scipy.optimize import minimize

    from hw1lib.measures import epsilon_sharpness_lbfgsb

    torch.manual_seed(0)
    x, y = torch.randn(64, 5, dtype=torch.float64), torch.randint(0, 3, (64,))
    build = lambda: mlp(5, (6,), 3)
    ens = Ensemble(build, [0, 1], CPU, dtype=torch.float64)
    f = ensemble_loss_fn(ens, x, y)
    eps = 5e-2
    got = epsilon_sharpness_lbfgsb(f, ens, eps, iters=10)
    for i in range(2):
        model = build().double()
        model.load_state_dict(ens.state_dict(i))
        theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
        box = (eps * (theta.abs() + 1)).numpy()
        shapes = [p.shape for p in model.parameters()]

        def loss_at(t):
            ps, k = [], 0
            for s in shapes:
                n = int(np.prod(s))
                ps.append(t[k:k + n].view(s))
                k += n
            h = torch.relu(x @ ps[0].T + ps[1])
            return nn.functional.cross_entropy(h @ ps[2].T + ps[3], y)

        def neg(yv):
            t = torch.tensor(yv, requires_grad=True)
            loss = loss_at(theta + t)
            (g,) = torch.autograd.grad(loss, t)
            return -loss.item(), -g.numpy()

        res = minimize(neg, np.zeros_like(box), jac=True, method="L-BFGS-B", bounds=list(zip(-box, box)),
                       options={"maxiter": 10})
        f0 = loss_at(theta).item()
        assert got[i] == pytest.approx(100 * (-res.fun - f0) / (1 + f0), rel=1e-6)
    ascent = epsilon_sharpness(f, ens.params, eps, steps=30).numpy()
    np.testing.assert_allclose(ascent, got, rtol=0.1)


def _labels_part(times, test_acc, E):
    """A unit result of 1-3a whose runs reach 99% training accuracy at the
    (fractional) epochs `times` [D, S], on straight accuracy lines."""
    from hw1lib import cache

    times = np.asarray(times, float)
    e = np.arange(E + 1)[:, None, None]
    acc = 0.99 * e / times[None]
    acc[e > np.ceil(times)[None]] = np.nan                 # a run leaves when it has fitted
    arrays = {"epochs": np.ceil(times), "reached": np.ones(times.shape, bool), "train_loss": 0.1 + 0 * times,
              "train_acc": 0.99 + 0 * times, "test_loss": 2 + 0 * times, "test_acc": np.asarray(test_acc, float),
              "loss_curve": np.where(np.isnan(acc), np.nan, 1.0), "acc_curve": acc,
              "agreement": np.full(times.shape[0], 0.1)}
    return cache.Result(arrays, {"params": 123})


@pytest.mark.exact
def test_1_3a_fit_times_slowdown_and_chance_on_a_made_up_result():
    """Made-up runs with known times to fit: the fit times are recovered
    between epochs, the slowdown pairs each random-label run with ITS seed's
    true-label run, the true-label runs count once, and the summary says so.
    Exact anywhere: the values compared to the bit involve no float arithmetic (made-up values, selected)."""
    from hw1lib.experiments.e1_3a_random_labels import assemble_random_labels, fit_times, runs

    E = experiment("1-3a")
    cfg = E.make_config("smoke", "cpu", fractions=(0.0, 1.0), label_draws=(0, 1), seeds=(0, 1, 2), max_epochs=40)
    t0 = np.array([[2.5, 3.2, 4.1]])                         # true labels, one run per seed
    factor = np.array([[3.0], [3.6]])                        # random labels: labelling d takes factor[d] x as long
    t1 = factor * t0
    acc1 = np.array([[0.09, 0.10, 0.11], [0.10, 0.12, 0.09]])
    r = assemble_random_labels(cfg, [_labels_part(t0, [[0.9, 0.91, 0.92]], 40), _labels_part(t1, acc1, 40)])
    assert r.arrays["test_acc"].shape == (2, 2, 3) and r.arrays["acc_curve"].shape == (2, 41, 2, 3)
    np.testing.assert_allclose(fit_times(r.arrays, 1, 0.99), t1)
    np.testing.assert_array_equal(runs(r.arrays, "test_acc", 0), [0.9, 0.91, 0.92])     # each seed once
    assert len(runs(r.arrays, "test_acc", 1)) == 6
    h = E.headlines(cfg, r)
    assert [row["runs"] for row in h["rows"]] == [3, 6] and [row["fitted"] for row in h["rows"]] == [3, 6]
    sd = h["slowdown"]
    assert sd["gmean"] == pytest.approx(np.exp(np.log(factor).mean()), rel=1e-3) and sd["pairs"] == 6
    assert sd["lo"] < 3.0 and sd["hi"] > 3.6                 # the labellings differ: the interval spans them
    assert h["rows"][1]["epochs_to_fit"]["gmean"] == pytest.approx(np.exp(np.log(t1).mean()), rel=1e-3)
    ch = h["random_test_acc"]
    assert ch["per_draw"] == pytest.approx([10.0, 10.33], abs=0.01) and ch["contains_chance"]
    text = E.text(cfg, r)
    assert "Slowdown" in text and f"{sd['gmean']:.2f}" in text and "contains chance" in text


@pytest.mark.exact
def test_1_3a_labellings_are_nested_within_a_draw_and_apart_between_draws():
    """Exact anywhere: the values compared to the bit involve no float arithmetic (integer labels from a
    seeded generator)."""
    from hw1lib.experiments.e1_3a_random_labels import draw_labels

    y = torch.arange(10).repeat(500)
    a, b, full = draw_labels(y, 0.2, 0), draw_labels(y, 0.6, 0), draw_labels(y, 1.0, 0)
    assert torch.equal(draw_labels(y, 0.0, 3), y)
    changed_a, changed_b = a != y, b != y
    assert not (changed_a & ~changed_b).any()                # raising the fraction only adds random labels
    assert torch.equal(a[changed_a], full[changed_a]) and torch.equal(b[changed_b], full[changed_b])
    assert 0.85 < (full != y).float().mean() < 0.95          # 90% expected to differ at fraction 1
    other = draw_labels(y, 1.0, 1)
    assert 0.85 < (other != full).float().mean() < 0.95     # another draw: independent labels


def test_1_3a_config_refuses_what_it_cannot_mean():
    E = experiment("1-3a")
    with pytest.raises(ConfigError, match="fractions"):
        E.make_config("smoke", "cpu", fractions=(1.0, 0.0))
    with pytest.raises(ConfigError, match="fractions"):
        E.make_config("smoke", "cpu", fractions=(0.0, 1.5))
    with pytest.raises(ConfigError, match="fit_acc"):
        E.make_config("smoke", "cpu", fit_acc=0.0)
    units = E.units(E.make_config("smoke", "cpu", fractions=(0.0, 0.5, 1.0), label_draws=(0, 1)))
    assert [u.config.fractions for u in units] == [(0.0,), (0.5,), (1.0,)]
    assert units[0].config.label_draws == () and units[2].config.label_draws == (0, 1)


def test_accuracy_intervals_stay_inside_their_bounds():
    """One rule (stats.proportion_ci): made-up seeds at 99.9%, 99.2% and 97.5%
    accuracy, whose t-interval runs past 100%, give 1-3b and 1-1b intervals
    cut at 100 that contain the mean; losses are quoted as their geometric
    mean with its log-scale interval, above 0; a run still rising at the end
    is not at a plateau."""
    acc = np.array([0.999, 0.992, 0.975])
    m, h = acc.mean(), 4.303 * acc.std(ddof=1) / np.sqrt(3)
    assert m + h > 1                                          # what the plain t-interval would do
    E = experiment("1-3b")
    cfg = E.make_config("smoke", "cpu", widths=(8,), seeds=(0, 1, 2))
    r = cache.Result({"params": np.array([6370]), "train_acc": acc[None], "test_acc": acc[None] - 0.02,
                      "train_loss": np.full((1, 3), 0.01), "test_loss": np.full((1, 3), 0.1)}, {})
    row = E.headlines(cfg, r)["rows"][0]
    for k in ("train_acc", "test_acc", "train_err", "test_err"):     # errors (100 - accuracy) stay above 0
        assert 0 <= row[k]["lo"] <= row[k]["mean"] <= row[k]["hi"] <= 100, (k, row[k])
    assert row["train_err"]["mean"] == pytest.approx(100 * (1 - m), abs=1e-2)
    E = experiment("1-1b")
    cfg = E.make_config("smoke", "cpu", depths=(1,), datasets=("mnist",), seeds=(0, 1, 2), epochs=4,
                        plateau_epochs=2)
    curve = np.linspace(0.5, 1, 5)[:, None] * acc                                 # [epoch, seed]
    arrays = {"train_acc": curve, "test_acc": curve, "train_loss": 1.1 - curve, "test_loss": 1.2 - curve}
    row = E.headlines(cfg, cache.Result({k: v[None, None] for k, v in arrays.items()}, {}))
    row = row["datasets"]["mnist"]["models"][0]
    for k in ("train_acc", "test_acc"):
        assert 0 <= row[k]["lo"] <= row[k]["mean"] <= row[k]["hi"] <= 100, (k, row[k])
    assert row["test_acc"]["mean"] == pytest.approx(100 * m, abs=1e-2)
    assert 0 < row["train_loss"]["lo"] <= row["train_loss"]["gmean"] <= row["train_loss"]["hi"]
    assert row["plateau"] == 0 and row["last_window_gain"]["min"] > 10     # still rising: not at a plateau


def test_nonnegative_intervals_respect_their_bound():
    """nonneg_ci: all values above 0 -> the geometric mean and its log-scale
    interval (above 0, wider upwards); a 0 among them -> the mean and its
    t-interval clipped at 0 (the plain one would cross it); a negative value
    is refused."""
    from hw1lib.headline import nonneg_ci
    x = np.array([0.005, 0.02, 0.05])
    m, h = x.mean(), 4.303 * x.std(ddof=1) / np.sqrt(3)
    assert m - h < 0                                           # what the plain t-interval would do
    d = nonneg_ci(x)
    assert 0 < d["lo"] < d["gmean"] < d["hi"] and d["hi"] - d["gmean"] > d["gmean"] - d["lo"]
    z = nonneg_ci(np.array([0.0, 0.02, 0.05]))
    assert z["lo"] == 0 and z["hi"] == pytest.approx(0.07 / 3 + 4.303 * np.std([0, 0.02, 0.05], ddof=1) / np.sqrt(3),
                                                      rel=1e-3)
    with pytest.raises(ValueError):
        nonneg_ci(np.array([-0.01, 0.02]))


def test_flatness_sweep_intervals_stay_inside_their_bounds():
    """1-3d's table: made-up seeds near 100% test accuracy and near-0 losses
    give accuracy intervals inside [0, 100] and loss, epoch and sensitivity
    intervals above 0, while the gaps (signed) keep their t-intervals; a seed
    that missed its target is left out of the accuracy and counted in `reached`."""
    E = experiment("1-3d")
    cfg = E.make_config("smoke", "cpu", seeds=(0, 1, 2))
    B, S = 3, 3
    acc = np.array([0.999, 0.992, 0.975])
    shape = (B, 1, 1, S)
    a = {"batch_size": np.array([16, 64, 256]), "lr": np.full((B, 1), 1e-3),
         "train_acc": np.broadcast_to(acc, shape).copy(), "test_acc": np.broadcast_to(acc - 0.01, shape).copy(),
         "train_loss": np.broadcast_to([0.001, 0.01, 0.03], shape).copy(),
         "test_loss": np.broadcast_to([0.05, 0.04, 0.06], shape).copy(),
         "epochs": np.broadcast_to([1.0, 4.0, 9.0], shape).copy(),
         "sensitivity": np.broadcast_to([0.01, 0.03, 0.2], shape).copy(), "reached": np.ones(shape)}
    a["reached"][0, 0, 0, 2] = 0
    for k in ("train_acc", "test_acc", "train_loss", "test_loss", "epochs", "sensitivity", "reached"):
        a[f"label_{k}"] = np.repeat(a[k][:1], 2, axis=2)             # [Bl, T, labels, S]
    a["label_batch_size"] = np.array([16])
    h = E.headlines(cfg, cache.Result(a, {"lr_rules": ["fixed"], "targets": [0.1], "labels": ["true", "random"]}))
    first = h["cells"][0]
    assert first["reached"] == 2 and first["test_acc"]["n"] == 2
    for c in h["cells"] + h["labels"]["rows"]:
        assert 0 <= c["test_acc"]["lo"] <= c["test_acc"]["mean"] <= c["test_acc"]["hi"] <= 100, c["test_acc"]
        for k in ("train_loss", "epochs", "sensitivity"):
            assert 0 < c[k]["lo"] <= c[k]["gmean"] <= c[k]["hi"], (k, c[k])
    assert "ci95" in h["cells"][1]["loss_gap"]                             # signed: mean ± t
    assert "[" in E.block(h).split("\n")[2]                                 # the table prints the bounded form
