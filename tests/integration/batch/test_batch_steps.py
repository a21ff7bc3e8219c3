"""The batch steps (batch/steps.py) on moto: a good file in each format is validated, converted, scored
and explained with one alert's content; a bad file is quarantined with a machine-readable report and
nothing of it is scored; the same bytes claimed twice are processed once."""

from __future__ import annotations

import io
import json

import boto3
import numpy as np
import pyarrow.parquet as pq
import pytest
from moto import mock_aws

from batch import steps
from batch.engine import Model
from local.stack import create_table
from returnguard.aws.batch import BatchStore
from returnguard.batch import MODEL_PREFIX, PREDICTION_COLUMNS, ModelNotPublished, converted_key
from returnguard.tables import FLAGGED, IDEMPOTENCY

REGION = "us-east-1"
BUCKET = "lake"


@pytest.fixture
def store(payments_model):
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        create_table(dynamodb, FLAGGED, "flagged")
        create_table(dynamodb, IDEMPOTENCY, "claims")
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        for name in steps.MODEL_FILES:  # published, as `returnguard batch publish-model` does
            s3.upload_file(str(payments_model / name), BUCKET, f"{MODEL_PREFIX}{name}")
        yield BatchStore(s3, dynamodb, bucket=BUCKET, flagged_table="flagged", claims_table="claims")


@pytest.fixture(scope="module")
def model(payments_model):
    return Model.from_dir(payments_model)


def upload(store, name: str, body: bytes) -> dict:
    key = f"incoming/batch/{name}"
    store.put(key, body, "application/octet-stream")
    return steps.claim(store, key=key, small_file_bytes=10**9, lease_s=3600, now=1_000)


def run(store, name: str, body: bytes, model) -> tuple[dict, dict]:
    file = upload(store, name, body)
    outcome = steps.convert(store, file, model, REGION)
    if outcome["status"] == "valid":
        outcome = steps.score_converted(store, file, model, REGION)
    return file, outcome


def predictions(store, key: str):
    return pq.read_table(io.BytesIO(store.get(key)))


def flagged_items(store) -> list[dict]:
    return store.dynamodb.scan(TableName="flagged")["Items"]


def test_a_good_csv_is_scored_explained_and_summarised_in_one_alert(store, model, transactions):
    file, outcome = run(store, "day-1.csv", transactions.to_csv(index=False).encode(), model)

    assert outcome["status"] == "scored"
    table = predictions(store, outcome["predictions_key"])
    assert outcome["predictions_key"].startswith("processed/predictions/payments/")
    assert table.schema.names == [name for name, _ in PREDICTION_COLUMNS]
    assert table.num_rows == len(transactions)
    assert table["row"].to_pylist() == list(range(1, len(transactions) + 1))
    assert table["transaction_id"].to_pylist() == transactions.transaction_id.tolist()
    flags = np.array(table["flagged"].to_pylist())
    assert 0 < flags.sum() < len(flags) and flags.sum() == outcome["flagged"]
    # Flagged rows carry exact contributions: bias + contributions = the score's log-odds.
    contributions = table["contributions"].to_pylist()
    for i in np.flatnonzero(flags):
        margin = table["base_value"][int(i)].as_py() + sum(v for _, v in contributions[i])
        assert 1 / (1 + np.exp(-margin)) == pytest.approx(table["score"][int(i)].as_py(), abs=1e-5)
    assert all(contributions[i] is None for i in np.flatnonzero(~flags))
    # Flagged rows in DynamoDB, keyed by the file's digest and row
    items = flagged_items(store)
    assert sorted(int(item["row"]["N"]) for item in items) == [int(i) + 1 for i in np.flatnonzero(flags)]
    assert {item["file_digest"]["S"] for item in items} == {file["digest"]}
    # One alert: counts, the top rows with their factors, a link
    alert = json.loads(outcome["alert"]["message"])
    assert set(alert) >= {"default", "email", "sqs", "https"}
    assert f"{outcome['flagged']:,} of {len(transactions):,} flagged" in outcome["alert"]["subject"]
    machine = json.loads(alert["sqs"])
    top = machine["top"]
    assert len(top) == min(10, outcome["flagged"])
    assert [r["score"] for r in top] == sorted((r["score"] for r in top), reverse=True)
    best = top[0]
    assert best["transaction_id"] == transactions.transaction_id.iloc[best["row"] - 1]
    assert best["factors"] and all(f["contribution"] > 0 for f in best["factors"])
    assert best["factors"][0]["value"] == pytest.approx(
        transactions[best["factors"][0]["feature"]].iloc[best["row"] - 1]
    )
    assert f"row {best['row']} {best['transaction_id']}" in alert["email"]
    assert f"s3://{BUCKET}/{outcome['predictions_key']}" in alert["email"]
    assert json.loads(alert["default"])["content"]["title"] == outcome["alert"]["subject"]


def test_json_lines_and_parquet_files_score_like_the_csv(store, model, transactions):
    _, from_csv = run(store, "a.csv", transactions.to_csv(index=False).encode(), model)
    lines = transactions.to_json(orient="records", lines=True).encode()
    _, from_jsonl = run(store, "a.jsonl", lines, model)
    sink = io.BytesIO()
    transactions.to_parquet(sink, index=False)
    _, from_parquet = run(store, "a.parquet", sink.getvalue(), model)

    expected = predictions(store, from_csv["predictions_key"])["score"].to_pylist()
    for outcome in (from_jsonl, from_parquet):
        assert outcome["status"] == "scored"
        assert predictions(store, outcome["predictions_key"])["score"].to_pylist() == pytest.approx(expected)


def test_the_lambda_scorer_without_xgboost_gives_the_same_outputs(store, payments_model, transactions):
    body = transactions.head(400).to_csv(index=False).encode()
    _, with_xgboost = run(store, "x.csv", body, Model.from_dir(payments_model, "xgboost"))
    alert_xgboost = json.loads(json.loads(with_xgboost["alert"]["message"])["sqs"])
    store.release(upload(store, "x.csv", body)["digest"])
    _, pure = run(store, "x.csv", body, Model.from_dir(payments_model, "trees"))
    alert_pure = json.loads(json.loads(pure["alert"]["message"])["sqs"])

    assert pure["flagged"] == with_xgboost["flagged"]
    assert [(r["row"], [f["feature"] for f in r["factors"]]) for r in alert_pure["top"]] == [
        (r["row"], [f["feature"] for f in r["factors"]]) for r in alert_xgboost["top"]
    ]
    for ours, theirs in zip(alert_pure["top"], alert_xgboost["top"], strict=True):
        assert ours["score"] == pytest.approx(theirs["score"], abs=1e-6)
        for a, b in zip(ours["factors"], theirs["factors"], strict=True):
            assert a["contribution"] == pytest.approx(b["contribution"], abs=1e-5)


BAD_FILES = {
    "wrong schema": ("wrong.csv", b"Time,V1,merchant\n1,0.5,acme\n", {"missing_column", "unexpected_column"}),
    "empty": ("empty.csv", b"", {"empty_file"}),
    "header only": ("header.csv", None, {"empty_file"}),
    "not JSON": ("broken.jsonl", None, {"malformed_row"}),
    "unsupported": ("day.xlsx", b"PK\x03\x04", {"unsupported_format"}),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_bad_files_are_quarantined_whole_with_a_report(store, model, transactions, case):
    name, body, codes = BAD_FILES[case]
    if case == "header only":
        body = (",".join(transactions.columns) + "\n").encode()
    if case == "not JSON":
        body = transactions.head(3).to_json(orient="records", lines=True).encode() + b"{oops\n"

    file, outcome = run(store, name, body, model)

    assert outcome["status"] == "quarantined"
    assert set(outcome["problem_counts"]) == codes
    report = json.loads(store.get(outcome["report_key"]))
    assert report["file_digest"] == file["digest"] and report["source_key"] == file["key"]
    assert store.get(outcome["quarantined_key"]) == body  # moved, not lost
    with pytest.raises(store.s3.exceptions.NoSuchKey):
        store.get(file["key"])
    assert flagged_items(store) == []
    assert store.s3.list_objects_v2(Bucket=BUCKET, Prefix="processed/").get("KeyCount") == 0
    assert "nothing scored" in outcome["alert"]["subject"]


def test_cells_that_are_not_numbers_are_reported_by_row_and_column(store, model, transactions):
    table = transactions.head(50).copy()
    table[["V3", "Amount"]] = table[["V3", "Amount"]].astype(object)
    table.loc[6, "V3"] = "n/a-ish"
    table.loc[40, "Amount"] = "12,50"
    table.loc[10, "V5"] = float("inf")
    lines = table.to_csv(index=False).splitlines()
    lines[20] += ",extra"  # data row 20 has one field too many

    _, outcome = run(store, "cells.csv", "\n".join(lines).encode(), model)

    report = json.loads(store.get(outcome["report_key"]))
    problems = {(p["code"], p.get("row"), p.get("column")) for p in report["problems"]}
    assert problems == {("malformed_row", 20, None)}  # a wrong row count is found first, alone
    fixed = table.drop(index=[19]).reset_index(drop=True)  # now row 7 V3 and row 40 Amount; row 11 inf
    _, outcome = run(store, "cells-2.csv", fixed.to_csv(index=False).encode(), model)
    report = json.loads(store.get(outcome["report_key"]))
    problems = {(p["code"], p.get("row"), p.get("column")) for p in report["problems"]}
    assert problems == {
        ("not_a_number", 7, "V3"),
        ("not_a_number", 40, "Amount"),
        ("infinite_value", 11, "V5"),
    }
    assert store.s3.list_objects_v2(Bucket=BUCKET, Prefix="processed/").get("KeyCount") == 0


def test_the_same_bytes_under_another_name_are_claimed_once(store, model, transactions):
    body = transactions.head(200).to_csv(index=False).encode()
    first, outcome = run(store, "monday.csv", body, model)
    store.finish(first["digest"], outcome["status"])
    rows = len(flagged_items(store))

    again = upload(store, "monday-copy.csv", body)

    assert again["duplicate"] and again["digest"] == first["digest"]
    assert len(flagged_items(store)) == rows


def test_a_released_claim_lets_the_file_run_again_and_a_stale_one_expires(store, transactions):
    body = transactions.head(20).to_csv(index=False).encode()
    first = upload(store, "t.csv", body)
    assert not first["duplicate"]
    assert upload(store, "t.csv", body)["duplicate"]  # in progress
    store.release(first["digest"])
    assert not upload(store, "t.csv", body)["duplicate"]
    # an execution that died without releasing: after its lease anyone may claim it
    later = steps.claim(store, key="incoming/batch/t.csv", small_file_bytes=1, lease_s=3600, now=1_000 + 3601)
    assert not later["duplicate"] and later["route"] == "glue"


def test_converted_parquet_keeps_the_validated_columns(store, model, transactions):
    file = upload(store, "c.csv", transactions.head(30).to_csv(index=False).encode())
    outcome = steps.convert(store, file, model, REGION)
    table = pq.read_table(io.BytesIO(store.get(converted_key(file["digest"]))))
    assert outcome == {"status": "valid", "rows": 30, "converted_key": converted_key(file["digest"])}
    assert set(table.column_names) == set(transactions.columns)
    assert str(table.schema.field("V1").type) == "double"


def test_without_a_published_model_the_claim_names_the_reason_and_takes_nothing(
    store, model, transactions, payments_model
):
    # Given a lake right after `cdk deploy`: no model under models/payments/current/
    store.s3.delete_object(Bucket=BUCKET, Key=f"{MODEL_PREFIX}config.json")
    body = transactions.head(20).to_csv(index=False).encode()

    # When the file's claim step runs, it fails with the reason and the command that fixes it
    with pytest.raises(ModelNotPublished, match="publish-model") as raised:
        upload(store, "first.csv", body)
    assert raised.value.code == "model_not_published" and raised.value.missing == ("config.json",)
    assert store.dynamodb.scan(TableName="claims")["Items"] == []  # nothing claimed

    # Then, once a model is published, the same bytes are claimed and scored
    store.s3.upload_file(str(payments_model / "config.json"), BUCKET, f"{MODEL_PREFIX}config.json")
    _, outcome = run(store, "first.csv", body, model)
    assert outcome["status"] == "scored" and outcome["rows"] == 20
