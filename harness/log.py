"""Lines for the user: the ``Log`` callable the harness passes around, and the default that writes to stderr."""
from __future__ import annotations

import sys
from typing import Callable

from tqdm import tqdm

Log = Callable[[str], None]


def stderr_log(message: str) -> None:
    """A line on stderr, above the progress bar when one is drawn (``tqdm.write`` clears and redraws it)."""
    tqdm.write(message, file=sys.stderr)
    sys.stderr.flush()
