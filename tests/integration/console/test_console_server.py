"""The review console over real HTTP against the local stack: queue, filters, case view, verdicts with
their audit trail and labels, sign-in, CSRF, CSP and escaping of everything a customer can type."""

from __future__ import annotations

import html
import re
from datetime import datetime, timezone

import pandas as pd
import pytest
import requests

from returnguard.aws.reviews import ReviewStore
from returnguard.console import ConsoleError, make_verdict
from tests.integration.console.conftest import (
    HOUR,
    INJECTION_CORPUS,
    World,
    csrf_of,
    save_decision,
    sign_in,
)

pytestmark = pytest.mark.slow
NOW = datetime.now(timezone.utc)


@pytest.fixture(scope="module")
def seeded(world: World):
    d = world.decisions
    made = {
        "old": save_decision(d, "Q-OLD", level="high", amount=5000.0, created=NOW - 30 * HOUR, region="KA"),
        "otp": save_decision(d, "Q-OTP", level="medium", action="otp_verification", score=0.4, amount=300.0),
        "ret": save_decision(
            d, "Q-RET", event_type="return", level="high", amount=800.0, created=NOW - 2 * HOUR
        ),
        "ok": save_decision(d, "Q-APPROVED", level="low", action="approve", score=0.05),
        "blocked": save_decision(d, "Q-BLOCKED", level="critical", action="block", score=0.95),
        "linked": save_decision(d, "Q-LINKED", customer_id="C9", address="12 MG Road, Pune"),
    }
    return made


def test_signed_out_visitors_are_sent_to_sign_in_and_wrong_passwords_refused(world: World, seeded) -> None:
    answer = requests.get(world.console.url, timeout=10, allow_redirects=False)
    assert answer.status_code == 303 and answer.headers["Location"] == "/login"
    session = requests.Session()
    token = csrf_of(session.get(f"{world.console.url}/login", timeout=10).text)
    wrong = session.post(
        f"{world.console.url}/login",
        data={"csrf": token, "username": "analyst", "password": "guess"},
        timeout=10,
    )
    assert wrong.status_code == 401 and "wrong user or password" in wrong.text
    no_token = requests.post(
        f"{world.console.url}/login",
        data={"username": "analyst", "password": world.console.users["analyst"][0]},
        timeout=10,
    )
    assert no_token.status_code == 403 and no_token.headers["X-Error-Code"] == "csrf"


def test_queue_holds_what_waits_for_a_person_with_counts_and_oldest_age(world: World, seeded) -> None:
    page = sign_in(world.console).get(world.console.url, timeout=10)
    assert page.status_code == 200
    for waiting in ("Q-OLD", "Q-OTP", "Q-RET", "Q-LINKED"):
        assert f">{waiting}</a>" in page.text
    assert ">Q-APPROVED</a>" not in page.text and ">Q-BLOCKED</a>" not in page.text
    assert '<b id="waiting-count">4</b>' in page.text
    # seeded 30 h before NOW, which is taken when the module is imported: in a full run the test may
    # come minutes later, so the minutes are whatever time has passed since
    age = re.search(r'<b id="oldest-age">(\d+) h (\d+) min</b>', page.text)
    assert age and int(age[1]) == 30 + (datetime.now(timezone.utc) - NOW).seconds // 3600, page.text
    # oldest first by default
    assert page.text.index(">Q-OLD</a>") < page.text.index(">Q-RET</a>") < page.text.index(">Q-OTP</a>")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("lane=return", {"Q-RET"}),
        ("level=medium", {"Q-OTP"}),
        ("action=otp_verification", {"Q-OTP"}),
        ("min_amount=1000", {"Q-OLD", "Q-LINKED"}),
        ("region=KA", {"Q-OLD"}),
        ("min_age_hours=1&max_age_hours=3", {"Q-RET"}),
        ("model_version=v-none", set()),
    ],
)
def test_filters(world: World, seeded, query: str, expected: set[str]) -> None:
    page = sign_in(world.console).get(f"{world.console.url}/?{query}", timeout=10).text
    shown = {order for order in ("Q-OLD", "Q-OTP", "Q-RET", "Q-LINKED") if f">{order}</a>" in page}
    assert shown == expected
    assert f'<p id="match-count">{len(expected)} matching' in page


def test_sort_and_paging(world: World, seeded) -> None:
    session = sign_in(world.console)
    first = session.get(f"{world.console.url}/?sort=amount&descending=1&page_size=1", timeout=10).text
    assert ">Q-OLD</a>" in first and "page 1 of 4" in first and "next →" in first
    second = session.get(f"{world.console.url}/?sort=amount&descending=1&page_size=1&page=2", timeout=10).text
    assert ">Q-LINKED</a>" in second and "← previous" in second


@pytest.mark.parametrize(
    "query", ["level=extreme", "page_size=100000", "min_amount=-1", "sort=name", "bogus=1"]
)
def test_a_bad_query_is_a_400_with_a_code(world: World, seeded, query: str) -> None:
    answer = sign_in(world.console).get(f"{world.console.url}/?{query}", timeout=10)
    assert answer.status_code == 400
    assert answer.headers["X-Error-Code"] in ("invalid_parameter", "unknown_parameter")


def test_case_view_shows_the_decision_its_picture_timeline_and_linked_accounts(world: World, seeded) -> None:
    session = sign_in(world.console)
    save_decision(world.decisions, "Q-OLD-EARLIER", level="low", action="approve", created=NOW - 50 * HOUR)
    page = session.get(f"{world.console.url}/cases/{seeded['old'].decision_id}", timeout=10)
    assert page.status_code == 200
    text = page.text
    assert "Customer returned 5 of the last 6 orders (83%)" in text and "manual_review" in text
    assert ">Q-OLD-EARLIER</a>" in text  # the same customer's earlier decision, in the timeline
    assert "<td>C9</td><td>delivery_address</td>" in text  # another customer at the same address
    picture = session.get(f"{world.console.url}/cases/{seeded['old'].decision_id}/waterfall.svg", timeout=10)
    assert picture.headers["Content-Type"].startswith("image/svg+xml")
    assert "customer_returns_last_6_orders" in picture.text and "<script" not in picture.text
    assert session.get(f"{world.console.url}/cases/nope", timeout=10).status_code == 404


def test_every_page_has_a_strict_csp_and_only_our_own_assets(world: World, seeded) -> None:
    session = sign_in(world.console)
    for path in ("/", f"/cases/{seeded['otp'].decision_id}", "/login", "/static/console.js"):
        answer = session.get(world.console.url + path, timeout=10)
        assert answer.status_code == 200, path
        csp = answer.headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert "http://" not in answer.text.replace(world.console.url, "") and "https://" not in answer.text
        assert "<script>" not in answer.text and " style=" not in answer.text  # nothing inline
    assert session.get(f"{world.console.url}/static/../conftest.py", timeout=10).status_code == 404


def test_a_verdict_without_the_csrf_token_is_refused(world: World, seeded) -> None:
    session = sign_in(world.console)
    answer = session.post(
        f"{world.console.url}/cases/{seeded['otp'].decision_id}/verdict",
        data={"verdict": "legitimate", "csrf": "forged"},
        timeout=10,
    )
    assert answer.status_code == 403 and answer.headers["X-Error-Code"] == "csrf"
    assert world.reviews.case(seeded["otp"].decision_id).status == "open"  # type: ignore[union-attr]


def post_verdict(world: World, session: requests.Session, decision_id: str, verdict: str, note: str = ""):
    case_page = session.get(f"{world.console.url}/cases/{decision_id}", timeout=10).text
    return session.post(
        f"{world.console.url}/cases/{decision_id}/verdict",
        data={"csrf": csrf_of(case_page), "verdict": verdict, "note": note},
        timeout=10,
    )


def test_verdict_is_stored_with_who_and_when_and_becomes_a_label(world: World, seeded) -> None:
    session = sign_in(world.console)
    before = datetime.now(timezone.utc)
    answer = post_verdict(
        world, session, seeded["old"].decision_id, "confirmed_abuse", "same box returned twice"
    )
    assert answer.status_code == 200 and "confirmed_abuse by analyst" in answer.text
    case = world.reviews.case(seeded["old"].decision_id)
    assert case is not None and case.status == "confirmed_abuse" and case.reviewed_by == "analyst"
    assert before <= datetime.fromisoformat(case.reviewed_at) <= datetime.now(timezone.utc)
    verdicts = [item for item in world.reviews.trail(case.decision_id) if item.get("verdict")]
    assert [(v["verdict"], v["reviewer"], v["role"], v["note"]) for v in verdicts] == [
        ("confirmed_abuse", "analyst", "analyst", "same box returned twice")
    ]
    files = list((world.raw / "labels").glob("dt=*/verdict-d-Q-OLD.parquet"))
    assert len(files) == 1 and files[0].parent.name == f"dt={case.reviewed_at[:10]}"
    label = pd.read_parquet(files[0])
    assert label.order_id.tolist() == ["Q-OLD"] and label.is_abuse.tolist() == [1]
    assert label.abuse_type.tolist() == ["analyst_verdict"]
    assert label.labeled_at.iloc[0] == pd.Timestamp(case.reviewed_at).floor("ms")
    # the case left the queue, and a second verdict is a conflict, not an overwrite
    assert ">Q-OLD</a>" not in session.get(world.console.url, timeout=10).text
    again = post_verdict(world, sign_in(world.console, "lead"), seeded["old"].decision_id, "legitimate")
    assert again.status_code == 409 and again.headers["X-Error-Code"] == "already_decided"


def test_need_more_info_keeps_the_case_open_without_a_label(world: World, seeded) -> None:
    session = sign_in(world.console)
    missing_note = post_verdict(world, session, seeded["ret"].decision_id, "need_more_info")
    assert missing_note.status_code == 422 and missing_note.headers["X-Error-Code"] == "note_required"
    answer = post_verdict(world, session, seeded["ret"].decision_id, "need_more_info", "ask for photos")
    assert answer.status_code == 200
    assert not list((world.raw / "labels").glob("dt=*/verdict-d-Q-RET.parquet"))
    assert ">Q-RET</a>" in session.get(f"{world.console.url}/?status=need_more_info", timeout=10).text
    final = post_verdict(world, session, seeded["ret"].decision_id, "legitimate", "photos fine")
    assert final.status_code == 200
    label = pd.read_parquet(next((world.raw / "labels").glob("dt=*/verdict-d-Q-RET.parquet")))
    assert label.is_abuse.tolist() == [0] and label.abuse_type.tolist() == ["none"]


def test_a_failed_label_write_leaves_the_case_as_it_was(world: World, seeded) -> None:
    class Broken:
        def write(self, row, name):
            raise OSError("lake unavailable")

    client = world.stack.client("dynamodb")
    names = world.stack.table_names
    broken = ReviewStore(client, names["decisions"], names["audit"], Broken())  # type: ignore[arg-type]
    case = broken.case(seeded["linked"].decision_id)
    assert case is not None
    verdict = make_verdict(
        case.decision_id, "confirmed_abuse", "", "analyst", "analyst", datetime.now(timezone.utc)
    )
    with pytest.raises(OSError):
        broken.record(case, verdict)
    again = broken.case(case.decision_id)
    assert again is not None and again.status == "open" and again.reviewed_by == ""


def test_an_unknown_verdict_is_a_422(world: World, seeded) -> None:
    answer = post_verdict(world, sign_in(world.console), seeded["linked"].decision_id, "maybe")
    assert answer.status_code == 422 and answer.headers["X-Error-Code"] == "invalid_verdict"
    with pytest.raises(ConsoleError):
        make_verdict("d", "legitimate", "x" * 2001, "analyst", "analyst", datetime.now(timezone.utc))


def test_the_daily_summary_is_for_leads(world: World, seeded) -> None:
    assert sign_in(world.console).get(f"{world.console.url}/summary", timeout=10).status_code == 403
    page = sign_in(world.console, "lead").get(f"{world.console.url}/summary", timeout=10)
    assert page.status_code == 200 and "Confirmed-abuse rate per model band" in page.text


def test_customer_text_is_never_markup(world: World) -> None:
    session = sign_in(world.console)
    for i, text in enumerate(INJECTION_CORPUS):
        save_decision(
            world.decisions,
            f"INJ-{i}",
            customer_id=f"C-INJ-{i}",
            address=text,
            region=text[:60],
            key_factors=(text,),
            contributions={text[:40]: 0.5, "payment_is_cod": 0.1},
        )
    queue = session.get(f"{world.console.url}/?page_size=200", timeout=10).text
    for i, text in enumerate(INJECTION_CORPUS):
        decision_id = f"d-INJ-{i}"
        page = session.get(f"{world.console.url}/cases/{decision_id}", timeout=10).text
        picture = session.get(f"{world.console.url}/cases/{decision_id}/waterfall.svg", timeout=10).text
        assert html.escape(text, quote=True) in page  # shown, as text
        assert html.escape(text[:40], quote=True) in picture
        for raw, shown in ((text, page), (text[:60], queue), (text[:40], picture)):
            if any(mark in raw for mark in "<>\"'"):
                assert raw not in shown
    assert "<script>alert" not in queue + page and "<img src=x" not in queue and "<svg onload" not in queue


def test_flagged_batch_rows_wait_in_the_queue_and_take_a_verdict_without_a_label(
    world: World, seeded
) -> None:
    from returnguard.aws.batch import BatchStore

    names = world.stack.table_names
    batch = BatchStore(
        world.stack.client("s3"),
        world.stack.client("dynamodb"),
        bucket=world.stack.bucket,
        flagged_table=names["flagged"],
        claims_table=names["idempotency"],
    )
    factors = [
        {"feature": "V14", "value": -9.5, "contribution": 2.25},
        {"feature": "<b>V4</b>", "value": 4.1, "contribution": 0.5},
    ]
    written = batch.write_flagged(
        "a" * 64,
        "incoming/batch/cards.csv",
        "v-cards",
        [{"row": 7, "transaction_id": "TX-7", "score": 0.97, "factors": factors}],
        int(datetime.now(timezone.utc).timestamp()) - 3600,
    )
    assert written == 1
    session = sign_in(world.console)
    queue = session.get(f"{world.console.url}/?lane=batch", timeout=10).text
    assert ">TX-7</a>" in queue and "flagged_row" in queue and '<p id="match-count">1 matching' in queue
    decision_id = f"flagged#{'a' * 64}#7"
    page = session.get(f"{world.console.url}/cases/{decision_id.replace('#', '%23')}", timeout=10)
    assert (
        page.status_code == 200
        and "V14 = -9.5 (+2.250 log-odds)" in page.text
        and "<b>V4</b>" not in page.text
    )
    answer = post_verdict(world, session, decision_id.replace("#", "%23"), "confirmed_abuse", "card testing")
    assert answer.status_code == 200 and "confirmed_abuse by analyst" in answer.text
    assert [v["verdict"] for v in world.reviews.trail(decision_id) if v.get("verdict")] == ["confirmed_abuse"]
    assert not list(
        (world.raw / "labels").glob("dt=*/verdict-flagged*")
    )  # the card lane's labels live elsewhere
    assert ">TX-7</a>" not in session.get(f"{world.console.url}/?lane=batch", timeout=10).text
