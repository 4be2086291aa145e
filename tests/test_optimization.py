"""Section 1-2 tools against oracles: PCA vs numpy SVD, the critical-point
search vs the true gradient, the Hessian spectrum vs numpy.linalg.eigvalsh,
loss-surface points vs ordinary module evaluation."""
import numpy as np
import pytest
import torch
from torch.func import grad
from torch import nn

from hw1lib.landscape import evaluate_points, filter_normalized_direction, pca_2d, plane_grid
from hw1lib.critical import (CRITICAL, GRADIENT_FLAT, NOT_CONVERGED, classify, endpoint_spectrum, newton_mr,
                             linear_autoencoder, linear_autoencoder_critical_points, linear_autoencoder_point,
                             linear_autoencoder_starts, minimize_grad_norm, refine_critical, resolved_spectrum)
from hw1lib.curvature import FlatLoss
from hw1lib.ensemble import Ensemble
from hw1lib.models import mlp
from hw1lib.train import fit_classifier

CPU = torch.device("cpu")


def test_pca_matches_numpy_svd():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 7)) @ np.diag([5, 3, 1, 0.5, 0.2, 0.1, 0.05])
    coords, comps, explained = pca_2d(X)
    Xc = X - X.mean(0)
    U, S, Vt = np.linalg.svd(Xc, full_matrices=False)
    for k in range(2):  # components are defined up to sign
        sign = np.sign(comps[k] @ Vt[k])
        np.testing.assert_allclose(sign * comps[k], Vt[k], atol=1e-10)
        np.testing.assert_allclose(sign * coords[:, k], U[:, k] * S[k], atol=1e-8)
    np.testing.assert_allclose(explained, S[:2] ** 2 / (S ** 2).sum(), rtol=1e-10)


@pytest.mark.exact
def test_snapshots_are_the_weights_at_those_epochs(mnist):
    """Exact anywhere: the values compared to the bit involve no float arithmetic (epoch numbers, and
    snapshots that are copies of the weights)."""
    build = lambda: mlp(784, (8,), 10)
    ens = Ensemble(build, [0, 1], CPU)
    start = ens.flat_params()
    h = fit_classifier(ens, mnist.train.subset(256), None, epochs=2, batch_size=64, lr=1e-3,
                       snapshot_every=1, progress=False)
    assert h["snapshots"].shape == (3, 2, ens.flat_params().shape[1])
    np.testing.assert_array_equal(h["snapshot_epochs"], [0, 1, 2])
    np.testing.assert_array_equal(h["snapshots"][0], start.numpy())
    np.testing.assert_array_equal(h["snapshots"][-1], ens.flat_params().numpy())
    # flat layout round-trips through the named parameters
    for k, v in ens.unflatten(ens.flat_params()).items():
        torch.testing.assert_close(v, ens.params[k].detach())


def test_filter_normalized_direction():
    ens = Ensemble(lambda: mlp(3, (5,), 2), [0], CPU)
    d = filter_normalized_direction(ens, 0, torch.Generator().manual_seed(0))
    parts = ens.unflatten(d.unsqueeze(0))
    for k, p in ens.params.items():
        if p.dim() == 2:  # a bias: [N, out]
            assert torch.all(parts[k] == 0)
        else:
            torch.testing.assert_close(parts[k][0].norm(dim=1), p[0].detach().norm(dim=1))


def test_surface_points_match_plain_module(mnist):
    build = lambda: mlp(784, (6,), 10)
    ens = Ensemble(build, [0], CPU)
    centre = ens.flat_params()[0]
    g = torch.Generator().manual_seed(1)
    d1 = filter_normalized_direction(ens, 0, g)
    d2 = filter_normalized_direction(ens, 0, g)
    a, b = np.linspace(-1, 1, 3), np.linspace(-0.5, 0.5, 2)
    thetas = plane_grid(centre, d1, d2, a, b)
    assert thetas.shape == (6, centre.numel())
    split = mnist.test.subset(200)
    loss, _ = evaluate_points(build, ens, thetas, split, group=4)
    # oracle: point (a=1, b=-0.5) is row 0 * 3 + 2, evaluated with an ordinary module
    model = build()
    theta = centre + 1.0 * d1 - 0.5 * d2
    torch.nn.utils.vector_to_parameters(theta, model.parameters())
    with torch.no_grad():
        ref = nn.functional.cross_entropy(model(split.x), split.y).item()
    assert loss[2] == pytest.approx(ref, rel=1e-5)


def _tiny_problem(seed=0):
    torch.manual_seed(seed)
    build = lambda: mlp(1, (4,), 1, activation="tanh")
    x = torch.linspace(-1, 1, 12, dtype=torch.float64).unsqueeze(1)
    y = torch.sin(2 * x)
    return build, FlatLoss(build().double(), nn.functional.mse_loss, x, y)


def test_grad_norm_phase_reaches_tolerance_of_the_true_gradient():
    build, f = _tiny_problem()
    ens = Ensemble(build, [0, 1, 2], CPU, dtype=torch.float64)
    out = minimize_grad_norm(f, ens.flat_params(), tol=1e-8, max_iters=200)
    assert out["reached"].all()
    for i in range(3):  # the reported norm is the true full-batch gradient of L
        true = grad(f)(out["theta"][i]).norm().item()
        assert true == pytest.approx(out["grad_norm"][i].item(), rel=1e-6) and true < 1e-8
    assert (out["trace"][-1] <= out["trace"][0]).all()  # the phase actually ran and descended
    assert out["trace"].shape[0] > 2


def test_refinement_reaches_true_critical_points_where_grad_norm_squared_stalls():
    """f(x, y) = (x^2 - 1)^2 + y^4: minima at (+-1, 0) with a singular Hessian
    (diag(8, 0)), a maximum in x at x = 0. Trust-region Newton on f must end at
    grad f = 0 to 1e-10 from a start near the maximum and from far away, never
    raising f, and record the spectrum at each checkpoint it passes."""
    def f(t):
        x, y = t[0], t[1]
        return (x ** 2 - 1) ** 2 + y ** 4
    start = torch.tensor([[0.05, 0.8], [2.0, -1.0], [-0.5, 0.5]], dtype=torch.float64)
    out = refine_critical(f, start, tol=1e-10, max_iters=100, checkpoints=(1e-4, 1e-10))
    assert out["reached"].all()
    for i in range(3):
        g = grad(f)(out["theta"][i])
        assert g.norm().item() <= 1e-10 and g.norm().item() == pytest.approx(out["grad_norm"][i].item(), abs=1e-15)
        # a descent method on L: the loss never rose
        assert (out["loss_trace"][1:, i] <= out["loss_trace"][:-1, i] + 1e-15).all()
        H = torch.autograd.functional.hessian(f, out["theta"][i])
        np.testing.assert_allclose(out["spectrum_at"][1, i].numpy(), np.linalg.eigvalsh(H.numpy()), atol=1e-8)
        assert abs(abs(out['theta'][i][0].item()) - 1) < 1e-6 and torch.linalg.eigvalsh(H).min() > -1e-12
    assert not torch.isnan(out["grad_norm_at"]).any() and (out["grad_norm_at"][1] <= 1e-10).all()


def test_refinement_on_a_net_reaches_1e_minus_8():
    build, f = _tiny_problem(2)
    ens = Ensemble(build, [0, 1, 2, 3], CPU, dtype=torch.float64)
    # Run 0 wanders between 1e-7 and 1e-5 for a few hundred iterations (accepted steps lower L, not
    # always ||g||) before it converges; when it gets there depends on the Hessian's last bits.
    out = refine_critical(f, ens.flat_params(), tol=1e-8, max_iters=1000)
    assert out["reached"].all()
    for i in range(4):
        assert grad(f)(out["theta"][i]).norm().item() <= 1e-8


def test_refinement_steps_along_flat_directions_once_the_rest_has_converged():
    """f = x^2 / 2 + 1e-10 y^2 / 2: y's curvature is below FLAT relative to x's, so
    phase 3 does not step along it while x's gradient dominates; once x has
    converged, the gradient left (1e-10 y) lies along y alone, and only a step along
    y lowers ||g|| to the tolerance (1-2c: runs stalled at 1.0-1.15e-8 without it)."""
    def f(t):
        return t[0] ** 2 / 2 + 1e-10 * t[1] ** 2 / 2
    start = torch.tensor([[0.5, 1.0], [-0.3, -2.0]], dtype=torch.float64)
    out = refine_critical(f, start, tol=1e-12, max_iters=20)
    assert out["reached"].all(), out["grad_norm"]
    for i in range(2):
        assert grad(f)(out["theta"][i]).norm().item() <= 1e-12


def test_refinement_evaluates_each_points_hessian_once(monkeypatch):
    """A rejected step leaves a run where it was: its spectrum is reused, not
    recomputed (a third of phase 3's Hessians in 1-2c were repeats)."""
    import hw1lib.critical as critical

    build, f = _tiny_problem(2)
    seen, calls, real = set(), [], critical.hessian

    def once(f_, theta):
        for row in theta:
            key = row.numpy().tobytes()
            assert key not in seen, "the Hessian of an unchanged point was computed again"
            seen.add(key)
        calls.append(len(theta))
        return real(f_, theta)

    monkeypatch.setattr(critical, "hessian", once)
    ens = Ensemble(build, [0, 1, 2, 3], CPU, dtype=torch.float64)
    out = refine_critical(f, ens.flat_params(), tol=1e-8, max_iters=1000)
    assert out["reached"].all()
    assert sum(calls) < 4 * (len(out["trace"]))      # fewer than one Hessian per run and iteration


@pytest.mark.exact
def test_resolved_spectrum_counts_only_eigenvalues_above_what_the_gradient_can_flip():
    """Exact anywhere: the values compared to the bit involve no float arithmetic (counts of given eigenvalues)."""
    ev = np.array([[-1.0, -1e-7, 0.0, 2e-7, 3e-3, 5.0],
                   [-2.0, -1.0, -1e-3, 1e-3, 1.0, 2.0]])
    out = resolved_spectrum(ev, np.array([1e-8, 1e-9]), factor=1e3)   # cuts 1e-5 and 1e-6
    np.testing.assert_array_equal(out["negative"], [1, 3])
    np.testing.assert_array_equal(out["near_zero"], [3, 0])
    np.testing.assert_array_equal(out["positive"], [2, 3])
    np.testing.assert_allclose(out["resolved_ratio"], [2 / 3, 0.5])
    np.testing.assert_allclose(out["raw_ratio"], [3 / 6, 3 / 6])
    assert np.isnan(resolved_spectrum(np.zeros((1, 3)), np.array([1.0]))["resolved_ratio"][0])


def test_endpoint_spectrum_matches_eigvalsh_and_the_flatness_ratio_of_autograd():
    """At two random points of a tiny net: the eigenvalues are eigvalsh of the autodiff
    Hessian, and the ratio is ||H g|| / (||H|| ||g||) with ||H|| the largest |eigenvalue|."""
    build, f = _tiny_problem(1)
    ens = Ensemble(build, [0, 1], CPU, dtype=torch.float64)
    theta = ens.flat_params()
    g = torch.stack([grad(f)(t) for t in theta])
    ev, ratio, _ = endpoint_spectrum(f, theta, g)
    for i in range(2):
        H = torch.autograd.functional.hessian(f, theta[i]).numpy()
        np.testing.assert_allclose(ev[i].numpy(), np.linalg.eigvalsh(H), atol=1e-10)
        want = np.linalg.norm(H @ g[i].numpy()) / (np.abs(np.linalg.eigvalsh(H)).max() * np.linalg.norm(g[i].numpy()))
        assert ratio[i].item() == pytest.approx(want, rel=1e-9)


def test_layer_panel_uses_the_named_small_layer():
    from hw1lib.ensemble import Ensemble
    from hw1lib.experiments import experiment
    from hw1lib.experiments.e1_2a_optimization_trajectory import SMALL_LAYER, param_slice

    trajectory_config = experiment("1-2a").make_config
    from hw1lib.models import mnist_mlp

    cfg = trajectory_config("full")
    build = mnist_mlp(cfg.hidden)
    s = param_slice(build(), SMALL_LAYER)
    assert s == Ensemble(build, [0], torch.device("cpu")).param_slices()[SMALL_LAYER]
    assert s.stop - s.start == cfg.hidden[0] * cfg.hidden[1]              # hidden-to-hidden weights
    assert (s.stop - s.start) / sum(p.numel() for p in build().parameters()) < 0.05


# ------------------------------------------------------------------ Newton-MR against the analytic oracle
def _oracle_starts(U, points, hidden, per_point=2, random=10):
    return linear_autoencoder_starts(U, points, hidden, per_point=per_point, random=random)[0]


def _index(f, theta, grad, grad_norm, factor=1e3):
    ev, _, _ = endpoint_spectrum(f, theta, grad)
    return resolved_spectrum(ev.numpy(), grad_norm.numpy(), factor)["negative"]


@pytest.mark.parametrize("eig, hidden", [((8.0, 4.0, 2.0, 1.0), 2), ((8.0, 4.0, 2.0, 1.0), 1),
                                         ((8.0, 4.0, 2.0, 1.0), 3), ((10.0, 6.0, 3.0, 1.5, 0.7), 2)])
def test_newton_mr_recovers_every_critical_value_and_index_of_a_linear_autoencoder(eig, hidden):
    """Baldi and Hornik (1989): every point Newton-MR reports at ||g|| <= 1e-8 has a loss equal
    to an analytic critical value (to 1e-9) and the analytic index there; every start near a
    critical set ends at a critical point, so it finds saddles of several indices, not only the
    minimum. Random starts may end elsewhere (gradient-flat or still moving, as Frye et al. saw),
    never at a wrong value. (The spectra are chosen so that no two critical sets share a value.)"""
    assert len({round(p["value"], 9) for p in linear_autoencoder_critical_points(eig, hidden)}) == \
        len(linear_autoencoder_critical_points(eig, hidden))
    f, U = linear_autoencoder(eig, (hidden,))
    points = linear_autoencoder_critical_points(eig, hidden)
    S = _oracle_starts(U, points, (hidden,))
    out = newton_mr(f, S, tol=1e-8, max_iters=60)      # the near starts converge in a few; 60 caps the rest
    ok = out["reached"].numpy()
    assert ok[:2 * len(points)].all() and ok.mean() >= 0.75, ok
    index = _index(f, out["theta"], out["grad"], out["grad_norm"])
    values = np.array([p["value"] for p in points])
    found = set()
    for i in np.flatnonzero(ok):
        L = out["loss"][i].item()
        k = int(np.argmin(np.abs(values - L)))
        assert abs(values[k] - L) < 1e-9, (i, L)
        assert index[i] == points[k]["index"], (i, L, index[i], points[k])
        found.add(k)
        assert grad(f)(out["theta"][i]).norm().item() <= 1e-8          # the true gradient, recomputed
    # every critical set was found from the starts near it (each value is one set here: distinct eigenvalues)
    assert found == set(range(len(points)))
    assert len({points[k]["index"] for k in found if points[k]["index"] > 0}) >= 3


def test_linear_autoencoder_oracle_is_right_where_it_can_be_checked_directly():
    """The oracle itself: at each critical set's point the gradient is 0 and the loss is the
    stated value; the Hessian there has the stated number of negative eigenvalues."""
    eig = (8.0, 4.0, 2.0, 1.0)
    f, U = linear_autoencoder(eig, (2,))
    pts = linear_autoencoder_critical_points(eig, 2)
    assert sorted(p["value"] for p in pts) == [1.5, 2.5, 3.0, 3.5, 4.5, 5.0, 5.5, 6.0, 6.5, 7.0, 7.5]
    assert [p["index"] for p in pts if p["value"] == 1.5] == [0] and min(p["index"] for p in pts if p["value"] > 1.5) > 0
    for p in pts:
        th = linear_autoencoder_point(U, p["subset"])
        assert grad(f)(th).norm().item() < 1e-12
        assert f(th).item() == pytest.approx(p["value"], abs=1e-12)
        ev = torch.linalg.eigvalsh(torch.autograd.functional.hessian(f, th))
        assert int((ev < -1e-9).sum()) == p["index"], p


def test_newton_mr_on_a_deep_linear_net_ends_at_analytic_critical_values():
    """Two hidden layers (4 -> 3 -> 2 -> 4): the critical values are those of the
    one-layer autoencoder with the bottleneck's width (2); it finds saddles among them."""
    eig = (8.0, 4.0, 2.0, 1.0)
    f, U = linear_autoencoder(eig, (3, 2))
    points = linear_autoencoder_critical_points(eig, 2)
    S = _oracle_starts(U, points, (3, 2), per_point=1, random=10)
    out = newton_mr(f, S, tol=1e-8, max_iters=60)
    ok = out["reached"].numpy()
    assert ok[:len(points)].all() and ok.mean() >= 0.6, ok
    values = np.array([p["value"] for p in points])
    L = out["loss"].numpy()[ok]
    assert np.abs(L[:, None] - values[None]).min(1).max() < 1e-9
    index = _index(f, out["theta"], out["grad"], out["grad_norm"])[ok]
    assert len(set(np.round(L[index > 0], 6))) >= 4       # saddles at several critical values


def test_descent_on_the_loss_does_not_see_what_newton_mr_sees():
    """The same starts near the linear autoencoder's saddles: the descent refinement
    (trust-region Newton on L) ends at the minimum; Newton-MR ends on the saddles."""
    eig = (8.0, 4.0, 2.0, 1.0)
    f, U = linear_autoencoder(eig, (2,))
    points = [p for p in linear_autoencoder_critical_points(eig, 2) if p["index"] > 0]
    S = _oracle_starts(U, points, (2,), per_point=2, random=0)
    found = newton_mr(f, S, tol=1e-8, max_iters=200)
    desc = refine_critical(f, S, tol=1e-8, max_iters=300)
    saddle = lambda L: np.abs(L[:, None] - np.array([p["value"] for p in points])[None]).min(1) < 1e-9
    assert saddle(found["loss"].numpy()[found["reached"].numpy()]).mean() >= 0.9
    assert saddle(desc["loss"].numpy()[desc["reached"].numpy()]).mean() <= 0.1


def test_classify_separates_critical_gradient_flat_and_still_moving_end_points():
    """f(x, y) = x^2 / 2 + y (a slope along a flat direction): H g = (x, 0) -> 0 while g
    stays (0, 1): the finder stalls at a gradient-flat point. f = (x^2 - 1)^2: critical.
    A run cut off while ||g|| still falls fourfold every iteration is not converged."""
    flat = lambda t: t[0] ** 2 / 2 + t[1]
    out = newton_mr(flat, torch.tensor([[1.0, 0.0]], dtype=torch.float64), tol=1e-8, max_iters=50)
    _, r, _ = endpoint_spectrum(flat, out["theta"], out["grad"])
    assert not out["reached"].any() and r.item() < 1e-6
    assert classify(out["grad_norm"], r, out["trace"], out["stalled"]).tolist() == [GRADIENT_FLAT]
    crit = lambda t: (t[0] ** 2 - 1) ** 2 + (t[1] - 2) ** 2
    out = newton_mr(crit, torch.tensor([[0.3, 0.0]], dtype=torch.float64), tol=1e-8)
    _, r, _ = endpoint_spectrum(crit, out["theta"], out["grad"])
    assert classify(out["grad_norm"], r, out["trace"], out["stalled"]).tolist() == [CRITICAL]
    moving = 4.0 ** -np.arange(5.0)[:, None]
    assert classify(moving[-1], [1e-5], moving, [False]).tolist() == [NOT_CONVERGED]


def test_loss_levels_tie_only_losses_that_agree_to_rounding():
    """Critical points whose losses agree to a relative 1e-6 are one level (a rank correlation
    over them is over ties, not over rounding noise); distinct critical values stay apart."""
    from hw1lib.critical import levels_of as _levels, loss_levels as _loss_levels

    loss = np.array([0.0869, 0.0869 * (1 + 1e-9), 0.0101, 0.0869 * (1 - 3e-10), 0.00362, 0.0101 * (1 + 2e-5)])
    lv = _loss_levels(loss)
    assert len(np.unique(lv)) == 4 and lv[0] == lv[1] == lv[3] and lv[2] != lv[5]
    index = np.array([3, 2, 1, 2, 0, 1])
    levels = _levels(loss, index)
    assert [d["n"] for d in levels] == [3, 1, 1, 1] and levels[0]["index"] == [2, 2, 3]
    assert [d["loss"] for d in levels] == sorted((d["loss"] for d in levels), reverse=True)


def test_newton_mr_records_the_spectrum_where_a_run_passes_a_checkpoint():
    """f = (x^2 - 1)^2 + y^2 from (1.3, 0.5): the spectrum recorded at ||g|| <= 1e-3 is the Hessian's
    at an iterate with that gradient norm; a run that never passed a checkpoint has NaN there."""
    f = lambda t: (t[0] ** 2 - 1) ** 2 + t[1] ** 2
    out = newton_mr(f, torch.tensor([[1.3, 0.5]], dtype=torch.float64), tol=1e-12, checkpoints=(1e-3, 1e-30))
    assert out["reached"].all()
    gn = out["grad_norm_at"][0, 0].item()
    assert 1e-12 < gn <= 1e-3 and torch.isnan(out["grad_norm_at"][1, 0])
    ev = out["spectrum_at"][0, 0]
    assert ev[0].item() == pytest.approx(2.0, rel=1e-9) and ev[1].item() == pytest.approx(8.0, rel=1e-2)


def test_newton_mr_stops_a_run_whose_hessian_overflows_and_finishes_the_others():
    """f = (x^2 - 1)^2 + exp(y^2): at y = 30 the Hessian is not finite (eigh would fail). That run
    is stopped where it is; the other converges to (1, 0) as usual; classify takes tensors."""
    f = lambda t: (t[0] ** 2 - 1) ** 2 + torch.exp(t[1] ** 2)
    out = newton_mr(f, torch.tensor([[0.8, 0.3], [0.8, 30.0]], dtype=torch.float64), tol=1e-10)
    assert out["reached"].tolist() == [True, False] and out["stalled"].tolist() == [False, True]
    assert out["theta"][1].tolist() == [0.8, 30.0]
    assert abs(out["theta"][0, 0].item() - 1) < 1e-9 and abs(out["theta"][0, 1].item()) < 1e-9
    status = classify(out["grad_norm"], torch.tensor([0.5, float("nan")]), out["trace"], out["stalled"], tol=1e-10)
    assert status.tolist() == [CRITICAL, NOT_CONVERGED]


def test_mr_direction_is_the_minimum_length_least_squares_step_and_krylov_steps_cap_it():
    """With as many Krylov steps as parameters, the MR direction is -H^+ g (H singular and indefinite: the
    least-squares solution with no component in H's null space); with fewer it is the best in the smaller
    Krylov space, so its residual ||H p + g|| is no smaller."""
    from hw1lib.critical import mr_direction

    gen = torch.Generator().manual_seed(0)
    V = torch.linalg.qr(torch.randn(4, 12, 12, generator=gen, dtype=torch.float64))[0]
    lam = torch.randn(4, 12, generator=gen, dtype=torch.float64)
    lam[:, :3] = 0.0                                                 # a 3-dimensional null space
    H = V @ torch.diag_embed(lam) @ V.transpose(1, 2)
    g = torch.randn(4, 12, generator=gen, dtype=torch.float64)
    p = mr_direction(H, g, k=12, acondlim=1e12)
    ref = -(torch.linalg.pinv(H, hermitian=True) @ g.unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(p, ref, rtol=1e-10, atol=1e-12)
    assert (V[..., :3].transpose(1, 2) @ p.unsqueeze(-1)).abs().max() < 1e-12     # nothing along the null space
    res = lambda q: ((H @ q.unsqueeze(-1)).squeeze(-1) + g).norm(dim=1)
    assert (res(mr_direction(H, g, k=4)) >= res(p) - 1e-12).all()


def test_newton_mr_takes_the_exact_step_to_a_saddle_and_records_how_far_it_went():
    """L = theta^T A theta / 2 - b^T theta with A indefinite: its one critical point A^-1 b is a saddle. The
    full MR step reaches it at once (alpha = 1 has sufficient decrease); distance and start loss are the
    run's own. With a trust radius smaller than that distance the run never leaves the ball."""
    A = torch.diag(torch.tensor([3.0, 1.0, -2.0], dtype=torch.float64))
    b = torch.tensor([1.0, -1.0, 2.0], dtype=torch.float64)
    f = lambda t: 0.5 * t @ A @ t - b @ t
    start = torch.tensor([[0.5, 0.5, 0.5]], dtype=torch.float64)
    out = newton_mr(f, start, tol=1e-12, krylov=3)
    star = torch.linalg.solve(A, b)
    assert out["reached"].all() and len(out["trace"]) == 2 and torch.allclose(out["theta"][0], star, atol=1e-12)
    assert out["distance"][0].item() == pytest.approx((star - start[0]).norm().item(), rel=1e-12)
    assert out["start_loss"][0].item() == pytest.approx(f(start[0]).item(), rel=1e-12)
    near = newton_mr(f, start, tol=1e-12, krylov=3, radius=0.5, max_iters=50)
    assert not near["reached"].any() and near["distance"][0].item() <= 0.5


def test_flatness_ratio_has_a_null_from_random_directions_and_trivial_points_are_the_constant_fit():
    """A gradient in H's null space has ratio 0 while random directions (the null) do not; the null draws
    are ||H u|| / (||H|| ||u||) for seeded u. A critical point is trivial where its loss is the target's
    variance (to 1e-6, relative)."""
    from hw1lib.critical import flatness, trivial

    f = lambda t: t[0] ** 2 / 2 + t[1]                               # H = diag(1, 0); g = (x, 1)
    theta = torch.tensor([[0.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    g = torch.tensor([[0.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    ev, ratio, null = endpoint_spectrum(f, theta, g, null_draws=64, seed=3)
    assert ratio[0].item() == 0.0 and ratio[1].item() == pytest.approx(2 ** -0.5)
    u = torch.randn(64, 2, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64).permute(1, 2, 0)
    assert torch.allclose(null, u[:, 0].abs() / u.norm(dim=1)) and null.min() > 0
    s = flatness(ratio.numpy(), null.numpy())
    assert s["n"] == 2 and s["below_null"] == 1
    assert trivial([0.0869, 0.0869 * (1 + 1e-8), 0.05], 0.0869).tolist() == [True, True, False]
