"""Search spaces: the built-in ones (every ``SearchSpace`` subclass with a name, defined in a subpackage's
``search_space`` module), installed plug-ins (entry point group ``dnas_harness.spaces``) and
``package.module:Class``; their supernets, tabular look-ups and datasets."""
from __future__ import annotations

import importlib
import pkgutil
from functools import lru_cache

from benchmarks.search_space import SearchSpace
from foundation import plugins

ENTRY_POINT_GROUP = "dnas_harness.spaces"


@lru_cache(maxsize=1)
def builtin_spaces() -> dict[str, type[SearchSpace]]:
    """Adding a built-in space is adding a subpackage with a ``search_space`` module: it is found, not listed."""
    found: dict[str, type[SearchSpace]] = {}
    for package in pkgutil.iter_modules(__path__):
        if not package.ispkg:
            continue
        try:
            module = importlib.import_module(f"{__name__}.{package.name}.search_space")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{package.name}.search_space":
                raise
            continue
        for cls in vars(module).values():
            if isinstance(cls, type) and issubclass(cls, SearchSpace) and "name" in vars(cls):
                found[plugins.declared_name(cls)] = cls
    return found


REGISTRY = plugins.Registry("space", ENTRY_POINT_GROUP, SearchSpace, builtin_spaces)
all_spaces, get_space = REGISTRY.all, REGISTRY.get


def default_space() -> str:
    """The name of the space that declares itself the default (the run defaults are its protocol)."""
    return next(name for name, cls in builtin_spaces().items() if cls.default)
