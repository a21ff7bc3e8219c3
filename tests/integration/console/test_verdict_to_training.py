"""An analyst's verdict reaches the next training table: the label the console writes into the lake is
read by the Spark feature job like any inspection label, with the verdict's time as labeled_at."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from glue_jobs import features as job
from local import stack as local_stack
from returnguard import synth
from returnguard.aws.decisions import DecisionStore
from returnguard.aws.reviews import FileLabelSink, ReviewStore
from returnguard.console import make_verdict
from tests.integration.console.conftest import save_decision

pytestmark = pytest.mark.slow


def test_verdicts_reach_the_training_table(spark, tmp_path) -> None:
    # Given a small lake and decisions for two of its orders that no inspection labelled
    data = synth.generate(synth.SynthConfig(orders=200, seed=5, days=45))
    synth.write_raw(data, tmp_path)
    labelled = set(data.labels.order_id)
    unlabelled = [o for o in data.orders.order_id if o not in labelled][:2]
    stack = local_stack.start(prefix="rg-console-training")
    try:
        client = stack.client("dynamodb")
        decisions = DecisionStore(client, stack.table_names["decisions"], stack.table_names["audit"])
        reviews = ReviewStore(
            client,
            stack.table_names["decisions"],
            stack.table_names["audit"],
            FileLabelSink(tmp_path / "raw"),
        )
        times = {}
        # When an analyst confirms abuse on one and calls the other legitimate
        for order_id, verdict in zip(unlabelled, ("confirmed_abuse", "legitimate"), strict=True):
            seeded = save_decision(decisions, order_id)
            case = reviews.case(seeded.decision_id)
            assert case is not None
            decided = make_verdict(
                case.decision_id, verdict, "", "analyst", "analyst", datetime.now(timezone.utc)
            )
            reviews.record(case, decided)
            times[order_id] = int(decided.recorded_at.timestamp() * 1000)
    finally:
        stack.stop()
    # Then the feature job's training table (built as its run() builds it) carries both labels with
    # the verdicts' times
    raw = str(tmp_path / "raw")
    orders = job.load_orders(spark, raw)
    built = job.training_table(
        orders,
        job.load_returns(spark, raw, orders),
        job.load_profiles(spark, raw),
        job.load_labels(spark, raw),
    )
    table = built.select("order_id", "label", "labeled_at_ms", "abuse_type").toPandas().set_index("order_id")
    abuse, legitimate = unlabelled
    assert table.loc[abuse, "label"] == 1 and table.loc[abuse, "abuse_type"] == "analyst_verdict"
    assert table.loc[legitimate, "label"] == 0
    for order_id, at in times.items():
        assert table.loc[order_id, "labeled_at_ms"] == at
    # and the inspection labels are still there
    assert int(table.label.sum()) == int(data.labels.is_abuse.sum()) + 1
