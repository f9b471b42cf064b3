"""End to end in a real browser: `streamlit run` on a free port, headless Debian Chromium through
Playwright, dream the bundled cat photo on the Dream page, wait for the result, keep a screenshot.

Needs /usr/bin/chromium (`make test` installs Debian's package). Where CI=true a missing browser
is a failure, elsewhere a skip.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]


def _need(condition: bool, reason: str) -> None:
    if condition:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: the browser test must run)")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The app under `streamlit run`, headless, on a free port; stopped after the module."""
    _need(CHROMIUM.is_file(), f"no Chromium at {CHROMIUM}: apt-get install -y chromium")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _need(False, "playwright is not installed")
    port = _free_port()
    log = (tmp_path_factory.mktemp("server") / "streamlit.log").open("w")
    env = {**os.environ, "INCEPTIONISM_WEIGHTS_DIR": str(tmp_path_factory.mktemp("weights")),
           "INCEPTIONISM_CACHE_DIR": str(tmp_path_factory.mktemp("cache"))}
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "dashboard/app.py", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as reply:
                    if reply.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail(f"streamlit did not start: {Path(log.name).read_text()[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture
def page(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            tab = browser.new_page(viewport={"width": 1400, "height": 2200})
            tab.set_default_timeout(60_000)
            yield tab
        finally:
            browser.close()


def set_slider(page, label: str, value: int) -> None:
    """Move the slider labelled `label` to `value` with the keyboard, reading its position back after each key:
    a rerun that redraws the slider mid-way can swallow a key press, so presses are not counted blindly."""
    slider = page.locator('[data-testid="stSlider"]').filter(has_text=label).get_by_role("slider")
    for _ in range(40):
        now = int(slider.input_value())
        if now == value:
            break
        slider.focus()
        slider.press("ArrowRight" if now < value else "ArrowLeft")
        page.wait_for_timeout(300)
    assert int(slider.input_value()) == value
    page.get_by_text(str(value), exact=True).first.wait_for()


def test_dream_the_cat_in_a_real_browser(server, page):
    ARTIFACTS.mkdir(exist_ok=True)
    page.goto(f"{server}/dream")
    dream = page.get_by_role("button", name="Dream", exact=True)
    dream.wait_for()
    page.get_by_role("button", name="✓ Cat").wait_for(state="visible")  # the bundled cat is the default (waits:
    # the page draws its widgets over several messages, and the Dream button may come first)
    set_slider(page, "Image size", 128)
    dream.click()
    page.locator('[data-testid="stProgress"]').first.wait_for()  # st.status with a progress bar
    result = page.get_by_text("Dream: EfficientNet-Lite0", exact=False).first
    result.wait_for(timeout=150_000)
    page.get_by_role("button", name="Download PNG").wait_for()
    page.wait_for_timeout(1000)  # let the images and the chart paint
    page.screenshot(path=str(ARTIFACTS / "e2e-dream.png"), full_page=True)
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.locator('[data-testid="stAlertContentError"]').count() == 0
    images = page.locator('[data-testid="stImage"] img')
    assert images.count() >= 2 + 7  # 7 sample thumbnails, the original and the dream
    assert page.locator('[data-testid="stPlotlyChart"]').count() == 1


def test_cancel_in_a_real_browser_keeps_the_partial_dream(server, page):
    """The live panel polls the worker; its Cancel button stops the dream and the partial one is shown."""
    page.goto(f"{server}/dream")
    dream = page.get_by_role("button", name="Dream", exact=True)
    dream.wait_for()
    page.get_by_text("Detailed settings").click()
    steps = page.get_by_label("Steps per octave")
    steps.wait_for()
    steps.fill("200")
    steps.press("Enter")
    page.wait_for_timeout(500)
    dream.click()
    page.get_by_text("Dreaming: step", exact=False).first.wait_for()
    page.get_by_role("button", name="Cancel").click()
    page.get_by_text("Cancelled after", exact=False).first.wait_for(timeout=60_000)
    page.get_by_text("(cancelled, partial)", exact=False).first.wait_for()
    page.get_by_role("button", name="Download PNG").wait_for()
    page.wait_for_timeout(1500)
    assert page.locator('[data-testid="stException"]').count() == 0
    page.screenshot(path=str(ARTIFACTS / "e2e-cancel.png"), full_page=True)


def _no_exception(page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.locator('[data-testid="stAlertContentError"]').count() == 0


def test_every_page_opens_in_a_real_browser(server, page):
    """A new user's first click on each page: no traceback, no error; a screenshot of each."""
    ARTIFACTS.mkdir(exist_ok=True)
    for file in sorted((ROOT / "pages").glob("*.py")):
        page.goto(f"{server}/{file.stem}" if file.stem != "home" else server)
        page.get_by_role("heading").first.wait_for()
        page.wait_for_timeout(2500)  # pages that start work by themselves show their panel
        _no_exception(page)
        page.screenshot(path=str(ARTIFACTS / f"e2e-page-{file.stem}.png"), full_page=True)


def test_compare_and_statistics_in_a_real_browser(server, page):
    """The comparison story: two models dreamed side by side, then their statistics measured."""
    page.goto(f"{server}/compare")
    page.get_by_role("button", name="Dream with both").click()
    page.get_by_role("button", name="Download grid PNG").wait_for(timeout=240_000)
    page.wait_for_timeout(1000)
    _no_exception(page)
    page.screenshot(path=str(ARTIFACTS / "e2e-compare.png"), full_page=True)

    page.goto(f"{server}/activation_statistics")
    page.get_by_role("button", name="Measure", exact=True).click()
    page.get_by_role("button", name="All statistics CSV").wait_for(timeout=240_000)
    page.wait_for_timeout(1000)
    _no_exception(page)
    assert page.locator('[data-testid="stPlotlyChart"]').count() >= 2
    page.screenshot(path=str(ARTIFACTS / "e2e-statistics.png"), full_page=True)


def test_export_saves_one_result_with_its_recipe_in_a_real_browser(server, page):
    """Dream, follow the sidebar to Export (same session), save that one result: the PNG carries
    its recipe and the recipe JSON names the dream's model and seed."""
    import json

    from analysis.pngmeta import read_png_metadata

    page.goto(f"{server}/dream")
    page.get_by_role("button", name="✓ Cat").wait_for(state="visible")
    set_slider(page, "Image size", 64)
    page.get_by_role("button", name="Dream", exact=True).click()
    page.get_by_role("button", name="Download PNG").wait_for(timeout=150_000)
    page.get_by_role("link", name="Export").first.click()  # in-app navigation keeps the session's results
    page.get_by_text("1 result this session", exact=False).wait_for()
    page.get_by_role("button", name="Save").first.click()
    with page.expect_download() as picture:  # one right after the other: no rerun between them (on_click="ignore")
        page.get_by_role("button", name="Picture PNG").click()
    with page.expect_download() as recipe:
        page.get_by_role("button", name="Recipe JSON").click()
    page.screenshot(path=str(ARTIFACTS / "e2e-export-save.png"), full_page=True)
    _no_exception(page)
    saved = json.loads(Path(recipe.value.path()).read_text())
    assert saved["model"] == "efficientnet_lite0" and saved["config"]["seed"] == 0
    assert read_png_metadata(Path(picture.value.path()).read_bytes())["recipe"] == saved


def test_a_link_opens_an_atlas_unit_in_a_real_browser(server, page):
    """A shared address opens that unit: the atlas it names is computed here, then the unit shows."""
    ARTIFACTS.mkdir(exist_ok=True)
    link = "model=efficientnet_lite0&layer=block3&unit=5&views=whole&size=64&k=4"
    page.goto(f"{server}/atlas?{link}")
    run = page.get_by_role("button", name="Run the atlas")
    run.wait_for()
    run.click()
    page.get_by_text("Unit 5 of block3").first.wait_for(timeout=240_000)
    page.get_by_text("Concept:", exact=False).first.wait_for()
    page.wait_for_timeout(1500)  # let the crops and the histogram paint
    page.screenshot(path=str(ARTIFACTS / "e2e-atlas.png"), full_page=True)
    assert page.url.endswith(link)
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.locator('[data-testid="stAlertContentError"]').count() == 0
    assert page.locator('[data-testid="stImage"] img').count() >= 2 * 4  # the unit's 4 crops and 4 views at least
