"""A whole search step (architecture step + weight step) captured once as a CUDA graph and replayed.

Why: on a GPU the paper-preset step is bound by the host, not the GPU: about 10,700 small kernels per step,
each launched by Python, keep it waiting (docs/timings.md). Replaying a captured graph launches them all with one
call.

What changes nothing in the maths:
- The batch is copied into static input buffers before each replay; augmentation stays outside the graph.
- The weights' learning rate lives in a device tensor updated before each replay (fused SGD reads a tensor
  learning rate), so the per-step cosine schedule goes on; Adam runs with ``capturable`` (its step count on the
  device). Loss/accuracy sums are accumulated on the device and handed to the epoch's ``EpochStats``.
- Capture needs a few warm-up steps (allocator, cuDNN autotuning, optimiser state). They run on the real first
  batch, then everything a step may change is put back as it was (``StepSnapshot``): every parameter, buffer,
  optimiser state and tensor the searcher holds, in place (state created by the warm-up is zeroed: a zero
  momentum buffer and zero Adam moments at step 0 give exactly a fresh optimiser's first step), the searcher's
  other attributes, and each seed's random stream (the first replay draws what the eager first step would).
- A graph holds one epoch: a searcher may change host values between epochs (``begin_epoch``: a temperature, a
  warm-up phase, a regulariser's weight) but not inside one, so the step is captured again at each epoch's first
  batch (one warm-up step after the first epoch's three).
- Batches of another size (an epoch's last, partial batch) run eagerly through the same searcher.

The step is the batched one (``searchers.seeds``): K seeds replay in one graph. The searcher's per-seed
generators are registered with the graph, so random draws inside it (DrNAS) advance each seed's stream per replay.
Only searchers whose step is a fixed sequence of device operations within an epoch (``graph_capturable``: no
host read of a device value, no host state that a step changes) are captured; the others run eagerly.
``use_graph=False`` runs the same static-buffer path without a graph: on a CPU it is what the tests check against
the eager step, for every capturable searcher (``tests/test_graphed.py``).
"""
from __future__ import annotations

import copy
from contextlib import nullcontext
from typing import Callable

import torch

from benchmarks.data_stream import Batch
from searchers.context import EpochStats
from searchers.searcher import Searcher

WARMUP_STEPS = 3


StepFn = Callable[[Batch, Batch, EpochStats, EpochStats], None]


def search_step(searcher: Searcher, device: torch.device, cuda_graphs: bool) -> StepFn:
    """The step function a run (or the benchmark) calls: the searcher's own, or its CUDA-graph replay when
    asked for, on a GPU, for a capturable searcher."""
    if cuda_graphs and device.type == "cuda" and searcher.graph_capturable:
        return GraphedStep(searcher, device, use_graph=True).step
    return searcher.step


class GraphedStep:
    """Static buffers sized by the first batch; captured (or, without a graph, prepared) at each epoch's first
    step."""

    def __init__(self, searcher: Searcher, device: torch.device, use_graph: bool) -> None:
        self.searcher, self.device, self.use_graph = searcher, device, use_graph
        self.static: tuple[Batch, Batch] | None = None
        self.stats = (EpochStats(device, searcher.seeds), EpochStats(device, searcher.seeds))
        searcher.use_tensor_learning_rate(device, capturable=use_graph)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.prepared_epoch: int | None = None

    def _static_step(self) -> None:
        for stats in self.stats:
            stats.sums.zero_()
        self.searcher.step(*self.static, *self.stats)

    def _prepare(self) -> None:
        """Warm up on the static batch, put the state back, capture (CUDA)."""
        snapshot = StepSnapshot(self.searcher)
        self.graph = None  # the previous epoch's graph and its memory go first
        stream = torch.cuda.Stream(self.device) if self.use_graph else None
        if stream is not None:
            stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream) if stream is not None else nullcontext():
            for _ in range(WARMUP_STEPS if self.prepared_epoch is None else 1):
                self._static_step()
        if stream is not None:
            torch.cuda.current_stream(self.device).wait_stream(stream)
        snapshot.restore()
        del snapshot  # its copies would stay allocated through the capture
        if self.use_graph:
            self.graph = torch.cuda.CUDAGraph()
            for generator in self.searcher.generators:  # per-seed streams: each replay draws afresh
                self.graph.register_generator_state(generator)
            with torch.cuda.graph(self.graph):
                self._static_step()
        self.prepared_epoch = self.searcher.epoch

    def step(self, weight_batch: Batch, arch_batch: Batch, weight_stats: EpochStats, arch_stats: EpochStats) -> None:
        batches = (weight_batch, arch_batch)
        if self.static is None:  # the first batch sizes the buffers
            self.static = tuple(Batch(*(None if t is None else t.clone() for t in
                                        (b.images, b.labels, b.indices, b.clean))) for b in batches)
        elif not all(b.labels.shape == s.labels.shape for b, s in zip(batches, self.static)):
            self.searcher.step(weight_batch, arch_batch, weight_stats, arch_stats)  # a partial batch: eager
            return
        else:
            for static, batch in zip(self.static, batches):
                for name in ("images", "labels", "indices", "clean"):
                    if getattr(static, name) is not None:
                        getattr(static, name).copy_(getattr(batch, name))
        if self.prepared_epoch != self.searcher.epoch:  # warm up and capture on this epoch's first batch
            self._prepare()
        if self.graph is not None:
            self.graph.replay()
        else:
            self._static_step()
        size = weight_batch.labels.shape[-1]
        weight_stats.absorb(self.stats[0], size)
        arch_stats.absorb(self.stats[1], size)


class StepSnapshot:
    """What steps may change, taken before the warm-up and put back after it: tensors in place (those the graph
    will read keep their storage), the searcher's attributes (containers copied one level deep, so that one
    grown by a step is restored) and each seed's generator state."""

    def __init__(self, searcher: Searcher) -> None:
        self.searcher = searcher
        self.tensors = {id(t): (t, t.detach().clone()) for t in [*state_tensors(searcher), *held_tensors(searcher)]}
        self.attributes = {key: copy.copy(value) if isinstance(value, (list, dict)) else value
                           for key, value in vars(searcher).items()}
        self.generators = [generator.get_state() for generator in searcher.generators]

    def restore(self) -> None:
        vars(self.searcher).clear()
        vars(self.searcher).update(self.attributes)
        with torch.no_grad():
            for tensor, saved in self.tensors.values():
                tensor.copy_(saved)
            for tensor in state_tensors(self.searcher):  # created by the warm-up (optimiser state): a fresh one
                if id(tensor) not in self.tensors:
                    tensor.zero_()
        for generator, state in zip(self.searcher.generators, self.generators):
            generator.set_state(state)


def state_tensors(searcher: Searcher) -> list[torch.Tensor]:
    """Every tensor a step reads and changes: parameters, buffers (BN statistics) and optimiser state, in a
    fixed order (parameter order), so that two searchers' lists correspond element by element."""
    tensors = [*searcher.supernet.parameters(), *searcher.supernet.buffers()]
    for optimizer in (searcher.w_opt, searcher.a_opt):
        params = [p for group in optimizer.param_groups for p in group["params"]]
        tensors += [value for p in params for value in optimizer.state.get(p, {}).values()
                    if isinstance(value, torch.Tensor)]
    return tensors


def copy_state(target: Searcher, source: Searcher) -> None:
    """Set ``target`` in place to ``source``'s state (two searchers built alike): parameters, buffers, optimiser
    state, held tensors and each seed's generator; what a lock-step comparison of two step paths starts each step
    from (``tests/test_graphed.py``, ``.ci/gpu_check.py``)."""
    with torch.no_grad():
        for theirs, ours in zip([*state_tensors(target), *held_tensors(target)],
                                [*state_tensors(source), *held_tensors(source)], strict=True):
            theirs.copy_(ours)
    for theirs, ours in zip(target.generators, source.generators, strict=True):
        theirs.set_state(ours.get_state())


def held_tensors(searcher: Searcher) -> list[torch.Tensor]:
    """The tensors a searcher holds in its attributes (directly or in lists, tuples, dicts and batches): per-sample
    teachers, stop histories, rings of snapshots. Modules and optimisers are ``state_tensors``'s."""
    found: list[torch.Tensor] = []

    def walk(value: object) -> None:
        if isinstance(value, torch.Tensor):
            found.append(value)
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, Batch):
            walk([value.images, value.labels, value.indices, value.clean])

    walk(list(vars(searcher).values()))
    return found
