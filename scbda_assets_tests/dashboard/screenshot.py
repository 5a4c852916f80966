"""Capture docs/dashboard.png and docs/lineage.png from a running `make run` session with headless Chromium.

    .venv/bin/python -m scbda_assets_tests.dashboard.screenshot \\
        [--dashboard http://127.0.0.1:8501] [--dagster http://127.0.0.1:3000] [--out docs]

Uses the Debian `chromium` package (never downloads a browser).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def capture(dashboard: str, dagster: str, out: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    written = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 2900})
            page.goto(dashboard)
            page.locator('[data-testid="stMetricValue"]').nth(4).wait_for(timeout=120_000)
            page.wait_for_timeout(6000)  # let every chart draw
            page.screenshot(path=out / "dashboard.png")
            written.append(out / "dashboard.png")

            page = browser.new_page(viewport={"width": 1800, "height": 1100})
            page.goto(f"{dagster.rstrip('/')}/asset-groups")
            page.get_by_text("Global asset lineage").first.wait_for(timeout=120_000)
            page.wait_for_timeout(5000)
            skip = page.get_by_role("button", name="Skip")  # the first-visit community dialog
            if skip.count():
                skip.first.click()
            collapsed = page.locator('[class*="CollapsedGroupNode_collapsedGroupNodeBox"]')
            if collapsed.count():  # the graph opens with groups collapsed; expanding one expands all (kept in
                collapsed.first.click()  # the browser's storage), and a reload zooms to fit the whole graph
                page.wait_for_timeout(2000)
                page.reload()
            page.get_by_text("Global asset lineage").first.wait_for(timeout=120_000)
            page.wait_for_timeout(8000)  # graph layout
            page.screenshot(path=out / "lineage.png")
            written.append(out / "lineage.png")
        finally:
            browser.close()
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dashboard", default="http://127.0.0.1:8501")
    parser.add_argument("--dagster", default="http://127.0.0.1:3000")
    parser.add_argument("--out", type=Path, default=Path("docs"))
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} is not installed: run `make browser` first", file=sys.stderr)
        return 1
    try:
        for path in capture(args.dashboard, args.dagster, args.out):
            print(path)
    except Exception as exc:  # a person runs this: one line, not a traceback
        print(f"screenshot failed: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
