"""The drift job against moto: the serving model's baseline from its artifact, a day of data capture (or
the audit trail), the report in the lake and the metrics in CloudWatch."""

from __future__ import annotations

import base64
import io
import json
import random
import tarfile
from datetime import datetime, timedelta, timezone
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local import moto_sagemaker
from local.stack import create_table
from returnguard.aws import drift_job
from returnguard.aws.decisions import DecisionStore, body_hash
from returnguard.aws.feature_store import InMemoryFeatureStore
from returnguard.drift import BASELINE_FILE, DriftError, build_baseline
from returnguard.policy import PolicyConfig
from returnguard.scoring import decide
from returnguard.tables import AUDIT, DECISIONS
from tests.integration.api.test_decisions import make_request
from tests.unit.api.fakes import FakeModel

LAKE = "lake"
ENDPOINT = "returnguard-prod-scoring"
NOW = datetime(2026, 5, 2, 6, 0, tzinfo=timezone.utc)
ROLE = "arn:aws:iam::123456789012:role/sagemaker"


def rows(rng: random.Random, n: int, shift: float = 0.0) -> list[dict[str, float]]:
    return [
        {
            "order_amount": rng.lognormvariate(7 + shift, 0.5),
            "customer_return_rate_last_6": rng.betavariate(1 + shift * 3, 6),
            "score": rng.betavariate(2 + shift * 4, 8),
        }
        for _ in range(n)
    ]


@pytest.fixture
def aws():
    moto_sagemaker.install()
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=LAKE)
        sagemaker = boto3.client("sagemaker", region_name="us-east-1")
        reference = rows(random.Random(1), 3000)
        baseline = build_baseline(
            "v-serving",
            {name: [r[name] for r in reference] for name in ("order_amount", "customer_return_rate_last_6")},
            [r["score"] for r in reference],
            window={"features": "train"},
        )
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w:gz") as tar:
            content = json.dumps(baseline.as_dict()).encode()
            info = tarfile.TarInfo(BASELINE_FILE)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
        s3.put_object(Bucket=LAKE, Key="models/artifacts/job-1/output/model.tar.gz", Body=archive.getvalue())
        sagemaker.create_model(
            ModelName="serving",
            ExecutionRoleArn=ROLE,
            PrimaryContainer={
                "Image": "xgboost",
                "ModelDataUrl": f"s3://{LAKE}/models/artifacts/job-1/output/model.tar.gz",
            },
        )
        sagemaker.create_endpoint_config(
            EndpointConfigName="config-1",
            ProductionVariants=[
                {
                    "VariantName": "primary",
                    "ModelName": "serving",
                    "InitialInstanceCount": 1,
                    "InstanceType": "ml.c5.large",
                }
            ],
        )
        sagemaker.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName="config-1")
        yield {
            "s3": s3,
            "sagemaker": sagemaker,
            "cloudwatch": boto3.client("cloudwatch", region_name="us-east-1"),
            "dynamodb": boto3.client("dynamodb", region_name="us-east-1"),
        }


def capture(s3: Any, hour: datetime, batch: list[dict[str, float]], encoding: str = "JSON") -> None:
    """One data-capture file as SageMaker writes it: a JSON line per request."""
    lines = []
    for row in batch:
        instance = {k: v for k, v in row.items() if k != "score"}
        request = json.dumps({"instances": [instance]})
        answer = json.dumps({"predictions": [{"score": row["score"]}], "model_version": "v-serving"})
        if encoding == "BASE64":
            request, answer = (base64.b64encode(t.encode()).decode() for t in (request, answer))
        lines.append(
            json.dumps(
                {
                    "captureData": {
                        "endpointInput": {
                            "observedContentType": "application/json",
                            "mode": "INPUT",
                            "data": request,
                            "encoding": encoding,
                        },
                        "endpointOutput": {
                            "observedContentType": "application/json",
                            "mode": "OUTPUT",
                            "data": answer,
                            "encoding": encoding,
                        },
                    },
                    "eventMetadata": {"eventId": "e", "inferenceTime": hour.isoformat()},
                    "eventVersion": "0",
                }
            )
        )
    key = f"models/data-capture/{ENDPOINT}/primary/{hour:%Y/%m/%d/%H}/{hour:%M-%S}-{encoding}.jsonl"
    s3.put_object(Bucket=LAKE, Key=key, Body="\n".join(lines).encode())


def run(clients: dict[str, Any], source: str = "capture") -> tuple[Any, str]:
    since = NOW - timedelta(hours=24)
    baseline = drift_job.baseline_from_artifact(
        clients["s3"], drift_job.serving_model_data_url(clients["sagemaker"], ENDPOINT)
    )
    if source == "capture":
        live = drift_job.captured_rows(clients["s3"], LAKE, "models/data-capture/", ENDPOINT, since, NOW)
    else:
        live = drift_job.audit_rows(clients["dynamodb"], "audit", since, NOW)
    return drift_job.run(
        baseline=baseline,
        rows=live,
        since=since,
        until=NOW,
        source=source,
        s3=clients["s3"],
        bucket=LAKE,
        cloudwatch=clients["cloudwatch"],
    )


def metric(clients: dict[str, Any], name: str, dimensions: list[dict[str, str]]) -> list[float]:
    answer = clients["cloudwatch"].get_metric_statistics(
        Namespace="ReturnGuard",
        MetricName=name,
        Dimensions=dimensions,
        StartTime=NOW - timedelta(hours=1),
        EndTime=NOW + timedelta(hours=1),
        Period=3600,
        Statistics=["Maximum"],
    )
    return [p["Maximum"] for p in answer["Datapoints"]]


def test_a_drifted_day_of_capture_is_reported_in_the_lake_and_as_metrics(aws) -> None:
    rng = random.Random(5)
    # the last day's traffic has shifted; a file from two days ago (outside the window) has not
    capture(aws["s3"], NOW - timedelta(hours=3), rows(rng, 300, shift=0.7))
    capture(aws["s3"], NOW - timedelta(hours=2), rows(rng, 200, shift=0.7), encoding="BASE64")
    capture(aws["s3"], NOW - timedelta(hours=50), rows(rng, 5000))

    report, key = run(aws)

    assert report.live_rows == 500 and report.status == "drifted"
    assert key == "processed/drift/dt=2026-05-02/report-v-serving.json"
    stored = json.loads(aws["s3"].get_object(Bucket=LAKE, Key=key)["Body"].read())
    assert stored["status"] == "drifted" and stored["window"]["source"] == "capture"
    assert set(stored["drifted_features"]) == {"order_amount", "customer_return_rate_last_6"}
    service = [{"Name": "service", "Value": "returnguard"}]
    assert metric(aws, "DriftMaxFeaturePSI", service) == [pytest.approx(report.max_feature_psi)]
    assert metric(aws, "DriftScorePSI", service)[0] > 0.25
    assert metric(aws, "DriftFeaturePSI", [*service, {"Name": "feature", "Value": "order_amount"}]) == [
        pytest.approx(report.features["order_amount"])
    ]


def test_an_undrifted_day_is_stable(aws) -> None:
    capture(aws["s3"], NOW - timedelta(hours=1), rows(random.Random(9), 1500))
    report, _ = run(aws)
    assert report.status == "stable" and report.max_feature_psi < 0.1 and report.score_psi < 0.1


def test_no_traffic_writes_a_report_without_a_verdict_and_no_datapoint(aws) -> None:
    report, key = run(aws)
    assert report.status == "insufficient_data"
    assert json.loads(aws["s3"].get_object(Bucket=LAKE, Key=key)["Body"].read())["live_rows"] == 0
    assert metric(aws, "DriftMaxFeaturePSI", [{"Name": "service", "Value": "returnguard"}]) == []


def test_audit_trail_source_reads_model_scored_decisions_of_the_window(aws) -> None:
    dynamodb = aws["dynamodb"]
    create_table(dynamodb, DECISIONS, "decisions")
    create_table(dynamodb, AUDIT, "audit")
    store = DecisionStore(dynamodb, "decisions", "audit")
    for i in range(60):
        request = make_request(amount=100.0 + i)
        request.order.order_id = f"ORD-{i}"
        at = NOW - timedelta(hours=1)
        decision = decide(request, InMemoryFeatureStore(), FakeModel(0.4), PolicyConfig(), at)
        store.save(
            decision.response,
            customer_id="C9",
            request_hash=body_hash(request),
            features=decision.vector,
            now=at,
        )
    live = drift_job.audit_rows(dynamodb, "audit", NOW - timedelta(hours=24), NOW)
    assert len(live) == 60
    assert all(r["score"] == pytest.approx(0.4) for r in live)
    assert sorted(r["order_amount"] for r in live) == [100.0 + i for i in range(60)]
    report, _ = run(aws, source="audit")
    assert report.live_rows == 60 and report.window["source"] == "audit"


def test_a_model_without_a_baseline_fails_with_what_to_do(aws) -> None:
    empty = io.BytesIO()
    with tarfile.open(fileobj=empty, mode="w:gz"):
        pass
    aws["s3"].put_object(Bucket=LAKE, Key="models/artifacts/job-1/output/model.tar.gz", Body=empty.getvalue())
    with pytest.raises(DriftError, match="retrain"):
        run(aws)
