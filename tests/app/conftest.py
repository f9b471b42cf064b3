"""Helpers for the dashboard's AppTest tests: open a page, let its background job finish."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "dashboard" / "app.py")
PAGES = ROOT / "pages"


def finish_job(at: AppTest, slot: str, timeout: float = 300) -> AppTest:
    """Wait for the background job in `slot`, then rerun so the page takes its result."""
    job = at.session_state[slot]
    job.thread.join(timeout=timeout)
    assert job.finished, job.describe()
    return at.run()


@pytest.fixture
def no_extra_weights(tmp_path, monkeypatch):
    """An empty weights folder: only the bundled EfficientNet-Lite models have weights."""
    monkeypatch.setenv("INCEPTIONISM_WEIGHTS_DIR", str(tmp_path))
    return tmp_path


@pytest.fixture
def open_page(no_extra_weights):
    """open_page('dream') -> AppTest of pages/dream.py after its first run, with no exception."""
    def open_(name: str) -> AppTest:
        at = AppTest.from_file(str(PAGES / f"{name}.py"), default_timeout=120)
        at.run()
        assert not at.exception, at.exception
        return at
    return open_
