"""The progress relay: parts of any size report one count over the whole that only rises and ends at its total."""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st

from analysis import stats
from analysis.progress import OnStep, Relay, ShouldCancel


def run_part(on_step: OnStep | None, own_total: int, should_cancel: ShouldCancel | None = None,
             preview_every: int = 2) -> bool:
    """A stand-in for a dream: counts in its own units, previews now and then, polls the cancel. True when cancelled."""
    for step in range(1, own_total + 1):
        if should_cancel is not None and should_cancel():
            return True
        if on_step is not None:
            on_step(step, own_total, torch.zeros(3, 2, 2) if step % preview_every == 0 else None)
    return False


def recorder() -> tuple[list[tuple[int, int, torch.Tensor | None]], OnStep]:
    calls: list[tuple[int, int, torch.Tensor | None]] = []
    return calls, lambda step, total, preview: calls.append((step, total, preview))


# spans of the parts, and for each the total that part counts in (a batched dream counts one loop for
# all its images, a sequential one a loop per image: its own total can be above or below its span)
PARTS = st.lists(st.tuples(st.integers(1, 40), st.integers(1, 120)), min_size=1, max_size=6)


@given(PARTS)
def test_relayed_parts_rise_monotonely_and_end_at_the_total(parts):
    calls, on_step = recorder()
    relay = Relay(on_step, sum(span for span, _ in parts))
    offset = 0
    for span, own_total in parts:
        run_part(relay.part(offset, span), own_total)
        assert calls[-1][0] == offset + span  # each part ends exactly where the next begins
        offset += span
    steps = [step for step, _, _ in calls]
    assert steps == sorted(steps) and steps[0] >= 1 and steps[-1] == relay.total
    assert {total for _, total, _ in calls} == {relay.total}


def test_a_part_counting_in_the_wholes_units_passes_its_steps_through():
    calls, on_step = recorder()
    relay = Relay(on_step, 3 * 4)
    for index in range(3):
        run_part(relay.nth(index, 4), 4)
    assert [(step, total) for step, total, _ in calls] == [(k, 12) for k in range(1, 13)]
    assert [preview is not None for _, _, preview in calls] == [k % 2 == 0 for k in range(1, 5)] * 3


def test_a_part_in_other_units_is_scaled_into_its_span():
    calls, on_step = recorder()
    relay = Relay(on_step, 20)
    run_part(relay.nth(1, 10), 3)  # a sequential sweep of three layers that the whole counts as one dream
    assert [step for step, _, _ in calls] == [14, 17, 20]  # 10 + ceil(k * 10 / 3)


def test_held_back_last_step_and_dropped_previews_leave_the_finish_to_the_caller():
    """An animation's frames: the steps inside a frame without previews, then the finished frame as the preview."""
    calls, on_step = recorder()
    relay = Relay(on_step, 2 * 4)
    for index in range(2):
        run_part(relay.nth(index, 4, previews=False, last=False), 4)
        relay.report((index + 1) * 4, torch.ones(3, 2, 2))
    assert [step for step, _, _ in calls] == list(range(1, 9))
    assert [preview is not None for _, _, preview in calls] == [False, False, False, True] * 2


def test_without_a_callback_the_relay_hands_out_none_and_reports_nothing():
    relay = Relay(None, 10)
    assert relay.part(0, 5) is None and relay.nth(1, 5) is None
    relay.report(5)  # nothing to call, nothing raised


def test_cancel_passes_through_the_relay_and_stops_the_whole():
    """Each part polls the whole's cancel: the count stops where the cancel came, short of the total."""
    calls, on_step = recorder()
    relay = Relay(on_step, 3 * 5)
    should_cancel = lambda: len(calls) >= 7  # noqa: E731
    for index in range(3):
        if run_part(relay.nth(index, 5), 5, should_cancel):
            break
    steps = [step for step, _, _ in calls]
    assert steps == list(range(1, 8)) and steps[-1] < relay.total


def test_stats_over_two_models_count_every_forward_once_and_stop_at_a_cancel(lite0, cat_small):
    images = [cat_small, cat_small.flip(-1)]
    calls, on_step = recorder()
    frame = stats.stats_for_models([lite0, lite0], images, on_step=on_step)
    assert [(step, total) for step, total, _ in calls] == [(k, 4) for k in range(1, 5)]
    assert not frame.attrs["cancelled"]

    calls.clear()
    stopped = stats.stats_for_models([lite0, lite0], images, on_step=on_step, should_cancel=lambda: len(calls) >= 3)
    assert [step for step, _, _ in calls] == [1, 2, 3] and stopped.attrs["cancelled"]
