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
  batch, then every parameter, buffer and optimiser state is restored in place (state created by the warm-up is
  zeroed: a zero momentum buffer and zero Adam moments at step 0 give exactly a fresh optimiser's first step).
- Batches of another size (an epoch's last, partial batch) run eagerly through the same searcher.

The step is the batched one (``searchers.seeds``): K seeds replay in one graph. The searcher's per-seed
generators are registered with the graph, so random draws inside it (DrNAS) advance each seed's stream per replay.
Only searchers whose step is a fixed sequence of device operations (``graph_capturable``) are captured; the others
run eagerly. ``use_graph=False`` runs the same static-buffer path without a graph: on a CPU
it is what the equivalence test checks against the plain step.
"""
from __future__ import annotations

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
    """Static buffers sized by the first batch; captured (or, without a graph, prepared) at the first step."""

    def __init__(self, searcher: Searcher, device: torch.device, use_graph: bool) -> None:
        self.searcher, self.device, self.use_graph = searcher, device, use_graph
        self.static: tuple[Batch, Batch] | None = None
        self.stats = (EpochStats(device, searcher.seeds), EpochStats(device, searcher.seeds))
        searcher.use_tensor_learning_rate(device, capturable=use_graph)
        self.graph: torch.cuda.CUDAGraph | None = None

    def _static_step(self) -> None:
        for stats in self.stats:
            stats.sums.zero_()
        self.searcher.step(*self.static, *self.stats)

    def _prepare(self) -> None:
        """Warm up on the static batch, restore the state in place, capture (CUDA)."""
        state = state_tensors(self.searcher)
        saved = {id(t): t.detach().clone() for t in state}
        stream = torch.cuda.Stream(self.device) if self.use_graph else None
        if stream is not None:
            stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream) if stream is not None else nullcontext():
            for _ in range(WARMUP_STEPS):
                self._static_step()
        if stream is not None:
            torch.cuda.current_stream(self.device).wait_stream(stream)
        with torch.no_grad():
            for tensor in state_tensors(self.searcher):
                if id(tensor) in saved:
                    tensor.copy_(saved[id(tensor)])
                else:
                    tensor.zero_()
        if self.use_graph:
            self.graph = torch.cuda.CUDAGraph()
            for generator in self.searcher.generators:  # per-seed streams (DrNAS): each replay draws afresh
                self.graph.register_generator_state(generator)
            with torch.cuda.graph(self.graph):
                self._static_step()

    def step(self, weight_batch: Batch, arch_batch: Batch, weight_stats: EpochStats, arch_stats: EpochStats) -> None:
        batches = (weight_batch, arch_batch)
        if self.static is None:  # the first batch sizes the buffers; warm up and capture on it
            self.static = tuple(Batch(b.images.clone(), b.labels.clone(), b.indices.clone()) for b in batches)
            self._prepare()
        elif not all(b.labels.shape == s.labels.shape for b, s in zip(batches, self.static)):
            self.searcher.step(weight_batch, arch_batch, weight_stats, arch_stats)  # a partial batch: eager
            return
        else:
            for static, batch in zip(self.static, batches):
                static.images.copy_(batch.images)
                static.labels.copy_(batch.labels)
                static.indices.copy_(batch.indices)
        if self.graph is not None:
            self.graph.replay()
        else:
            self._static_step()
        size = weight_batch.labels.shape[-1]
        weight_stats.absorb(self.stats[0], size)
        arch_stats.absorb(self.stats[1], size)


def state_tensors(searcher: Searcher) -> list[torch.Tensor]:
    """Every tensor a step reads and changes: parameters, buffers (BN statistics) and optimiser state, in a
    fixed order (parameter order), so that two searchers' lists correspond element by element."""
    tensors = [*searcher.supernet.parameters(), *searcher.supernet.buffers()]
    for optimizer in (searcher.w_opt, searcher.a_opt):
        params = [p for group in optimizer.param_groups for p in group["params"]]
        tensors += [value for p in params for value in optimizer.state.get(p, {}).values()
                    if isinstance(value, torch.Tensor)]
    return tensors
