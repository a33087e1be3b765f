"""Device-resident search data: the two halves of the split as uint8 tensors, augmented per batch on the device.

Why: the reference pipeline decodes and augments each image in Python worker processes; here the whole set
(150 MB as uint8 for CIFAR) lives on the run's device and a batch is two gathers (random crop with the dataset's
zero padding, horizontal flip: ``benchmarks.images.Augmentation``) plus one fused normalisation. All randomness of an
epoch (order, crop offsets, flips) comes from a CPU generator seeded by (run seed, epoch, half): the same on every
device, and an epoch resumed from a checkpoint sees exactly the batches it saw before.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch

from benchmarks.images import Augmentation


@dataclass
class Batch:
    """One batch; a search step's batches have a leading seed dimension (one batch per seed, stacked)."""

    images: torch.Tensor  # float ([K,] B, 3, H, W), normalised
    labels: torch.Tensor  # int64 ([K,] B)
    indices: torch.Tensor  # int64 ([K,] B): positions in the half, for per-sample state (SD-DARTS teachers)
    clean: torch.Tensor | None = None  # the same samples unaugmented, when the searcher asks for them

    @classmethod
    def stack(cls, batches: Sequence["Batch"]) -> "Batch":
        """Per-seed batches of equal size as one batch with the seed dimension first."""
        def stacked(name: str) -> torch.Tensor | None:
            parts = [getattr(b, name) for b in batches]
            return None if parts[0] is None else torch.stack(parts)

        return cls(*(stacked(name) for name in ("images", "labels", "indices", "clean")))


class DeviceImages:
    """One half of the search split (or the held-out set), zero-padded once, on the device; normalised images
    have the default dtype at construction (``harness.device.default_dtype``)."""

    def __init__(self, images_nhwc: np.ndarray, labels: np.ndarray, device: torch.device, augmentation: Augmentation,
                 memory_format: torch.memory_format = torch.contiguous_format) -> None:
        images = torch.from_numpy(np.ascontiguousarray(images_nhwc)).permute(0, 3, 1, 2)
        if images.shape[2:] != (augmentation.size, augmentation.size):
            raise ValueError(f"images of {tuple(images.shape[2:])} pixels, the dataset's are {augmentation.size}")
        self.pad, self.size = augmentation.padding, augmentation.size
        self.padded = torch.nn.functional.pad(images, (self.pad,) * 4).contiguous().to(device)
        self.labels = torch.from_numpy(np.asarray(labels, dtype=np.int64)).to(device)
        self.device = torch.device(device)
        self.memory_format = memory_format
        std, mean = torch.tensor(augmentation.std), torch.tensor(augmentation.mean)
        self.scale = (1.0 / (255.0 * std)).view(1, 3, 1, 1).to(device)
        self.shift = (mean / std).view(1, 3, 1, 1).to(device)

    def __len__(self) -> int:
        return self.labels.shape[0]

    def normalise(self, images_uint8: torch.Tensor) -> torch.Tensor:
        return (images_uint8.to(self.scale.dtype) * self.scale - self.shift).contiguous(
            memory_format=self.memory_format)

    def batches(self, batch_size: int, generator: torch.Generator, augment: bool = True,
                with_clean: bool = False) -> Iterator[Batch]:
        """One pass over the half in a random order (last batch smaller, as the reference's DataLoader);
        ``with_clean``: each batch also carries its images unaugmented."""
        count, pad, size = len(self), self.pad, self.size
        order = torch.randperm(count, generator=generator)
        offsets = torch.randint(0, 2 * pad + 1, (count, 2), generator=generator)
        flips = torch.rand(count, generator=generator) < 0.5
        order, offsets, flips = order.to(self.device), offsets.to(self.device), flips.to(self.device)
        steps = torch.arange(size, device=self.device)
        for start in range(0, count, batch_size):
            idx = order[start:start + batch_size]
            padded = images = self.padded[idx]
            if augment:
                rows = offsets[start:start + batch_size, :1] + steps
                cols = offsets[start:start + batch_size, 1:] + torch.where(
                    flips[start:start + batch_size, None], size - 1 - steps, steps)
                b = idx.shape[0]
                images = images.gather(2, rows[:, None, :, None].expand(b, 3, size, size + 2 * pad))
                images = images.gather(3, cols[:, None, None, :].expand(b, 3, size, size))
            else:
                images = self._unpadded(images)
            clean = self.normalise(self._unpadded(padded)) if with_clean else None
            yield Batch(self.normalise(images), self.labels[idx], idx, clean)

    def steps_per_epoch(self, batch_size: int) -> int:
        return -(-len(self) // batch_size)

    def fixed_batches(self, images: int, batch_size: int) -> list[Batch]:
        """The first ``images`` images in stored order, unaugmented, in batches: the same images every epoch."""
        order = torch.arange(min(len(self), images), device=self.device)
        return [Batch(self.normalise(self._unpadded(self.padded[idx])), self.labels[idx], idx)
                for idx in order.split(batch_size)]

    def _unpadded(self, padded: torch.Tensor) -> torch.Tensor:
        return padded[:, :, self.pad:self.pad + self.size, self.pad:self.pad + self.size]


def epoch_generator(seed: int, epoch: int, stream: int) -> torch.Generator:
    """A CPU generator that depends only on (seed, epoch, stream): resumable and device-independent."""
    return torch.Generator().manual_seed(((seed * 1_000_003 + epoch) * 101 + stream) % (2**63))


class SearchData:
    """The weight half and the architecture half; one epoch yields (weight batch, architecture batch) pairs."""

    def __init__(self, weight_half: DeviceImages, arch_half: DeviceImages) -> None:
        self.weight_half = weight_half
        self.arch_half = arch_half

    def steps_per_epoch(self, batch_size: int) -> int:
        return self.weight_half.steps_per_epoch(batch_size)

    def epoch(self, seed: int, epoch: int, batch_size: int, with_clean: bool = False) -> Iterator[tuple[Batch, Batch]]:
        """Pairs as NB201's search loader: every weight-half image once per epoch; architecture batches from
        an independent pass over the other half (cycled if it is shorter: CIFAR-100's and ImageNet16-120's
        architecture halves are a tenth and a fiftieth of their weight halves; the reference draws each
        architecture image at random, with replacement)."""
        weight_batches = self.weight_half.batches(batch_size, epoch_generator(seed, epoch, 0), with_clean=with_clean)
        arch_gen = epoch_generator(seed, epoch, 1)
        arch_batches = self.arch_half.batches(batch_size, arch_gen, with_clean=with_clean)
        for weight_batch in weight_batches:
            arch_batch = next(arch_batches, None)
            if arch_batch is None:
                arch_batches = self.arch_half.batches(batch_size, arch_gen, with_clean=with_clean)
                arch_batch = next(arch_batches)
            yield weight_batch, arch_batch

    def seed_epochs(self, seeds: Sequence[int], epoch: int, batch_size: int,
                    with_clean: bool = False) -> Iterator[tuple[Batch, Batch]]:
        """Each seed's own ``epoch`` (order, augmentation), the seeds' batches stacked step by step."""
        for pairs in zip(*(self.epoch(seed, epoch, batch_size, with_clean) for seed in seeds)):
            weight_batches, arch_batches = zip(*pairs)
            yield Batch.stack(weight_batches), Batch.stack(arch_batches)
