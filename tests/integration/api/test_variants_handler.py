"""Shadow and A-B through the score Lambda: two real local inference servers (champion, challenger), moto
tables; the stored decision records `variant` and the shadow score, the API answer does not change."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import boto3
import pytest
from moto import mock_aws

from local.inference_server import serve
from local.stack import create_table
from returnguard.tables import AUDIT, DECISIONS, FEATURES
from returnguard.variants import VariantConfig, assign
from tests.integration.api.test_score_handler import call, event, load_handler, order

SALT = "exp-test"


@pytest.fixture(scope="module")
def handlers(trained_model, tmp_path_factory) -> Iterator[tuple[dict[str, ModuleType], object]]:
    model_dir = Path(trained_model[0])
    challenger_dir = tmp_path_factory.mktemp("challenger") / "model"
    shutil.copytree(model_dir, challenger_dir)
    config = json.loads((challenger_dir / "config.json").read_text())
    config["model_version"] = "challenger-v2"
    (challenger_dir / "config.json").write_text(json.dumps(config))
    champion, challenger = serve(str(model_dir)), serve(str(challenger_dir))
    env = {
        "RG_FEATURES_TABLE": "features",
        "RG_DECISIONS_TABLE": "decisions",
        "RG_AUDIT_TABLE": "audit",
        "RG_ORDER_TIME_PAST_S": str(3660 * 86_400),
        "RG_DECISION_ID_SECRET": "test-only-decision-id-secret-32-chars-long",
        "RG_MODEL_CONFIG": json.dumps({"model_version": "champion", "thresholds": config["thresholds"]}),
        "RG_INFERENCE_URL": champion.url,
        "RG_CHALLENGER_URL": challenger.url,
        "RG_VARIANT_SALT": SALT,
        "POWERTOOLS_SERVICE_NAME": "returnguard",
        "POWERTOOLS_METRICS_NAMESPACE": "ReturnGuard",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
    patch = pytest.MonkeyPatch()
    for key, value in env.items():
        patch.setenv(key, value)
    try:
        with mock_aws():
            client = boto3.client("dynamodb", region_name="us-east-1")
            for definition, name in ((FEATURES, "features"), (DECISIONS, "decisions"), (AUDIT, "audit")):
                create_table(client, definition, name)
            patch.setenv("RG_VARIANT_MODE", "shadow")
            shadow = load_handler("score_handler_shadow")
            patch.setenv("RG_VARIANT_MODE", "ab")
            patch.setenv("RG_CHALLENGER_SHARE", "0.5")
            ab = load_handler("score_handler_ab")
            patch.setenv("RG_VARIANT_MODE", "off")
            patch.delenv("RG_CHALLENGER_SHARE")
            off = load_handler("score_handler_off")
            yield {"shadow": shadow, "ab": ab, "off": off}, client
    finally:
        champion.stop()
        challenger.stop()
        patch.undo()


def stored(client, decision_id: str) -> tuple[dict, dict]:
    item = client.get_item(TableName="decisions", Key={"decision_id": {"S": decision_id}})["Item"]
    audit = client.query(
        TableName="audit",
        KeyConditionExpression="decision_id = :d",
        ExpressionAttributeValues={":d": {"S": decision_id}},
    )["Items"]
    return item, audit[0]


def test_shadow_records_the_challengers_score_and_answers_as_without_it(handlers) -> None:
    modules, client = handlers
    status, body = call(modules["shadow"], event("POST", "/v1/risk-score", order("SH-1", customer_id="C7")))
    assert status == 200, body
    _, plain = call(modules["off"], event("POST", "/v1/risk-score", order("OFF-1", customer_id="C7")))
    assert body["model_version"] == plain["model_version"] != "challenger-v2"
    assert (
        body["risk_score"] == plain["risk_score"]
        and body["recommended_action"] == plain["recommended_action"]
    )
    assert "variant" not in body and "shadow" not in body  # nothing of the experiment reaches the caller
    item, audit = stored(client, body["decision_id"])
    assert item["variant"] == {"S": "champion"} and audit["variant"] == {"S": "champion"}
    assert item["shadow"]["M"]["model_version"] == {"S": "challenger-v2"}
    assert float(item["shadow"]["M"]["score"]["N"]) == pytest.approx(
        body["risk_score"], abs=1e-4
    )  # same weights
    off_item, _ = stored(client, plain["decision_id"])
    assert "shadow" not in off_item and off_item["variant"] == {"S": "champion"}


def test_ab_decides_with_the_challenger_for_its_customers_and_records_the_variant(handlers) -> None:
    modules, client = handlers
    config = VariantConfig(mode="ab", challenger_share=0.5, salt=SALT)
    customers = [f"AB{i}" for i in range(40)]
    seen = {}
    for i, customer in enumerate(customers):
        status, body = call(
            modules["ab"], event("POST", "/v1/risk-score", order(f"AB-{i}", customer_id=customer))
        )
        assert status == 200, body
        item, _ = stored(client, body["decision_id"])
        seen[customer] = (item["variant"]["S"], body["model_version"])
    for customer, (variant, version) in seen.items():
        assert variant == assign(customer, config)
        assert version == ("challenger-v2" if variant == "challenger" else seen[customer][1])
    assert {v for v, _ in seen.values()} == {"champion", "challenger"}
    # over 5,000 USD: a hard rule decides, so even a challenger-group customer gets the champion
    (member,) = [c for c in customers if seen[c][0] == "challenger"][:1]
    _, body = call(
        modules["ab"], event("POST", "/v1/risk-score", order("AB-BIG", customer_id=member, amount=900_000.0))
    )
    assert "high_amount" in body["rules_triggered"] and body["model_version"] != "challenger-v2"
    assert stored(client, body["decision_id"])[0]["variant"] == {"S": "champion"}


def test_a_bad_variant_setting_stops_the_cold_start_naming_it(handlers, monkeypatch) -> None:
    monkeypatch.setenv("RG_VARIANT_MODE", "ab")
    monkeypatch.setenv("RG_CHALLENGER_SHARE", "0.9")
    with pytest.raises(Exception, match="RG_CHALLENGER_SHARE"):
        load_handler("score_handler_bad_share")
