"""Plug-in resolution, shared by searchers and search spaces.

A name given on the command line (``--searcher``, ``--space``) or in a sweep file resolves, in this order, to:
a built-in class (declared in the project's own package), a class installed under an entry point of the group
(``dnas_harness.searchers``, ``dnas_harness.spaces``), or ``package.module:ClassName`` importable from the
current environment (the working directory included, as for ``python -m``). Every class is registered under its
declared ``name``, sanitised for use as a folder name; two different classes with one name are an error.
"""
from __future__ import annotations

import importlib
import importlib.metadata
import os
import re
import sys
from dataclasses import dataclass
from typing import Callable, Generic, TypeVar

from foundation.errors import UserError

T = TypeVar("T", bound=type)
UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class Registry(Generic[T]):
    """The classes of one kind: ``builtins`` (a loader of the project's own), then ``group``'s entry points."""

    kind: str
    group: str
    base: T
    builtins: Callable[[], dict[str, T]]

    def all(self) -> dict[str, T]:
        """Built-in and installed classes by declared name."""
        return installed(self.group, self.base, self.builtins())

    def get(self, spec: str) -> T:
        """A built-in or installed class by name, or ``package.module:Class``. A built-in name resolves without
        loading the installed plug-ins, so a broken third-party package cannot break it."""
        builtins = self.builtins()
        if spec in builtins:
            return builtins[spec]
        return resolve(spec, self.kind, self.group, self.base, builtins)


def declared_name(cls: type) -> str:
    """The class's ``name`` as a folder name: runs of other characters become ``_``."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not UNSAFE.sub("", name).strip("._-"):
        raise UserError(f"plug-in class {qualified_name(cls)} declares no usable `name` (a short string)")
    return UNSAFE.sub("_", name).strip("._")


def qualified_name(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def installed(group: str, base: type, builtins: dict[str, type]) -> dict[str, type]:
    """Built-ins plus the classes installed under ``group``, by declared name; a clash is a UserError."""
    registry = dict(builtins)
    for entry in importlib.metadata.entry_points(group=group):
        try:
            cls = entry.load()
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - a broken plug-in is the user's input: one line
            raise UserError(f"entry point {entry.name!r} of {group} ({entry.value}) cannot be loaded: "
                            f"{_failure(exc)}") from None
        _register(registry, _checked(cls, base, f"entry point {entry.name!r} ({entry.value})"))
    return registry


def resolve(spec: str, kind: str, group: str, base: T, builtins: dict[str, T]) -> T:
    """The class ``spec`` names: a built-in or installed name, or ``module:Class``."""
    registry = installed(group, base, builtins)
    if spec in registry:
        return registry[spec]
    if ":" not in spec:
        raise UserError(f"unknown {kind} {spec!r} (known: {', '.join(sorted(registry))}; or package.module:Class)")
    cls = _checked(import_class(spec, kind), base, spec)
    _register(registry, cls)
    return cls


def import_class(spec: str, kind: str) -> type:
    module_name, _, attribute = spec.partition(":")
    if os.getcwd() not in sys.path:  # ``harness`` is a console script: make the working directory importable
        sys.path.append(os.getcwd())
    try:
        target = importlib.import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - any failure to import the user's module is one line
        raise UserError(f"cannot load {kind} {spec!r}: {_failure(exc)}") from None
    return target


def _failure(exc: BaseException) -> str:
    """How importing a plug-in failed; a module that exits on import (``sys.exit``) would otherwise end the
    command silently, with its code."""
    if isinstance(exc, SystemExit):
        return f"its module called sys.exit({exc.code!r}) on import"
    return f"{type(exc).__name__}: {exc}"


def _checked(cls: object, base: type, where: str) -> type:
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise UserError(f"{where} is not a subclass of {base.__module__}.{base.__qualname__}")
    declared_name(cls)
    return cls


def _register(registry: dict[str, type], cls: type) -> None:
    name = declared_name(cls)
    other = registry.get(name)
    if other is not None and other is not cls:
        raise UserError(f"two different classes are named {name!r}: {qualified_name(other)} and "
                        f"{qualified_name(cls)} (rename one: run folders are named after it)")
    registry[name] = cls
