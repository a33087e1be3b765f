"""``spos``: single-path one-shot — train the supernet on uniformly sampled cells, then pick a cell by search.

SPOS (Guo et al., ECCV 2020, Section 3) / RSPS, NB201's "random search with parameter sharing" (Li & Talwalkar,
UAI 2019; the NB201 reference's ``RANDOM-NAS.py``): every weight step trains one cell drawn uniformly (one op per
edge, every edge, each seed from its own stream); the architecture parameters are never trained. The cell the
search returns is chosen with the shared weights: ``candidates`` cells drawn uniformly, each scored by its
accuracy on one batch of the architecture half (the reference's ``search_find_best``: ``select_num`` = 100
candidates, each on the next batch of 512 of the validation loader, whose images have the test transform, the
network in eval mode, run after every epoch and once at the end), the best kept. Here that selection runs after
every epoch on the architecture-half images the epoch drew, unaugmented: candidate i is scored on the i-th run of
``selection_images`` (512) of them, wrapping around when the epoch drew fewer (the reference's loader restarts),
so each epoch's record is the cell the search would return if it stopped there. NB201 settings
(``configs/nas-benchmark/algos/RANDOM.config``): 250 epochs, otherwise DARTS's weight optimiser (SGD 0.025 ->
0.001 cosine, Nesterov momentum 0.9, weight decay 5e-4, batch 64, clip 5).

Interpretations, documented: a drawn cell is run as the supernet with one-hot mixing weights, so the ops not
drawn get zero gradients and still take SGD's weight decay and momentum (the reference computes only the drawn
ops; with ``zero_grad`` keeping zero gradients, PyTorch < 2.0, it updates them the same way); the Hessian of the
architecture loss is not recorded (the architecture parameters do not shape the loss). The random selection is
the RSPS of NB201 and TSE's tables; SPOS's evolutionary search (its Section 3.4) is not implemented. Spaces whose
architecture parameters also mix a node's inputs (NAS-Bench-1shot1, whose Random-WS draws k parents of n) are
refused: a uniform one-hot row there would train cells the space's derivation never returns.

TSE Tables 1 and 3 reprint NATS-Bench's RSPS as "SPOS" (``weight-sharing.config``: 100 epochs, no gradient
clipping, cells drawn until every node has an input that is not ``none``; ``sweeps/tse_table3_nats.yaml`` runs
ours at 100 epochs).
"""
from __future__ import annotations

from typing import Any

import torch
from pydantic import Field
from torch.nn import functional as F

from benchmarks.data_stream import Batch
from foundation.errors import UserError
from foundation.options import OptionSet
from searchers.context import EpochStats
from searchers.darts import Darts


class Spos(Darts):
    name = "spos"
    summary = "SPOS / RSPS: uniform single-path supernet training, then random search with the shared weights"
    paper_overrides = {"epochs": 250}  # RANDOM.config of the NB201 reference

    class Options(OptionSet):
        candidates: int = Field(100, ge=1, le=100_000, description="cells scored per selection (RANDOM-NAS.py "
                                                                   "--select_num)")
        selection_images: int = Field(512, ge=1, le=1_000_000, description="unaugmented images per candidate's "
                                                                           "score (the valid loader's batch, 512)")

    preset_options = {"smoke": {"candidates": 4, "selection_images": 64}}
    hessian_defined = False
    alternates = False  # weight steps only
    graph_capturable = False  # keeps the epoch's architecture-half images for the selection
    checkpointed = ("selected",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if len(self.alphas) != len(self.supernet.op_choice_parameters):
            raise UserError("spos draws one op per edge: this space's supernet also has architecture parameters "
                            "that mix a node's inputs (drawing k of n parents is not implemented)")
        self.selected = [torch.zeros_like(alpha) for alpha in self.alphas]  # one-hot; all zero before epoch 1
        self.wants_clean_images = True
        self.scoring_batches: list[tuple[torch.Tensor, torch.Tensor]] = []  # the epoch's (clean images, labels)

    def uniform_cells(self) -> list[torch.Tensor]:
        """One-hot rows, one op per row drawn uniformly, each seed from its own stream."""
        return [self.per_seed(lambda _, generator: F.one_hot(
                    torch.randint(alpha.shape[-1], alpha.shape[1:-1], generator=generator, device=self.device),
                    alpha.shape[-1]).to(alpha.dtype)) for alpha in self.alphas]

    def arch_weights(self) -> list[torch.Tensor]:
        return self.uniform_cells()

    def expected_arch_weights(self) -> list[torch.Tensor]:
        """The cell the last selection returned."""
        return self.selected

    def step(self, weight_batch: Batch, arch_batch: Batch, weight_stats: EpochStats, arch_stats: EpochStats) -> None:
        self.weight_step(weight_batch, weight_stats)
        self.scoring_batches.append((arch_batch.clean, arch_batch.labels))

    def end_epoch(self, epoch: int) -> None:
        """Score ``candidates`` uniform cells, each on the next ``selection_images`` of the epoch's unaugmented
        architecture-half images (wrapping around), in eval mode."""
        images = torch.cat([clean for clean, _ in self.scoring_batches], dim=1)  # (K, N, ...)
        labels = torch.cat([labels for _, labels in self.scoring_batches], dim=1)
        size = min(self.options.selection_images, images.shape[1])
        best = torch.full((self.seeds,), -1.0, device=self.device)
        self.supernet.eval()
        with torch.no_grad():
            for index in range(self.options.candidates):
                cell = self.uniform_cells()
                rows = (torch.arange(size, device=self.device) + index * size) % images.shape[1]
                accuracy = (self.supernet(images[:, rows], cell).argmax(-1) == labels[:, rows]).double().mean(-1)
                better = accuracy > best
                best = torch.where(better, accuracy, best)
                self.selected = [torch.where(better.view(-1, *[1] * (new.dim() - 1)), new, old)
                                 for new, old in zip(cell, self.selected)]
        self.supernet.train()
        self.scoring_batches = []
