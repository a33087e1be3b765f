"""One writer per run folder: an exclusive ``flock`` on ``<folder>/.lock`` held for the whole run.

Two ``harness run`` (or sweep workers) pointed at the same folder would interleave appends and checkpoints; the
second one refuses with the holder's pid and host instead. The lock is the kernel's: it disappears with the
process that held it (killed, crashed, pre-empted), so a stale lock from a dead process never blocks a resume
— the file may stay behind, and the next run simply takes it over.
"""
from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path
from typing import Callable

from foundation.errors import UserError

LOCK_NAME = ".lock"


class RunFolderLock:
    """``wait``: block until the holder is gone instead of refusing (``harness run --wait``)."""

    def __init__(self, folder: Path, wait: bool = False, log: Callable[[str], None] | None = None) -> None:
        self.path = Path(folder) / LOCK_NAME
        self.wait, self.log = wait, log
        self.handle = None

    def __enter__(self) -> "RunFolderLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            if not self.wait:
                handle.close()
                raise UserError(f"run folder {self.path.parent} is being written by {holder}; "
                                "wait for it to finish (--wait) or use another --out") from None
            if self.log:
                self.log(f"run folder {self.path.parent} is being written by {holder}; waiting")
            fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        self.handle = handle
        return self

    def __exit__(self, *exc: object) -> None:
        if self.handle is not None:
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()
            self.handle = None
