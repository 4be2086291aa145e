"""The flatness sections' training (matched losses, the stopping rule, chosen
initialisations, Keskar's F1) and their summary statistics, against oracles:
a plain PyTorch training loop, members trained alone, hand-made loss curves
and analytic lines."""
import numpy as np
import pytest
import torch

from hw1lib.data import Split
from hw1lib.ensemble import Ensemble
from hw1lib.errors import ConfigError, TrainingDiverged
from hw1lib.experiments import experiment
from hw1lib.experiments.e1_3c_flatness_interpolation import barrier, rising_steps, slice_rise; from hw1lib.headline import seed_slopes
from hw1lib.train import STOP, fit_to_targets; from hw1lib.models import keskar_f1; from hw1lib.ensemble import seeded_ensemble
from hw1lib.models import count_params, mlp
from hw1lib.ensemble import seeded_init
from hw1lib.train import evaluate, shuffle_generator
from oracles import plain_adam_epoch

CPU = torch.device("cpu")
BUILD = lambda: mlp(784, (16,), 10)  # noqa: E731


def _train(mnist, n=512):
    return Split(mnist.train.x[:n], mnist.train.y[:n]), Split(mnist.test.x[:256], mnist.test.y[:256])


def _plain_fit(seed, lr, train, target, max_epochs, batch_size, on="loss"):
    """Oracle: one ordinary nn.Module with its own torch.optim.Adam, its batches
    drawn from the member's generator, kept the first epoch its full training
    loss is <= target (on="acc": its training accuracy is >= target). Returns
    (epoch, reached, state_dict)."""
    model = seeded_init(BUILD, seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = shuffle_generator(seed)
    for epoch in range(1, max_epochs + 1):
        plain_adam_epoch(model, opt, train, gen, batch_size)
        with torch.no_grad():
            out = model(train.x)
            if (torch.nn.functional.cross_entropy(out, train.y).item() <= target if on == "loss" else
                    (out.argmax(1) == train.y).double().mean().item() >= target):
                return epoch, True, model.state_dict()
    return max_epochs, False, model.state_dict()


def test_one_target_keeps_what_a_plain_training_loop_keeps(mnist):
    """Oracle: each member trained alone by a plain PyTorch loop (per-member
    learning rates, a member that misses the target)."""
    train, test = _train(mnist)
    lrs = (1e-3, 3e-3, 1e-4)
    got, states = fit_to_targets(Ensemble(BUILD, [0, 1, 2], CPU), train, test, targets=(0.9,), max_epochs=6,
                                 batch_size=64, lr=lrs)
    assert got["reached"][0].any() and not got["reached"][0].all()       # both kinds of member are covered
    for i, lr in enumerate(lrs):
        epoch, reached, ref = _plain_fit(i, lr, train, 0.9, 6, 64)
        assert (got["epochs"][0, i], got["reached"][0, i]) == (epoch, reached)
        for k, v in ref.items():
            torch.testing.assert_close(states[k][0, i], v, rtol=1e-4, atol=1e-5)


def test_an_accuracy_target_on_labels_of_each_members_own(mnist):
    """on="acc" (1-3a's fit rule): a member's weights are kept, and it leaves,
    the first epoch its training accuracy against ITS labels reaches the
    target. Oracle: the plain loop on that member's labels; a member on random
    labels misses the target and says so."""
    from hw1lib.data import random_labels

    train, test = _train(mnist)
    y = torch.stack([train.y, random_labels(train.y, 0), train.y])
    lrs = (3e-3, 3e-3, 3e-4)
    got, states = fit_to_targets(Ensemble(BUILD, [0, 1, 2], CPU), Split(train.x, y), test, targets=(0.8,),
                                 on="acc", max_epochs=6, batch_size=64, lr=lrs)
    assert got["reached"][0, 0] and not got["reached"][0, 1]
    for i, lr in enumerate(lrs):
        epoch, reached, ref = _plain_fit(i, lr, Split(train.x, y[i]), 0.8, 6, 64, on="acc")
        assert (got["epochs"][0, i], got["reached"][0, i]) == (epoch, reached)
        for k, v in ref.items():
            torch.testing.assert_close(states[k][0, i], v, rtol=1e-4, atol=1e-5)
        acc = got["acc_curve"][:, i]
        assert (acc[:epoch] < 0.8).all() and (acc[epoch] >= 0.8) == reached
        assert got["train_acc"][0, i] == acc[epoch]          # the kept weights' accuracy, against its labels
    with pytest.raises(ValueError, match="on must be"):
        fit_to_targets(Ensemble(BUILD, [0], CPU), train, test, targets=(0.5,), on="accuracy", max_epochs=1,
                       batch_size=64, lr=1e-3)


@pytest.mark.exact(threads=1)
def test_members_that_are_done_leave_and_the_others_train_on_unchanged(mnist):
    """A fast member (high rate) meets its targets first and stops training;
    the slower ones train on in a smaller ensemble, their Adam moments, rates
    and batch orders carried over: every member's kept weights equal those of
    the member trained alone, to the bit, and the curve of each stopped member
    ends where it stopped.
    The condition, set by the marker: one thread per process. At more threads MKL's GEMM
    splits an ensemble of 3 and of 1 differently on some CPUs (AVX-512 Xeons), and the members then
    agree only to rounding; at one thread each member's products are the same sequence of operations.
    """
    train, test = _train(mnist)
    lrs = (3e-3, 1e-3, 3e-4)
    seeds = [4, 5, 6]
    got, states = fit_to_targets(Ensemble(BUILD, seeds, CPU), train, test, targets=(1.2, 0.6), max_epochs=20,
                                 batch_size=64, lr=lrs)
    stop = got["epochs"].max(0)                          # the epoch each member met its last target (or the cap)
    assert len(set(stop.tolist())) == 3, "the members must finish apart"
    assert got["reached"][:, :2].all() and not got["reached"][1, 2]      # the slowest one misses 0.6 and trains on
    curve = got["loss_curve"]
    for i, (s, lr) in enumerate(zip(seeds, lrs)):
        assert np.isfinite(curve[:stop[i] + 1, i]).all() and np.isnan(curve[stop[i] + 1:, i]).all()
        alone, s1 = fit_to_targets(Ensemble(BUILD, [s], CPU), train, test, targets=(1.2, 0.6), max_epochs=20,
                                   batch_size=64, lr=(lr,))
        np.testing.assert_array_equal(alone["epochs"][:, 0], got["epochs"][:, i])
        for k in states:
            torch.testing.assert_close(states[k][:, i], s1[k][:, 0], rtol=0, atol=0)
        for k in ("train_loss", "test_acc"):
            np.testing.assert_array_equal(alone[k][:, 0], got[k][:, i])


@pytest.mark.exact
def test_several_targets_from_one_run_equal_one_run_per_target(mnist):
    """One run with two targets equals one run per target, to the bit: same process, the same
    ensemble (same shapes), so the same operations whatever the thread count or vector path."""
    train, test = _train(mnist)
    both, states = fit_to_targets(Ensemble(BUILD, [3, 4], CPU), train, test, targets=(1.2, 0.8), max_epochs=8,
                                  batch_size=64, lr=1e-3)
    assert (both["epochs"][0] <= both["epochs"][1]).all() and both["reached"].all()
    for c, t in enumerate((1.2, 0.8)):
        one, s1 = fit_to_targets(Ensemble(BUILD, [3, 4], CPU), train, test, targets=(t,), max_epochs=8,
                                 batch_size=64, lr=1e-3)
        np.testing.assert_array_equal(one["epochs"][0], both["epochs"][c])
        for k in states:
            torch.testing.assert_close(states[k][c], s1[k][0], rtol=0, atol=0)
        assert (both["train_loss"][c] <= t).all()


def test_the_stopping_rule_keeps_the_lowest_loss_and_stops_after_patience(mnist):
    """A learning rate high enough that the training loss stops improving: the
    kept weights are those of the lowest loss on the curve, the rule fires
    `patience` epochs after it, and the kept weights evaluate to that loss."""
    train, test = _train(mnist, 256)
    ens = Ensemble(BUILD, [0, 1], CPU)
    h, states = fit_to_targets(ens, train, test, targets=(), patience=2, max_epochs=40, batch_size=32, lr=3e-2)
    curve = h["loss_curve"]                                         # [E + 1, N]
    for i in range(2):
        e = int(h["epochs"][0, i])
        # the rule looks only up to where it fires (2 epochs past the best); others may train on after it
        seen = curve[:e + 3, i] if h["reached"][0, i] else curve[:, i]
        assert e == int(np.argmin(seen))
        assert h["train_loss"][0, i] == pytest.approx(curve[e, i], rel=1e-6)
        if h["reached"][0, i]:
            assert len(curve) - 1 >= e + 2 and (curve[e + 1:e + 3, i] >= curve[e, i]).all()
    kept = Ensemble.from_stacked(BUILD, {k: v[0] for k, v in states.items()}, CPU)
    np.testing.assert_allclose(evaluate(kept, train)[0], h["train_loss"][0], rtol=1e-6)
    assert h["reached"].any(), "the rule never fired: the test no longer tests it"


@pytest.mark.exact
def test_a_missed_target_keeps_the_last_weights_and_says_so(mnist):
    """The kept weights are the last ones (a copy of the same tensors: exact anywhere)."""
    train, test = _train(mnist, 256)
    ens = Ensemble(BUILD, [0], CPU)
    h, states = fit_to_targets(ens, train, test, targets=(1e-6,), max_epochs=2, batch_size=64, lr=1e-3)
    assert not h["reached"].any() and h["epochs"][0, 0] == 2
    for k, v in ens.params.items():
        torch.testing.assert_close(states[k][0], v.detach(), rtol=0, atol=0)
    assert h["train_loss"][0, 0] == pytest.approx(h["loss_curve"][-1, 0], rel=1e-6)


def test_divergence_is_still_caught(mnist):
    train = Split(mnist.train.x[:256] * 1e4, mnist.train.y[:256])
    with pytest.raises(TrainingDiverged):
        fit_to_targets(Ensemble(BUILD, [0], CPU), train, train, targets=(1e-9,), max_epochs=20, batch_size=32, lr=1.0)


@pytest.mark.exact(threads=1)
def test_seeded_ensemble_separates_initialisation_from_batch_order(mnist):
    """Members with a shared initialisation and other batch orders: the starts are equal to the bit
    (the same seeded draws), and after training each member equals the same member of a
    2-member ensemble. The condition, set by the marker: one thread, because the ensembles differ in
    size (3 vs 2), which multi-threaded GEMM may split differently."""
    train, test = _train(mnist, 256)
    ens = seeded_ensemble(BUILD, [5, 5, 6], [5, 99, 6], CPU)
    ref = Ensemble(BUILD, [5, 6], CPU)
    start = ens.flat_params()
    assert torch.equal(start[0], start[1]) and torch.equal(start[0], ref.flat_params()[0])
    assert torch.equal(start[2], ref.flat_params()[1])
    fit_to_targets(ens, train, test, targets=(1e-9,), max_epochs=1, batch_size=32, lr=1e-3)
    fit_to_targets(ref, train, test, targets=(1e-9,), max_epochs=1, batch_size=32, lr=1e-3)
    end = ens.flat_params()
    assert not torch.equal(end[0], end[1])                          # same start, other order: apart
    assert torch.equal(end[0], ref.flat_params()[0]) and torch.equal(end[2], ref.flat_params()[1])


def test_keskar_f1_is_the_papers_network():
    """784 -> 5 x (512, batch norm, ReLU) -> 10: 1,469,450 parameters, and its
    batch norm keeps no running statistics (the batch's own, as Keras mode 2)."""
    net = keskar_f1()()
    assert count_params(net) == 784 * 512 + 512 + 4 * (512 * 512 + 512) + 5 * 2 * 512 + 512 * 10 + 10
    bns = [m for m in net if isinstance(m, torch.nn.BatchNorm1d)]
    assert len(bns) == 5 and all(m.running_mean is None for m in bns)
    x = torch.randn(64, 1, 28, 28)
    ens = Ensemble(keskar_f1(32), [0, 1], CPU)
    out = ens(x, shared=True)
    for i in range(2):
        m = keskar_f1(32)()
        m.load_state_dict(ens.state_dict(i))
        torch.testing.assert_close(out[i], m(x), rtol=1e-5, atol=1e-5)   # vmapped = one module, batch statistics


def test_barrier_slope_and_line_helpers_on_analytic_cases():
    al = np.linspace(0, 1, 21)
    # a bump of height 0.3 over a chord from 1 to 2: the excess over the chord is 0.3 at alpha 0.5
    line = (1 - al) * 1 + al * 2 + 1.2 * al * (1 - al)
    assert barrier(al, line) == pytest.approx(0.3)
    assert barrier(al, (1 - al) * 1 + al * 2) == pytest.approx(0.0, abs=1e-12)      # a straight line: none
    assert barrier(al, np.stack([line, 2 * line])).shape == (2,)
    assert rising_steps(np.exp(-al)) < 0 and rising_steps(line) > 0
    t = np.linspace(-1, 1, 21)
    assert slice_rise(t, 3 + 2 * t ** 2) == pytest.approx(0.5)
    b = np.array([16, 64, 256, 1024])
    y = np.stack([2.0 * b ** 0.5, 3.0 * b ** 0.25], 1)                                # two seeds
    np.testing.assert_allclose(seed_slopes(b, y), [0.5, 0.25])
    ok = np.ones_like(y, bool)
    ok[:2, 1] = False                                                                # seed 1: two points only
    s = seed_slopes(b, y, ok)
    assert s[0] == pytest.approx(0.5) and np.isnan(s[1])
    np.testing.assert_allclose(seed_slopes(b, np.stack([np.log(b), np.log(b)], 1), log_y=False), [1, 1])


def test_the_factorial_configs_refuse_what_they_cannot_mean():
    with pytest.raises(ConfigError, match="lr_rules"):
        experiment("1-3d").make_config("smoke", "cpu", lr_rules=("sqrt",))
    with pytest.raises(ConfigError, match="highest loss to the lowest"):
        experiment("1-3d").make_config("smoke", "cpu", targets=(0.05, 0.1))
    with pytest.raises(ConfigError, match="grid_batch_sizes: 64 not among batch_sizes"):
        experiment("1-3d").make_config("smoke", "cpu", grid_batch_sizes=(16, 64))
    # without the grid rules the grid's batch sizes mean nothing, and are not checked
    experiment("1-3d").make_config("smoke", "cpu", lr_rules=("fixed", "linear"), grid_batch_sizes=(16, 64))


def test_fit_to_targets_needs_a_condition(mnist):
    train, test = _train(mnist, 64)
    with pytest.raises(ValueError, match="target or a patience"):
        fit_to_targets(Ensemble(BUILD, [0], CPU), train, test, targets=(), max_epochs=1, batch_size=32, lr=1e-3)
    assert STOP == "stop"


def test_scaling_the_layers_before_f1s_batch_norms_keeps_the_function_but_not_the_sharpness_box():
    """F1's batch normalisation divides out the scale of the Linear layer before it: those five layers (not
    the output layer) scaled by 2 give the same outputs on a batch (up to BN's epsilon), while Keskar's box
    eps(|x| + 1) grows less than the weights, so the epsilon-sharpness of the same function falls."""
    from hw1lib.measures import ensemble_loss_fn, epsilon_sharpness_lbfgsb
    from hw1lib.models import bn_fed_layers, bn_rescaled, linear_layers

    build = keskar_f1(32)
    assert linear_layers(build) == [1, 4, 7, 10, 13, 16] and bn_fed_layers(build) == [1, 4, 7, 10, 13]
    dev = torch.device("cpu")
    ens = Ensemble(build, [0, 1], dev)
    x = torch.randn(128, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 10, (128,), generator=torch.Generator().manual_seed(1))
    scaled = Ensemble.from_stacked(build, bn_rescaled({k: v.detach() for k, v in ens.params.items()},
                                                      bn_fed_layers(build), 2.0), dev)
    assert torch.equal(scaled.params["16.weight"], ens.params["16.weight"])
    with torch.no_grad():
        assert (scaled(x, shared=True) - ens(x, shared=True)).abs().max() < 1e-3     # BN eps: not exactly
    s1, s2 = (epsilon_sharpness_lbfgsb(ensemble_loss_fn(e, x, y), e, 1e-3, iters=3) for e in (ens, scaled))
    assert (s2 < s1).all(), (s1, s2)


def test_1_3d_and_1_3e_tell_their_numbers_for_a_design_without_the_linear_rule_or_f1():
    """The one-line summaries and texts name what the design has and say n/a for what it left out (a rule,
    a network), instead of failing on the full profile's keys: smoke, the fixed rule and its quarter only,
    our network only in the Keskar comparison."""
    from hw1lib.experiments import experiment

    sets = {"1-3d": {"lr_rules": ["fixed", "quarter"]}, "1-3e": {"keskar.networks": ["mlp"]}}
    for name in ("1-3d", "1-3e"):
        E = experiment(name)
        cfg = E.make_config("smoke", "cpu", sets)
        r = E.run(cfg, progress=False)
        h = E.headlines(cfg, r)
        assert "linearly scaled lr n/a" in E.summary(h) or "linear lr n/a" in E.summary(h)
        assert E.text(cfg, r)
        assert list(h["law"][f"{cfg.targets[-1] if name == '1-3d' else cfg.sweep.targets[-1]:g}"].values())[0]["grid"]
    assert "large/small sharpness n/a (no F1 in the design)" in E.summary(h)
