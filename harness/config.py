"""Run configuration: the fields, the presets, and ``--set key=value`` parsing with type and range checks.

The ``paper`` preset is the NB201 reference DARTS protocol (Dong & Yang, ICLR 2020, Section 5 and the
AutoDL-Projects ``DARTS.config``; the SD-DARTS paper, Section 4.4, searches "the same as DARTS"). ``quick`` and
``smoke`` keep the supernet depth (N = 5 cells per stage: the depth is part of the skip-connection collapse,
see the TSE paper, Section 3.2) and cut width, images and epochs instead.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from harness.errors import UserError


# Fields that change how a search is executed or observed, not what it computes (up to rounding): a run that
# differs from the paper preset only in these (and in epochs) still follows the paper protocol.
EXECUTION_FIELDS = frozenset({"channels_last", "cuda_graphs", "diagnostics_every", "hessian_method", "eval_batches"})


@dataclass
class RunConfig:
    space: str = "nb201"
    searcher: str = "darts"
    preset: str = "paper"
    epochs: int = 50
    batch_size: int = 64
    channels: int = 16  # C, initial channels of the supernet
    cells_per_stage: int = 5  # N
    track_running_stats: bool = True  # BN in search cells, as the reference search scripts
    train_images: int = 0  # images per half of the split; 0 = all 25,000
    channels_last: bool = True  # memory layout only; faster convolutions at C=16 on CPU and GPU
    diagnostics_every: int = 1  # epochs between Hessian / discretization-gap evaluations; 0 = never
    hessian_method: str = "exact"  # exact (full Hessian, small architectures) or power (iteration with HVPs)
    eval_batches: int = 2  # size of the fixed evaluation set, in batches of batch_size
    precision: str = "fp32"  # fp32 (the papers); tf32 or bf16 (autocast) are faster options on GPUs
    cuda_graphs: bool = False  # GPU: replay full-batch steps of capturable searchers from a CUDA graph
    w_lr: float = 0.025
    w_lr_min: float = 0.001
    w_momentum: float = 0.9
    w_weight_decay: float = 5e-4
    w_nesterov: bool = True
    grad_clip: float = 5.0
    a_lr: float = 3e-4
    a_beta1: float = 0.5
    a_beta2: float = 0.999
    a_weight_decay: float = 1e-3
    searcher_options: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> "RunConfig":
        positive = ("epochs", "batch_size", "channels", "cells_per_stage", "w_lr", "a_lr")
        for name in positive:
            if getattr(self, name) <= 0:
                raise UserError(f"bad value {name}={getattr(self, name)!r}: must be > 0")
        non_negative = ("train_images", "w_lr_min", "w_momentum", "w_weight_decay", "grad_clip", "a_weight_decay")
        for name in non_negative:
            if getattr(self, name) < 0:
                raise UserError(f"bad value {name}={getattr(self, name)!r}: must be >= 0")
        for name in ("a_beta1", "a_beta2"):
            if not 0 <= getattr(self, name) < 1:
                raise UserError(f"bad value {name}={getattr(self, name)!r}: must be in [0, 1)")
        if self.hessian_method not in ("exact", "power"):
            raise UserError(f"bad value hessian_method={self.hessian_method!r}: must be exact or power")
        for name in ("diagnostics_every", "eval_batches"):
            if getattr(self, name) < 0 or (name == "eval_batches" and self.eval_batches == 0):
                raise UserError(f"bad value {name}={getattr(self, name)!r}: must be >= {int(name == 'eval_batches')}")
        if self.precision not in ("fp32", "tf32", "bf16"):
            raise UserError(f"bad value precision={self.precision!r}: must be fp32, tf32 or bf16")
        if 0 < self.train_images < self.batch_size:
            raise UserError(f"bad value train_images={self.train_images}: must be 0 (all) or >= batch_size={self.batch_size}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def identity_hash(self) -> str:
        """Hash of everything that changes the search (not the seed or device)."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:8]


PRESETS: dict[str, dict[str, Any]] = {
    "paper": {},
    # ~10 minutes on 2 CPU cores (62 s per epoch of search); DARTS collapses to skip connections within these epochs (3,3,5,5 skips in
    # epochs 1-4 of seed 0, measured with 5k+5k images).
    "quick": {"epochs": 8, "channels": 4, "train_images": 4000, "channels_last": False, "eval_batches": 1},
    # seconds on CPU: exercises every code path, proves nothing about search quality.
    "smoke": {"epochs": 2, "channels": 2, "cells_per_stage": 1, "train_images": 128, "batch_size": 32, "eval_batches": 1,
              "channels_last": False},
}
PRESET_NOTES = {
    "paper": "published protocol: C=16, N=5, 50 epochs, batch 64, all 25k+25k images",
    "quick": "reduced real search: C=4, N=5, 8 epochs, 4k+4k images (about 10 min on 2 CPU cores)",
    "smoke": "tiny supernet on 128+128 images, 2 epochs (seconds; for tests)",
}
FIELDS = {f.name: f for f in dataclasses.fields(RunConfig) if f.name != "searcher_options"}
NOT_SETTABLE = {"space", "searcher", "preset"}


def parse_value(key: str, text: str, kind: type) -> Any:
    try:
        if kind is bool:
            lowered = text.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError
        value = kind(text)
        if isinstance(value, float) and value != value:
            raise ValueError
        return value
    except ValueError:
        raise UserError(f"bad value for {key}: {text!r} is not a valid {kind.__name__}") from None


def parse_assignment(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip() or not value.strip():
        raise UserError(f"malformed --set {text!r}: expected key=value")
    return key.strip(), value.strip()


def build_config(space: str, searcher: str, preset: str, assignments: list[str],
                 epochs: int | None = None) -> RunConfig:
    """Run defaults, then the searcher's published settings (paper preset only), then the preset, then
    ``--epochs``, then ``--set`` (run fields or the searcher's own options)."""
    from searchers import get_searcher

    if preset not in PRESETS:
        raise UserError(f"unknown preset {preset!r} (known: {', '.join(PRESETS)})")
    config = _preset_config(space, searcher, preset)
    options = dict(config.searcher_options)
    if epochs is not None:
        config.epochs = epochs
    for assignment in assignments:
        key, value = parse_assignment(assignment)
        if key in FIELDS and key not in NOT_SETTABLE:
            setattr(config, key, parse_value(key, value, type(getattr(config, key))))
        elif key in options:
            options[key] = parse_value(key, value, type(options[key]))
        else:
            known = sorted(set(FIELDS) - NOT_SETTABLE | set(options))
            raise UserError(f"unknown --set key {key!r} (known: {', '.join(known)})")
    config.searcher_options = options
    get_searcher(searcher).validate_options(options)
    return config.validate()


def _preset_config(space: str, searcher: str, preset: str) -> RunConfig:
    """The space's supernet structure, then (paper preset) the space's and the searcher's published settings,
    then the preset's own values."""
    from benchmarks import get_space
    from searchers import get_searcher

    cls, space_cls = get_searcher(searcher), get_space(space)
    published = {**space_cls.paper_overrides, **cls.paper_overrides} if preset == "paper" else {}
    fields = {**space_cls.structure, **published, **PRESETS[preset]}
    options = {**cls.default_options, **cls.preset_options.get(preset, {})}
    return RunConfig(space=space, searcher=searcher, preset=preset, searcher_options=options, **fields)


def config_name(config: RunConfig) -> str:
    """Folder name: the preset alone when nothing was overridden, else preset + hash of the whole config."""
    untouched = _preset_config(config.space, config.searcher, config.preset)
    return config.preset if untouched.to_dict() == config.to_dict() else f"{config.preset}-{config.identity_hash()}"
