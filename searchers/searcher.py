"""The ``Searcher`` contract: the hooks a searcher may override and the machinery it shares.

The hooks' defaults are DARTS first order (``searchers.darts`` declares it): one search step = one architecture
step on an architecture-half batch, then one weight step on a weight-half batch (Liu et al. 2019, Alg. 1,
first-order approximation xi = 0). A searcher says only how it differs: the architecture weights it feeds the
supernet (DrNAS samples a Dirichlet), the losses (SD-DARTS adds a distillation term), the architecture gradient
(second order, TSE), or extra state. The epoch loop, records and checkpoints live in ``harness`` and never in a
searcher.

Optimisers and schedule are those of the NB201 reference search (``configs/nas-benchmark/algos/DARTS.config``
and ``DARTS-V1.py`` in AutoDL-Projects): SGD with Nesterov momentum for the weights, cosine-annealed per step
over fractional epochs, gradient-norm clipping of the weights; Adam for the architecture parameters.
"""
from __future__ import annotations

import inspect
import math
from typing import Any, Callable, ClassVar, Literal

import torch
from torch.nn import functional as F

from benchmarks.data_stream import Batch
from foundation.options import OptionSet
from searchers.context import EpochStats, OptimConfig, SearchContext
from searchers.seeds import SeedStack, clip_grad_norm_per_seed, seed_cross_entropy

# What a subclass may override (besides the class attributes below); anything else is the shared machinery.
HOOKS = frozenset({"__init__", "supernet_features", "steps_per_update", "arch_weights", "expected_arch_weights",
                   "arch_loss", "weight_loss", "arch_gradient", "arch_step", "weight_step", "step", "begin_epoch",
                   "end_epoch", "epoch_report"})


class Searcher:
    """Every searcher is a subclass that says only how it differs from DARTS, by overriding hooks (``HOOKS``) and
    declaring class attributes.

    Class attributes: ``name`` (registry key and run-folder name), ``summary`` (one line for ``harness list``),
    ``Options`` (an ``OptionSet`` of the searcher's own hyper-parameters, each with type, range and default:
    settable by ``--set`` and sweep files), ``paper_overrides`` (run fields whose published value differs from
    DARTS's), ``preset_options`` (per reduced preset: option values that fit it), ``uses_validation_set`` (False:
    the architecture half is training data), ``graph_capturable`` (opt-in, declared by each class for itself,
    never inherited: the step is a fixed sequence of device ops that ``harness.graphed`` may capture) and
    ``hessian_defined`` (False: the architecture parameters do not
    shape the loss at ``expected_arch_weights``, so diagnostics record no Hessian eigenvalue) and
    ``supernet_needs`` (the optional supernet features it calls, ``benchmarks.supernet.OPTIONAL_FEATURES``: a space
    without one is refused when the run or sweep is configured, before anything starts) and ``diagnosed_network``
    (the network whose Hessian and accuracy the diagnostics take, so that they mean the same for every searcher:
    ``expected``, at ``expected_arch_weights``, the mixed network the DARTS family trains; ``trained``, at
    ``arch_weights``, deterministic and not the expected ones, e.g. DARTS-'s auxiliary skip; ``untrained``, at
    ``expected_arch_weights`` although the searcher trains sampled networks: its Hessian, supernet accuracy and
    gap are not comparable with the DARTS family's, and the report says so), ``alternates`` (False: a step is
    not one architecture step and one weight step, e.g. single-level or windowed updates, so the run's
    ``step_order`` has no meaning and ``weights_first`` is refused) and ``paper_step_order`` (the paper preset's
    ``step_order``: that of the code its published NB201 row came from; declared by each class for itself, never
    inherited, default ``arch_first``).

    Hooks: ``supernet_features`` (a class method: what the searcher needs its supernet built with, e.g. PC-DARTS's
    partial channels; the space's ``build_supernet`` takes them), ``steps_per_update`` (a class method: the steps
    whose work the searcher may defer to the last of them, e.g. TSE's window; ``harness bench`` times whole
    multiples of it), ``arch_weights`` (mixing weights fed to the
    supernet in search; ``SampledWeights`` for a sampled forward), ``expected_arch_weights`` (deterministic
    ones, for derivation and diagnostics), ``arch_loss`` / ``weight_loss``, ``arch_gradient``,
    ``arch_step`` / ``weight_step`` (one update each: override these, not ``step``, to change one of them, so
    that the run's ``step_order`` still applies), ``step`` (both, in the run's ``step_order``; overridden only by
    a searcher whose step is not that alternation, which then declares ``alternates`` false),
    ``begin_epoch`` / ``end_epoch``, ``epoch_report`` (per seed, a few numbers the epoch's record keeps: an early
    stopper's stop) and ``__init__``
    (call ``super().__init__`` first). ``self.options`` is the validated ``Options``; ``self.wants_clean_images``
    (set in ``__init__``, default False) asks for batches that also carry their images unaugmented (``Batch.clean``).

    A searcher runs K seeds at once (``searchers.seeds``; K = 1 for a lone seed): the supernet is a
    ``SeedStack`` (``arch_parameters()``, ``weight_parameters()``, ``forward(images, arch_weights)``), every
    tensor has the seed dimension first, losses are per seed, (K,), and are summed before differentiating;
    per-seed norms come from ``seeds.seed_norms``; random draws come from seed k's own stream
    (``self.per_seed``; reseeded by the run at each epoch). State a searcher keeps beyond the supernet and
    optimisers is named by ``checkpointed`` (attributes a checkpoint carries, so that a resume is exact), each
    tensor with the seed dimension first or 0-dim (shared by the seeds). The supernet is the
    space's (``benchmarks.supernet.Supernet``) stacked over seeds: its optional features are reached through the
    stack (``self.supernet.feature``), never through its inner module.
    """

    class Options(OptionSet):
        """No hyper-parameters beyond the run's optimiser fields."""

    name: ClassVar[str]
    summary: ClassVar[str]
    paper_overrides: ClassVar[dict[str, Any]] = {}
    preset_options: ClassVar[dict[str, dict[str, Any]]] = {}
    uses_validation_set: ClassVar[bool] = True
    graph_capturable: ClassVar[bool] = False
    hessian_defined: ClassVar[bool] = True
    supernet_needs: ClassVar[tuple[str, ...]] = ()
    diagnosed_network: ClassVar[Literal["expected", "trained", "untrained"]] = "expected"
    alternates: ClassVar[bool] = True
    paper_step_order: ClassVar[Literal["arch_first", "weights_first"]] = "arch_first"
    checkpointed: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.graph_capturable = bool(vars(cls).get("graph_capturable", False))  # opt-in: a subclass may add host logic
        # the order of the code that produced the class's own published row: a subclass has another reference
        cls.paper_step_order = vars(cls).get("paper_step_order", "arch_first")
        machinery = {key for key, value in vars(cls).items() if key in vars(Searcher) and
                     (inspect.isfunction(value) or isinstance(value, (classmethod, staticmethod, property)))} - HOOKS
        if machinery:
            raise TypeError(f"{cls.__qualname__} overrides {', '.join(sorted(machinery))}: a searcher may override "
                            f"only the hooks {', '.join(sorted(HOOKS))}")

    def __init__(self, supernet: SeedStack, optim: OptimConfig, context: SearchContext,
                 options: dict[str, Any]) -> None:
        self.supernet = supernet
        self.optim = optim
        self.context = context
        self.options = self.Options(**options)
        self.epoch = 0
        self.seeds = supernet.seeds
        self.wants_clean_images = False
        self.device = next(supernet.parameters()).device
        self.generators = [torch.Generator(self.device) for _ in range(self.seeds)]
        self.alphas = list(supernet.arch_parameters())
        self.weights = list(supernet.weight_parameters())
        self.w_opt = torch.optim.SGD(self.weights, lr=optim.w_lr, momentum=optim.w_momentum,
                                     weight_decay=optim.w_weight_decay, nesterov=optim.w_nesterov)
        self.a_opt = torch.optim.Adam(self.alphas, lr=optim.a_lr, betas=(optim.a_beta1, optim.a_beta2),
                                      weight_decay=optim.a_weight_decay)

    # --- what subclasses override -------------------------------------------------------------------------
    @classmethod
    def supernet_features(cls, options: OptionSet) -> dict[str, Any]:
        """Keyword arguments for the space's ``build_supernet`` (DARTS: none)."""
        return {}

    @classmethod
    def steps_per_update(cls, options: OptionSet) -> int:
        """Steps that make one whole update (DARTS: each step is one)."""
        return 1

    def arch_weights(self) -> list[torch.Tensor]:
        """Mixing weights fed to the supernet during search: DARTS feeds its deterministic ones (a softmax over
        each row of alphas); sampling searchers draw here."""
        return self.expected_arch_weights()

    def expected_arch_weights(self) -> list[torch.Tensor]:
        """Deterministic mixing weights (differentiable): those whose row-wise argmax is the genotype and at
        which diagnostics evaluate the supernet (DARTS: the softmax itself)."""
        return [F.softmax(alpha, dim=-1) for alpha in self.alphas]

    def derivation_weights(self) -> list[torch.Tensor]:
        with torch.no_grad():
            return self.expected_arch_weights()

    def diagnosed_weights(self) -> list[torch.Tensor]:
        """The mixing weights of the network the diagnostics evaluate (``diagnosed_network``), differentiable."""
        return self.arch_weights() if self.diagnosed_network == "trained" else self.expected_arch_weights()

    def arch_loss(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-seed loss (K,) and logits of the architecture step."""
        logits = self.supernet(batch.images, self.arch_weights())
        return seed_cross_entropy(logits, batch.labels), logits

    def weight_loss(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-seed loss (K,) and logits of the weight step."""
        logits = self.supernet(batch.images, self.arch_weights())
        return seed_cross_entropy(logits, batch.labels), logits

    def arch_gradient(self, weight_batch: Batch,
                      arch_batch: Batch) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        """Gradient of the architecture objective w.r.t. alphas (first order: of the validation loss at the
        current weights; only input gradients flow through the convolutions, no weight gradients)."""
        loss, logits = self.arch_loss(arch_batch)
        return list(torch.autograd.grad(loss.sum(), self.alphas)), loss, logits

    def epoch_report(self) -> list[dict[str, float | int | bool]]:
        """Per seed, what the searcher says of its own state after an epoch, stored in the epoch's record
        (``searcher_state``): whether an early stopper has stopped, a weight decay it raised (DARTS: nothing)."""
        return [{} for _ in range(self.seeds)]

    def begin_epoch(self, epoch: int) -> None:
        """Hook before the first step of ``epoch`` (1-based)."""
        self.epoch = epoch

    def end_epoch(self, epoch: int) -> None:
        """Hook after the last step of ``epoch``."""

    # --- shared machinery ---------------------------------------------------------------------------------
    def per_seed(self, draw: Callable[[int, torch.Generator], Any]) -> Any:
        """Seed k's draw from seed k's own stream, stacked over seeds: ``draw(k, generator)`` returns a tensor,
        or a tuple of tensors (each stacked)."""
        draws = [draw(seed, generator) for seed, generator in enumerate(self.generators)]
        if isinstance(draws[0], tuple):
            return tuple(torch.stack(parts) for parts in zip(*draws))
        return torch.stack(draws)

    def reseed(self, seeds: list[int]) -> None:
        """Start each seed's random stream afresh (the run does so at every epoch: exact resume)."""
        for generator, seed in zip(self.generators, seeds, strict=True):
            generator.manual_seed(seed)

    def per_epoch_linear(self, start: float, end: float) -> float:
        """A value that moves linearly, epoch by epoch, from ``start`` in the first epoch towards ``end``:
        ``start + (end - start) * (epoch - 1) / epochs`` (the schedules of beta-DARTS's lambda and SDARTS's
        epsilon)."""
        return start + (end - start) * (max(self.epoch, 1) - 1) / self.optim.epochs

    def set_learning_rate(self, epoch: int, step: int) -> float:
        """Cosine annealing from ``w_lr`` towards ``w_lr_min``: over fractional epochs (``per_step``), or constant
        within an epoch (``per_epoch``): xautodl's ``CosineAnnealingLR.get_lr`` (``procedures/optimizers.py``)
        reads only the epoch, ``eta_min + (base - eta_min) * (1 + cos(pi * e / T_max)) / 2`` for the 0-based epoch
        e with T_max = the epochs; the step it is also given counts only in warm-up, which NB201's DARTS.config
        does not have (``warmup`` 0)."""
        within = step / self.context.steps_per_epoch if self.optim.lr_schedule == "per_step" else 0.0
        progress = (epoch - 1 + within) / self.optim.epochs
        lr = self.optim.w_lr_min + 0.5 * (self.optim.w_lr - self.optim.w_lr_min) * (1 + math.cos(math.pi * progress))
        for group in self.w_opt.param_groups:
            if isinstance(group["lr"], torch.Tensor):
                group["lr"].fill_(lr)  # a captured step reads it from the device
            else:
                group["lr"] = lr
        return lr

    def use_tensor_learning_rate(self, device: torch.device, capturable: bool) -> None:
        """Optimiser settings for a step replayed from a CUDA graph: the weights' learning rate as a device
        tensor read by fused SGD (the schedule writes into it) and, when captured, Adam's step count on the
        device. Same update rules; fused SGD may round differently in the last bit."""
        for group in self.w_opt.param_groups:
            rate = torch.tensor(float(group["lr"]), device=device,  # float32, or float64 for float64 weights
                                dtype=torch.promote_types(self.weights[0].dtype, torch.float32))
            group.update(lr=rate, fused=True, foreach=None)
        if capturable:
            for group in self.a_opt.param_groups:
                group["capturable"] = True
            for state in self.a_opt.state.values():
                if "step" in state:
                    state["step"] = state["step"].to(device)

    def arch_step(self, weight_batch: Batch, arch_batch: Batch, stats: EpochStats) -> None:
        grads, loss, logits = self.arch_gradient(weight_batch, arch_batch)
        for alpha, grad in zip(self.alphas, grads):
            alpha.grad = grad
        self.a_opt.step()
        stats.add(loss, logits, arch_batch.labels)

    def weight_step(self, batch: Batch, stats: EpochStats) -> None:
        self.w_opt.zero_grad(set_to_none=True)
        loss, logits = self.weight_loss(batch)
        loss.sum().backward(inputs=self.weights)
        clip_grad_norm_per_seed(self.weights, self.optim.grad_clip)
        self.w_opt.step()
        stats.add(loss, logits, batch.labels)

    def step(self, weight_batch: Batch, arch_batch: Batch, weight_stats: EpochStats, arch_stats: EpochStats) -> None:
        """One architecture step and one weight step, in the run's ``step_order``: ``arch_first`` as DARTS's
        Algorithm 1 and code (and PC-DARTS, DARTS-, nasbench-1shot1), ``weights_first`` as xautodl's NB201
        DARTS-V1 and GDAS (``search_func``: "update the weights" before "update the architecture-weight")."""
        if self.optim.step_order == "weights_first":
            self.weight_step(weight_batch, weight_stats)
            self.arch_step(weight_batch, arch_batch, arch_stats)
        else:
            self.arch_step(weight_batch, arch_batch, arch_stats)
            self.weight_step(weight_batch, weight_stats)

    def state_dict(self) -> dict[str, Any]:
        return {"w_opt": self.w_opt.state_dict(), "a_opt": self.a_opt.state_dict(), "extra": self.extra_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.w_opt.load_state_dict(state["w_opt"])
        self.a_opt.load_state_dict(state["a_opt"])
        self.load_extra_state(state["extra"])

    def extra_state(self) -> dict[str, Any]:
        """The attributes named by ``checkpointed``. A per-seed (K,) tensor goes as (K, 1): a checkpoint holds each
        seed's part, and a 0-dim part is taken as a value shared by the seeds (``seeds.stack_seeds``)."""
        return {name: _seed_column(getattr(self, name)) for name in self.checkpointed}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        for name in self.checkpointed:
            now, value = getattr(self, name), state[name]
            setattr(self, name, value.reshape(-1) if isinstance(now, torch.Tensor) and now.dim() == 1 else value)


def _seed_column(value: Any) -> Any:
    return value[:, None] if isinstance(value, torch.Tensor) and value.dim() == 1 else value
