"""The CPU thread count a search takes (``harness.threads``): pinned, or the cores other processes leave free,
looked at again as the load changes; measured on counters given here, so the tests hold on any machine's load."""
from __future__ import annotations

import pytest
import torch

from foundation.errors import UserError
from harness import threads
from harness.threads import CpuSample, CpuThreads, free_threads, others_busy_cores, pinned_threads


def test_a_given_count_beats_the_environment_which_beats_the_free_cores(monkeypatch):
    monkeypatch.setenv(threads.THREADS_ENV, "3")
    assert pinned_threads(1) == 1 and pinned_threads(None) == 3
    monkeypatch.setenv(threads.THREADS_ENV, "auto")
    assert pinned_threads(None) is None
    monkeypatch.delenv(threads.THREADS_ENV)
    assert pinned_threads(None) is None


@pytest.mark.parametrize("text", ["0", "two", "-1"])
def test_a_bad_environment_value_is_one_line(monkeypatch, text):
    monkeypatch.setenv(threads.THREADS_ENV, text)
    with pytest.raises(UserError, match=r"HARNESS_THREADS"):
        pinned_threads(None)


def test_others_load_excludes_our_own_time_and_niced_processes_unless_we_are_niced():
    before = CpuSample(at=0.0, busy=10.0, niced=5.0, own=2.0)
    after = CpuSample(at=2.0, busy=14.0, niced=7.0, own=4.0)  # 4 s busy in 2 s, 2 of them ours; 2 s niced
    assert others_busy_cores(before, after, own_niced=False) == pytest.approx(1.0)
    assert others_busy_cores(before, after, own_niced=True) == pytest.approx(2.0)
    assert others_busy_cores(after, after, own_niced=False) == 0.0


@pytest.mark.parametrize(("others", "cores", "logical", "expected"),
                         [(0.0, 2, 2, 2), (0.3, 2, 2, 2), (0.9, 2, 2, 1), (5.0, 2, 2, 1), (2.0, 4, 8, 3)])
def test_the_free_cores_leave_room_for_the_others_and_keep_at_least_one(others, cores, logical, expected):
    assert free_threads(others, cores, logical) == expected


class FakeCounters:
    """A machine whose other processes keep ``load`` cores busy (changed by the test); time is ours to advance."""

    def __init__(self) -> None:
        self.at, self.busy, self.load = 0.0, 0.0, 0.0

    def advance(self, seconds: float) -> None:
        self.at += seconds
        self.busy += self.load * seconds

    def __call__(self) -> CpuSample:
        return CpuSample(self.at, self.busy, 0.0, 0.0)


def test_the_count_follows_the_load_at_each_look_and_is_restored_after(monkeypatch):
    monkeypatch.setattr(threads, "FIRST_LOOK_SECONDS", 0.0)
    monkeypatch.setattr(threads, "free_threads", lambda others: 2 if others < 0.5 else 1)
    counters, said = FakeCounters(), []
    counters.load = 1.0
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    original_sample = counters.__call__

    def first_look() -> CpuSample:  # the first window passes while the choice is made
        sample = original_sample()
        counters.advance(0.5)
        return sample

    with CpuThreads(log=said.append, recheck=10.0, sample=first_look) as chosen:
        chosen.sample = counters
        assert torch.get_num_threads() == 1 and said and "1 CPU thread" in said[0]
        counters.load = 0.0
        counters.advance(5.0)
        chosen.tick()  # too soon to look again
        assert torch.get_num_threads() == 1
        counters.advance(6.0)
        chosen.tick()
        assert torch.get_num_threads() == 2 and "2 CPU threads" in said[-1]
        assert chosen.take_used() == [1, 2] and chosen.take_used() == [2]
        assert chosen.policy == "free cores"
    assert torch.get_num_threads() == 2
    torch.set_num_threads(before)


def test_a_pinned_count_ignores_the_load():
    counters = FakeCounters()
    counters.load = 2.0
    before = torch.get_num_threads()
    with CpuThreads(pinned=1, sample=counters) as chosen:
        counters.advance(60.0)
        chosen.tick()
        assert torch.get_num_threads() == 1 and chosen.take_used() == [1] and chosen.policy == "pinned"
    assert torch.get_num_threads() == before


def test_without_counters_a_search_takes_every_core(monkeypatch):
    monkeypatch.setattr(threads, "ALL_CORES", 1)
    with CpuThreads(sample=lambda: None) as chosen:
        chosen.tick()
        assert torch.get_num_threads() == 1 and chosen.take_used() == [1]
