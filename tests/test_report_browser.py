"""`flipbench report` opened in a real browser (headless Chromium, Debian's package, driven by
playwright): the page shows its figures and tables, no payload from a reply runs, and the page
asks the network for nothing.

The run is made through the real run path with an in-process backend whose replies attack the
page (tests/report_runs.py). `make install` installs chromium; in CI (CI set) a missing browser
fails this test rather than skipping it, so the check can never silently stop running.
Set FLIPBENCH_REPORT_SCREENSHOT=path.png to keep the screenshot for a look.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_helpers import offline_page

from tests.cli_helpers import assert_ok, flipbench
from tests.report_runs import HOSTILE_CATEGORY, PAYLOADS, make_run


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A hostile run's report, written by the console script: (file, run id)."""
    folder = tmp_path_factory.mktemp("report")
    db = folder / "j.db"
    with pytest.MonkeyPatch.context() as monkeypatch:
        run_id = make_run(monkeypatch, db, model="hostile/payloads", system_prompt=PAYLOADS[3])
    out = folder / "report.html"
    proc = flipbench("report", run_id, "--db", str(db), "--out", str(out), cwd=folder)
    assert_ok(proc)
    assert str(out) in proc.stdout
    yield out, run_id


def test_the_file_holds_every_payload_as_text_only(report: tuple[Path, str]) -> None:
    """Without a browser: escaped wherever it appears, never as markup."""
    html = report[0].read_text()
    for payload in (*PAYLOADS, HOSTILE_CATEGORY):
        assert payload not in html
    assert "&lt;script&gt;window.__pwned" in html
    assert html.count("<script") == 1  # ours, hashed in the page's policy
    assert '="javascript:' not in html and "='javascript:" not in html  # no live link
    assert "http://" not in html and "https://" not in html


def test_report_renders_offline_in_chromium_and_runs_no_payload(
    report: tuple[Path, str], tmp_path: Path
) -> None:
    path, run_id = report
    url = path.resolve().as_uri()
    dialogs: list[str] = []
    with offline_page(path, height=1600, dialogs=dialogs) as (page, requests):
        shot = Path(os.environ.get("FLIPBENCH_REPORT_SCREENSHOT") or tmp_path / "report.png")
        page.screenshot(path=str(shot), full_page=False)
        dom: dict[str, Any] = page.evaluate(
            """() => ({
            pwned: window.__pwned === undefined ? null : String(window.__pwned),
            title: document.title,
            images: Array.from(document.images).map(i => ({
                width: i.naturalWidth, data: i.src.startsWith('data:image/png;base64,')})),
            figures: document.querySelectorAll('figure img').length,
            scripts: document.scripts.length,
            handlers: document.querySelectorAll(
                '[onerror],[onload],[onclick],iframe,svg,object,embed').length,
            jsLinks: Array.from(document.links).filter(
                a => a.protocol === 'javascript:').length,
            tables: Array.from(document.querySelectorAll('table')).map(t => t.className),
            samples: document.querySelector('table.samples').innerText,
            count: document.querySelector('[data-count]').textContent,
            headline: document.querySelector('ul.headline').innerText,
        })"""
        )
        page.select_option("[data-filter=valid]", "0")  # the browser's own script works
        filtered = page.locator("[data-count]").text_content()
    assert dom["pwned"] is None and dialogs == [], (dom["pwned"], dialogs)
    assert requests == [url], requests
    assert dom["scripts"] == 1 and dom["handlers"] == 0 and dom["jsLinks"] == 0
    assert dom["figures"] >= 1 and dom["images"], dom["images"]
    assert all(i["width"] > 0 and i["data"] for i in dom["images"]), dom["images"]
    assert {"overview", "conditions", "metrics", "samples"} <= set(dom["tables"])
    assert run_id in dom["title"]
    assert "S = " in dom["headline"] and "noise floor" in dom["headline"]
    for payload in PAYLOADS:  # shown to the reader, as text
        assert payload.split(">")[0] in dom["samples"]
    assert "unparseable" in dom["samples"]
    shown, _, total, _ = (filtered or "").split(maxsplit=3)  # "K of M shown"
    assert dom["count"] == f"{total} of {total} shown" and 0 < int(shown) < int(total)
    assert shot.stat().st_size > 10_000


def test_the_browser_check_would_see_a_payload_run(tmp_path: Path) -> None:
    """The check above can fail: a page whose script raises a dialog is caught by the same
    helper, the dialog recorded before the page has loaded."""
    page_file = tmp_path / "hostile.html"
    page_file.write_text("<html><body><script>alert('ran')</script></body></html>")
    dialogs: list[str] = []
    with offline_page(page_file, dialogs=dialogs) as (_, requests):
        pass
    assert dialogs == ["ran"] and requests == [page_file.resolve().as_uri()]
