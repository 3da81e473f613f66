"""Finding the system Chromium for the browser tests (the HTML report of runs and of sweeps)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Page


def chromium_path() -> str:
    """The system Chromium: without it (or playwright) a browser test fails, never skips —
    `make test` installs both (`make browser`, the dev extra)."""
    path = next((p for name in ("chromium", "chromium-browser") if (p := shutil.which(name))), None)
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        path = None
    if path is None:
        pytest.fail(
            "the browser test needs Debian's chromium and playwright (`make test` installs both)"
        )
    return path


@contextmanager
def offline_page(
    html: Path, height: int = 1400, dialogs: list[str] | None = None
) -> Iterator[tuple[Page, list[str]]]:
    """The report `html` opened in headless Chromium, its figures loaded; every request the
    page makes is recorded, and any but the file itself is refused. With `dialogs`, every
    dialog the page opens (an `alert` a payload would raise) is recorded there, from before
    the page loads, and dismissed."""
    executable = chromium_path()
    from playwright.sync_api import Route, sync_playwright

    url = html.resolve().as_uri()
    requests: list[str] = []

    def route(r: Route) -> None:
        requests.append(r.request.url)
        if r.request.url == url:
            r.continue_()
        else:
            r.abort()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": height})
            page.route("**/*", route)
            if dialogs is not None:
                page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(url, wait_until="load")
            page.wait_for_function("Array.from(document.images).every(i => i.complete)")
            yield page, requests
        finally:
            browser.close()
