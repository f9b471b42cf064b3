"""Process-wide resources and session helpers.

* Models are loaded once per process and shared by every browser session
  (``st.cache_resource`` keyed by model name and device).
* One ``threading.Lock`` per device, also shared by every session: a dream, a
  classification or any other forward pass holds it, so two sessions never interleave
  hooks on the same module and a small machine is not oversubscribed.
* ``user_errors()``: every ``LabError`` becomes one ``st.error`` line, never a traceback.
* Widgets whose key starts with ``keep.`` keep their value when the user switches pages.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st
import torch

from analysis import zoo
from analysis.errors import ConfigError, LabError

log = logging.getLogger("inceptionism.dashboard")

KEEP = "keep."
DEVICE_KEY = "keep.device"
PRECISION_KEY = "keep.precision"

_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def device_lock(device: str | torch.device) -> threading.Lock:
    """The one lock for a device, shared by all sessions of this server process.

    A plain module-level dict rather than st.cache_resource: clearing Streamlit's cache
    must never hand out a second lock while a dream still holds the first.
    """
    key = str(device)
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(key, threading.Lock())


def keep_widget_values() -> None:
    """Re-store every 'keep.*' widget value, so Streamlit does not drop it on a page switch.

    Streamlit forgets a widget's state when a run does not draw that widget (as happens on
    another page); copying the value into Session State at the start of each run keeps it.
    """
    for key in list(st.session_state.keys()):
        if isinstance(key, str) and key.startswith(KEEP):
            st.session_state[key] = st.session_state[key]


def default(key: str, value: object, allowed: object | None = None) -> None:
    """Seed a widget's value in Session State once (or when it is no longer allowed).

    Widgets drawn with a key seeded here must not also pass index=/value=.
    """
    if key not in st.session_state or (allowed is not None and st.session_state[key] not in allowed):
        st.session_state[key] = value


def available_devices() -> list[str]:
    devices = ["auto", "cpu"]
    if torch.cuda.is_available():
        devices.append("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        devices.append("mps")
    return devices


def current_device() -> str:
    """The device the sidebar chose, resolved ('auto' -> cuda, mps or cpu)."""
    try:
        return str(zoo.pick_device(st.session_state.get(DEVICE_KEY, "auto")))
    except ConfigError:
        return "cpu"


def current_precision(device: str | None = None) -> str:
    """The sidebar's precision, resolved for the device (default: the sidebar's; 'auto' -> bf16 on CUDA, else fp32)."""
    try:
        return zoo.pick_precision(st.session_state.get(PRECISION_KEY, "auto"),
                                     torch.device(device or current_device()))
    except ConfigError:
        return "fp32"


@st.cache_resource(show_spinner=False, max_entries=6)
def _cached_model(name: str, device: str, precision: str) -> zoo.LoadedModel:
    log.info("loading %s on %s (%s)", name, device, precision)
    return zoo.load_model(name, device=device, precision=precision)


def load_model(name: str, device: str | None = None, precision: str | None = None) -> zoo.LoadedModel:
    """The shared LoadedModel, at the sidebar's precision unless one is given (a recipe's);
    raises LabError (e.g. WeightsMissingError) for the caller to show."""
    device = device or current_device()
    precision = precision or current_precision(device)
    with st.spinner(f"Loading {name} on {device}…"):
        return _cached_model(name, device, precision)


@contextmanager
def user_errors(where: object | None = None) -> Iterator[None]:
    """Show any LabError raised inside as one st.error line (in `where`, a container, if given).

    The rest of the page still runs; code after the failing line inside the block does not.
    """
    try:
        yield
    except LabError as err:
        (where or st).error(str(err), icon=":material/error:")


def show_error(message: str, where: object | None = None) -> None:
    (where or st).error(message, icon=":material/error:")


PAGES_DIR = zoo.REPO_ROOT / "pages"


def page_path(file: str) -> str:
    """Absolute path of a page file, for st.page_link / st.switch_page."""
    return str(PAGES_DIR / file)
