"""The run configuration: its typed fields with ranges, the presets, and how presets, ``--epochs`` and ``--set``
combine — one validation for the command line, sweep files and presets.

The field defaults are the NB201 reference DARTS protocol (Dong & Yang, ICLR 2020, Section 5 and the
AutoDL-Projects ``DARTS.config``; the SD-DARTS paper, Section 4.4, searches "the same as DARTS"). A search space
declares its supernet structure (``structure``) and its published protocol (``paper_overrides``), a searcher its
own published settings and its typed ``Options``: both are passed in as classes, so this module names none.
``quick`` and ``smoke`` keep the supernet depth (N = 5 cells per stage: the depth is part of the skip-connection
collapse, see the TSE paper, Section 3.2) and cut width, images and epochs instead.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any, ClassVar, Iterable, Literal, Mapping, Protocol

from pydantic import Field, model_validator

from foundation.errors import UserError
from foundation.options import OptionSet
from foundation.plugins import declared_name

# Fields that change how a search is executed or observed, not what it computes (up to rounding): a run that
# differs from the paper preset only in these (and in epochs) still follows the paper protocol.
EXECUTION_FIELDS = frozenset({"channels_last", "cuda_graphs", "diagnostics_every", "hessian_method", "eval_images",
                              "hessian_images", "eval_set"})
MAX_SEEDS = 10_000  # seeds of one command or sweep: runs go one after another, so more is a typo, not a plan
MAX_SEED = 2**32 - 1  # numpy's and CUDA's seed range
IDENTITY_FIELDS = frozenset({"space", "searcher", "preset", "searcher_options"})  # not settable by --set
# Run fields added after run folders were written, each with the value that reproduces what the code computed
# before the field existed: a stored configuration without one is read with that value (``with_added_fields``),
# and the configuration hash leaves a field out while it holds that value, so older folders keep their names.
ADDED_FIELDS: dict[str, Any] = {"lr_schedule": "per_step", "step_order": "arch_first"}
SEEDS_RULE = f"a count in 1..{MAX_SEEDS} or a list of seeds in 0..{MAX_SEED}"


def checked_seeds(seeds: int | Iterable[int]) -> list[int]:
    """The one seed validation of the command line, the Python API and sweep files: a count N (seeds 0..N-1, N in
    1..``MAX_SEEDS``) or seeds, each an integer in 0..``MAX_SEED``, at most ``MAX_SEEDS`` of them; sorted and
    distinct. A UserError names the first bad value."""
    if _is_int(seeds):
        if not 1 <= seeds <= MAX_SEEDS:
            raise UserError(f"bad value --seeds {seeds}: must be in 1..{MAX_SEEDS}")
        return list(range(seeds))
    values = list(seeds)
    bad = next((seed for seed in values if not (_is_int(seed) and 0 <= seed <= MAX_SEED)), None)
    if bad is not None:
        raise UserError(f"bad value --seed {bad!r}: seeds are integers in 0..{MAX_SEED}")
    distinct = sorted(set(values))
    if not 1 <= len(distinct) <= MAX_SEEDS:
        raise UserError(f"bad value seeds: between 1 and {MAX_SEEDS} seeds, got {len(distinct)}")
    return distinct


def check_seed_batch(size: int | None) -> None:
    """Seeds computed together (``--seed-batch``): None (the device's default) or 1..``MAX_SEEDS``."""
    if size is not None and not (_is_int(size) and 1 <= size <= MAX_SEEDS):
        raise UserError(f"bad value --seed-batch {size}: must be in 1..{MAX_SEEDS}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class RunConfig(OptionSet):
    space: str
    searcher: str
    preset: str
    dataset: str = Field("cifar10", description="images searched on: the space's first (default) or another it "
                                                 "declares (NB201: cifar100, imagenet16-120, searched as NATS-Bench)")
    epochs: int = Field(50, ge=1, le=100_000)
    batch_size: int = Field(64, ge=1, le=65_536)
    channels: int = Field(16, ge=1, le=4096, description="C, initial channels of the supernet")
    cells_per_stage: int = Field(5, ge=1, le=64, description="N")
    track_running_stats: bool = Field(True, description="BN in search cells, as the reference search scripts")
    train_images: int = Field(0, ge=0, description="images per half of the split; 0 = all (CIFAR-10: 25,000)")
    channels_last: bool = Field(True, description="memory layout only; faster convolutions at C=16")
    diagnostics_every: int = Field(1, ge=0, description="epochs between Hessian / gap evaluations; 0 = never")
    hessian_method: Literal["lanczos", "exact", "power"] = Field(
        "lanczos", description="lanczos: the exact top eigenvalue in ~1/3 of exact's products (searchers.hessian)")
    eval_set: Literal["heldout", "arch_half"] = Field(
        "heldout", description="diagnostics' images: held out from every searcher (default) or the architecture half")
    eval_images: int = Field(1024, ge=1, le=1_000_000, description="diagnostics' accuracies and gap: the first n "
                                                                 "images of the evaluation set, forward passes only")
    hessian_images: int = Field(64, ge=1, le=1_000_000, description="Hessian eigenvalue: the first n of those")
    precision: Literal["fp32", "tf32", "bf16", "fp64"] = Field(
        "fp32", description="fp64: float64 throughout, free of float32 rounding (golden trajectories, noise floor)")
    cuda_graphs: bool = Field(False, description="GPU: replay full-batch steps of capturable searchers")
    w_lr: float = Field(0.025, gt=0)
    w_lr_min: float = Field(0.001, ge=0)
    lr_schedule: Literal["per_step", "per_epoch"] = Field(
        "per_step", description="cosine of the weights' learning rate: per_step over fractional epochs, or "
                                "per_epoch, constant within an epoch as xautodl's CosineAnnealingLR (paper preset)")
    step_order: Literal["arch_first", "weights_first"] = Field(
        "arch_first", description="which update of a search step comes first: the architecture's (DARTS's code, "
                                  "PC-DARTS, DARTS-) or the weights' (xautodl's NB201 DARTS-V1/V2 and GDAS)")
    w_momentum: float = Field(0.9, ge=0, lt=1)
    w_weight_decay: float = Field(5e-4, ge=0)
    w_nesterov: bool = True
    grad_clip: float = Field(5.0, gt=0)
    a_lr: float = Field(3e-4, gt=0)
    a_beta1: float = Field(0.5, ge=0, lt=1)
    a_beta2: float = Field(0.999, ge=0, lt=1)
    a_weight_decay: float = Field(1e-3, ge=0)
    searcher_options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> "RunConfig":
        if 0 < self.train_images < self.batch_size:
            raise ValueError(f"train_images={self.train_images} must be 0 (all) or >= batch_size={self.batch_size}")
        if self.hessian_images > self.eval_images:
            raise ValueError(f"hessian_images={self.hessian_images} must be <= eval_images={self.eval_images}")
        if self.w_lr_min > self.w_lr:
            raise ValueError(f"w_lr_min={self.w_lr_min} must be <= w_lr={self.w_lr}")
        return self

    @classmethod
    def settable(cls) -> list[str]:
        return [key for key in cls.model_fields if key not in IDENTITY_FIELDS]

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump()

    def identity_hash(self) -> str:
        return config_hash(self.to_dict())


def with_added_fields(config: Mapping[str, Any]) -> dict[str, Any]:
    """A stored configuration with each field added since it was written at the value the code then used."""
    return {**ADDED_FIELDS, **config}


def config_hash(config: Mapping[str, Any]) -> str:
    """Hash of everything in a configuration (``RunConfig.to_dict()``, or as stored in ``config.json``) that
    changes the search but the dataset, which the folder name says apart (not the seed or device): one setting
    searched on each dataset has one hash."""
    fields = {key: value for key, value in config.items()
              if key != "dataset" and not (key in ADDED_FIELDS and value == ADDED_FIELDS[key])}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:8]


PRESETS: dict[str, dict[str, Any]] = {
    # the schedule of the NB201 reference (xautodl's CosineAnnealingLR, updated per epoch; the original DARTS
    # code's torch scheduler too): the learning rate is constant within an epoch.
    "paper": {"lr_schedule": "per_epoch"},
    # minutes on a CPU with diagnostics (docs/timings.md).
    "quick": {"epochs": 8, "channels": 4, "train_images": 4000, "channels_last": False},
    # the calibrated reduced protocol (docs/calibration.md, candidate c4): quick's supernet and images over 16
    # epochs with the architecture learning rate x77.6, so that DARTS's architecture decides (1,008 Adam steps of
    # 0.0233, four times the paper's 19,550 x 3e-4).
    "reduced": {"epochs": 16, "channels": 4, "train_images": 4000, "channels_last": False, "a_lr": 0.023274},
    # seconds on CPU: exercises every code path, proves nothing about search quality.
    "smoke": {"epochs": 2, "channels": 2, "cells_per_stage": 1, "train_images": 128, "batch_size": 32,
              "eval_images": 64, "hessian_images": 32, "channels_last": False},
}
PRESET_NOTES = {
    "paper": "published protocol: C=16, N=5, 50 epochs, batch 64, all 25k+25k images",
    "quick": "short real search: C=4, N=5, 8 epochs, 4k+4k images (minutes on a CPU, docs/timings.md); the "
             "architecture does not decide (near-tie cells, docs/calibration.md)",
    "reduced": "the reference runs' protocol for a CPU: from the paper's, C=4 (16), 4k+4k images (25k+25k), 16 "
               "epochs (50) and an architecture learning rate of 0.0233 (3e-4), so that the architecture decides "
               "in as few steps (docs/calibration.md)",
    "smoke": "tiny supernet on 128+128 images, 2 epochs (seconds; for tests)",
}


class ConfiguresSpace(Protocol):
    name: ClassVar[str]
    datasets: ClassVar[tuple[str, ...]]
    structure: ClassVar[dict[str, Any]]
    paper_overrides: ClassVar[dict[str, Any]]


class ConfiguresSearcher(Protocol):
    name: ClassVar[str]
    uses_validation_set: ClassVar[bool]
    alternates: ClassVar[bool]
    paper_step_order: ClassVar[str]
    Options: ClassVar[type[OptionSet]]
    paper_overrides: ClassVar[dict[str, Any]]
    preset_options: ClassVar[dict[str, dict[str, Any]]]


def parse_assignment(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip() or not value.strip():
        raise UserError(f"malformed --set {text!r}: expected key=value")
    return key.strip(), value.strip()


def build_config(space: ConfiguresSpace, searcher: ConfiguresSearcher, preset: str, assignments: list[str],
                 epochs: int | None = None) -> RunConfig:
    """Run defaults, then the space's structure, then (paper preset) the space's and the searcher's published
    settings, then the preset, then ``--epochs``, then ``--set`` (run fields or the searcher's own options)."""
    fields, options = preset_values(space, searcher, preset)
    if epochs is not None:
        fields["epochs"] = epochs
    settable = RunConfig.settable()
    texts: dict[str, str] = {}
    for assignment in assignments:
        key, value = parse_assignment(assignment)
        texts[key] = value
        if key in settable:
            fields[key] = RunConfig.from_text(key, value)
        elif key in searcher.Options.model_fields:
            options[key] = searcher.Options.from_text(key, value)
        else:
            known = sorted(set(settable) | set(searcher.Options.model_fields))
            raise UserError(f"unknown --set key {key!r} (known: {', '.join(known)})")
    checked = searcher.Options.validated(options, f"{searcher.name} option", texts)
    config = RunConfig.validated({**fields, "searcher_options": checked.model_dump()}, "value", texts)
    if config.dataset not in space.datasets:
        raise UserError(f"bad value dataset={config.dataset}: space {declared_name(space)} searches on "
                        f"{', '.join(space.datasets)}")
    if config.step_order != "arch_first" and not searcher.alternates:
        raise UserError(f"bad value step_order={config.step_order}: a step of {searcher.name} is not an architecture "
                        "step and a weight step")
    if config.eval_set == "arch_half" and not searcher.uses_validation_set:
        raise UserError(f"bad value eval_set=arch_half: {searcher.name} has no architecture half (it searches "
                        "without a validation set); use eval_set=heldout")
    return config


def preset_values(space: ConfiguresSpace, searcher: ConfiguresSearcher, preset: str) -> tuple[dict, dict]:
    """Run fields and searcher options of a preset before any override."""
    if preset not in PRESETS:
        raise UserError(f"unknown preset {preset!r} (known: {', '.join(PRESETS)})")
    published = ({**space.paper_overrides, "step_order": searcher.paper_step_order, **searcher.paper_overrides}
                 if preset == "paper" else {})
    fields = {"space": declared_name(space), "searcher": declared_name(searcher), "preset": preset,
              "dataset": space.datasets[0], **space.structure, **published, **PRESETS[preset]}
    options = {**searcher.Options().model_dump(), **searcher.preset_options.get(preset, {})}
    return fields, options


def preset_config(space: ConfiguresSpace, searcher: ConfiguresSearcher, preset: str) -> RunConfig:
    fields, options = preset_values(space, searcher, preset)
    return RunConfig.validated({**fields, "searcher_options": options})


def overrides(config: Mapping[str, Any], preset: Mapping[str, Any]) -> dict[str, Any]:
    """Run fields and searcher options of ``config`` that differ from its ``preset`` (both as dicts)."""
    changed = {k: v for k, v in config.items() if k != "searcher_options" and preset.get(k) != v}
    preset_options = preset.get("searcher_options", {})
    changed.update({k: v for k, v in config.get("searcher_options", {}).items() if preset_options.get(k) != v})
    return changed


def config_name(config: RunConfig, untouched: RunConfig) -> str:
    """Folder name: the preset, then the dataset when it is not the space's default (``paper-cifar100``), then a
    hash of the whole configuration when anything else was overridden."""
    name = config.preset if config.dataset == untouched.dataset else f"{config.preset}-{config.dataset}"
    same = untouched.model_copy(update={"dataset": config.dataset}).to_dict() == config.to_dict()
    return name if same else f"{name}-{config.identity_hash()}"
