"""Typed option sets: the one validation behind presets, ``--set key=value``, sweep files and searcher options.

Every settable value is a field of a pydantic model with its type and range; nothing is guessed from a default
value. Text from the command line or a sweep file is handed to pydantic as text (it parses ``"5"`` as an int,
``"yes"`` as a bool and refuses ``"inf"``: option sets forbid non-finite numbers); a list field takes
comma-separated text (``1,2``); an optional field takes ``none``. Every failure is one ``UserError`` line naming
the key and the value.
"""
from __future__ import annotations

import types
from typing import Any, Mapping, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationError

from foundation.errors import UserError

NONE_WORDS = frozenset({"none", "null"})


class OptionSet(BaseModel):
    """Base of the run configuration and of every searcher's options: unknown keys are refused, numbers must be
    finite, and the declared field types are the only source of truth."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)

    @classmethod
    def keys(cls) -> list[str]:
        return list(cls.model_fields)

    @classmethod
    def from_text(cls, key: str, text: str) -> Any:
        """``text`` shaped for pydantic by the field's declared type (lists split on commas, ``none``)."""
        annotation = cls.model_fields[key].annotation
        if text.strip().lower() in NONE_WORDS and _allows_none(annotation):
            return None
        if get_origin(_without_none(annotation)) in (list, tuple):
            return [item.strip() for item in text.split(",") if item.strip()]
        return text.strip()

    @classmethod
    def validated(cls, values: Mapping[str, Any], what: str = "value", typed: Mapping[str, str] | None = None):
        """The model of ``values`` or a one-line UserError naming the first offending key and its value (as the
        user typed it, when ``typed`` has it)."""
        try:
            return cls.model_validate(dict(values))
        except ValidationError as exc:
            raise UserError(describe_error(exc, {**values, **(typed or {})}, what)) from None


def describe_error(exc: ValidationError, values: Mapping[str, Any], what: str) -> str:
    error = exc.errors(include_url=False)[0]
    message = error["msg"].removeprefix("Value error, ")
    if not error["loc"]:  # a check across fields
        return f"bad {what}: {message}"
    key = str(error["loc"][0])
    if error["type"] == "extra_forbidden":
        return f"unknown key {key!r}"
    shown = values.get(key, error.get("input"))
    return f"bad {what} {key}={shown if isinstance(shown, str) else repr(shown)}: {message}"


def _allows_none(annotation: Any) -> bool:
    return get_origin(annotation) in (Union, types.UnionType) and type(None) in get_args(annotation)


def _without_none(annotation: Any) -> Any:
    if _allows_none(annotation):
        rest = [arg for arg in get_args(annotation) if arg is not type(None)]
        return rest[0] if len(rest) == 1 else annotation
    return annotation
