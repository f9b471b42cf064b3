"""Long runs in the browser: a background job, a live progress panel, and Cancel.

Why a thread: a Streamlit button click starts a rerun that interrupts the running script,
so a dream run inside the script could not be cancelled without losing its state. Here
the dream runs in a worker thread that only touches a plain ``Job`` object (never st.*);
the page draws the job with an ``st.fragment`` that polls it every ``POLL_SECONDS``:
st.status, st.progress and the latest preview. Cancel sets an event that the dream's
should_cancel reads, so it stops within one iteration and returns the partial result,
which the page keeps like any finished result. The job lives in Session State, so
switching pages and coming back shows it still running (or its result).

Usage in a page (dashboard.runs.start_run takes the device's lock and the step total, then calls
start here)::

    if st.button("Dream"):
        runs.start_run(SLOT, "Dreaming", work, model.device, dream_config=config)
    progress.panel(SLOT, on_done=lambda result: st.session_state.update(last=result))
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import streamlit as st
import torch

from analysis.errors import LabError
from analysis.pngmeta import png_bytes
from analysis.progress import OnStep, ShouldCancel

log = logging.getLogger("inceptionism.dashboard")

POLL_SECONDS = 0.5
EXIT_WAIT_SECONDS = 20
Work = Callable[[OnStep, ShouldCancel], Any]
"""A run: work(on_step, should_cancel), in the progress vocabulary every analysis loop speaks."""


@dataclass(eq=False)  # compared and hashed by identity
class Job:
    """A run in a worker thread. The thread writes these fields; the page only reads them."""

    title: str
    steps_per_octave: int | None = None
    status: str = "waiting"  # waiting -> running -> done | failed | cancelled (before it began)
    step: int = 0
    total: int = 0
    preview: torch.Tensor | None = None
    result: Any = None
    error: str | None = None
    started: float = field(default_factory=time.monotonic)
    running_since: float | None = None
    cancel_event: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = field(default=None, repr=False)
    _shown: tuple[torch.Tensor, bytes] | None = field(default=None, repr=False)  # a preview and its PNG

    # -- the callbacks analysis calls
    def on_step(self, step: int, total: int, preview: torch.Tensor | None) -> None:
        self.step, self.total = step, total
        if preview is not None:
            self.preview = preview

    def should_cancel(self) -> bool:
        return self.cancel_event.is_set()

    def cancel(self) -> None:
        self.cancel_event.set()

    def preview_png(self) -> bytes | None:
        """The latest preview as PNG, encoded once per preview: the panel redraws every POLL_SECONDS,
        and Streamlit would encode a picture handed to st.image again each time, for the same pixels."""
        preview = self.preview  # one read: the worker may replace it meanwhile
        if preview is None:
            return None
        if self._shown is None or self._shown[0] is not preview:
            self._shown = (preview, png_bytes(preview))
        return self._shown[1]

    @property
    def finished(self) -> bool:
        return self.status in ("done", "failed", "cancelled")

    def describe(self) -> str:
        """One line for the status label: what, how far, how long."""
        if self.status == "waiting":
            return f"{self.title}: waiting for the device (another dream is running)…"
        if self.cancel_event.is_set():
            return f"{self.title}: stopping…"
        parts = [f"{self.title}: step {self.step} of {self.total or '?'}"]
        if self.steps_per_octave and self.total:
            octaves = max(1, self.total // self.steps_per_octave)
            current = min(octaves, max(1, -(-self.step // self.steps_per_octave)))
            parts.append(f"octave {current} of {octaves}")
        if self.running_since is not None and self.step:
            elapsed = time.monotonic() - self.running_since
            left = elapsed / self.step * max(0, self.total - self.step)
            parts.append(f"{elapsed:.0f} s, about {left:.0f} s left")
        return " · ".join(parts)


_LIVE: weakref.WeakSet[Job] = weakref.WeakSet()


def stop_all(wait: float = EXIT_WAIT_SECONDS) -> None:
    """Cancel every running job of this process and wait up to `wait` seconds for them to end."""
    jobs = [job for job in list(_LIVE) if not job.finished]
    for job in jobs:
        job.cancel()
    deadline = time.monotonic() + wait
    for job in jobs:
        if job.thread is not None:
            job.thread.join(timeout=max(0.0, deadline - time.monotonic()))


# A worker thread still inside torch when Python finalises aborts the process ("terminate called
# without an active exception"): at exit, cancel the jobs (a dream stops within a step) and wait.
atexit.register(stop_all)


def _run(job: Job, work: Work, lock: threading.Lock | None) -> None:
    try:
        if lock is not None:
            while not lock.acquire(timeout=0.1):
                if job.cancel_event.is_set():
                    job.status = "cancelled"
                    return
        try:
            job.status, job.running_since = "running", time.monotonic()
            job.result = work(job.on_step, job.should_cancel)
        finally:
            if lock is not None:
                lock.release()
        job.status = "done"
    except LabError as err:
        job.error, job.status = str(err), "failed"
    except Exception as err:  # a bug: keep the traceback in the server log, one line in the page
        log.exception("%s failed", job.title)
        job.error = f"Internal error ({type(err).__name__}: {err}). The server log has the details."
        job.status = "failed"


def start(slot: str, title: str, work: Work, lock: threading.Lock | None = None,
          steps_per_octave: int | None = None, total: int = 0, preview: torch.Tensor | None = None) -> Job:
    """Run work(on_step, should_cancel) in a worker thread; the job is kept in st.session_state[slot].

    preview: a (3, H, W) picture to show until the first preview arrives (the start image).
    """
    if running(slot):
        raise RuntimeError(f"A job is already running in {slot}.")
    st.session_state.pop(_error_key(slot), None)
    job = Job(title=title, steps_per_octave=steps_per_octave, total=total, preview=preview)
    job.thread = threading.Thread(target=_run, args=(job, work, lock), name=f"dream-{slot}", daemon=True)
    st.session_state[slot] = job
    _LIVE.add(job)
    job.thread.start()
    return job


def running(slot: str) -> bool:
    job = st.session_state.get(slot)
    return isinstance(job, Job) and not job.finished


def _error_key(slot: str) -> str:
    return f"{slot}:error"


def panel(slot: str, on_done: Callable[[Any], None]) -> None:
    """Draw the job in `slot` where this is called; hand a finished job's result to on_done once.

    on_done runs in the script thread (so it may use st.session_state). A failure stays on
    the page as one st.error line until the next run of this slot.
    """
    job = st.session_state.get(slot)
    if isinstance(job, Job) and job.finished:
        del st.session_state[slot]
        if job.status == "failed":
            st.session_state[_error_key(slot)] = job.error
        elif job.status == "cancelled":
            st.toast("Cancelled before it started.", icon=":material/stop_circle:")
        else:
            on_done(job.result)
        job = None
    if job is None:
        message = st.session_state.get(_error_key(slot))
        if message:
            st.error(message, icon=":material/error:")
        return

    @st.fragment(run_every=POLL_SECONDS)
    def _live() -> None:
        current = st.session_state.get(slot)
        if not isinstance(current, Job) or current.finished:
            st.rerun()  # the full run hands the result over and draws it
            return
        _draw(current, slot)

    _live()


def _draw(job: Job, slot: str) -> None:
    # Not `with st.status(...)`: leaving that block marks the status complete, and this one is
    # still running after each poll of the fragment.
    box = st.status(job.describe(), expanded=True, state="running")
    fraction = job.step / job.total if job.total else 0.0
    box.progress(min(1.0, fraction))
    left, right = box.columns([1, 2])
    preview = job.preview_png()
    if preview is not None:
        left.image(preview, width="stretch", output_format="PNG",  # PNG: as it is, not encoded again
                   caption="Live preview, every few steps" if job.step >= 5 else "Start image; the preview follows")
    else:
        left.caption("The preview appears after the first few steps.")
    right.button("Cancel", key=f"{slot}:cancel", on_click=job.cancel, icon=":material/stop_circle:",
                 disabled=job.cancel_event.is_set(), help="Stops within one step; the partial dream is kept.")
