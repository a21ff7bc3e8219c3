"""After a promotion each lane decides with the profile of the model version that answered it: the
return lane with the promoted return model's thresholds (and then its fallback) from its first answer,
no order scored in between; the score Lambda, moto, and a real local inference server serving the
promoted archive."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local.inference_server import serve
from local.lifecycle import pack
from local.stack import create_table
from returnguard.aws import serving_profile
from returnguard.aws.feature_store import encode_item
from returnguard.ports import ModelUnavailable
from returnguard.tables import AUDIT, DECISIONS, FEATURES
from tests.integration.api.test_score_handler import call, event, load_handler, order
from tests.integration.returns.test_return_handler import _env
from tests.unit.api.fakes import customer_with_history
from tests.unit.returns.requests import body

pytestmark = pytest.mark.slow
TINY = {
    "medium": 1e-9,
    "high": 2e-9,
    "critical": 3e-9,
}  # every score the promoted return model gives is critical
PAYMENT = {"medium": 0.11, "high": 0.22, "critical": 0.33}


class _Down:
    def score(self, vector: Any) -> Any:
        raise ModelUnavailable("endpoint down")


@pytest.fixture
def promoted(two_lane_model, tmp_path, monkeypatch) -> Iterator[dict[str, Any]]:
    """The deployed archive is two_lane_model; the endpoint now serves a promoted copy (v-lanes-2) whose
    return thresholds and return fallback differ, and whose profile the promote step published."""
    deployed = Path(two_lane_model)
    copy = tmp_path / "model"
    shutil.copytree(deployed, copy)
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, "model_version": "v-lanes-2"}))
    returned = json.loads((copy / "return" / "config.json").read_text())
    returned["thresholds"] = {**returned["thresholds"], **TINY}
    returned["model_version"] = "r-lanes-2"  # what the server answers a return request with
    (copy / "return" / "config.json").write_text(json.dumps(returned))
    fallback = json.loads((copy / "return" / "fallback_model.json").read_text())
    fallback.update(model_version="r-fallback-2", thresholds={**fallback["thresholds"], **TINY})
    (copy / "return" / "fallback_model.json").write_text(json.dumps(fallback))
    server = serve(str(copy))
    for key, value in {**_env(deployed, server.url), "RG_LAKE_BUCKET": "lake"}.items():
        monkeypatch.setenv(key, value)
    try:
        with mock_aws():
            client = boto3.client("dynamodb", region_name="us-east-1")
            for definition in (FEATURES, DECISIONS, AUDIT):
                create_table(client, definition, definition.logical_name)
            history = customer_with_history(orders=8, returned=4, last_order_ms=1_735_000_000_000)
            client.put_item(TableName="features", Item=encode_item("customer#C1", history, 1))
            s3 = boto3.client("s3", region_name="us-east-1")
            s3.create_bucket(Bucket="lake")
            with pack(copy, tmp_path / "model.tar.gz").open("rb") as archive:
                profile = serving_profile.profile_of_archive(archive)
            profile["config"]["payment"] = {"model_version": "p2", "thresholds": PAYMENT}
            for key in (  # as serving_profile.publish writes them
                serving_profile.profile_key("v-lanes-2"),
                serving_profile.lane_profile_key("return", "r-lanes-2"),
            ):
                s3.put_object(Bucket="lake", Key=key, Body=json.dumps(profile))
            yield {"handler": load_handler("score_handler_lanes_follow"), "deployed": deployed}
    finally:
        server.stop()


def test_a_promoted_return_model_decides_its_returns_with_no_order_in_between(promoted):
    handler = promoted["handler"]
    handler.order_records.record_order(  # the order the return is of, as scoring it would record it
        order_id="LF-O1",
        customer_id="C1",
        product_id="P1",
        amount_minor=199_900,  # what the return request states: no mismatch rule fires
        currency="INR",
        order_time_ms=1_735_689_600_000,
    )

    status, answer = call(handler, event("POST", "/v1/risk-score", body(return_id="LF-R1", order_id="LF-O1")))
    assert status == 200 and answer["model_version"] == "r-lanes-2", answer
    assert answer["risk_level"] == "critical" and not answer["degraded"]
    assert handler.PROFILES.current.version != "v-lanes-2"  # no order was scored
    handler.return_model = _Down()
    status, answer = call(handler, event("POST", "/v1/risk-score", body(return_id="LF-R2", order_id="LF-O1")))
    assert answer["degraded"] and answer["model_version"] == "r-fallback-2"  # the promoted return fallback
    assert handler._lanes(handler.PROFILES.lane_current("payment"))[1] is handler.PAYMENT_POLICY

    # an order answered by the promoted archive moves the other lanes' profiles too (one archive)
    status, scored = call(handler, event("POST", "/v1/risk-score", order("LF-O2")))
    assert status == 200 and scored["model_version"] == "v-lanes-2", scored
    returns, _, fallback = handler._lanes(handler.PROFILES.lane_current("return"))
    _, payments, _ = handler._lanes(handler.PROFILES.lane_current("payment"))
    assert (returns.medium, returns.critical) == (TINY["medium"], TINY["critical"])
    assert fallback is not None and fallback.model_version == "r-fallback-2"
    assert (payments.medium, payments.high, payments.critical) == (0.11, 0.22, 0.33)
