"""``sd_darts`` and ``sd_darts_voted``: DARTS with self-distillation from the previous epochs' outputs.

SD-DARTS (Zhu et al., arXiv 2302.05629, Section 3.3, Algorithm 1; voting teachers Section 3.4, Algorithm 2):
after a warm-up of xi epochs of plain DARTS, both the architecture step and the weight step minimise
``CE + lambda * H(f_S(x), f_T(x))``, H the KL divergence written in the paper with the student first,
``sum_i f_S(x_i) log(f_S(x_i) / f_T(x_i))``. The teacher is not a second network: as the paper proposes
(Section 3.3), each sample's softmax output from the previous epoch is stored by sample index (both halves of the
split) and read back; the voted teacher is the mean of the previous K epochs' stored outputs (Eq. in Alg. 2).

Hyper-parameters (Table 1): xi = 25 warm-up epochs of E = 50, lambda = 1.0; K = 1 for ``sd_darts`` (the
single-teacher method of Section 3.3), K = 2 for ``sd_darts_voted`` (Table 1's time window). The NB201 search
otherwise uses DARTS's NB201 settings (Section 4.4: "the same as DARTS").

Interpretations, documented: a sample's teacher is used only when all K previous epochs stored it. Which output
is stored is an option (``teacher_view``): Section 3.3 stores "the output probability of the supernet at the
previous time step, i.e., fT(x)" and Section 4.5 says the method only needs "to preserve the logits from previous
training steps". Default ``augmented``: the student's softmax at the moment it was trained on the sample (the
augmented view of that epoch, training-mode BN), which costs nothing extra and is what "logits from previous
training steps" are; ``clean``: the softmax of one extra forward pass (no gradient) on the un-augmented image at
the same step, closer to fT(x) of the formula, at about a third of a step's cost more (its batch statistics
also enter the BN running averages, which the search never uses: BN normalises by batch statistics). The KL term's
reduction is an option (``kl_reduction``): Section 3.3 writes H as a sum over the samples of a batch, next to a
cross-entropy that every implementation averages over the batch; with the sum, lambda = 1 would weigh the distillation
term 64 times the cross-entropy at batch 64, which Table 1's single lambda = 1 for every search space and batch size
does not suggest. Default: the batch mean (the two terms on one scale); ``sum`` follows the formula as written.
"""
from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field
from torch.nn import functional as F

from benchmarks.data_stream import Batch
from foundation.options import OptionSet
from searchers.darts import Darts
from searchers.seeds import seed_cross_entropy

KlDirection = Literal["student_teacher", "teacher_student"]
KlReduction = Literal["batch_mean", "sum"]
TeacherView = Literal["augmented", "clean"]
HALVES = ("weight", "arch")


def distillation_kl(student_logits: torch.Tensor, teacher_probs: torch.Tensor, direction: KlDirection) -> torch.Tensor:
    """Per-sample KL(student || teacher) (the paper's H) or KL(teacher || student) over the last dimension; the
    teacher is constant."""
    teacher_probs = teacher_probs.detach()
    log_student = F.log_softmax(student_logits.to(torch.promote_types(student_logits.dtype, torch.float32)), dim=-1)
    log_teacher = torch.log(teacher_probs.clamp_min(1e-12))
    if direction == "student_teacher":
        return (log_student.exp() * (log_student - log_teacher)).sum(dim=-1)
    return (teacher_probs * (log_teacher - log_student)).sum(dim=-1)


class SdDarts(Darts):
    name = "sd_darts"
    summary = "SD-DARTS: self-distillation from the previous epoch's outputs (Zhu et al., arXiv 2302.05629)"

    class Options(OptionSet):
        warmup_epochs: int = Field(25, ge=0, description="xi, plain DARTS epochs before distilling (Table 1, Fig. 5)",
                                   json_schema_extra={"figure": "SD-DARTS Fig. 5"})
        distill_weight: float = Field(1.0, ge=0, le=1e6, description="lambda (Table 1)")
        teacher_epochs: int = Field(1, ge=1, le=1000, description="K, previous epochs averaged (Table 1, Fig. 6)",
                                    json_schema_extra={"figure": "SD-DARTS Fig. 6"})
        kl_direction: KlDirection = Field("student_teacher", description="H as written (Section 3.3) or reversed")
        kl_reduction: KlReduction = Field("batch_mean", description="H over a batch: mean, or the sum as written "
                                                                    "in Section 3.3")
        teacher_view: TeacherView = Field("augmented", description="stored output: of the training step (augmented, "
                                                                   "Section 4.5) or of the clean image (fT(x), 3.3)")

    # reduced presets keep the paper's proportion: warm up for half of the epochs
    preset_options = {"quick": {"warmup_epochs": 4}, "reduced": {"warmup_epochs": 8}, "smoke": {"warmup_epochs": 1}}
    graph_capturable = True  # distilling or not is decided per epoch; teachers are read and stored on the device
    checkpointed = ("previous",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.current = {half: torch.full((self.seeds, size, self.context.num_classes), float("nan"),
                                         device=self.device) for half, size in zip(HALVES, self.context.half_sizes)}
        self.seed_rows = torch.arange(self.seeds, device=self.device)[:, None]  # pairs with (K, B) sample indices
        self.previous: list[dict[str, torch.Tensor]] = []  # newest first, at most teacher_epochs entries
        self.wants_clean_images = self.options.teacher_view == "clean"

    def teacher(self, half: str, indices: torch.Tensor) -> torch.Tensor:
        """Mean of the previous K epochs' stored probabilities of these samples (NaN rows: not yet stored)."""
        return torch.stack([epoch[half][self.seed_rows, indices] for epoch in self.previous]).mean(dim=0)

    def distilling(self) -> bool:
        return self.epoch > self.options.warmup_epochs and len(self.previous) == self.options.teacher_epochs

    def _loss(self, batch: Batch, half: str) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.supernet(batch.images, self.arch_weights())
        loss = seed_cross_entropy(logits, batch.labels)
        stored = self.current[half]
        if self.wants_clean_images:
            with torch.no_grad():
                output = self.supernet(batch.clean, self.arch_weights())
        else:
            output = logits.detach()
        stored[self.seed_rows, batch.indices] = F.softmax(output, dim=-1).to(stored.dtype)
        if self.distilling():
            teacher = self.teacher(half, batch.indices)
            known = ~torch.isnan(teacher).any(dim=-1)  # (K, B)
            per_sample = distillation_kl(logits, torch.nan_to_num(teacher, nan=1.0), self.options.kl_direction)
            kl = torch.where(known, per_sample, 0.0).sum(dim=-1)  # over the samples with a teacher
            if self.options.kl_reduction == "batch_mean":
                kl = kl / known.sum(dim=-1)
            loss = loss + self.options.distill_weight * torch.nan_to_num(kl)  # no known teacher: no term
        return loss, logits

    def arch_loss(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        return self._loss(batch, "arch")

    def weight_loss(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        return self._loss(batch, "weight")

    def end_epoch(self, epoch: int) -> None:
        self.previous = [self.current, *self.previous][: self.options.teacher_epochs]
        self.current = {half: torch.full_like(stored, float("nan")) for half, stored in self.current.items()}


class SdDartsVoted(SdDarts):
    """Voting teachers (Section 3.4): the teacher is the mean of the previous K = 2 epochs' outputs (Table 1)."""

    name = "sd_darts_voted"
    summary = "SD-DARTS with voting teachers: mean of the previous K=2 epochs' outputs (Section 3.4)"
    graph_capturable = True

    class Options(SdDarts.Options):
        teacher_epochs: int = Field(2, ge=1, le=1000, description="K = 2, Table 1's time window",
                                    json_schema_extra={"figure": "SD-DARTS Fig. 6"})
