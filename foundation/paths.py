"""Where data and caches live.

The data directory is resolved once per command: ``--data-dir``, then ``$HARNESS_DATA``, then a per-user folder.
Derived caches (decoded images, parsed tables) always go to a per-user cache folder, never into the data
directory, which may be read-only (CI mounts ``../shared/data`` without write bits).
"""
from __future__ import annotations

import os
from pathlib import Path

from foundation.errors import UserError

DATA_ENV = "HARNESS_DATA"
CACHE_ENV = "HARNESS_CACHE"


def _xdg(var: str, fallback: str) -> Path:
    return Path(os.environ.get(var) or Path.home() / fallback)


def default_data_dir() -> Path:
    return _xdg("XDG_DATA_HOME", ".local/share") / "dnas-harness"


def resolve_data_dir(cli_value: str | os.PathLike | None = None) -> Path:
    """``--data-dir`` beats ``$HARNESS_DATA`` beats the per-user default."""
    if cli_value:
        return Path(cli_value).expanduser()
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    return default_data_dir()


def cache_dir() -> Path:
    """Per-user cache folder for derived files (created on demand)."""
    root = (Path(os.environ[CACHE_ENV]) if os.environ.get(CACHE_ENV)
            else _xdg("XDG_CACHE_HOME", ".cache") / "dnas-harness")
    root.mkdir(parents=True, exist_ok=True)
    return root


def require_file(data_dir: Path, relative: str, how_to_get: str) -> Path:
    """Path of a data file, or a one-line error naming it, where it was expected and how to obtain it."""
    path = data_dir / relative
    if not path.is_file():
        raise UserError(f"missing data file {relative!s}: expected at {path} ({how_to_get})")
    return path
