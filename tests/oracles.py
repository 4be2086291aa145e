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
