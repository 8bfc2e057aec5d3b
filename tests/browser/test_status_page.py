"""`status --html`'s page in a real browser: Debian's chromium, driven by playwright (never
its own downloaded browser: `playwright install` cannot fetch one here). The page is loaded
from file://, looked at on a desktop and a phone's width, and must load nothing else and log
no console error."""

from __future__ import annotations

import datetime as dt
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from localai_provision.cli.html import status_page
from tests.support.sampleviews import SAMPLE_VIEWS

CHROMIUM = "/usr/bin/chromium"
# As root in a container: no sandbox (it needs user namespaces), no GPU, and nothing that
# phones home (QUIC, component updates, sync, background networking).
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
NOW = dt.datetime(2026, 12, 1, 20, 30, tzinfo=dt.UTC)

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None, reason="needs Debian's chromium (bash .ci/run installs it)"
)


class Browser:
    """One chromium with a fresh profile; what a page logged and asked for, recorded."""

    def __init__(self, context: sync_api.BrowserContext) -> None:
        self.context = context
        self.console_errors: list[str] = []
        self.requests: list[str] = []

    def open(self, url: str, width: int, height: int) -> sync_api.Page:
        page = self.context.new_page()
        page.set_viewport_size({"width": width, "height": height})
        page.on("console", lambda m: m.type == "error" and self.console_errors.append(m.text))
        page.on("pageerror", lambda e: self.console_errors.append(str(e)))
        page.on("request", lambda r: self.requests.append(r.url))
        page.goto(url)
        return page


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=FLAGS
        )
        try:
            yield Browser(context)
        finally:
            context.close()


@pytest.fixture
def page_file(tmp_path: Path) -> Path:
    path = tmp_path / "status.html"
    path.write_text(status_page("lab/site.yaml", SAMPLE_VIEWS, NOW), encoding="utf-8")
    return path


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_the_page_shows_every_host_with_its_state_and_logs_no_error(
    browser: Browser, page_file: Path, tmp_path: Path
) -> None:
    page = browser.open(page_file.as_uri(), 1200, 800)
    rows = page.locator("#hosts tbody tr")
    assert rows.count() == len(SAMPLE_VIEWS)
    assert page.locator("#host-studio-01 .state").inner_text() == "running"
    assert "s-ok" in (page.locator("#host-studio-01 .state").get_attribute("class") or "")
    assert "s-bad" in (page.locator("#host-mini-04 .state").get_attribute("class") or "")
    assert page.locator("#host-studio-02 .drift").inner_text() == "model 1, package 2"
    assert "192 GiB" in page.locator("#host-studio-01").inner_text()
    assert "-" in page.locator("#host-mini-03 td[data-label=Memory]").inner_text()
    assert page.locator("#count-drifted b").inner_text() == "2"
    assert page.locator("#latency-chart rect.bar").count() == len(SAMPLE_VIEWS)
    # A host's text is shown, never run: the error's <script> is text on the page.
    assert "<script>alert(1)</script>" in page.locator("#host-mini-04").inner_text()
    shot = page.screenshot(full_page=True, path=str(tmp_path / "desktop.png"))
    width, height = png_size(shot)
    assert width == 1200 and height >= 300
    assert browser.console_errors == []
    assert browser.requests == [page_file.as_uri()]  # nothing fetched but the page itself
    page.close()


def test_on_a_phone_each_host_is_a_card_no_wider_than_the_screen(
    browser: Browser, page_file: Path, tmp_path: Path
) -> None:
    page = browser.open(page_file.as_uri(), 390, 844)
    assert page.locator("#hosts thead").is_hidden()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    card = page.locator("#host-studio-02").bounding_box()
    assert card is not None and card["width"] <= 390 and card["height"] > 100
    label = page.evaluate(
        "getComputedStyle(document.querySelector('#host-studio-02 td[data-label=Drift]'),"
        " '::before').content"
    )
    assert label == '"Drift: "'
    width, _ = png_size(page.screenshot(full_page=True, path=str(tmp_path / "phone.png")))
    assert width == 390
    assert browser.console_errors == []
    page.close()
