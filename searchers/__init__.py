"""Searchers: the built-in ones (every ``Searcher`` subclass with a ``name`` defined in a module of this package),
installed plug-ins (entry point group ``dnas_harness.searchers``) and ``package.module:Class``."""
from __future__ import annotations

import importlib
import inspect
import pkgutil
from functools import lru_cache

from foundation import plugins
from foundation.options import OptionSet
from searchers.darts import Darts
from searchers.searcher import Searcher
from searchers.seeds import seed_cross_entropy

__all__ = ["Darts", "OptionSet", "Searcher", "all_searchers", "builtin_searchers", "get_searcher", "seed_cross_entropy"]

ENTRY_POINT_GROUP = "dnas_harness.searchers"


@lru_cache(maxsize=1)
def builtin_searchers() -> dict[str, type[Searcher]]:
    """Adding a built-in searcher is adding a module here: it is found, not listed."""
    found: dict[str, type[Searcher]] = {}
    for module_info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, Searcher) and cls.__module__ == module.__name__ and "name" in vars(cls):
                found[plugins.declared_name(cls)] = cls
    return found


REGISTRY = plugins.Registry("searcher", ENTRY_POINT_GROUP, Searcher, builtin_searchers)
all_searchers, get_searcher = REGISTRY.all, REGISTRY.get
