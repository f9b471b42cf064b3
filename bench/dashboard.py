"""Section `dashboard`: one Dream-page dream in a real browser, alone and with two sessions at once,
against the same dream as the CLI runs it (the library call, in this process).

The server is `streamlit run dashboard/app.py` started from the repository root, so
.streamlit/config.toml applies as it does for `make run`; headless Debian Chromium (Playwright)
sets the image size, clicks Dream and waits for the result's download button. Every session is
a fresh browser context (a new Streamlit session). A second server with Streamlit's own default
runner.postScriptGC=true (a full garbage collection after every script run, the progress
panel's twice-a-second reruns included) is measured in the same run, so the setting's effect is
a ratio of two figures taken side by side.

The browser runs on the same CPU as the server here (a real user's does not), so its rendering
is in the dashboard figures too.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from analysis.dream import dream, preset
from analysis.images import load_image
from analysis.objectives import DEFAULT_DEPTH, LayerL2
from analysis.zoo import LoadedModel

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")  # as tests/e2e/test_browser.py: `make browser` installs Debian's package
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
SAMPLE = "cat_chelsea.jpg"  # the Dream page's default start image
PRESET = "google"  # the Dream page's default preset
TIMEOUT_S = 600
SERVERS = {"app": [], "streamlit_default_gc": ["--runner.postScriptGC", "true"]}
"""The repository's settings, and the same with Streamlit's default post-script collection back on."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def streamlit_server(flags: list[str]) -> Iterator[str]:
    """`streamlit run dashboard/app.py` on a free loopback port; yields its URL, stops it after."""
    port = _free_port()
    with tempfile.TemporaryDirectory() as weights, tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "dashboard/app.py", "--server.port", str(port),
             "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false",
             *flags],
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "INCEPTIONISM_WEIGHTS_DIR": weights})
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while not _healthy(url):
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError(f"streamlit did not start: {log.read()[-2000:]}")
                time.sleep(0.5)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as reply:
            return reply.read().strip() == b"ok"
    except OSError:
        return False


def _dream_page(browser, url: str, size: int):
    """A new session on the Dream page with the image size set to `size` (the defaults otherwise)."""
    page = browser.new_context(viewport={"width": 1400, "height": 2200}).new_page()
    page.set_default_timeout(TIMEOUT_S * 1000)
    page.goto(f"{url}/dream")
    page.get_by_role("button", name="✓ Cat").wait_for(state="visible")
    slider = page.get_by_role("slider").first  # image size, in steps of 32 px
    deadline = time.monotonic() + TIMEOUT_S
    while (value := int(slider.input_value())) != size:  # one key at a time: a rerun may take the focus
        if time.monotonic() > deadline:
            raise RuntimeError(f"the image size slider stayed at {value} px, not {size}")
        slider.focus()
        slider.press("ArrowRight" if value < size else "ArrowLeft")
        page.wait_for_timeout(100)
    page.wait_for_timeout(1500)  # the rerun that takes the new size
    return page


def dream_at_once(pages: list) -> list[float]:
    """Click Dream in each page (milliseconds apart); seconds from each click to its result on the page."""
    starts = []
    for page in pages:
        starts.append(time.perf_counter())
        page.get_by_role("button", name="Dream", exact=True).click()
    seconds: list[float | None] = [None] * len(pages)
    while None in seconds:
        for i, page in enumerate(pages):
            if seconds[i] is None and page.get_by_role("button", name="Download PNG").count():
                seconds[i] = time.perf_counter() - starts[i]
        if time.perf_counter() - starts[0] > TIMEOUT_S:
            raise RuntimeError(f"no result within {TIMEOUT_S} s: {seconds}")
        pages[0].wait_for_timeout(50)
    for page in pages:
        page.context.close()
    return seconds


def _server_figures(browser, flags: list[str], size: int, repeats: int) -> dict:
    with streamlit_server(flags) as url:
        dream_at_once([_dream_page(browser, url, size)])  # warm-up: loads the model
        alone = [dream_at_once([_dream_page(browser, url, size)])[0] for _ in range(repeats)]
        pairs = [sorted(dream_at_once([_dream_page(browser, url, size) for _ in range(2)])) for _ in range(repeats)]
    one = statistics.median(alone)
    first, second = statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)
    return {"one_session_s": one, "two_sessions_first_s": first, "two_sessions_second_s": second,
            # the second of two sessions against one after the other (1.0: the two share the CPU without loss)
            "two_sessions_vs_sequential": second / (2 * one)}


def section_dashboard(model: LoadedModel, size: int, repeats: int) -> dict:
    """The Dream page's default dream (the cat, the layer at depth 0.6, Google preset) at `size` px."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.is_file():
        raise RuntimeError(f"no Chromium at {CHROMIUM}: `make browser` installs it")
    image = load_image(REPO / "assets" / "samples" / SAMPLE, size)
    objective, config = LayerL2(model.layer_at_depth(DEFAULT_DEPTH).name), preset(PRESET)
    dream(model, image, objective, config)  # warm-up
    cli = statistics.median(_timed(lambda: dream(model, image, objective, config)) for _ in range(repeats))
    row: dict = {"size": size, "preset": PRESET, "cli_s": cli}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            for name, flags in SERVERS.items():
                figures = _server_figures(browser, flags, size, repeats)
                figures["one_session_vs_cli"] = figures["one_session_s"] / cli
                row.update({f"{name}.{key}": value for key, value in figures.items()})
        finally:
            browser.close()
    row["default_gc_vs_app_one_session"] = row["streamlit_default_gc.one_session_s"] / row["app.one_session_s"]
    row["default_gc_vs_app_two_sessions"] = (row["streamlit_default_gc.two_sessions_second_s"]
                                             / row["app.two_sessions_second_s"])
    return row


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start
