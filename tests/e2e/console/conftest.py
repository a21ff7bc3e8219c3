"""Headless Chromium (Debian's, installed by the suite like MariaDB's server) for the console's browser tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from local import chromium

_not_run: list[str] = []  # tests that need the browser, left out because this machine cannot have it


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On a machine that has no Chromium and cannot install it, one test fails naming the package to
    install and the other browser tests are deselected, so the run shows that failure once."""
    needing = [item for item in items if "browser" in getattr(item, "fixturenames", ())]
    if not needing or chromium.find_binary() or chromium.can_install():
        return
    rest = needing[1:]
    _not_run[:] = [item.nodeid for item in rest]
    if rest:
        config.hook.pytest_deselected(items=rest)
        left_out = set(rest)
        items[:] = [item for item in items if item not in left_out]


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Chromium for the session (Playwright drives Debian's binary; no browser download)."""
    try:
        binary = chromium.ensure_installed()
    except chromium.ChromiumUnavailable as error:  # fail, never skip: these tests are the console's proof
        also = f" ({len(_not_run)} more tests need it and were not run)" if _not_run else ""
        pytest.fail(f"the console's browser tests need Chromium{also}: {error}", pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=binary, args=list(chromium.LAUNCH_ARGS))
        try:
            yield launched
        finally:
            launched.close()
