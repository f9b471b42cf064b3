"""The heap's free memory goes back to the system once runs stop coming, not between back-to-back runs."""

from __future__ import annotations

import threading

from analysis import allocator


def test_a_release_waits_for_idleness_and_a_new_run_cancels_it(monkeypatch):
    released = threading.Event()
    monkeypatch.setattr(allocator, "release", released.set)
    allocator.release_when_idle(delay=60)
    pending = allocator._pending
    allocator.run_starting()  # the next dream comes before the delay: its buffers are kept
    assert pending.finished.is_set() and not released.is_set() and allocator._pending is None

    allocator.release_when_idle(delay=0.01)  # nothing else comes: the memory goes back
    assert released.wait(timeout=10)


def test_a_dream_leaves_one_release_pending(lite0, cat_small, monkeypatch):
    from analysis.dream import DreamConfig, dream
    from analysis.objectives import LayerL2

    calls = []
    monkeypatch.setattr(allocator, "release_when_idle", lambda: calls.append("later"))
    monkeypatch.setattr(allocator, "run_starting", lambda: calls.append("start"))
    dream(lite0, cat_small, LayerL2("block3"), DreamConfig(octaves=1, iterations=1))
    assert calls == ["start", "later"]
