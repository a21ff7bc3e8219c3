"""The scheduled drift job's I/O: the serving model's baseline, the live rows, the report and the metrics.

Live rows come from the endpoint's data capture (realtime endpoints: each captured request's instances
with the scores the model answered) or, where there is no capture (serverless endpoints), from the
audit trail (each decision's feature vector and score). Degraded decisions are left out: the fallback
model scored them, not the model the baseline describes.
"""

from __future__ import annotations

import base64
import io
import json
import tarfile
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from returnguard.drift import (
    BASELINE_FILE,
    DRIFTED,
    SCORE,
    DriftBaseline,
    DriftError,
    DriftReport,
    drift_report,
)

DRIFT_PREFIX = "processed/drift/"
METRIC_NAMESPACE = "ReturnGuard"
SERVICE_DIMENSION = {"Name": "service", "Value": "returnguard"}


def _split_s3_url(url: str) -> tuple[str, str]:
    if not url.startswith("s3://"):
        raise DriftError(f"not an S3 URL: {url}")
    bucket, _, key = url[5:].partition("/")
    return bucket, key


def serving_model_data_url(sagemaker: Any, endpoint_name: str) -> str:
    """The artifact of the model the endpoint's first (champion) production variant serves."""
    endpoint = sagemaker.describe_endpoint(EndpointName=endpoint_name)
    config = sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    model = sagemaker.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
    container = model.get("PrimaryContainer") or model["Containers"][0]
    return str(container["ModelDataUrl"])


def baseline_from_artifact(s3: Any, model_data_url: str) -> DriftBaseline:
    """`drift_baseline.json` from a model.tar.gz in S3 (training writes it beside the model)."""
    bucket, key = _split_s3_url(model_data_url)
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as archive:
        try:
            member = archive.extractfile(BASELINE_FILE)
        except KeyError:
            member = None
        if member is None:
            raise DriftError(
                f"{model_data_url} has no {BASELINE_FILE}: the model was trained before drift baselines; "
                "retrain it (or `make model` for the bootstrap model)"
            )
        return DriftBaseline.from_dict(json.loads(member.read()))


def _decode(data: Mapping[str, Any]) -> Any:
    text = data.get("data", "")
    if data.get("encoding") == "BASE64":
        text = base64.b64decode(text).decode("utf-8")
    return json.loads(text)


def rows_from_capture_line(line: str) -> list[dict[str, Any]]:
    """One data-capture JSON line -> a row per instance: its features plus the score the model answered."""
    record = json.loads(line)
    capture = record["captureData"]
    try:
        instances = _decode(capture["endpointInput"])["instances"]
        predictions = _decode(capture["endpointOutput"])["predictions"]
    except (KeyError, TypeError, ValueError):
        return []  # a CSV request or an error answer: nothing comparable
    return [
        {**instance, SCORE: prediction.get("score")}
        for instance, prediction in zip(instances, predictions, strict=False)
        if isinstance(instance, dict) and isinstance(prediction, dict)
    ]


def _hours(since: datetime, until: datetime) -> Iterator[datetime]:
    hour = since.replace(minute=0, second=0, microsecond=0)
    while hour < until:
        yield hour
        hour += timedelta(hours=1)


def captured_rows(
    s3: Any, bucket: str, prefix: str, endpoint_name: str, since: datetime, until: datetime
) -> Iterator[dict[str, Any]]:
    """Rows captured for the endpoint (every variant) in [since, until), one file at a time (a day of
    prod traffic does not fit in memory at once): SageMaker writes
    `<prefix>/<endpoint>/<variant>/yyyy/mm/dd/hh/<file>.jsonl`."""
    base = f"{prefix.rstrip('/')}/{endpoint_name}/"
    variants = [
        p["Prefix"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=base, Delimiter="/")
        for p in page.get("CommonPrefixes", [])
    ]
    for variant in variants:
        for hour in _hours(since, until):
            hour_prefix = f"{variant}{hour:%Y/%m/%d/%H}/"
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=hour_prefix):
                for item in page.get("Contents", []):
                    body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read().decode("utf-8")
                    for line in body.splitlines():
                        if line.strip():
                            yield from rows_from_capture_line(line)


def audit_rows(dynamodb: Any, audit_table: str, since: datetime, until: datetime) -> list[dict[str, Any]]:
    """Rows from the audit trail in [since, until): feature vector plus score, model-scored decisions only.
    A Scan: meant for dev-sized tables (prod's realtime endpoint has data capture)."""
    rows: list[dict[str, Any]] = []
    request: dict[str, Any] = {
        "TableName": audit_table,
        "FilterExpression": "recorded_at BETWEEN :since AND :until AND degraded = :false",
        "ExpressionAttributeValues": {
            ":since": {"S": since.astimezone(timezone.utc).isoformat()},
            ":until": {"S": until.astimezone(timezone.utc).isoformat()},
            ":false": {"BOOL": False},
        },
        "ProjectionExpression": "features, risk_score, model_version",
    }
    for page in dynamodb.get_paginator("scan").paginate(**request):
        for item in page.get("Items", []):
            score = item.get("risk_score", {}).get("S", "")
            if not score:
                continue
            rows.append({**json.loads(item["features"]["S"]), SCORE: float(score)})
    return rows


def report_key(report: DriftReport, day: datetime) -> str:
    return f"{DRIFT_PREFIX}dt={day:%Y-%m-%d}/report-{report.model_version}.json"


def metric_data(report: DriftReport, at: datetime) -> list[dict[str, Any]]:
    """The CloudWatch datapoints of one report (none without enough rows: no verdict, no datapoint)."""
    if not report.enough_rows:
        return []
    data = [
        {"MetricName": "DriftMaxFeaturePSI", "Value": report.max_feature_psi},
        {"MetricName": "DriftLiveRows", "Value": float(report.live_rows), "Unit": "Count"},
    ]
    if report.score_psi is not None:
        data.append({"MetricName": "DriftScorePSI", "Value": report.score_psi})
    datapoints = [{**d, "Dimensions": [SERVICE_DIMENSION], "Timestamp": at} for d in data]
    datapoints += [
        {
            "MetricName": "DriftFeaturePSI",
            "Dimensions": [SERVICE_DIMENSION, {"Name": "feature", "Value": name}],
            "Value": value,
            "Timestamp": at,
        }
        for name, value in report.features.items()
    ]
    return datapoints


def publish(cloudwatch: Any, report: DriftReport, at: datetime) -> int:
    data = metric_data(report, at)
    for start in range(0, len(data), 1000):  # PutMetricData takes up to 1,000 datapoints
        cloudwatch.put_metric_data(Namespace=METRIC_NAMESPACE, MetricData=data[start : start + 1000])
    return len(data)


def write_report(s3: Any, bucket: str, report: DriftReport, day: datetime) -> str:
    key = report_key(report, day)
    s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=json.dumps(report.as_dict(), indent=2).encode("utf-8"),
        ContentType="application/json",
    )
    return key


def run(
    *,
    baseline: DriftBaseline,
    rows: Iterable[Mapping[str, Any]],
    since: datetime,
    until: datetime,
    source: str,
    s3: Any,
    bucket: str,
    cloudwatch: Any | None,
    drifted: float = DRIFTED,
) -> tuple[DriftReport, str]:
    """Report the rows' drift against the baseline into the lake and (with `cloudwatch`) as metrics."""
    window = {"from": since.isoformat(), "to": until.isoformat(), "source": source}
    report = drift_report(baseline, rows, window=window, drifted=drifted)
    key = write_report(s3, bucket, report, until)
    if cloudwatch is not None:
        publish(cloudwatch, report, until)
    return report, key
