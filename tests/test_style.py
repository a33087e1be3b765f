"""The code passes ruff as configured in pyproject.toml (pyflakes, pycodestyle at 120 columns, sorted imports):
a test dependency, so CI fails rather than skips when it is missing."""
from __future__ import annotations

import subprocess
import sys

from conftest import REPO


def test_ruff_finds_nothing():
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", str(REPO)], cwd=REPO,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-1000:]
