"""The return lane's three computations agree by ==: the Spark job's training rows equal the reference
replay's vectors (the online function on in-memory aggregates), and the text link items the stream
Lambda leaves in DynamoDB equal the Spark job's latest ones; the online vector from either store is
the same."""

from __future__ import annotations

import json
import zipfile

import pandas as pd
import pytest

from glue_jobs import features as job
from glue_jobs import return_features as return_job
from local.streaming import history_events
from returnguard import synth
from returnguard.aggregates import AggregateStore
from returnguard.features import RETURN_FEATURE_NAMES
from returnguard.returns import features_from_items, store_items
from returnguard.synth_returns import (
    generate_returns,
    replay_return_table,
    request_contexts,
    write_returns_raw,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    data = synth.generate(synth.SynthConfig(orders=3_000, seed=3, days=150))
    returns = generate_returns(data)
    root = tmp_path_factory.mktemp("return-lake")
    synth.write_raw(data, root)
    write_returns_raw(returns, root)
    return data, returns, root


@pytest.fixture(scope="module")
def processed(spark, lake):
    """The return lane's part of the feature job only (the order lane's has its own tests)."""
    _, _, root = lake
    raw = str(root / "raw")
    orders = job.load_orders(spark, raw)
    counts = return_job.run(
        spark,
        raw,
        str(root / "processed"),
        orders,
        job.load_returns(spark, raw, orders),
        job.load_profiles(spark, raw),
    )
    return counts, root / "processed"


def test_every_return_training_row_equals_the_reference_vector_exactly(lake, processed):
    data, returns, _ = lake
    counts, out = processed
    table = pd.read_parquet(out / "return-training-data").set_index("return_id").sort_index()
    reference = replay_return_table(data, returns).set_index("return_id").sort_index()
    assert counts["return_training_rows"] == len(table) == len(reference) == len(returns.requests) > 300
    assert list(table.columns[3 : 3 + len(RETURN_FEATURE_NAMES)]) == list(RETURN_FEATURE_NAMES)
    mismatches = []
    for return_id, row in table[list(RETURN_FEATURE_NAMES)].iterrows():
        expected = reference.loc[return_id, list(RETURN_FEATURE_NAMES)].to_dict()
        actual = row.to_dict()
        if actual != expected:
            mismatches.append(
                (return_id, {k: (actual[k], expected[k]) for k in actual if actual[k] != expected[k]})
            )
    assert not mismatches, mismatches[:5]
    # labels and their timing are carried, not made up: not inspected yet stays null
    assert table.label.tolist() == reference.label.tolist()
    assert table.labeled_at_ms.isna().tolist() == reference.labeled_at_ms.isna().tolist()
    assert table.outcome.fillna("").tolist() == reference.outcome.fillna("").tolist()
    # and the history really exercises the features
    assert table.return_count.max() >= 3 and table.reason_text_other_customers.max() >= 2
    assert table.customer_damage_claims_30d.max() >= 1 and table.pickup_address_differs.sum() > 0
    assert table.reason_text_hindi.sum() > 0 and table.reason_text_hinglish.sum() > 0
    for group in ("product", "seller", "category"):  # claim rates move away from the prior, and apart
        rates = table[f"{group}_claim_rate"]
        assert rates.nunique() > 10 and (rates != table[f"{group}_return_rate"]).mean() > 0.5


def test_stream_text_items_equal_the_spark_jobs_and_serve_the_same_vector(
    lake, processed, aws, stream_handler
):
    from tests.integration.stream.conftest import Delivery, normalized, stored_states

    data, returns, _ = lake
    _, out = processed
    batch_texts = normalized(dict(job.load_online(out / "features" / "online-texts")))
    reasons = dict(zip(returns.requests.return_id, returns.requests.reason, strict=True))
    events = []
    for event in history_events(data):
        if event["event_type"] == "return" and reasons.get(event["payload"]["return_id"]):
            event["payload"]["reason"] = reasons[event["payload"]["return_id"]]
        events.append(event)
    Delivery(stream_handler, batch_size=100).run([json.dumps(e).encode() for e in events])
    online = normalized(stored_states(aws["dynamodb"]))
    stream_texts = {pk: state for pk, state in online.items() if pk.startswith("text#")}
    assert len(stream_texts) > 50 and stream_texts == batch_texts
    assert any(len(state["customers"]) >= 3 for state in stream_texts.values())

    # the online vector is the same from either store (the other items' parity: test_stream_consistency)
    from_stream, from_spark = AggregateStore(), AggregateStore()
    for target, states in ((from_stream, online), (from_spark, {**online, **batch_texts})):
        for pk, state in states.items():
            entity, entity_id = pk.split("#", 1)
            if entity == "customer":
                target.customers[entity_id] = state
            else:
                target.entities[(entity, entity_id)] = state
    after = int(returns.requests.return_time.max().timestamp() * 1000) + 60_000
    for request in request_contexts(returns)[-100:]:
        probe = type(request)(**{**request.__dict__, "return_id": "PROBE", "request_time_ms": after})
        assert features_from_items(probe, store_items(from_stream, probe)) == features_from_items(
            probe, store_items(from_spark, probe)
        )


def test_the_glue_zip_carries_the_return_lane_module():
    from stacks.packaging import domain_zip

    names = zipfile.ZipFile(domain_zip()).namelist()
    assert "glue_jobs/return_features.py" in names and "returnguard/returns.py" in names
