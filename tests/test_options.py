"""Typed options: the declared type alone decides how ``--set`` text is read (lists, optional values, booleans,
finite numbers); a bad value is one UserError line naming the key and the value."""
from __future__ import annotations

import pytest
from pydantic import Field

from benchmarks.nb201.search_space import NB201Space
from foundation.errors import UserError
from foundation.options import OptionSet
from foundation.run_config import build_config
from searchers import Darts


class WindowedDarts(Darts):
    name = "windowed"
    summary = "a searcher whose options have every shape the parser handles"

    class Options(OptionSet):
        windows: list[int] = Field(default_factory=lambda: [1, 2], min_length=1)
        limit: int | None = None
        scale: float = Field(1.0, gt=0)
        enabled: bool = True


def configure(*assignments: str):
    return build_config(NB201Space, WindowedDarts, "smoke", list(assignments)).searcher_options


def test_defaults_and_text_of_every_shape():
    assert configure() == {"windows": [1, 2], "limit": None, "scale": 1.0, "enabled": True}
    assert configure("windows=3, 4,5", "limit=7", "scale=2.5", "enabled=no") == \
        {"windows": [3, 4, 5], "limit": 7, "scale": 2.5, "enabled": False}
    assert configure("limit=7", "limit=none")["limit"] is None  # an optional value can be unset again


@pytest.mark.parametrize("assignment, message", [
    ("windows=1,x", "bad windowed option windows=1,x: Input should be a valid integer"),
    ("windows=,", "windows=,: List should have at least 1 item"),
    ("limit=null-ish", "limit=null-ish: Input should be a valid integer"),
    ("scale=none", "scale=none: Input should be a valid number"),  # not optional: none is text, not None
    ("scale=-inf", "scale=-inf: Input should be a finite number"),
    ("enabled=2", "enabled=2: Input should be a valid boolean"),
])
def test_bad_values_are_one_line_naming_key_and_value(assignment, message):
    with pytest.raises(UserError) as error:
        configure(assignment)
    assert str(error.value) == message or message in str(error.value)
    assert "\n" not in str(error.value)


def test_run_fields_and_searcher_options_are_checked_together():
    with pytest.raises(UserError, match="unknown --set key 'nope' .*windows"):
        configure("nope=1")
    with pytest.raises(UserError, match="train_images=40 must be 0 .all. or >= batch_size=64"):
        configure("batch_size=64", "train_images=40")
    assert build_config(NB201Space, WindowedDarts, "smoke", ["train_images=40", "batch_size=40"]).train_images == 40
