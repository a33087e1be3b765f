"""Per-epoch search diagnostics on a fixed evaluation set (same images, no augmentation, every epoch).

- ``hessian_eig_max``: largest eigenvalue of the Hessian of the evaluation loss w.r.t. all architecture
  parameters (``searchers.hessian``), the sharpness SD-DARTS (Fig. 2) and the TSE paper (Fig. 2b, App. E) track.
- ``supernet_acc``: accuracy of the supernet with its mixing weights; ``discrete_acc``: accuracy of the derived
  cell's network with the inherited weights (one-hot mixing: only the argmax op of each edge); their difference is
  the discretization gap SD-DARTS claims to close. BN is in training mode, as during search.

The Hessian and ``supernet_acc`` are taken on the network the searcher declares (``Searcher.diagnosed_network``,
``Searcher.diagnosed_weights``): the mixed network it trains (DARTS-: with its auxiliary skip), or, for a searcher
that trains sampled networks, the softmax-mixed one it never trains, marked as not comparable in the report.

The evaluation set (``eval_set``, ``eval_images``) is by default the first 1,024 held-out images, the same for
every searcher: images no searcher trains on (the CIFAR-10 test set, the ``xtest`` half of the other datasets'
test sets; ``benchmarks.images``). Why not the architecture half: DARTS-family searchers fit their mixing weights
to it and TSE searchers train their weights on it, so accuracies there are neither held out nor comparable
across searchers. 1,024 images resolve 0.1 points (128 resolved 0.8) at two forward passes per image. The
Hessian, about 50 times dearer per image (a graph for second derivatives, then ~10 products of a double backward
each), is taken on the first ``hessian_images`` (64, one batch) of the same images, which keeps the diagnostics
a small fraction of a paper-preset epoch (docs/timings.md). ``eval_set=arch_half`` measures on the architecture half
instead, the validation loss of Zela et al. (ICLR 2020), for searchers that have one. The model's state (BN running
statistics) is restored afterwards, so diagnostics never change a search.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import torch
from torch import nn

from benchmarks.data_stream import Batch
from foundation.records import Diagnostics
from searchers.hessian import dominant_eigenvalues
from searchers.seeds import seed_cross_entropy


@contextmanager
def preserved_buffers(module: nn.Module) -> Iterator[None]:
    saved = {name: buf.clone() for name, buf in module.named_buffers()}
    try:
        yield
    finally:
        with torch.no_grad():
            for name, buf in module.named_buffers():
                buf.copy_(saved[name])


def accuracy(supernet: nn.Module, batches: list[Batch], arch_weights: list[torch.Tensor]) -> list[float]:
    """Each seed's accuracy (%) on the shared evaluation batches."""
    correct = sum((supernet(b.images, arch_weights).argmax(-1) == b.labels).sum(dim=-1) for b in batches)
    return (100.0 * correct.double() / sum(len(b.labels) for b in batches)).tolist()


def seedwise(discretize: "Discretize", weights: list[torch.Tensor]) -> list[torch.Tensor]:
    """A single-seed rule (the space's ``discrete_weights``) applied to each seed of (K, ...) mixing weights."""
    per_seed = [discretize([w[seed] for w in weights]) for seed in range(weights[0].shape[0])]
    return [torch.stack(parts) for parts in zip(*per_seed)]


Discretize = Callable[[list[torch.Tensor]], list[torch.Tensor]]


POWER_ITERATIONS_EXPECTED = 20  # a typical count to convergence (at most 100): for the estimate only
LANCZOS_PRODUCTS_EXPECTED = 12  # measured 10 of 30 on the paper preset: for the estimate only
PROBED_PRODUCTS = 3


def probe_seconds(searcher: Any, eval_batches: list[Batch], hessian_batches: list[Batch], hessian_method: str) -> float:
    """What one ``epoch_diagnostics`` pass will take, without running it: a forward pass, one gradient with its
    graph and the fastest of three Hessian-vector products timed on the first batch, times the passes the
    accuracies and the method need (exact: one product per architecture parameter). Leaves the model's state as
    it was."""
    batches = hessian_batches
    supernet = searcher.supernet
    device = searcher.alphas[0].device
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    with preserved_buffers(supernet):
        supernet.train()
        sync()
        started = time.perf_counter()
        with torch.no_grad():
            supernet(batches[0].images, searcher.diagnosed_weights())
        sync()
        forward = time.perf_counter() - started
        if not searcher.hessian_defined:
            return 2 * len(eval_batches) * forward
        started = time.perf_counter()
        loss = seed_cross_entropy(supernet(batches[0].images, searcher.diagnosed_weights()), batches[0].labels)
        gradient = torch.autograd.grad(loss.sum(), searcher.alphas, create_graph=True)
        sync()
        graph = time.perf_counter() - started
        timings = []
        for index in range(PROBED_PRODUCTS):  # the first pays one-time costs: the fastest is the typical one
            begun = time.perf_counter()
            torch.autograd.grad(gradient[0].flatten(1)[:, index].sum(), searcher.alphas, retain_graph=True,
                                allow_unused=True)
            sync()
            timings.append(time.perf_counter() - begun)
        product = min(timings)
    size = sum(alpha[0].numel() for alpha in searcher.alphas)
    products = {"exact": size, "lanczos": min(size, LANCZOS_PRODUCTS_EXPECTED)}.get(hessian_method,
                                                                                 2 * POWER_ITERATIONS_EXPECTED)
    return 2 * len(eval_batches) * forward + len(batches) * (graph + products * product)


def epoch_diagnostics(searcher: Any, batches: list[Batch], hessian_batches: list[Batch], hessian_method: str,
                      discretize: Discretize) -> list[Diagnostics]:
    """Each seed's diagnostics, computed for all seeds at once; ``discretize`` maps one seed's mixing weights to
    the derived cell's (the search space's rule). ``diagnostics_seconds`` is the batch's time."""
    started = time.time()
    supernet = searcher.supernet
    with preserved_buffers(supernet):
        supernet.train()
        with torch.no_grad():
            supernet_acc = accuracy(supernet, batches, searcher.diagnosed_weights())
            discrete_acc = accuracy(supernet, batches, seedwise(discretize, searcher.derivation_weights()))

        def loss(b: int) -> torch.Tensor:
            batch = hessian_batches[b]
            return seed_cross_entropy(supernet(batch.images, searcher.diagnosed_weights()), batch.labels)

        eigenvalues = (dominant_eigenvalues(loss, searcher.alphas, len(hessian_batches), hessian_method)
                       if searcher.hessian_defined else [None] * searcher.seeds)
    seconds = round(time.time() - started, 3)
    return [Diagnostics(hessian_eig_max=eigenvalue, supernet_acc=mixed_acc, discrete_acc=derived_acc,
                        discretization_gap=mixed_acc - derived_acc, diagnostics_seconds=seconds)
            for eigenvalue, mixed_acc, derived_acc in zip(eigenvalues, supernet_acc, discrete_acc)]
