"""Make docs/status-page.png: the sample fleet's status page (tests/support/sampleviews.py)
as Debian's chromium shows it, through playwright with the flags the browser test uses.

    python bench/statuspage_shot.py [OUT.png]
"""

from __future__ import annotations

import datetime as dt
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from playwright.sync_api import sync_playwright

from localai_provision.cli.html import status_page
from tests.browser.test_status_page import CHROMIUM, FLAGS
from tests.support.sampleviews import SAMPLE_VIEWS


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/status-page.png")
    with tempfile.TemporaryDirectory() as tmp:
        page_file = Path(tmp) / "status.html"
        when = dt.datetime(2026, 12, 1, 20, 30, tzinfo=dt.UTC)
        page_file.write_text(status_page("lab/site.yaml", SAMPLE_VIEWS, when), encoding="utf-8")
        with sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                str(Path(tmp) / "profile"), executable_path=CHROMIUM, headless=True, args=FLAGS
            )
            page = context.new_page()
            page.set_viewport_size({"width": 1100, "height": 600})
            page.goto(page_file.as_uri())
            page.screenshot(path=str(out), full_page=True)
            context.close()
    print(out)


if __name__ == "__main__":
    main()
