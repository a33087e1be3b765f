"""The reference search step ``harness bench`` times ours against: DARTS-V1 of the NB201 reference (the PyPI
package ``xautodl``, optional) as its NB201 search script performs it: weight step (SGD, clip), then
architecture step (Adam), full autograd through the mixed ops."""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch.nn import functional as F

from benchmarks.data_stream import Batch
from foundation.errors import UserError


def reference_step(config: Any, device: torch.device) -> Callable[[Batch, Batch], None]:
    try:
        from xautodl.config_utils import dict2config
        from xautodl.models import get_cell_based_tiny_net, get_search_spaces
    except ImportError:
        raise UserError("the reference needs the optional dev dependency xautodl: "
                        "pip install --no-deps xautodl") from None
    net_config = dict2config({"name": "DARTS-V1", "C": config.channels, "N": config.cells_per_stage, "max_nodes": 4,
                              "num_classes": 10, "space": get_search_spaces("cell", "nas-bench-201"),
                              "affine": False, "track_running_stats": config.track_running_stats}, None)
    network = get_cell_based_tiny_net(net_config).to(device)
    w_opt = torch.optim.SGD(network.get_weights(), lr=config.w_lr, momentum=config.w_momentum,
                            weight_decay=config.w_weight_decay, nesterov=config.w_nesterov)
    a_opt = torch.optim.Adam(network.get_alphas(), lr=config.a_lr, betas=(config.a_beta1, config.a_beta2),
                             weight_decay=config.a_weight_decay)

    def step(weight_batch: Batch, arch_batch: Batch) -> None:
        images = weight_batch.images.contiguous()
        w_opt.zero_grad()
        _, logits = network(images)
        F.cross_entropy(logits, weight_batch.labels).backward()
        torch.nn.utils.clip_grad_norm_(network.parameters(), config.grad_clip)
        w_opt.step()
        a_opt.zero_grad()
        _, logits = network(arch_batch.images.contiguous())
        F.cross_entropy(logits, arch_batch.labels).backward()
        a_opt.step()
    return step
