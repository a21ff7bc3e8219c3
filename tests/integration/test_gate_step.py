"""The retraining state machine's gate step (lambdas/gate → returnguard.aws.gate_record) against moto's S3:
the decision read from the candidate's model.tar.gz, recorded in the lake, returned for the registry."""

from __future__ import annotations

import importlib.util
import io
import json
import sys
import tarfile
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local.api_server import LambdaContext
from returnguard import gate
from returnguard.aws import lane_promotion
from returnguard.aws.gate_record import GATE_DECISIONS_PREFIX, gate_candidate
from returnguard.features import FEATURE_NAMES
from tests.unit.test_gate import evidence, return_lane

LAKE = "lake"
ARTIFACT = f"s3://{LAKE}/models/artifacts/rg-run-1/output/model.tar.gz"
NOW = datetime(2026, 11, 30, 10, 0, tzinfo=timezone.utc)


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=LAKE)
        yield client


def tar_gz(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def put_model(s3: Any, files: dict[str, bytes], url: str = ARTIFACT) -> None:
    s3.put_object(Bucket=LAKE, Key=url.removeprefix(f"s3://{LAKE}/"), Body=tar_gz(files))


def judge(s3: Any, **kwargs: Any) -> dict[str, Any]:
    return gate_candidate(
        s3,
        lake_bucket=LAKE,
        artifact_url=kwargs.pop("artifact_url", ARTIFACT),
        execution="rg-run-1",
        serving_features=FEATURE_NAMES,
        bounds=kwargs.pop("bounds", gate.GateBounds()),
        serving_url=kwargs.pop("serving_url", None),
        now=NOW,
    )


def stored(s3: Any, url: str) -> dict[str, Any]:
    return json.loads(s3.get_object(Bucket=LAKE, Key=url.removeprefix(f"s3://{LAKE}/"))["Body"].read())


def test_an_approved_candidate_is_recorded_in_the_lake_with_its_numbers(s3):
    put_model(s3, {gate.EVIDENCE_FILE: json.dumps(evidence()).encode(), "config.json": b"{}"})

    result = judge(s3)

    assert result["approved"] is True and result["approval_status"] == "Approved"
    assert result["record_url"] == f"s3://{LAKE}/{GATE_DECISIONS_PREFIX}date=2026-11-30/rg-run-1.json"
    record = stored(s3, result["record_url"])
    assert record["approved"] is True and record["candidate_artifact"] == ARTIFACT
    assert record["numbers"]["candidate"]["roc_auc"] == 0.91
    assert record["bounds"]["max_roc_auc_drop"] == 0.01
    assert result["metadata"]["gate_record"] == result["record_url"]
    assert result["metadata"]["champion_pr_auc"] == "0.5"


def test_a_rejected_candidate_is_recorded_too(s3):
    put_model(s3, {gate.EVIDENCE_FILE: json.dumps(evidence(level_psi=0.9)).encode()})

    result = judge(s3)

    assert result["approval_status"] == "Rejected"
    assert result["reasons"] == ["score_distribution_shift"]
    assert stored(s3, result["record_url"])["reasons"] == ["score_distribution_shift"]


@pytest.mark.parametrize(
    "archive",
    [
        {"config.json": b"{}"},  # no evaluation.json (a model trained before the gate existed)
        {gate.EVIDENCE_FILE: b"not json"},
        {gate.EVIDENCE_FILE: b"[1, 2]"},
        None,  # no archive at all
    ],
)
def test_unreadable_evidence_is_a_recorded_rejection(s3, archive):
    if archive is not None:
        put_model(s3, archive)

    result = judge(s3)

    assert result["approved"] is False and result["reasons"] == ["missing_evidence"]
    record = stored(s3, result["record_url"])
    assert record["evidence_error"]


def test_a_record_that_cannot_be_written_fails_the_step(s3):
    put_model(s3, {gate.EVIDENCE_FILE: json.dumps(evidence()).encode()})
    with pytest.raises(Exception, match="NoSuchBucket"):
        gate_candidate(
            s3,
            lake_bucket="no-such-bucket",
            artifact_url=ARTIFACT,
            execution="rg-run-1",
            serving_features=FEATURE_NAMES,
            bounds=gate.GateBounds(),
        )


def load_handler(monkeypatch, bounds: str) -> Any:
    monkeypatch.setenv("RG_LAKE_BUCKET", LAKE)
    monkeypatch.setenv("RG_GATE_BOUNDS", bounds)
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "ERROR")
    path = Path(__file__).resolve().parents[2] / "lambdas" / "gate" / "handler.py"
    spec = importlib.util.spec_from_file_location("gate_handler_under_test", path)
    assert spec and spec.loader
    handler = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = handler
    spec.loader.exec_module(handler)
    return handler


def test_the_handler_applies_the_stage_bounds_from_its_environment(s3, monkeypatch):
    put_model(s3, {gate.EVIDENCE_FILE: json.dumps(evidence(candidate__roc_auc=0.899)).encode()})
    handler = load_handler(monkeypatch, '{"max_roc_auc_drop": 0}')

    result = handler.lambda_handler({"ModelArtifact": ARTIFACT, "Execution": "rg-run-1"}, LambdaContext())

    assert result["reasons"] == ["roc_auc_worse"]
    with pytest.raises(Exception, match="ModelArtifact"):
        handler.lambda_handler({"Execution": "rg-run-2"}, LambdaContext())


def test_the_handler_refuses_to_start_with_unusable_bounds(s3, monkeypatch):
    with pytest.raises(Exception, match="max_level_psi"):
        load_handler(monkeypatch, '{"max_level_psi": -1}')


SERVING = f"s3://{LAKE}/models/artifacts/rg-run-0/output/model.tar.gz"


def archive_files(s3: Any, url: str) -> dict[str, bytes]:
    body = s3.get_object(Bucket=LAKE, Key=url.removeprefix(f"s3://{LAKE}/"))["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]


def put_rejected_order_with_approved_return(s3: Any) -> None:
    """A candidate archive whose order model was rejected and whose return model was approved."""
    lanes = {"return": return_lane("candidate")}
    put_model(
        s3,
        {
            gate.EVIDENCE_FILE: json.dumps({**evidence(candidate__roc_auc=0.80), "lanes": lanes}).encode(),
            "config.json": b'{"model_version": "v2"}',
            "xgboost-model.ubj": b"order v2",
            "return/config.json": b'{"model_version": "v2-return"}',
            "return/xgboost-model.ubj": b"return v2",
        },
    )


SERVING_FILES = {
    "config.json": b'{"model_version": "v1", "thresholds": {"decision": 0.5}}',
    "xgboost-model.ubj": b"order v1",
    "fallback_model.json": b"fallback v1",
    "return/config.json": b'{"model_version": "v1-return"}',
    "return/xgboost-model.ubj": b"return v1",
    "payment/config.json": b'{"model_version": "p1"}',
}


def test_an_approved_return_candidate_is_served_alone_in_the_serving_archive_under_a_new_version(s3):
    put_rejected_order_with_approved_return(s3)
    put_model(s3, SERVING_FILES, url=SERVING)

    result = judge(s3, serving_url=SERVING)

    assert result["approval_status"] == "Rejected" and result["lanes_promoted"] is True
    url = f"s3://{LAKE}/models/artifacts/lane-promotions/rg-run-1/model.tar.gz"
    assert result["serve_artifact"] == url
    files = archive_files(s3, url)
    # the order model, its fallback and the payment lane byte for byte; the return lane the candidate's
    kept = ("xgboost-model.ubj", "fallback_model.json", "payment/config.json")
    assert {name: files[name] for name in kept} == {name: SERVING_FILES[name] for name in kept}
    assert files["return/xgboost-model.ubj"] == b"return v2"
    assert json.loads(files["return/config.json"])["model_version"] == "v2-return"
    config = json.loads(files["config.json"])
    assert config["model_version"] == "v1+return-v2-return" and config["thresholds"] == {"decision": 0.5}
    assert config["lane_promotion"] == {"serving_model_version": "v1", "lanes": {"return": "v2-return"}}
    served = result["serve_metadata"]
    assert served["gate_decision"] == "Approved" and served["lane_promotion"] == "return"
    assert served["model_version"] == "v1+return-v2-return" and served["rejected_candidate_version"] == "v2"
    assert served["return_gate_decision"] == "Approved" and served["gate_record"] == result["record_url"]
    assert "candidate_roc_auc" not in served  # the rejected order candidate's numbers stay on its package
    assert result["metadata"]["gate_decision"] == "Rejected"
    assert stored(s3, result["record_url"])["lane_promotion"]["model_artifact"] == url


@pytest.mark.parametrize(
    ("serving_url", "code"),
    [
        ("s3://cdk-assets-123456789012-us-east-1/abc.tar.gz", "serving_archive_outside_lake"),  # first model
        (f"s3://{LAKE}/bootstrap/model.tar.gz", "serving_archive_outside_lake"),
        (f"s3://{LAKE}/models/artifacts/gone/model.tar.gz", "serving_archive_unreadable"),
        (None, "serving_archive_unknown"),
    ],
)
def test_a_lane_promotion_the_gate_cannot_build_is_refused_and_recorded(s3, serving_url, code):
    put_rejected_order_with_approved_return(s3)

    result = judge(s3, serving_url=serving_url)

    assert result["lanes_promoted"] is False and result["serve_artifact"] == ARTIFACT
    assert result["metadata"]["lane_promotion_refused"] == code
    assert stored(s3, result["record_url"])["lane_promotion"]["refused"] == code
    listed = s3.list_objects_v2(Bucket=LAKE, Prefix="models/artifacts/lane-promotions/")
    assert "Contents" not in listed


class RecordWriteFails:
    """The lake's S3 client, refusing only the gate record's write (the lane archive's goes through)."""

    def __init__(self, s3: Any) -> None:
        self.s3 = s3

    def put_object(self, **kwargs: Any) -> Any:
        if kwargs["Key"].startswith(GATE_DECISIONS_PREFIX):
            raise RuntimeError("SlowDown: the record could not be written")
        return self.s3.put_object(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.s3, name)


def test_a_record_that_cannot_be_written_takes_back_the_lane_promotions_archive(s3):
    put_rejected_order_with_approved_return(s3)
    put_model(s3, SERVING_FILES, url=SERVING)

    with pytest.raises(RuntimeError, match="SlowDown"):
        judge(RecordWriteFails(s3), serving_url=SERVING)

    # the run fails, nothing is registered, and no combined archive is left that no record names
    listed = s3.list_objects_v2(Bucket=LAKE, Prefix="models/artifacts/lane-promotions/")
    assert "Contents" not in listed


def test_a_second_lane_promotion_names_the_order_model_and_each_lane_once():
    candidate = {"return/config.json": b'{"model_version": "v2-return"}', "return/xgboost-model.ubj": b"r2"}
    first, config = lane_promotion.combine(tar_gz(SERVING_FILES), tar_gz(candidate), ["return"])
    assert config["model_version"] == "v1+return-v2-return"
    candidate = {"return/config.json": b'{"model_version": "v3-return"}', "return/xgboost-model.ubj": b"r3"}
    _, config = lane_promotion.combine(first, tar_gz(candidate), ["return"])
    # not v1+return-v2-return+return-v3-return: the version would grow with every promotion
    assert config["model_version"] == "v1+return-v3-return"
    assert config["lane_promotion"] == {"serving_model_version": "v1", "lanes": {"return": "v3-return"}}
