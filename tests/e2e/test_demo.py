"""`make demo` end to end on a small marketplace: every step runs and the output says what it did."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_demo_runs_every_step_offline(demo_run) -> None:
    run, tmp_path = demo_run.process, demo_run.work  # tests/e2e/conftest.py: no AWS credentials at all
    out = run.stdout
    assert run.returncode == 0, out[-3000:] + run.stderr[-3000:]
    for number in range(1, 12):
        assert f"[{number}/11]" in out
    assert "abuse: refund above paid" in out and "deny_refund" in out  # the return step's table
    # card payments on the API, scored by the demo's payment model (not degraded): a takeover burst's
    # later payments are at least stepped up (velocity)
    assert re.search(r"payment model tab-\S+; degraded decisions: 0$", out, re.MULTILINE)
    payments = re.findall(
        r"^ +X\d+ +C\d+ .* (genuine|terminal|takeover|card) +[01]\.\d{3} +(\w+)", out, re.MULTILINE
    )
    assert ("genuine", "approve") in payments and len(payments) >= 6
    takeover = [action for was, action in payments if was == "takeover"]
    assert len(takeover) >= 2 and "approve" not in takeover[1:], takeover
    # the batch step: one file scored, one alert with its top flagged rows
    assert "1 alert on the topic" in out and re.search(
        r"Subject: ReturnGuard batch: \d+ of 5,000 flagged", out
    )
    assert "Top flagged rows" in out
    assert (tmp_path / "report" / "report.html").is_file()
    scored = re.findall(r"^\S+-demo \S+ .* (low|medium|high|critical) ", out, re.MULTILINE)
    assert len(scored) == 20  # the first 20 of the 100 rows are printed
    rising = [float(s) for s in re.findall(r"score (\d\.\d{3})", out)]
    assert len(rising) == 5 and rising[-1] > rising[0]  # returns streamed in raise the score
    assert "curl -s http://127.0.0.1:" in out
    # the drift job ran on the decisions the demo made, and left its report in the local lake
    assert re.search(r"drift of 1\d\d decisions against model \S+'s training window: \w+", out)
    assert list((tmp_path / "lake" / "processed" / "drift").glob("dt=*/report-*.json"))
    lines = (tmp_path / "score-function.log").read_text().splitlines()
    assert sum(1 for line in lines if json.loads(line).get("message") == "decided") >= 100

    # the sample orders are spread over weeks, not all on one day: the 20 printed span 5+ days
    assert len(set(re.findall(r"^\S+-demo \S+ (\d{4}-\d{2}-\d{2}) ", out, re.MULTILINE))) >= 5
    # an approval never shows a risk reason as its top factor
    for row in re.findall(r"^\S+-demo .* approve +(.*)$", out, re.MULTILINE):
        assert not row.startswith(("Placed during", "Cash on delivery", "Delivery address not used")), row
    assert "abusive before: 1 when" in out
    assert not (tmp_path / "api.json").exists()  # the address is forgotten when the API stops
    # one retrain-and-gate cycle: both models on the same mature window, the decision with its numbers
    assert re.search(r"same mature window for both: \S+ → \S+, [\d,]+ orders", out)
    assert re.search(r"^ +serving +0\.\d{3} +0\.\d{3} +0\.\d{3}$", out, re.MULTILINE)
    assert re.search(r"^ +candidate +0\.\d{3} +0\.\d{3} +0\.\d{3}$", out, re.MULTILINE)
    assert re.search(r"gate: (APPROVED|REJECTED \(\w+.*\)); registered as version 2; record s3://", out)
    assert ("model server reloaded: v-demo-retrain-1" in out) == ("gate: APPROVED" in out)
    assert not (tmp_path / "local-aws.json").exists()
    # README's sample output has the columns the demo prints
    readme = (ROOT / "README.md").read_text()
    sample = readme.split("tests/e2e/test_demo.py checks its columns) -->\n```\n", 1)[1].split("```", 1)[0]
    printed = next(line for line in out.splitlines() if line.split()[:2] == ["order", "customer"])
    assert sample.splitlines()[0].split() == printed.split()
    assert "abusive before: 1 when" in sample
    # what the docs quote is rendered from the run's record (local/docs_numbers.py): rows it printed,
    # the metrics its model wrote
    from local import docs_numbers

    record = json.loads((tmp_path / "summary.json").read_text())
    assert (record["orders"], record["seed"], record["code"]) == (4000, 7, docs_numbers.code_key())
    quoted = docs_numbers.demo_sample(record).splitlines()
    assert quoted[2] == printed and all(row in out.splitlines() for row in quoted[3:6])
    assert [line for line in quoted if line.startswith("      after return")] == [
        line for line in out.splitlines() if line.startswith("      after return")
    ]
    metrics = json.loads((tmp_path / "model" / "metrics.json").read_text())
    assert f"| {metrics['models']['xgboost']['roc_auc']:.3f} |" in docs_numbers.model_table(record)
