"""Curvature tools against independent oracles."""
import numpy as np
import pytest
import torch
from torch.func import grad
from torch import nn

from hw1lib.curvature import FlatLoss, hessian, hvp, loss_and_grad, minimal_ratio, top_eigenvalues
from hw1lib.models import count_params, mlp


def _flat_loss(seed=0, n=40, widths=(5, 4)):
    torch.manual_seed(seed)
    model = mlp(1, widths, 1).double()
    x = torch.linspace(-1, 1, n, dtype=torch.float64).unsqueeze(1)
    y = torch.sinc(5 * x)
    return FlatLoss(model, nn.functional.mse_loss, x, y), model


def test_flat_loss_equals_module_loss():
    f, model = _flat_loss()
    expected = nn.functional.mse_loss(model(f.x), f.y)
    assert f(f.theta0).item() == pytest.approx(expected.item(), rel=1e-14)
    assert count_params(f) == sum(p.numel() for p in model.parameters())


def test_gradient_matches_autograd():
    f, model = _flat_loss()
    nn.functional.mse_loss(model(f.x), f.y).backward()
    expected = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
    torch.testing.assert_close(grad(f)(f.theta0), expected, rtol=1e-12, atol=1e-14)


def test_full_hessian_matches_autograd_functional_hessian():
    f, _ = _flat_loss()
    expected = torch.autograd.functional.hessian(f, f.theta0)
    H = hessian(f, f.theta0)
    assert H.shape == (count_params(f), count_params(f))
    torch.testing.assert_close(H, expected, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(H, H.T, rtol=1e-10, atol=1e-12)


def test_many_hessians_batched_and_one_by_one_equal_the_single_ones():
    """Both routes for many points (vmapped: what a GPU takes; a loop: a CPU) give each point's Hessian."""
    f, _ = _flat_loss()
    gen = torch.Generator().manual_seed(4)
    thetas = f.theta0 + 0.1 * torch.randn(3, count_params(f), dtype=torch.float64, generator=gen)
    single = torch.stack([torch.autograd.functional.hessian(f, t) for t in thetas])
    for batched in (True, False):
        torch.testing.assert_close(hessian(f, thetas, batched=batched), single, rtol=1e-10, atol=1e-12)


def test_full_hessian_matches_finite_differences():
    f, _ = _flat_loss(seed=1)
    theta, P, eps = f.theta0, count_params(f), 1e-6
    fd = torch.empty(P, P, dtype=torch.float64)
    for i in range(P):
        e = torch.zeros(P, dtype=torch.float64)
        e[i] = eps
        fd[:, i] = (grad(f)(theta + e) - grad(f)(theta - e)) / (2 * eps)
    torch.testing.assert_close(hessian(f, theta), fd, rtol=1e-5, atol=1e-7)


def test_hessian_has_cross_layer_blocks():
    """A block-diagonal (per-layer) Hessian is a classic mistake; ours is full."""
    f, _ = _flat_loss()
    H = hessian(f, f.theta0)
    first = f.sizes[0]  # first layer's weight
    assert H[:first, first:].abs().max() > 1e-6


def test_hvp_matches_hessian_times_vector():
    f, _ = _flat_loss(seed=2)
    v = torch.randn(count_params(f), dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(hvp(f, f.theta0, v), hessian(f, f.theta0) @ v, rtol=1e-10, atol=1e-12)


def test_top_eigenvalues_match_eigvalsh():
    f, _ = _flat_loss(seed=3)
    ev = np.linalg.eigvalsh(hessian(f, f.theta0).numpy())
    top = top_eigenvalues(f, f.theta0, k=3, seed=0, tol=1e-10)
    np.testing.assert_allclose(top, ev[::-1][:3], rtol=1e-6)


@pytest.mark.exact
def test_top_eigenvalues_are_reproducible_for_a_seed():
    """Same process, same seed: the same Lanczos start and operations, exact at any thread count."""
    f, _ = _flat_loss(seed=4)
    a = top_eigenvalues(f, f.theta0, k=1, seed=5)
    b = top_eigenvalues(f, f.theta0, k=1, seed=5)
    np.testing.assert_array_equal(a, b)


def test_minimal_ratio_hand_cases():
    assert minimal_ratio([1.0, 2.0, 3.0]) == 1.0
    assert minimal_ratio([-1.0, 2.0, 0.0, 3.0]) == 0.5  # zero is not positive
    assert minimal_ratio([1e-12, 1.0], tol=1e-9) == 0.5
    assert minimal_ratio(np.linalg.eigvalsh(np.diag([-2.0, 1.0, 4.0]))) == pytest.approx(2 / 3)
    # a batch of spectra, one ratio per row
    np.testing.assert_allclose(minimal_ratio(np.array([[1.0, -1.0], [2.0, 3.0]])), [0.5, 1.0])


@pytest.mark.parametrize("dims", [(1, 1), (1, 10, 10, 1), (2, 5, 1), (1, 4, 3, 5, 1), (3, 2, 6, 4, 2, 1)])
def test_closed_form_hessian_of_a_tanh_mlp_equals_autodiff(dims):
    """1-2c's Hessians come from the closed form; the oracle is the autodiff route
    (reached by hiding the FlatLoss behind a lambda), at several random points."""
    torch.manual_seed(len(dims))
    model = mlp(dims[0], dims[1:-1], 1, activation="tanh").double()
    x = torch.randn(37, dims[0], dtype=torch.float64)
    y = torch.randn(37, 1, dtype=torch.float64)
    f = FlatLoss(model, nn.functional.mse_loss, x, y)
    assert f.tanh_mlp_dims == dims
    theta = f.theta0 + 0.5 * torch.randn(3, f.theta0.numel(), dtype=torch.float64)
    got, ref = hessian(f, theta), hessian(lambda t: f(t), theta)
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-12 * ref.abs().max().item())
    torch.testing.assert_close(hessian(f, theta[1]), got[1], rtol=0, atol=1e-12 * ref.abs().max().item())


@pytest.mark.parametrize("dims", [(1, 1), (1, 10, 10, 1), (3, 2, 6, 4, 2, 1)])
def test_batched_loss_and_grad_of_a_tanh_mlp_equal_autodiff(dims):
    """1-2c's phases 2 and 3 take L and grad L from one batched forward and backward;
    the oracle is torch.func's per-point route (reached through a lambda)."""
    torch.manual_seed(len(dims))
    model = mlp(dims[0], dims[1:-1], 1, activation="tanh").double()
    x = torch.randn(37, dims[0], dtype=torch.float64)
    y = torch.randn(37, 1, dtype=torch.float64)
    f = FlatLoss(model, nn.functional.mse_loss, x, y)
    theta = f.theta0 + 0.5 * torch.randn(4, f.theta0.numel(), dtype=torch.float64)
    loss, g = loss_and_grad(f, theta)
    ref_loss, ref_g = loss_and_grad(lambda t: f(t), theta)
    assert loss.shape == (4,) and g.shape == theta.shape and not g.requires_grad
    torch.testing.assert_close(loss, ref_loss, rtol=1e-13, atol=0)
    torch.testing.assert_close(g, ref_g, rtol=0, atol=1e-13 * ref_g.abs().max().item())
    torch.testing.assert_close(ref_g[2], grad(f)(theta[2]), rtol=0, atol=1e-13 * ref_g.abs().max().item())


def test_closed_form_only_where_it_holds():
    x, y = torch.randn(9, 2, dtype=torch.float64), torch.randn(9, 1, dtype=torch.float64)
    tanh = lambda out=1: mlp(2, (3,), out, activation="tanh").double()
    assert FlatLoss(tanh(), nn.functional.mse_loss, x, y).tanh_mlp_dims == (2, 3, 1)
    assert FlatLoss(mlp(2, (3,), 1).double(), nn.functional.mse_loss, x, y).tanh_mlp_dims is None   # ReLU
    assert FlatLoss(tanh(2), nn.functional.mse_loss, x, torch.randn(9, 2)).tanh_mlp_dims is None    # 2 outputs
    assert FlatLoss(tanh(), nn.functional.l1_loss, x, y).tanh_mlp_dims is None                      # not MSE
    assert FlatLoss(tanh(), nn.functional.mse_loss, x, y[:, 0]).tanh_mlp_dims is None               # y [n]
