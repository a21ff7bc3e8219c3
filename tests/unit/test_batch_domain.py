"""returnguard.batch: the file contract, top factors, and what the two alerts say (pure, no AWS)."""

from __future__ import annotations

import json

from returnguard.batch import (
    FileSchema,
    ValidationReport,
    check_columns,
    file_format,
    quarantine_alert,
    route,
    scored_alert,
    top_factors,
)

CONFIG = {"feature_names": ["V1", "V2", "Amount"], "label": "Class", "split": {"time_column": "Time"}}


def test_the_schema_comes_from_the_model_config():
    schema = FileSchema.from_model_config(CONFIG)
    assert schema.features == ("V1", "V2", "Amount")
    assert schema.optional == ("Class", "Time", "transaction_id")


def test_columns_missing_unknown_and_repeated_are_each_a_problem():
    report = ValidationReport("incoming/batch/x.csv", "d" * 64, "csv")
    check_columns(["V1", "V1", "merchant", "Time"], FileSchema.from_model_config(CONFIG), report)
    found = {(p.code, p.column) for p in report.problems}
    assert found == {
        ("duplicate_columns", None),
        ("missing_column", "V2"),
        ("missing_column", "Amount"),
        ("unexpected_column", "merchant"),
    }


def test_formats_by_extension_and_routes_by_size():
    assert [file_format(k) for k in ("a/B.CSV", "x.ndjson", "x.json", "x.parquet", "x.xlsx")] == [
        "csv",
        "jsonl",
        "jsonl",
        "parquet",
        None,
    ]
    assert route(16, 16) == "lambda" and route(17, 16) == "glue"


def test_top_factors_are_the_largest_positive_contributions():
    factors = top_factors([0.5, -2.0, 1.5, 0.0, 0.7], [1.0, 2.0, float("nan"), 4.0, 5.0], list("abcde"))
    assert [(f.feature, f.value, f.contribution) for f in factors] == [
        ("c", None, 1.5),
        ("e", 5.0, 0.7),
        ("a", 1.0, 0.5),
    ]


def result(top):
    return {
        "bucket": "lake",
        "source_key": "incoming/batch/mon.csv",
        "file_digest": "ab" * 32,
        "file_format": "csv",
        "rows": 1000,
        "flagged": 12,
        "explained": 12,
        "threshold": 0.4,
        "model_version": "tab-1",
        "predictions_key": "processed/predictions/payments/x.parquet",
        "top": top,
    }


def test_the_scored_alert_has_counts_top_rows_with_factors_and_a_link():
    top = [
        {
            "row": 7,
            "transaction_id": "T7",
            "score": 0.97,
            "factors": [{"feature": "V1", "value": -3.5, "contribution": 1.2}],
        }
    ]
    alert = scored_alert(result(top), "eu-west-1")
    bodies = json.loads(alert["message"])
    assert alert["subject"] == "ReturnGuard batch: 12 of 1,000 flagged in mon.csv"
    assert "flagged: 12 (1.20%) at threshold 0.4000, model tab-1" in bodies["email"]
    assert "row 7 T7: 0.970  V1=-3.5 (+1.20)" in bodies["email"]
    assert (
        "https://eu-west-1.console.aws.amazon.com/s3/object/lake?region=eu-west-1&prefix=processed/predictions/payments/x.parquet"
        in bodies["email"]
    )
    machine = json.loads(bodies["sqs"])
    assert machine["kind"] == "batch_scored" and machine["top"] == top
    chat = json.loads(bodies["default"])
    assert (
        chat["version"] == "1.0"
        and chat["source"] == "custom"
        and chat["content"]["title"] == alert["subject"]
    )


def test_the_quarantine_alert_lists_problems_with_rows_and_columns():
    report = ValidationReport("incoming/batch/bad.csv", "cd" * 32, "csv")
    check_columns(["V1", "V2"], FileSchema.from_model_config(CONFIG), report)
    alert = quarantine_alert(report.as_dict(), "lake", "quarantine/payments-batch/cd/bad.csv", "us-east-1")
    email = json.loads(alert["message"])["email"]
    assert alert["subject"] == "ReturnGuard batch: bad.csv refused, nothing scored"
    assert "[missing_column] column Amount: the model's feature Amount is not in the file" in email
    assert "Report: s3://lake/quarantine/payments-batch/cd/report.json" in email
