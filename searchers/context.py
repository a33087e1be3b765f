"""What a searcher is given (the data it will see, its optimiser settings) and the per-epoch statistics it fills."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SearchContext:
    """What a searcher may need to know about the data it will see."""

    steps_per_epoch: int
    half_sizes: tuple[int, int]  # images in the weight half and the architecture half
    num_classes: int


@dataclass
class OptimConfig:
    """The hyper-parameters a searcher's optimisers read (a view of the run config)."""

    epochs: int
    w_lr: float
    w_lr_min: float
    w_momentum: float
    w_weight_decay: float
    w_nesterov: bool
    grad_clip: float
    a_lr: float
    a_beta1: float
    a_beta2: float
    a_weight_decay: float
    lr_schedule: str  # per_step or per_epoch (RunConfig.lr_schedule)
    step_order: str  # arch_first or weights_first (RunConfig.step_order)


class EpochStats:
    """Per-seed loss and accuracy sums kept on the device, read once per epoch (no host sync inside a step)."""

    def __init__(self, device: torch.device, seeds: int) -> None:
        self.sums = torch.zeros(seeds, 3, dtype=torch.float64, device=device)  # loss * n, correct, non-finite losses
        self.count = 0

    def add(self, loss: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> None:
        """``loss`` (K,), ``logits`` (K, B, classes), ``labels`` (K, B)."""
        n = labels.shape[-1]
        loss = loss.detach().double()
        correct = (logits.detach().argmax(dim=-1) == labels).sum(dim=-1).double()
        self.sums += torch.stack([loss * n, correct, (~torch.isfinite(loss)).double()], dim=1)
        self.count += n

    def absorb(self, other: "EpochStats", count: int) -> None:
        """Add the sums another accumulator gathered over ``count`` samples per seed (a replayed CUDA graph's)."""
        self.sums += other.sums
        self.count += count

    def read(self) -> list[dict[str, float]]:
        """One dict per seed: mean loss, accuracy (%), steps with a non-finite loss."""
        n = max(self.count, 1)
        return [{"loss": loss_n / n, "acc": 100.0 * correct / n, "nonfinite_steps": int(bad)}
                for loss_n, correct, bad in self.sums.tolist()]
