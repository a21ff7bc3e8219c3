"""The Spark feature job against the pure-Python reference: same vectors, same latest aggregates."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from glue_jobs import features as job
from returnguard import synth
from returnguard.aggregates import AggregateStore, replay
from returnguard.features import FEATURE_NAMES, RETURN_FEATURE_NAMES

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def history(feature_lake):
    data, _, root = feature_lake  # tests/integration/conftest.py: 4,000 orders, shared with payment parity
    return data, root


@pytest.fixture(scope="module")
def outputs(feature_job):
    return feature_job  # the one run of the job on that lake: (counts, processed)


@pytest.fixture(scope="module")
def reference(history):
    data, _ = history
    store, walk = replay(*synth.to_contexts(data))
    vectors = {order.order_id: vector for order, vector in walk}
    return store, vectors, synth.label_map(data)


def test_every_training_row_equals_the_online_vector_exactly(outputs, reference):
    counts, processed = outputs
    _, vectors, labels = reference
    table = pd.read_parquet(processed / "training-data")
    assert len(table) == len(vectors) == counts["orders"]
    assert list(table.columns[4:-3]) == list(FEATURE_NAMES)
    mismatches = []
    for row in table.itertuples(index=False):
        expected = vectors[row.order_id]
        actual = {name: getattr(row, name) for name in FEATURE_NAMES}
        if actual != expected:
            mismatches.append(
                (
                    row.order_id,
                    {k: (actual[k], expected[k]) for k in FEATURE_NAMES if actual[k] != expected[k]},
                )
            )
    assert not mismatches, mismatches[:5]
    assert dict(zip(table.order_id, table.label, strict=True)) == {
        o: labels.get(o, 0) for o in table.order_id
    }
    # The history really exercises the features (not a table of defaults).
    assert table.customer_returns_last_6_orders.max() >= 2
    assert table.customer_orders_last_60s.max() >= 1
    assert table.address_other_customers.max() >= 1
    for group in (
        "device",
        "phone",
        "ip",
    ):  # card links (none shared here): the naive-definition test in tests/unit
        assert table[f"{group}_other_customers"].max() >= 1, group
    for name in ("address_linked_returns", "address_linked_claims", "customer_same_product_last_1h",
                 "customer_mismatch_claims", "customer_fit_quality_claims", "seller_age_days",
                 "device_linked_claims", "phone_linked_returns", "ip_linked_claims", "customer_seller_orders",
                 "customer_seller_claims", "customer_category_returns",
                 "customer_category_return_rate"):  # fmt: skip
        assert table[name].max() > 0, name
    for name in ("category_price_percentile", "category_value_vs_customer_avg", "seller_volume_change",
                 "seller_repeat_order_share", "customer_days_since_last_order", "days_to_festival"):  # fmt: skip
        assert table[name].nunique() > 100, name  # not a default or a handful of values
    assert 0 < table.label.mean() < 0.2


def test_label_timing_is_carried_not_turned_into_zero(outputs, history):
    # Returns inspected after the extract's end have no label yet: the row keeps labeled_at_ms null,
    # so training can leave young orders out instead of learning them as negatives.
    _, processed = outputs
    data, _ = history
    table = pd.read_parquet(processed / "training-data").set_index("order_id").sort_index()
    facts = synth.label_facts(data).set_index("order_id").sort_index()
    assert table.labeled_at_ms.isna().tolist() == facts.labeled_at_ms.isna().tolist()
    known = facts.labeled_at_ms.notna()
    assert table.labeled_at_ms[known].astype("int64").tolist() == facts.labeled_at_ms[known].tolist()
    assert table.abuse_type[known].tolist() == facts.abuse_type[known].tolist()
    assert table.abuse_type[~known].isna().all()
    returned_unlabelled = set(data.returns.order_id) - set(data.labels.order_id)
    assert returned_unlabelled and table.labeled_at_ms[sorted(returned_unlabelled)].isna().all()


def test_a_lake_without_return_requests_gets_an_empty_return_table_for_the_retraining_job(outputs, tmp_path):
    # The retraining job's `return` channel reads this folder; SageMaker fails a job whose channel holds
    # no object, so the job writes the return table's columns with no rows, which training reads as
    # "no return rows: keep the serving return model" (training/train.py resolve_lanes).
    from training import train

    counts, processed = outputs
    assert counts["return_training_rows"] == 0
    table = pd.read_parquet(processed / "return-training-data")
    assert table.empty and set(RETURN_FEATURE_NAMES) | {"return_id", "return_time_ms", "label"} <= set(table)
    with pytest.raises(train.TrainingDataError, match="no rows"):
        train.load_table(processed / "return-training-data", train.RETURN)


def test_latest_aggregates_equal_the_replayed_state(spark, outputs, reference):
    _, processed = outputs
    store, _, _ = reference
    customers = {
        r["customer_id"]: job.customer_state(r)
        for r in spark.read.parquet(str(processed / "features/customers")).collect()
    }
    assert customers == store.customers
    entities = {
        (r["group"], r["id"]): job.entity_state(r)
        for r in spark.read.parquet(str(processed / "features/entities")).collect()
    }
    entities |= {
        (r["group"], r["id"]): job.link_state(r)
        for r in spark.read.parquet(str(processed / "features/links")).collect()
    }
    entities |= {
        (r["group"], r["id"]): job.pair_state(r)
        for r in spark.read.parquet(str(processed / "features/pairs")).collect()
    }
    assert entities == store.entities
    sellers = [state for (group, _), state in entities.items() if group == "seller"]
    assert any(0 < s["buyers"] < s["order_count"] for s in sellers)  # repeat buyers, and not every order


def test_online_lines_feed_the_online_function_to_the_same_vectors(outputs, reference, history):
    _, processed = outputs
    store, _, _ = reference
    loaded = AggregateStore()
    for pk, state in job.load_online(processed / "features/online"):
        entity, entity_id = pk.split("#", 1)
        if entity == "customer":
            loaded.customers[entity_id] = state
        else:
            loaded.entities[(entity, entity_id)] = state
    assert len(loaded.customers) == len(store.customers)
    data, _ = history
    _, orders, _ = synth.to_contexts(data)
    # A next order for each of a few customers, after the whole history: both stores agree.
    last = max(o.order_time_ms for o in orders) + 1
    for order in orders[:200]:
        later = order.__class__(**{**order.__dict__, "order_id": "NEXT", "order_time_ms": last})
        assert loaded.features(later) == store.features(later)


def test_an_order_never_sees_its_own_return_or_label(outputs, history):
    # Given customers whose first order was returned (as abuse or not) afterwards
    data, _ = history
    table = pd.read_parquet(outputs[1] / "training-data").set_index("order_id")
    returned = data.returns.merge(data.orders, on="order_id")
    first_orders = data.orders.sort_values("order_time").groupby("customer_id").head(1).order_id
    rows = table.loc[table.index.intersection(first_orders)]
    # Then a customer's first order has no history at all, whatever happened to it afterwards
    assert (rows.customer_order_count == 0).all()
    assert (rows.customer_return_count == 0).all()
    assert len(set(first_orders) & set(returned.order_id)) > 0


def test_written_table_replaces_the_old_one_whole(spark, tmp_path):
    frame = spark.createDataFrame([(1,), (2,)], ["x"])
    target = tmp_path / "t"
    job.write_parquet(frame, str(target))
    job.write_parquet(spark.createDataFrame([(3,)], ["x"]), str(target))
    assert sorted(pd.read_parquet(target).x) == [3]
    assert [p.name for p in tmp_path.iterdir()] == ["t"]


def test_address_key_matches_python(spark):
    from returnguard.features import address_key

    samples = ["  12 MG Road,\tPune ", "Flat 4, Park  St, Kolkata", "x"]
    rows = (
        spark.createDataFrame([(s,) for s in samples], ["a"])
        .select(job.address_key_column("a").alias("k"))
        .collect()
    )
    assert [r.k for r in rows] == [address_key(s) for s in samples]


def test_festival_flag_matches_python(spark):
    from returnguard.calendar import WINDOWS, is_festival_sale

    times = [w.start_ms for w in WINDOWS] + [w.end_ms for w in WINDOWS] + [w.start_ms - 1 for w in WINDOWS]
    rows = (
        spark.createDataFrame([(t,) for t in times], ["t"])
        .select(job.festival_flag(job.F.col("t")).alias("f"))
        .collect()
    )
    assert [r.f for r in rows] == [1.0 if is_festival_sale(t) else 0.0 for t in times]


def test_path_helpers_know_local_from_s3():
    assert job._is_local("/tmp/x") and job._is_local("file:///tmp/x")
    assert not job._is_local("s3://bucket/processed")
    assert Path("x").name == "x"
