"""`python -m local.compare` on a decisions archive written by the archive's own Parquet writer and the
lake's labels: matured labels only, both variants reported, the recommendation printed and saved; and on
the live decisions table (moto), where decisions matured but younger than the 90-day TTL still are."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

import boto3
import pandas as pd
import pytest
from moto import mock_aws

from local import compare
from local.stack import create_table
from returnguard.aws.archive import parquet_bytes
from returnguard.comparison import DAY_MS, matured_label
from returnguard.tables import DECISIONS

AS_OF = datetime(2026, 9, 1, tzinfo=timezone.utc)


def test_matured_label_follows_trainings_rule() -> None:
    as_of = int(AS_OF.timestamp() * 1000)
    old, young = as_of - 60 * DAY_MS, as_of - 10 * DAY_MS
    assert matured_label(old, None, as_of) == 0  # mature, no label row: not abuse
    assert matured_label(young, None, as_of) is None  # too young to tell
    assert matured_label(young, (1, as_of - DAY_MS), as_of) == 1  # a known label counts at any age
    assert matured_label(old, (1, as_of + DAY_MS), as_of) is None  # labelled after as_of: unknown then


def decisions_and_labels(separation: dict[str, float], count: int = 1200) -> tuple[list[dict], list[dict]]:
    """`count` decisions 60 to 89 days old (labels matured, TTL not yet due), half by each variant."""
    rng = random.Random(4)
    rows, labels = [], []
    for i in range(count):
        variant = "challenger" if i % 2 else "champion"
        created = AS_OF - timedelta(days=60 + i % 30)
        abusive = rng.random() < 0.15
        score = min(1.0, max(0.0, rng.gauss(0.3 + separation[variant] * abusive, 0.15)))
        rows.append(
            {
                "decision_id": f"d{i}",
                "order_id": f"O{i}",
                "created_at": created.isoformat(),
                "risk_score": score,
                "recommended_action": "approve" if score < 0.5 else "otp_verification",
                "rules_triggered": "[]",
                "degraded": False,
                "variant": variant,
            }
        )
        if abusive:
            labels.append({"order_id": f"O{i}", "is_abuse": 1, "labeled_at": created + timedelta(days=20)})
    return rows, labels


def write_lake(tmp_path: Path, separation: dict[str, float]) -> tuple[Path, Path]:
    rows, labels = decisions_and_labels(separation)
    archive = tmp_path / "decisions" / "dt=2026-06-01"
    archive.mkdir(parents=True)
    (archive / "1.parquet").write_bytes(parquet_bytes(rows))
    (tmp_path / "labels").mkdir()
    pd.DataFrame(labels).to_parquet(tmp_path / "labels" / "part-0000.parquet")
    return tmp_path / "decisions", tmp_path / "labels"


def test_report_from_the_archive_recommends_and_saves(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    decisions, labels = write_lake(tmp_path, {"champion": 0.1, "challenger": 0.45})
    out = tmp_path / "report.json"
    code = compare.main(
        [
            "--decisions",
            str(decisions),
            "--labels",
            str(labels),
            "--as-of",
            AS_OF.isoformat(),
            "--resamples",
            "40",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert text.startswith("ab comparison: recommendation ")
    saved = json.loads(out.read_text())
    assert saved["variants"]["champion"]["labeled"] == saved["variants"]["champion"]["decisions"] == 600
    assert (
        saved["variants"]["challenger"]["roc_auc"]["value"]
        > saved["variants"]["champion"]["roc_auc"]["value"]
    )
    assert saved["difference_challenger_minus_champion"]["pr_auc"]["low"] > 0


def test_a_missing_input_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        compare.main(["--decisions", str(tmp_path / "nope"), "--labels", str(tmp_path)])
    assert exit_info.value.code == 2


def put_live(rows: list[dict]) -> None:
    """The rows as the score function stores decisions (returnguard.aws.decisions: the answer as JSON)."""
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    create_table(dynamodb, DECISIONS, "decisions")
    items = [
        {
            "decision_id": {"S": row["decision_id"]},
            "created_at": {"S": row["created_at"]},
            "variant": {"S": row["variant"]},
            "expires_at": {
                "N": str(int(datetime.fromisoformat(row["created_at"]).timestamp()) + 90 * 86_400)
            },
            "response": {
                "S": json.dumps(
                    {
                        "order_id": row["order_id"],
                        "risk_score": row["risk_score"],
                        "recommended_action": row["recommended_action"],
                        "rules_triggered": [],
                        "degraded": False,
                    }
                )
            },
        }
        for row in rows
    ]
    for start in range(0, len(items), 25):
        batch = [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]
        dynamodb.batch_write_item(RequestItems={"decisions": batch})


def test_report_reads_the_live_decisions_the_archive_does_not_hold_yet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given decisions whose labels have matured (60-89 days old) but which the TTL has not yet moved to
    # the archive; the archive holds only the oldest tenth of them (as a removal racing the Scan would)
    rows, labels = decisions_and_labels({"champion": 0.1, "challenger": 0.45}, count=120)
    archive = tmp_path / "decisions" / "dt=2026-06-01"
    archive.mkdir(parents=True)
    (archive / "1.parquet").write_bytes(parquet_bytes(rows[:12]))
    (tmp_path / "labels").mkdir()
    pd.DataFrame(labels).to_parquet(tmp_path / "labels" / "part-0000.parquet")
    out = tmp_path / "report.json"
    argv = ["--labels", str(tmp_path / "labels"), "--as-of", AS_OF.isoformat(), "--resamples", "20"]

    with mock_aws():
        put_live(rows)
        # When the report reads the live table beside the archive
        code = compare.main(
            [
                *argv,
                "--decisions",
                str(tmp_path / "decisions"),
                "--decisions-table",
                "decisions",
                "--out",
                str(out),
            ]
        )

    # Then every decision counts, once, with its matured label
    assert code == 0
    saved = json.loads(out.read_text())
    assert saved["variants"]["champion"]["labeled"] == saved["variants"]["champion"]["decisions"] == 60
    assert saved["variants"]["challenger"]["labeled"] == saved["variants"]["challenger"]["decisions"] == 60
    assert "ab comparison: recommendation " in capsys.readouterr().out


def test_the_report_needs_a_source_of_decisions(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        compare.main(["--labels", str(tmp_path)])
    assert exit_info.value.code == 2
