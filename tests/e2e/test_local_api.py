"""The local risk-score API over real HTTP: the score handler behind it, the moto server and the local
inference server behind that. Every error code the API documents is provoked here."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from local import stack as local_stack
from local.api_server import ApiServer, TokenBucket, proxy_event, resource_for, seed_features, serve
from local.inference_server import serve as serve_model
from local.stack import free_port
from returnguard.aws.feature_store import blocklist_key
from tests.integration.api.test_score_handler import order
from tests.unit.api.fakes import ADDRESS, DAY, T0, customer_with_history

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def servers(trained_model, tmp_path_factory) -> Iterator[dict[str, Any]]:
    model_dir = trained_model[0]
    config = json.loads((Path(model_dir) / "config.json").read_text())
    logs = tmp_path_factory.mktemp("api-logs")
    stack = local_stack.start()
    model = serve_model(str(model_dir))
    doomed_model = serve_model(str(model_dir))
    started: list[Any] = [model, doomed_model]
    try:
        seeded = seed_features(
            stack,
            [
                ("customer#C1", customer_with_history(orders=8, returned=5, last_order_ms=T0 - DAY)),
                ("customer#C2", customer_with_history(orders=12, returned=0, last_order_ms=T0 - DAY)),
                (blocklist_key("customer", "C666"), {"reason": "chargeback fraud"}),
            ],
        )
        assert seeded == 3
        live = serve(stack, config, model.url, log_path=logs / "live.log")
        degraded = serve(stack, config, doomed_model.url, log_path=logs / "degraded.log")
        throttled = serve(stack, config, model.url, throttle=(0.5, 2), log_path=logs / "throttled.log")
        started += [live, degraded, throttled]
        doomed_model.stop()  # the endpoint goes away after the API started: degraded mode from now on
        started.remove(doomed_model)
        yield {
            "live": live,
            "degraded": degraded,
            "throttled": throttled,
            "logs": logs,
            "stack": stack,
            "config": config,
            "model_url": model.url,
        }
    finally:
        for server in started:
            server.stop()
        stack.stop()


def post(api: ApiServer, body: Any, content_type: str = "application/json") -> requests.Response:
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return requests.post(
        f"{api.url}/v1/risk-score", data=data, headers={"Content-Type": content_type}, timeout=10
    )


def test_health(servers) -> None:
    response = requests.get(f"{servers['live'].url}/v1/health", timeout=5)
    assert response.status_code == 200 and response.json()["status"] == "ok"


def test_happy_path_explains_real_history_and_is_stored(servers) -> None:
    response = post(servers["live"], order("E2E-1"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert not body["degraded"] and 0.0 <= body["risk_score"] <= 1.0
    assert body["model_version"] != "rules-only" and body["explanation"]["source"] == "template"
    assert any("returned 5 of the last 6 orders" in factor for factor in body["explanation"]["key_factors"])
    assert body["processing_time_ms"] > 0 and body["timestamp"].endswith("Z")
    fetched = requests.get(f"{servers['live'].url}/v1/decisions/{body['decision_id']}", timeout=5)
    assert fetched.status_code == 200 and fetched.json() == body


def test_heavy_returner_scores_above_a_clean_customer(servers) -> None:
    risky = post(servers["live"], order("E2E-2", "C1")).json()
    clean = post(servers["live"], order("E2E-3", "C2", payment_method="card")).json()
    assert risky["risk_score"] > clean["risk_score"]


def test_unknown_customer_is_called_new_not_given_a_history(servers) -> None:
    body = post(servers["live"], order("E2E-4", "C-never-seen")).json()
    assert "New customer: no order history" in body["explanation"]["key_factors"]


def test_blocklisted_customer_is_blocked(servers) -> None:
    body = post(servers["live"], order("E2E-5", "C666")).json()
    assert body["recommended_action"] == "block" and "blocklisted" in " ".join(body["rules_triggered"])


def test_idempotent_retry_and_conflict(servers) -> None:
    first = post(servers["live"], order("E2E-6"))
    again = post(servers["live"], order("E2E-6"))
    assert first.status_code == again.status_code == 200 and first.json() == again.json()
    conflict = post(servers["live"], order("E2E-6", amount=10.0))
    assert conflict.status_code == 409 and conflict.json()["error"]["code"] == "conflict"


def test_degraded_mode_when_the_inference_server_is_gone(servers) -> None:
    response = post(servers["degraded"], order("E2E-7", amount=900_000.0))  # ≈ 10,800 USD
    assert response.status_code == 200
    body = response.json()
    assert body["degraded"] and body["risk_score"] is None and body["model_version"] == "rules-only"
    assert body["rules_triggered"] == ["high_amount"] and body["recommended_action"] == "manual_review"


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        ("{not json", "application/json", 400, "malformed_json"),
        ("x" * (64 * 1024 + 1), "application/json", 413, "body_too_large"),
        (order("E2E-8"), "text/plain", 415, "unsupported_media_type"),
        (order("E2E-9", amount=-1), "application/json", 422, "invalid_request"),
        ({**order("E2E-10"), "event_type": "return"}, "application/json", 422, "invalid_request"),
        ({"event_type": "return", "order": {"amount": -1}}, "application/json", 422, "invalid_request"),
        ("[" * 1000 + "]" * 1000, "application/json", 400, "malformed_json"),
        (
            b'{"event_type": "order", "order": {"order_id": "\xff"}}',
            "application/json",
            400,
            "malformed_json",
        ),
        (order("E2E-11", amount="1499"), "application/json", 422, "invalid_request"),
        (order("E2E-12", order_time="9999-12-31T23:59:59Z"), "application/json", 422, "invalid_request"),
    ],
)
def test_error_codes(servers, body, content_type, status, code) -> None:
    response = post(servers["live"], body, content_type)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == code and set(error) >= {"code", "message", "field"}
    assert "Traceback" not in response.text and "handler.py" not in response.text


def test_a_method_a_path_does_not_take_is_405(servers) -> None:
    for method, path, allowed in (("TRACE", "/v1/risk-score", "POST"), ("PUT", "/v1/health", "GET")):
        response = requests.request(method, f"{servers['live'].url}{path}", timeout=5)
        assert response.status_code == 405 and response.headers["Allow"] == allowed
        assert response.json()["error"]["code"] == "method_not_allowed"


def test_the_function_log_has_no_traceback_after_hostile_bodies(servers) -> None:
    for body in ("[" * 1000 + "]" * 1000, b"\xff\xfe{}", '{"a": "\\ud800"}'):
        assert post(servers["live"], body).status_code == 400
    assert "Traceback" not in (servers["logs"] / "live.log").read_text()


def test_not_found(servers) -> None:
    unknown = requests.get(f"{servers['live'].url}/v1/decisions/dec_nope", timeout=5)
    assert unknown.status_code == 404 and unknown.json()["error"]["field"] == "decision_id"
    route = requests.get(f"{servers['live'].url}/v2/anything", timeout=5)
    assert route.status_code == 404 and route.json()["error"]["code"] == "not_found"


def test_throttle_answers_429_in_the_api_error_shape(servers) -> None:
    codes = [post(servers["throttled"], order(f"E2E-T{i}")).status_code for i in range(4)]
    assert codes[:2] == [200, 200] and 429 in codes[2:]
    response = post(servers["throttled"], order("E2E-T9"))
    assert response.status_code == 429 and response.json()["error"]["code"] == "throttled"


def test_store_down_is_503(servers, trained_model, tmp_path) -> None:
    config = json.loads((Path(trained_model[0]) / "config.json").read_text())
    stack = local_stack.start(prefix="returnguard-doomed")  # moto's state is per process: own names
    api = serve(stack, config, f"http://127.0.0.1:{free_port()}", log_path=tmp_path / "api.log")
    try:
        stack.stop()  # DynamoDB vanishes: nothing can decide
        response = post(api, order("E2E-10"))
        assert response.status_code == 503 and response.json()["error"]["code"] == "unavailable"
    finally:
        api.stop()


def test_each_client_reads_its_own_decisions_with_its_own_key(servers, trained_model, tmp_path) -> None:
    config = json.loads((Path(trained_model[0]) / "config.json").read_text())
    keys = {"key-a": ("shop-a", ["score", "read_own"]), "key-b": ("shop-b", ["score", "read_own"])}
    api = serve(
        servers["stack"],
        config,
        servers["live"].handler.settings.inference_url,
        log_path=tmp_path / "api.log",
        api_keys=keys,
    )
    try:

        def call(method: str, path: str, key: str | None, body: Any = None) -> requests.Response:
            headers = {"Content-Type": "application/json", **({"x-api-key": key} if key else {})}
            data = None if body is None else json.dumps(body)
            return requests.request(method, f"{api.url}{path}", data=data, headers=headers, timeout=10)

        assert call("POST", "/v1/risk-score", None, order("E2E-K1")).status_code == 403  # the gateway
        mine = call("POST", "/v1/risk-score", "key-a", order("E2E-K1")).json()
        decision = f"/v1/decisions/{mine['decision_id']}"
        assert call("GET", decision, "key-a").json() == mine
        assert call("GET", decision, "key-b").status_code == 404
        assert call("GET", "/v1/health", None).status_code == 200  # open, as deployed
    finally:
        api.stop()


def test_function_logs_go_to_the_log_file_without_pii(servers) -> None:
    post(servers["live"], order("E2E-11"))
    lines = [json.loads(line) for line in (servers["logs"] / "live.log").read_text().splitlines() if line]
    decided = [line for line in lines if line.get("message") == "decided"]
    metrics = [line for line in lines if "_aws" in line]
    assert decided and metrics and all(line["correlation_id"] for line in decided)
    by_action = [line for line in metrics if "DecisionsByAction" in line]
    assert by_action and by_action[-1]["action"] in {"approve", "otp_verification", "manual_review", "block"}
    latency = [line for line in metrics if "DecisionLatency" in line]
    assert latency and latency[-1]["risk_level"] and latency[-1]["DecisionLatency"][0] > 0
    assert ADDRESS not in (servers["logs"] / "live.log").read_text()


def test_a_server_starts_and_logs_after_the_functions_last_log_file_was_closed(servers, tmp_path) -> None:
    # Given the score function's logger (one per process and service name) last bound to a file since
    # closed, as a function loaded under a redirected stdout elsewhere in the process leaves it
    handler = servers["live"].handler.logger.registered_handler
    before = handler.stream
    closed = (tmp_path / "closed.log").open("w")
    closed.close()
    handler.stream = closed
    try:
        # When another API starts on the same stack, it starts, answers and logs to its own file
        api = serve(
            servers["stack"], servers["config"], servers["model_url"], log_path=tmp_path / "after.log"
        )
        try:
            assert post(api, order("E2E-CLOSED")).status_code == 200
        finally:
            api.stop()
        assert any(json.loads(line).get("message") == "decided" for line in (tmp_path / "after.log").open())
    finally:
        handler.stream = before


def test_proxy_event_matches_the_declared_resources() -> None:
    assert resource_for("GET", "/v1/decisions/dec_1") == "/v1/decisions/{decision_id}"
    assert resource_for("POST", "/v1/decisions/dec_1") == "/v1/decisions/dec_1"
    event = proxy_event("GET", "/v1/decisions/dec_1?x=1&x=2", [("Accept", "application/json")], b"")
    assert event["pathParameters"] == {"decision_id": "dec_1"}
    assert event["multiValueQueryStringParameters"] == {"x": ["1", "2"]}
    assert event["body"] is None and event["requestContext"]["resourcePath"] == "/v1/decisions/{decision_id}"


def test_token_bucket_refills_at_its_rate(monkeypatch) -> None:
    clock = [100.0]
    monkeypatch.setattr("local.api_server.time.monotonic", lambda: clock[0])
    bucket = TokenBucket(rate=2.0, burst=3)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    clock[0] += 0.5  # one token back
    assert [bucket.take() for _ in range(2)] == [True, False]


def test_cli_scores_shows_and_reports_errors(servers, capsys) -> None:
    from returnguard import cli

    url = ["--url", servers["live"].url]
    flags = ["--order-id", "CLI-1", "--customer-id", "C1", "--product-id", "P1", "--region", "KA"]
    flags += [
        "--amount",
        "2499",
        "--payment",
        "cod",
        "--address",
        ADDRESS,
        "--order-time",
        "2023-11-14T22:13:20Z",
    ]
    assert cli.main([*url, "score", *flags]) == 0
    shown = capsys.readouterr().out
    assert "risk" in shown and "returned 5 of the last 6 orders" in shown and "decision dec_" in shown
    assert cli.main([*url, "--json", "score", *flags]) == 0  # a retry: the stored answer
    stored = json.loads(capsys.readouterr().out)
    assert cli.main([*url, "--json", "decision", stored["decision_id"]]) == 0
    assert json.loads(capsys.readouterr().out) == stored

    bad = [*flags[:-4], "--amount", "-3", "--payment", "cod", "--address", ADDRESS]
    assert cli.main([*url, "score", *[f if f != "CLI-1" else "CLI-2" for f in bad]]) == 1
    assert "invalid_request" in capsys.readouterr().err
    assert cli.main(["--url", f"http://127.0.0.1:{free_port()}", "health"]) == 2
    assert "unreachable" in capsys.readouterr().err


def test_policy_overrides_reach_the_local_function(servers, trained_model, tmp_path) -> None:
    # Given a deployment whose every threshold is 0: any score is critical
    config = json.loads((Path(trained_model[0]) / "config.json").read_text())
    model = serve_model(str(trained_model[0]))
    strict = serve(
        servers["stack"],
        config,
        model.url,
        policy={"medium": 0.0, "high": 0.0, "critical": 0.0},
        log_path=tmp_path / "strict.log",
    )
    try:
        # When the clean customer orders through it and through the default policy
        default = post(servers["live"], order("E2E-P1", "C2")).json()
        blocked = post(strict, order("E2E-P2", "C2")).json()
    finally:
        strict.stop()
        model.stop()
    # Then only the strict deployment blocks them
    assert default["recommended_action"] != "block"
    assert blocked["risk_level"] == "critical" and blocked["recommended_action"] == "block"


def test_the_api_command_refuses_a_bad_policy_before_starting(trained_model, tmp_path, capsys) -> None:
    from local.api_server import main

    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text((Path(trained_model[0]) / "config.json").read_text())
    with pytest.raises(SystemExit) as exit_:
        main(["--work", str(tmp_path), "--policy", '{"velocity_orders": 0}'])
    assert exit_.value.code == 2
    assert "--policy: velocity_orders must be between 2 and 100" in capsys.readouterr().err


def test_the_api_command_refuses_a_bad_refund_ladder_before_starting(trained_model, tmp_path, capsys) -> None:
    from local.api_server import main

    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text((Path(trained_model[0]) / "config.json").read_text())
    with pytest.raises(SystemExit) as exit_:
        main(["--work", str(tmp_path), "--return-policy", '{"ladder": {"critical": "instant_refund"}}'])
    assert exit_.value.code == 2
    assert "--return-policy: ladder.critical (instant_refund) is more lenient" in capsys.readouterr().err
