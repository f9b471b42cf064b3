"""The heap's free memory goes back to the system once no dream runs, not between back-to-back dreams."""

from __future__ import annotations

import threading

from analysis import allocator


def test_memory_goes_back_only_when_no_run_is_left(monkeypatch):
    released = threading.Event()
    monkeypatch.setattr(allocator, "release", released.set)
    monkeypatch.setattr(allocator, "_runs", 0)
    monkeypatch.setattr(allocator, "_pending", None)
    allocator.run_starting()  # session A
    allocator.run_starting()  # session B, still dreaming when A is done
    allocator.release_when_idle(delay=0.01)
    assert allocator._pending is None  # nothing scheduled while B runs: B keeps its buffers
    allocator.release_when_idle(delay=0.01)
    assert released.wait(timeout=10)


def test_a_run_that_starts_within_the_delay_keeps_the_buffers(monkeypatch):
    released = threading.Event()
    monkeypatch.setattr(allocator, "release", released.set)
    monkeypatch.setattr(allocator, "_runs", 0)
    monkeypatch.setattr(allocator, "_pending", None)
    allocator.run_starting()
    allocator.release_when_idle(delay=60)
    allocator.run_starting()  # the next dream, within the minute
    assert allocator._pending is None and not released.is_set()
    allocator.release_when_idle(delay=0.01)
    assert released.wait(timeout=10)
