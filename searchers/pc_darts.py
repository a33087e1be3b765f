"""``pc_darts``: partial channel connections and edge normalisation (Xu et al., ICLR 2020).

PC-DARTS (Section 3.1-3.2; ``MixedOp``, ``Cell`` and ``train_search.py`` of the reference ``yuhuixu1993/PC-DARTS``):
each edge's ops see only 1/K of its input channels (K = 4), the rest bypass them, and the channels are shuffled
(``partial_channels``, built into the supernet); each node's input is the sum of its incoming edges scaled by a
softmax of per-edge parameters beta over those edges (``edge_normalisation``: beta is one more architecture
parameter, trained with alpha by the same Adam); the architecture is not updated during the first 15 epochs
(``if epoch >= 15: architect.step(...)``, 0-based). On NB201 every edge is kept, so beta changes the search but not
the derivation: the genotype is the argmax of alpha per edge (beta scales all ops of an edge alike).

Settings: no NB201 reference exists, so the paper's CIFAR-10 search where they are PC-DARTS's own (Section 4.2):
batch 256, weight learning rate 0.1 (cosine to 0.001, as the V100 version of the code), architecture learning
rate 6e-4, warm-up 15 epochs; the rest is NB201's DARTS protocol (50 epochs, weight decay 5e-4; the paper uses
3e-4 in the DARTS space). The weights' SGD has plain momentum, as the reference's ``train_search.py``
(``torch.optim.SGD(..., momentum=args.momentum, weight_decay=args.weight_decay)``, no Nesterov): the paper preset
sets ``w_nesterov`` false; the reduced presets keep the harness's Nesterov momentum (DARTS's NB201 optimiser).
Interpretation: NB201's ops have no BN after pooling, so none is added (the reference adds one to its pooling ops
in the DARTS space).

At the reduced width (C = 4) with K = 4 the ops of the three stages see 1, 2 and 4 channels (the paper's C = 16:
4, 8 and 16): a one-channel convolution and BN is a degenerate op, so reduced-preset PC-DARTS results say little
about PC-DARTS at scale (``--set partial_channels=2`` gives 2, 4 and 8).
"""
from __future__ import annotations

from typing import Any

import torch
from pydantic import Field
from torch.nn import functional as F

from benchmarks.data_stream import Batch
from foundation.options import OptionSet
from searchers.context import EpochStats
from searchers.darts import Darts


class PcDarts(Darts):
    name = "pc_darts"
    summary = "PC-DARTS: partial channel connections (K=4), edge normalisation (Xu et al., ICLR 2020)"
    paper_overrides = {"batch_size": 256, "w_lr": 0.1, "a_lr": 6e-4, "w_nesterov": False}

    class Options(OptionSet):
        partial_channels: int = Field(4, ge=1, le=64, description="K: 1/K of the channels go through the ops "
                                                                  "(Section 3.1)")
        edge_normalisation: bool = Field(True, description="beta per edge, softmax over a node's inputs (3.2)")
        warmup_epochs: int = Field(15, ge=0, description="epochs before the first architecture step "
                                                        "(train_search.py: epoch >= 15)")

    # reduced presets: K must divide the channels (smoke: C=2); warm up for the paper's 30 % of the epochs
    preset_options = {"quick": {"warmup_epochs": 2}, "reduced": {"warmup_epochs": 5},
                      "smoke": {"partial_channels": 2, "warmup_epochs": 1}}
    graph_capturable = True  # the warm-up branch is taken per epoch: each epoch's graph has one

    @classmethod
    def supernet_features(cls, options: OptionSet) -> dict[str, Any]:
        """Partial channels; edge normalisation only when on (NAS-Bench-1shot1's supernet has none: its PC-DARTS
        runs with ``edge_normalisation=false``)."""
        return {"partial_channels": options.partial_channels,
                **({"edge_normalisation": True} if options.edge_normalisation else {})}

    def expected_arch_weights(self) -> list[torch.Tensor]:
        """DARTS's softmaxes and, with edge normalisation, the edge scales from beta (the supernet's last
        architecture parameter then) by the supernet's ``normalised_edges``."""
        if not self.options.edge_normalisation:
            return super().expected_arch_weights()
        *alphas, betas = self.alphas
        return [*(F.softmax(alpha, dim=-1) for alpha in alphas),
                self.supernet.feature("normalised_edges", self.name)(betas)]

    def arch_step(self, weight_batch: Batch, arch_batch: Batch, stats: EpochStats) -> None:
        if self.epoch > self.options.warmup_epochs:
            super().arch_step(weight_batch, arch_batch, stats)
