"""CPU threads for the machine a search finds.

OpenMP worker threads that outnumber the cores other processes leave free spin at every parallel region waiting
for a descheduled sibling: on 2 cores, 2 threads beside one busy process are an order of magnitude slower than
alone, 1 thread is not (docs/timings.md). So by default a search uses the cores that other processes at its
priority or above leave free, and looks again every ``RECHECK_SECONDS``: a neighbour that starts or stops
mid-run changes the count at the next look. A pinned count (``--threads N``, ``$HARNESS_THREADS``) is kept
whatever the load. A kernel may split a reduction by thread and so round differently with another count (at
C = 4 on a Xeon none did: docs/calibration.md, the noise floor), so the count at
the start is in ``config.json`` and the counts an epoch used are in its record: a run is reproduced bit for bit
with ``--threads`` set to them.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from foundation.errors import UserError

THREADS_ENV = "HARNESS_THREADS"
RECHECK_SECONDS = 10.0  # a window long enough that a burst of another process is not taken for load
FIRST_LOOK_SECONDS = 0.5  # the window of the first choice, before the first step
ALL_CORES = torch.get_num_threads()  # torch's own default (the physical cores), taken before anything changes it


def check_threads(threads: int | None, where: str = "--threads") -> None:
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise UserError(f"bad value {where} {threads}: must be >= 1")


def pinned_threads(threads: int | None) -> int | None:
    """The pinned count: ``threads`` when given, else ``$HARNESS_THREADS`` (a count, or ``auto``), else None (the
    free cores)."""
    if threads is not None:
        check_threads(threads)
        return threads
    text = os.environ.get(THREADS_ENV, "auto").strip()
    if text in ("", "auto"):
        return None
    try:
        value = int(text)
    except ValueError:
        raise UserError(f"bad value ${THREADS_ENV}={text!r}: a thread count or auto") from None
    check_threads(value, f"${THREADS_ENV}")
    return value


@dataclass(frozen=True)
class CpuSample:
    """Cumulative CPU time (seconds) at one moment: every core busy at normal priority, busy at a raised nice
    value, and this process's own."""

    at: float
    busy: float
    niced: float
    own: float


def read_cpu_sample() -> CpuSample | None:
    """The machine's counters (Linux ``/proc/stat``), or None where there are none."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(value) for value in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    if len(fields) < 8:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    tick = os.sysconf("SC_CLK_TCK")
    own = os.times()
    return CpuSample(time.monotonic(), (user + system + irq + softirq + steal) / tick, nice / tick,
                     own.user + own.system)


def others_busy_cores(before: CpuSample, after: CpuSample, own_niced: bool) -> float:
    """Cores other processes kept busy between two samples, counting niced ones only when this process is niced
    too (a process at ``nice -n 19`` takes little from one at 0)."""
    elapsed = after.at - before.at
    if elapsed <= 0:
        return 0.0
    busy = after.busy - before.busy + (after.niced - before.niced if own_niced else 0.0)
    return max(0.0, (busy - (after.own - before.own)) / elapsed)


def free_threads(others_busy: float, all_cores: int = ALL_CORES, logical_cpus: int | None = None) -> int:
    """Threads for the cores the others leave free (at least one); ``/proc/stat`` counts logical CPUs, torch's
    default counts physical cores."""
    logical = logical_cpus or os.cpu_count() or all_cores
    taken = round(others_busy * all_cores / logical)
    return max(1, min(all_cores, all_cores - taken))


@dataclass
class CpuThreads:
    """Holds torch's thread count for a search (restored on exit): ``pinned``, or the free cores, looked at again
    every ``recheck`` seconds by ``tick`` (called between steps). ``take_used`` gives the counts used since it was
    last called, in order (an epoch record's ``threads``)."""

    pinned: int | None = None
    log: Callable[[str], None] | None = None
    recheck: float = RECHECK_SECONDS
    sample: Callable[[], CpuSample | None] = read_cpu_sample
    _previous: int = 0
    _last: CpuSample | None = None
    _used: list[int] = field(default_factory=list)

    @property
    def policy(self) -> str:
        return "pinned" if self.pinned is not None else "free cores"

    def __enter__(self) -> "CpuThreads":
        self._previous = torch.get_num_threads()
        if self.pinned is not None:
            self._set(self.pinned)
            return self
        self._last = self.sample()
        if self._last is not None:
            time.sleep(FIRST_LOOK_SECONDS)
        self._set(self._look(force=True) or ALL_CORES)
        return self

    def __exit__(self, *exc: object) -> None:
        torch.set_num_threads(self._previous)

    def tick(self) -> None:
        if self.pinned is None:
            wanted = self._look()
            if wanted is not None and wanted != torch.get_num_threads():
                self._set(wanted)

    def take_used(self) -> list[int]:
        used, self._used = self._used, [torch.get_num_threads()]
        return used

    def _look(self, force: bool = False) -> int | None:
        """The free cores since the last look, when ``recheck`` seconds have passed (or ``force``)."""
        if self._last is None:
            return None
        now = self.sample()
        if now is None or (not force and now.at - self._last.at < self.recheck):
            return None
        others = others_busy_cores(self._last, now, own_niced=os.getpriority(os.PRIO_PROCESS, 0) > 0)
        self._last = now
        wanted = free_threads(others)
        if wanted != torch.get_num_threads() and self.log is not None:
            self.log(f"{wanted} CPU thread{'s' * (wanted > 1)}: other processes keep {others:.1f} of "
                     f"{os.cpu_count()} CPUs busy")
        return wanted

    def _set(self, threads: int) -> None:
        torch.set_num_threads(threads)
        if not self._used or self._used[-1] != threads:
            self._used.append(threads)
