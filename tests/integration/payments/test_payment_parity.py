"""Card payments: the Spark job, the stream and the online function compute the same features (==)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from glue_jobs import features as order_job
from returnguard import payment_synth
from returnguard.features import PAYMENT_FEATURE_NAMES
from returnguard.payments import PaymentContext, PaymentStore, replay
from tests.integration.stream.conftest import Delivery, normalized, stored_states

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def history(feature_lake):
    # tests/integration/conftest.py: 40 customers' payments over 40 days, in a shop's lake (4,000 orders)
    _, table, root = feature_lake
    return table, root


@pytest.fixture(scope="module")
def outputs(feature_job, feature_lake):
    # the feature job the pipeline runs (once for the session): with raw/payments in the lake it runs
    # the payment job too
    counts, processed = feature_job
    assert counts["orders"] == len(feature_lake[0].orders)
    return {k.removeprefix("payment_"): v for k, v in counts.items() if k.startswith("payment_")}, (
        processed / "payments"
    )


@pytest.fixture(scope="module")
def reference(history):
    table, _ = history
    store, walk = replay(*payment_synth.to_contexts(table))
    vectors = {payment.transaction_id: vector for payment, vector in walk}
    return store, vectors


def test_every_training_row_equals_the_online_vector_exactly(outputs, reference, history):
    counts, processed = outputs
    _, vectors = reference
    table = pd.read_parquet(processed / "training-data")
    assert len(table) == len(vectors) == counts["payments"]
    assert list(table.columns[4:-2]) == list(PAYMENT_FEATURE_NAMES)
    mismatches = []
    for row in table.itertuples(index=False):
        actual = {name: getattr(row, name) for name in PAYMENT_FEATURE_NAMES}
        expected = vectors[row.transaction_id]
        if actual != expected:
            mismatches.append(
                (
                    row.transaction_id,
                    {k: (actual[k], expected[k]) for k in actual if actual[k] != expected[k]},
                )
            )
    assert not mismatches, mismatches[:5]
    # the history exercises every mechanism the features are for (not a table of defaults)
    assert table.customer_payments_last_10m.max() >= 3
    assert table.card_is_new_for_customer.min() == 0.0 and table.customer_distinct_cards.max() >= 2
    assert table.terminal_fraud_rate_7d.max() > 0.1
    assert table.merchant_fraud_rate_28d.nunique() > 10
    raw = history[0].set_index("transaction_id")
    labels = table.set_index("transaction_id").label
    assert (labels == raw.label.fillna(0).astype(int).reindex(labels.index)).all()


def test_latest_aggregates_feed_the_online_function_like_the_replay(outputs, reference, history):
    _, processed = outputs
    store, _ = reference
    batch = dict(order_job.load_online(processed / "features" / "online"))
    assert normalized(batch) == normalized(store.items)
    loaded = PaymentStore()
    loaded.items = batch
    payments, _ = payment_synth.to_contexts(history[0])
    after = max(p.time_ms for p in payments) + 60_000
    for payment in payments[-150:]:
        probe = PaymentContext(**{**payment.__dict__, "transaction_id": "PROBE", "time_ms": after})
        assert loaded.features(probe) == store.features(probe)


def test_stream_aggregates_equal_the_spark_jobs(outputs, aws, stream_handler, history):
    _, processed = outputs
    batch = normalized(dict(order_job.load_online(processed / "features" / "online")))
    events = payment_synth.events(history[0])
    Delivery(stream_handler, batch_size=200).run([json.dumps(e).encode() for e in events])
    online = normalized(stored_states(aws["dynamodb"]))
    assert len(online) == len(batch)
    assert online == batch
