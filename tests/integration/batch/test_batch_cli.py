"""`returnguard batch score FILE` against a local moto server: a good file prints its one alert, the same
file again prints that it was already processed, a bad file is quarantined with exit status 1."""

from __future__ import annotations

import io

import pytest

from local import stack as local_stack
from returnguard import cli


@pytest.fixture(scope="module")
def aws():
    # moto's state is per process: names of its own (--prefix), as other tests start local stacks too
    server = local_stack.start(prefix=PREFIX)
    yield server
    server.stop()


PREFIX = "returnguard-batch-cli"


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return cli.main([*argv, "--prefix", PREFIX], out=out), out.getvalue()


def test_batch_score_prints_one_alert_and_a_second_upload_none(aws, payments_model, transactions, tmp_path):
    path = tmp_path / "monday.csv"
    transactions.head(500).to_csv(path, index=False)
    common = ("--model-dir", str(payments_model), "--endpoint-url", aws.endpoint_url)

    code, text = run("batch", "score", str(path), *common)

    assert code == 0, text
    assert text.startswith("Subject: ReturnGuard batch: ") and "of 500 flagged in monday.csv" in text
    assert (
        "Top flagged rows" in text
        and "All predictions: s3://returnguard-batch-cli-lake/processed/predictions/" in text
    )
    assert "(1 alert published to" in text
    flagged = aws.client("dynamodb").scan(TableName=aws.table_names["flagged"])["Count"]

    code, text = run("batch", "score", str(path), *common)

    assert code == 0 and "already processed" in text
    assert aws.client("dynamodb").scan(TableName=aws.table_names["flagged"])["Count"] == flagged


def test_batch_score_of_a_bad_file_exits_1_with_the_quarantine_alert(aws, payments_model, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("Time,V1\n1,x\n")

    code, text = run(
        "batch", "score", str(path), "--model-dir", str(payments_model), "--endpoint-url", aws.endpoint_url
    )

    assert code == 1
    assert "bad.csv refused, nothing scored" in text and "[missing_column]" in text
    assert "quarantine/payments-batch/" in text
