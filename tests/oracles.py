"""Independent references the tests compare hw1lib against: plain PyTorch, one model at a time."""
import torch


def plain_adam_epoch(model: torch.nn.Module, opt: torch.optim.Optimizer, train, gen: torch.Generator,
                     batch_size: int) -> None:
    """One epoch of ordinary minibatch training: a permutation drawn from `gen`,
    batches in its order (the last one smaller), cross-entropy, one optimizer
    step per batch."""
    perm = torch.randperm(len(train), generator=gen)
    for s in range(0, len(train), batch_size):
        idx = perm[s:s + batch_size]
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(train.x[idx]), train.y[idx]).backward()
        opt.step()


def rounding_rtol(dtype, n_ops: float, lam: float = 6.0) -> float:
    """The relative difference two evaluations of one computation may show when
    only the order of their rounded operations differs (another process, thread
    count, vector width or executor), for a value that depends on at most
    `n_ops` rounded operations.

    Higham and Mary's probabilistic bound (SIAM J. Sci. Comput. 41, 2019): an
    accumulation of n operations with independent, mean-zero rounding errors has
    relative error at most lam * sqrt(n) * u with probability at least
    1 - 2 exp(-lam^2 (1 - u)^2 / 2) (lam = 6: 3e-8), u the unit roundoff of
    `dtype`; two evaluations, each within it, differ by at most twice that. The
    worst-case bound n * u (Higham, Accuracy and Stability, sec. 3.1) would be
    looser than any bug these comparisons exist to catch."""
    u = float(torch.finfo(dtype).eps) / 2
    return 2 * lam * n_ops ** 0.5 * u
