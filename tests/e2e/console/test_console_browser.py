"""The review console as an analyst uses it, in headless Chromium: sign in, filter the queue, open a
case, record a verdict with the keyboard, and find the label in the lake. Orders are scored through
the local risk-score API (the score Lambda's handler), so the case view shows what a real decision
stores. Screenshots of the queue and a case view go to build/console/ (docs/console.md shows them)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests

from local import stack as local_stack
from local.api_server import seed_features, serve
from local.console_server import serve_local
from local.inference_server import serve as serve_model
from tests.integration.api.test_score_handler import order
from tests.integration.console.conftest import INJECTION_CORPUS
from tests.unit.api.fakes import DAY, T0, customer_with_history

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[3]
SCREENSHOTS = ROOT / "build" / "console"
HOSTILE = INJECTION_CORPUS[1]  # '"><img src=x onerror=alert(1)>' as a delivery address


@pytest.fixture(scope="module")
def console(trained_model, tmp_path_factory) -> Iterator[dict[str, Any]]:
    config = json.loads((Path(trained_model[0]) / "config.json").read_text())
    stack = local_stack.start(prefix="rg-console-browser")  # moto's state is per process: own names
    model = serve_model(str(trained_model[0]))
    started: list[Any] = [model]
    raw = tmp_path_factory.mktemp("lake") / "raw"
    try:
        seed_features(
            stack,
            [
                ("customer#C1", customer_with_history(orders=8, returned=5, last_order_ms=T0 - DAY)),
                ("customer#C2", customer_with_history(orders=12, returned=0, last_order_ms=T0 - DAY)),
            ],
        )
        api = serve(stack, config, model.url, log_path=tmp_path_factory.mktemp("logs") / "score.log")
        started.append(api)
        bodies = [order(f"WEB-{i}", "C1" if i % 2 else "C2", amount=2499.0 + 300 * i) for i in range(8)]
        bodies += [order(f"WEB-BIG-{i}", "C2", amount=900_000.0 + i, payment_method="card") for i in range(3)]
        bodies.append(order("WEB-HOSTILE", "C3", amount=950_000.0, delivery_address=HOSTILE))
        scored = {}
        for body in bodies:
            answer = requests.post(f"{api.url}/v1/risk-score", json=body, timeout=30)
            assert answer.status_code == 200, answer.text
            scored[body["order"]["order_id"]] = answer.json()
        server = serve_local(stack, raw, refresh_s=0)
        started.append(server)
        yield {"server": server, "scored": scored, "raw": raw, "stack": stack}
    finally:
        for running in reversed(started):
            running.stop()
        stack.stop()


@pytest.fixture(scope="module")
def page(browser, console) -> Iterator[Any]:
    """One signed-in page for the module; any script error, dialog or CSP violation is recorded."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    tab.problems = []  # type: ignore[attr-defined]
    tab.on("pageerror", lambda error: tab.problems.append(f"page error: {error}"))  # type: ignore[attr-defined]
    tab.on("dialog", lambda dialog: (tab.problems.append(f"dialog: {dialog.message}"), dialog.dismiss()))  # type: ignore[attr-defined]
    tab.on(
        "console",
        lambda message: (
            tab.problems.append(f"console: {message.text}")  # type: ignore[attr-defined]
            if message.type == "error"
            else None
        ),
    )
    server = console["server"]
    tab.goto(server.url + "/")
    assert tab.url.endswith("/login")
    tab.fill("#username", "analyst")
    tab.fill("#password", server.users["analyst"][0])
    tab.click("#sign-in")
    tab.wait_for_selector("#queue")
    yield tab
    context.close()


def test_queue_shows_the_cases_waiting_with_counts(page, console) -> None:
    waiting = {
        order_id
        for order_id, body in console["scored"].items()
        if body["recommended_action"] in ("manual_review", "otp_verification")
    }
    assert len(waiting) >= 4  # the high amounts at least
    rows = page.locator("#queue tbody tr")
    assert rows.count() == len(waiting)
    assert page.inner_text("#waiting-count") == str(len(waiting))
    shown = set(page.locator("#queue tbody a.case-link").all_inner_texts())
    assert shown == waiting
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "queue.png"), full_page=True)
    assert not page.problems  # type: ignore[attr-defined]


def test_filtering_by_level_keeps_only_that_level(page, console) -> None:
    page.select_option("#f-action", "manual_review")
    page.click("#apply-filters")
    page.wait_for_url("**action=manual_review**")
    actions = page.locator("#queue tbody td:nth-child(6)").all_inner_texts()
    expected = sum(body["recommended_action"] == "manual_review" for body in console["scored"].values())
    assert actions and set(actions) == {"manual_review"} and len(actions) == expected
    assert page.inner_text("#match-count").startswith(f"{expected} matching")


def test_hostile_customer_text_is_shown_as_text(page, console) -> None:
    decision_id = console["scored"]["WEB-HOSTILE"]["decision_id"]
    page.goto(f"{console['server'].url}/cases/{decision_id}")
    cell = page.locator("table.request td", has_text="onerror")
    assert cell.inner_text() == HOSTILE
    assert page.locator("img[src=x]").count() == 0
    assert not page.problems  # type: ignore[attr-defined]


def test_open_a_case_and_record_a_verdict_with_the_keyboard(page, console) -> None:
    page.goto(console["server"].url + "/?sort=amount&descending=1")
    first = page.locator("#queue tbody a.case-link").first
    order_id = first.inner_text()
    first.click()
    page.wait_for_selector("#verdict-form")
    assert page.inner_text("#case-title") == f"Case {order_id}"
    # the waterfall picture loaded and has a size
    assert page.eval_on_selector("#waterfall", "img => img.complete && img.naturalWidth") > 100
    page.screenshot(path=str(SCREENSHOTS / "case.png"), full_page=True)
    page.fill("#note", "amount far above this customer's history; card new to us")
    page.keyboard.press("Escape")  # out of the note, so the next key is a shortcut
    with page.expect_navigation():
        page.keyboard.press("a")
    assert "confirmed_abuse by analyst" in page.inner_text("table.facts")
    assert page.locator("#verdict-form").count() == 0
    # the label is in the lake's label store, with the verdict's time
    files = list((console["raw"] / "labels").glob("dt=*/verdict-*.parquet"))
    assert len(files) == 1
    label = pd.read_parquet(files[0])
    assert label.order_id.tolist() == [order_id] and label.is_abuse.tolist() == [1]
    assert page.locator("#audit", has_text="amount far above").count() == 1
    # and the case has left the queue
    page.goto(console["server"].url + "/")
    assert order_id not in page.locator("#queue tbody a.case-link").all_inner_texts()
    assert not page.problems  # type: ignore[attr-defined]
