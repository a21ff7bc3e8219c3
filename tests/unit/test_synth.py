"""The synthetic data generator: determinism, the raw schema's invariants, plausible rates, the lake layout,
atomic writes, and that the planted abuse is learnable from point-in-time features on a time split."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from returnguard import synth
from returnguard.calendar import DAY_MS, WINDOWS, is_festival_sale
from returnguard.synth import SynthConfig, generate, label_map, to_contexts, write_raw

UTC_MS = "datetime64[ms, UTC]"
SCHEMA = {
    "customers": ["customer_id", "registered_at", "home_region", "preferred_payment"],
    "sellers": ["seller_id", "seller_name", "region", "onboarded_at"],
    "products": ["product_id", "category", "brand", "price", "seller_id"],
    "orders": ["order_id", "customer_id", "product_id", "seller_id", "order_time", "amount", "currency",
               "payment_method", "delivery_address", "delivery_region", "card_fingerprint",
               "device_id", "phone_hash", "ip_prefix"],
    "returns": ["return_id", "order_id", "return_time", "reason_code", "reason", "status", "refund_amount",
                "return_method"],
    "labels": ["order_id", "is_abuse", "abuse_type", "labeled_at"],
}  # fmt: skip
ID_PATTERNS = {
    ("customers", "customer_id"): r"C\d{7}",
    ("sellers", "seller_id"): r"S\d{5}",
    ("products", "product_id"): r"P\d{6}",
    ("orders", "order_id"): r"O\d{8}",
    ("returns", "return_id"): r"R\d{8}",
}


@pytest.fixture(scope="module")
def data() -> synth.SyntheticData:
    return generate(SynthConfig(orders=20_000, seed=7))


def ms(column: pd.Series) -> np.ndarray:
    return column.to_numpy(dtype="datetime64[ms]").astype(np.int64)


def check_invariants(d: synth.SyntheticData) -> None:
    config = d.config
    start, end = config.start_ms, config.end_ms
    orders, returns, labels, products = d.orders, d.returns, d.labels, d.products
    for table, columns in SCHEMA.items():
        assert list(getattr(d, table).columns)[: len(columns)] == columns, table
    for column in ("order_time",):
        assert str(orders[column].dtype) == UTC_MS
    assert str(returns["return_time"].dtype) == UTC_MS
    assert str(labels["labeled_at"].dtype) == UTC_MS
    assert str(d.customers["registered_at"].dtype) == UTC_MS
    assert str(d.sellers["onboarded_at"].dtype) == UTC_MS
    assert len(orders) == config.orders
    for (table, column), pattern in ID_PATTERNS.items():
        values = getattr(d, table)[column]
        assert values.is_unique, column
        assert values.str.fullmatch(pattern).all(), column

    # Every timestamp inside the configured range.
    for frame, column in (
        (orders, "order_time"),
        (returns, "return_time"),
        (labels, "labeled_at"),
        (d.customers, "registered_at"),
        (d.sellers, "onboarded_at"),
    ):
        times = ms(frame[column])
        assert times.min() >= start and times.max() < end, column

    # Orders: unique time per customer, after registration, seller = product's seller, clean values.
    assert not orders.duplicated(["customer_id", "order_time"]).any()
    registered = orders["customer_id"].map(d.customers.set_index("customer_id")["registered_at"])
    assert (orders["order_time"] > registered).all()
    assert (
        orders["seller_id"] == orders["product_id"].map(products.set_index("product_id")["seller_id"])
    ).all()
    assert orders["currency"].eq("INR").all()
    assert orders["payment_method"].isin(synth.PAYMENT_METHODS).all()
    assert orders["card_fingerprint"].notna().eq(orders["payment_method"] == "card").all()
    assert (orders["amount"] > 0).all()
    assert np.allclose(orders["amount"], orders["amount"].round(2), rtol=0, atol=1e-9)
    assert np.allclose(products["price"], products["price"].round(2), rtol=0, atol=1e-9)
    assert orders["delivery_region"].isin(d.regions["region"]).all()
    assert orders["delivery_address"].map(str.isascii).all()
    assert products["category"].isin(synth.CATEGORIES).all()
    cod_regions = set(d.regions.loc[d.regions["cod_available"], "region"])
    assert orders.loc[orders["payment_method"] == "cod", "delivery_region"].isin(cod_regions).all()

    # Returns: at most one per order, strictly after the order, valid codes; rto exactly for refusals.
    assert returns["order_id"].is_unique
    assert returns["order_id"].isin(orders["order_id"]).all()
    order_time = returns["order_id"].map(orders.set_index("order_id")["order_time"])
    assert (returns["return_time"] > order_time).all()
    assert returns["reason_code"].isin(synth.REASON_CODES).all()
    assert returns["status"].isin(synth.RETURN_STATUSES).all()
    assert returns["return_method"].isin(synth.RETURN_METHODS).all()
    assert (returns["return_method"] == "rto").eq(returns["reason_code"] == "refused_delivery").all()
    assert returns["reason"].map(str.isascii).all()
    assert (returns["refund_amount"] >= 0).all()
    order_amount = returns["order_id"].map(orders.set_index("order_id")["amount"])
    assert (returns["refund_amount"] <= order_amount + 1e-9).all()

    # Labels: at most one per returned order, an inspection (1-21 days) after the return and before the
    # extract's end; a return inspected after the end has no label yet, like a real extract.
    assert labels["order_id"].is_unique
    assert set(labels["order_id"]) <= set(returns["order_id"])
    return_time = labels["order_id"].map(returns.set_index("order_id")["return_time"])
    inspection = ms(labels["labeled_at"]) - ms(return_time)
    assert (inspection >= DAY_MS).all() and (inspection <= 21 * DAY_MS).all()
    assert (ms(labels["labeled_at"]) < end).all()
    unlabelled = returns[~returns["order_id"].isin(labels["order_id"])]
    assert (ms(unlabelled["return_time"]) >= end - 21 * DAY_MS).all()
    assert labels["abuse_type"].isin(synth.ABUSE_TYPES).all()
    assert labels["is_abuse"].eq((labels["abuse_type"] != "none").astype(int)).all()


def test_same_seed_gives_identical_frames() -> None:
    config = SynthConfig(orders=3_000, seed=11)
    first, second = generate(config), generate(config)
    for table in (*synth.RAW_TABLES, "regions"):
        pd.testing.assert_frame_equal(getattr(first, table), getattr(second, table), check_exact=True)


def test_different_seed_gives_different_history() -> None:
    first = generate(SynthConfig(orders=3_000, seed=11))
    second = generate(SynthConfig(orders=3_000, seed=12))
    assert not first.orders["order_time"].equals(second.orders["order_time"])
    assert not first.returns["order_id"].equals(second.returns["order_id"])


def test_raw_tables_keep_their_contract(data: synth.SyntheticData) -> None:
    check_invariants(data)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    orders=st.integers(100, 4_000),
    seed=st.integers(0, 2**31),
    days=st.integers(30, 800),
    start=st.dates(date(2023, 1, 1), date(2026, 6, 30)),
)
def test_invariants_hold_for_any_size_seed_and_range(orders: int, seed: int, days: int, start: date) -> None:
    check_invariants(generate(SynthConfig(orders=orders, seed=seed, start=start, days=days)))


def test_tiny_configs_are_refused() -> None:
    with pytest.raises(ValueError, match="orders"):
        generate(SynthConfig(orders=10))
    with pytest.raises(ValueError, match="days"):
        generate(SynthConfig(orders=1_000, days=7))


def test_rates_are_plausible(data: synth.SyntheticData) -> None:
    orders = data.orders.merge(data.products[["product_id", "category"]], on="product_id")
    returned = orders.merge(data.returns, on="order_id").merge(data.labels, on="order_id")
    positive_rate = data.labels["is_abuse"].sum() / len(data.orders)
    assert 0.025 <= positive_rate <= 0.07
    assert 0.08 <= len(data.returns) / len(data.orders) <= 0.25
    # Returned is not abuse: most returns are legitimate.
    assert returned["is_abuse"].mean() < 0.45
    # Fashion returns a lot, mostly for size and fit, and that alone is not abuse.
    fashion = returned[returned["category"] == "fashion"]
    fashion_rate = len(fashion) / (orders["category"] == "fashion").sum()
    assert 0.18 <= fashion_rate <= 0.40
    assert fashion["reason_code"].value_counts().index[0] == "size_fit"
    assert fashion.loc[fashion["reason_code"] == "size_fit", "is_abuse"].mean() < 0.15
    grocery_rate = (returned["category"] == "grocery").sum() / (orders["category"] == "grocery").sum()
    assert grocery_rate < fashion_rate / 3
    assert set(data.labels["abuse_type"]) == set(synth.ABUSE_TYPES)
    payment = data.orders["payment_method"].value_counts(normalize=True)
    assert 0.15 <= payment["cod"] <= 0.35 and payment.index[0] == "upi"
    assert (data.returns["reason"] == "").mean() < 0.3
    assert data.returns["reason"].nunique() > 40


def test_abuse_patterns_carry_their_signature(data: synth.SyntheticData) -> None:
    orders = data.orders.merge(data.products[["product_id", "category"]], on="product_id")
    abuse = orders.merge(data.returns, on="order_id").merge(data.labels, on="order_id")
    abuse = abuse[abuse["is_abuse"] == 1]
    kinds = {kind: rows for kind, rows in abuse.groupby("abuse_type")}
    # COD refusal: refused at the door, sent back (rto), no refund.
    refusals = kinds["cod_refusal"]
    assert (refusals["payment_method"] == "cod").all() and (refusals["return_method"] == "rto").all()
    assert (refusals["refund_amount"] == 0).all()
    # Wardrobing: fashion or footwear, back within days, bought for the customer's own occasion: the
    # sale calendar (is_festival_sale) does not give it away.
    wardrobing = kinds["wardrobing"]
    assert wardrobing["category"].isin(["fashion", "footwear"]).all()

    def in_sale(frame: pd.DataFrame) -> float:
        return frame["order_time"].map(lambda t: is_festival_sale(int(t.value // 1_000_000))).mean()

    apparel = orders[orders["category"].isin(["fashion", "footwear"])]
    assert in_sale(wardrobing) < 1.5 * in_sale(apparel)
    days_kept = (wardrobing["return_time"] - wardrobing["order_time"]).dt.total_seconds() / 86_400
    assert days_kept.max() <= 8.1
    # Damage claims: mostly gadgets, damaged or defective.
    claims = kinds["damage_claim"]
    assert claims["category"].isin(["electronics", "mobiles"]).mean() > 0.6
    assert claims["reason_code"].isin(["damaged", "defective", "wrong_item", "not_as_described"]).all()
    # Account churn: bursts of orders within an hour, a new address or one of the ring's shared drops.
    churners = orders[orders["customer_id"].isin(kinds["account_churn"]["customer_id"])]
    churners = churners.sort_values(["customer_id", "order_time"])
    gaps = churners.groupby("customer_id")["order_time"].diff().dropna().dt.total_seconds()
    assert (gaps < 60).mean() > 0.3 and (gaps < 3_600).mean() > 0.7
    per_customer = churners.groupby("customer_id")
    assert (per_customer["delivery_address"].nunique() >= per_customer.size() / 2).mean() > 0.9
    ring = churners.groupby("delivery_address")["customer_id"].nunique()
    assert (ring >= 2).sum() >= 3  # drop addresses link accounts that share nothing else
    # Honest customers share homes too (family, flatmates): a shared address alone is not abuse.
    honest = orders[~orders["customer_id"].isin(abuse["customer_id"])]
    assert (honest.groupby("delivery_address")["customer_id"].nunique() >= 2).sum() > 50
    # Abusers do not get more addresses than honest customers (COD refusers, dodging blocks, aside).
    addresses = orders.groupby("customer_id")["delivery_address"].nunique()
    per_order = addresses / orders.groupby("customer_id").size()
    claimers = kinds["damage_claim"]["customer_id"].unique()
    assert per_order[claimers].mean() < 1.3 * per_order[honest["customer_id"].unique()].mean()
    # Colluding sellers: a handful of sellers carry all of it.
    assert kinds["seller_collusion"]["seller_id"].nunique() <= max(2, round(0.03 * len(data.sellers))) + 1


def test_honest_size_bracketing_is_the_same_product_twice_and_not_abuse(data: synth.SyntheticData) -> None:
    # Given the same product ordered twice by one customer within a minute (two sizes in one checkout)
    orders = data.orders.merge(data.products[["product_id", "category"]], on="product_id")
    orders = orders.sort_values(["customer_id", "order_time"])
    again = (
        (orders["customer_id"] == orders["customer_id"].shift())
        & (orders["product_id"] == orders["product_id"].shift())
        & (orders["order_time"] - orders["order_time"].shift() < pd.Timedelta(minutes=1))
    )
    brackets = (
        orders[again]
        .merge(data.returns, on="order_id", how="left")
        .merge(data.labels, on="order_id", how="left")
    )
    # Then it is apparel, mostly returned for size, and almost never abuse
    assert len(brackets) > 20
    assert brackets["category"].isin(["fashion", "footwear"]).mean() > 0.9
    assert (brackets["reason_code"] == "size_fit").mean() > 0.6
    assert brackets["is_abuse"].fillna(0).mean() < 0.05


def test_devices_phones_and_networks_link_rings_and_households(data: synth.SyntheticData) -> None:
    abusive = data.labels.loc[data.labels["is_abuse"] == 1, ["order_id", "abuse_type"]]
    orders = data.orders.merge(abusive, on="order_id", how="left")
    churn = orders[
        orders["customer_id"].isin(orders.loc[orders["abuse_type"] == "account_churn", "customer_id"])
    ]
    shared = churn.groupby("device_id")["customer_id"].nunique()
    assert (shared >= 2).sum() >= 2  # operators' devices link churn accounts
    # a network alone says little: carrier prefixes are shared by strangers
    per_network = data.orders.groupby("ip_prefix")["customer_id"].nunique()
    assert per_network.max() > 20
    for column, sent in (("device_id", 0.9), ("phone_hash", 0.7), ("ip_prefix", 0.9)):
        assert abs(data.orders[column].notna().mean() - sent) < 0.05, column


def test_behaviour_drifts_over_time(data: synth.SyntheticData) -> None:
    config = data.config
    year_two = pd.Timestamp(config.start, tz="UTC") + pd.Timedelta(days=365)
    ring_start = pd.Timestamp(config.start_ms + int(0.55 * config.days * 86_400_000), unit="ms", tz="UTC")
    returned = data.returns.merge(data.labels, on="order_id").merge(data.orders, on="order_id")
    assert (returned.loc[returned["reason_code"] == "empty_box", "order_time"] >= year_two).all()
    assert (returned.loc[returned["abuse_type"] == "seller_collusion", "order_time"] >= ring_start).all()
    flags = data.orders["order_id"].map(label_map(data))
    first_half = data.orders["order_time"] < data.orders["order_time"].quantile(0.5)
    early, late = flags[first_half].mean(), flags[~first_half].mean()
    assert late > early * 1.2
    assert late < early * 4  # growing, not a different world


def test_write_raw_lays_out_partitions_and_round_trips(tmp_path: Path) -> None:
    d = generate(SynthConfig(orders=1_500, seed=3))
    written = write_raw(d, tmp_path)
    assert {t: written[t] for t in synth.RAW_TABLES} == {t: len(getattr(d, t)) for t in synth.RAW_TABLES}

    last_day = "2025-12-30"  # 730 days from 2024-01-01
    for table in ("customers", "sellers", "products"):
        assert [p.name for p in (tmp_path / "raw" / table).iterdir()] == [f"dt={last_day}"]
    for table, column in (("orders", "order_time"), ("returns", "return_time"), ("labels", "labeled_at")):
        folders = sorted((tmp_path / "raw" / table).iterdir())
        assert [p.name for p in folders] == [
            f"dt={day}" for day in sorted(getattr(d, table)[column].dt.strftime("%Y-%m-%d").unique())
        ]
        for folder in folders[:5]:
            assert [p.name for p in folder.iterdir()] == ["part-0000.parquet"]
            part = pq.read_table(folder / "part-0000.parquet").to_pandas()
            assert (part[column].dt.strftime("dt=%Y-%m-%d") == folder.name).all()

    for table in synth.RAW_TABLES:
        files = sorted((tmp_path / "raw" / table).glob("dt=*/part-0000.parquet"))
        arrow = pq.read_table(files[0])
        frame = pd.concat([pq.read_table(f).to_pandas() for f in files], ignore_index=True)
        key = SCHEMA[table][0]
        expected = getattr(d, table).sort_values(key).reset_index(drop=True)
        pd.testing.assert_frame_equal(frame.sort_values(key).reset_index(drop=True), expected)
        for field in arrow.schema:
            if field.name.endswith(("_time", "_at")):
                assert str(field.type) == "timestamp[ms, tz=UTC]", (table, field.name)

    festivals = pd.read_csv(tmp_path / "external" / "festivals" / "festivals.csv")
    assert list(festivals.columns) == ["name", "kind", "first_day", "last_day", "start_ms", "end_ms"]
    assert festivals["start_ms"].tolist() == [w.start_ms for w in WINDOWS]
    regions = pd.read_csv(tmp_path / "external" / "regional" / "regions.csv")
    assert set(regions["region"]) >= set(d.orders["delivery_region"])
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_rewriting_replaces_the_previous_lake(tmp_path: Path) -> None:
    write_raw(generate(SynthConfig(orders=1_500, seed=3)), tmp_path)
    smaller = generate(SynthConfig(orders=400, seed=4, days=60))
    write_raw(smaller, tmp_path)
    rows = sum(pq.read_table(f).num_rows for f in (tmp_path / "raw" / "orders").glob("dt=*/*.parquet"))
    assert rows == 400


def test_failed_write_leaves_nothing_half_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a lake already written, and a writer that breaks half-way through the next write
    d = generate(SynthConfig(orders=800, seed=5))
    write_raw(d, tmp_path)
    before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    real_write = pq.write_table
    calls = {"n": 0}

    def failing_write(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 50:
            raise OSError("disk full")
        return real_write(*args, **kwargs)

    monkeypatch.setattr(pq, "write_table", failing_write)
    # When the second write fails
    with pytest.raises(OSError, match="disk full"):
        write_raw(generate(SynthConfig(orders=900, seed=6)), tmp_path)
    # Then the previous lake is intact and no staging folder is left behind
    assert calls["n"] > 50
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == before
    orders = sum(pq.read_table(f).num_rows for f in (tmp_path / "raw" / "orders").glob("dt=*/*.parquet"))
    assert orders == 800

    # And into an empty folder a failure leaves no raw/ at all
    calls["n"] = 0
    empty = tmp_path / "fresh"
    with pytest.raises(OSError):
        write_raw(d, empty)
    assert list(empty.iterdir()) == []


def test_contexts_carry_the_order_facts_and_labels_default_to_zero(data: synth.SyntheticData) -> None:
    profiles, orders, returns = to_contexts(data)
    assert len(profiles) == len(data.customers) and len(orders) == len(data.orders)
    assert len(returns) == len(data.returns)
    by_id = {o.order_id: o for o in orders}
    first = data.orders.iloc[0]
    ctx = by_id[first["order_id"]]
    assert ctx.amount_minor == round(first["amount"] * 100)
    assert ctx.order_time_ms == first["order_time"].value // 1_000_000
    assert ctx.region == first["delivery_region"]
    assert ctx.category == data.products.set_index("product_id").loc[first["product_id"], "category"]
    for ret in returns[:200]:
        order = by_id[ret.order_id]
        assert (ret.customer_id, ret.product_id, ret.seller_id, ret.category, ret.region) == (
            order.customer_id, order.product_id, order.seller_id, order.category, order.region
        )  # fmt: skip
        assert ret.return_time_ms > order.order_time_ms
    labels = label_map(data)
    assert len(labels) == len(data.orders)
    assert sum(labels.values()) == data.labels["is_abuse"].sum()
    never_returned = set(data.orders["order_id"]) - set(data.returns["order_id"])
    assert all(labels[o] == 0 for o in list(never_returned)[:500])


def test_late_labels_are_left_out_not_clamped_to_the_end(data: synth.SyntheticData) -> None:
    # Returns in the last days of the range are not inspected yet: no label row, not one dated the last ms.
    end = data.config.end_ms
    returns = data.returns
    late = returns[ms(returns["return_time"]) >= end - DAY_MS]
    assert len(late) > 0
    assert not late["order_id"].isin(data.labels["order_id"]).any()
    facts = synth.label_facts(data).set_index("order_id")
    assert facts.loc[late["order_id"], "labeled_at_ms"].isna().all()
    assert (facts.loc[late["order_id"], "label"] == 0).all()
    labelled = facts.dropna(subset=["labeled_at_ms"])
    assert len(labelled) == len(data.labels)
    assert labelled["label"].sum() == data.labels["is_abuse"].sum()


def test_abuse_is_learnable_from_point_in_time_features_on_a_time_split(data: synth.SyntheticData) -> None:
    """Regression check on the generator's difficulty: learnable, yet not trivially separable."""
    from sklearn.metrics import average_precision_score, roc_auc_score
    from xgboost import XGBClassifier

    from returnguard.aggregates import replay
    from returnguard.features import FEATURE_NAMES

    labels = label_map(data)
    _, vectors = replay(*to_contexts(data))
    rows = [(o.order_time_ms, [f[name] for name in FEATURE_NAMES], labels[o.order_id]) for o, f in vectors]
    times = np.array([r[0] for r in rows])
    features = np.array([r[1] for r in rows])
    target = np.array([r[2] for r in rows])
    cut = times.min() + 0.75 * (times.max() - times.min())
    train, test = times < cut, times >= cut

    model = XGBClassifier(n_estimators=150, max_depth=6, tree_method="hist", learning_rate=0.1, n_jobs=2)
    model.fit(features[train], target[train])
    scores = model.predict_proba(features[test])[:, 1]

    roc_auc = roc_auc_score(target[test], scores)
    pr_auc = average_precision_score(target[test], scores)
    assert roc_auc >= 0.85
    assert pr_auc >= 3 * target[test].mean()
    assert roc_auc < 0.99  # abusers' first orders look normal and honest customers return too


def test_cli_writes_the_lake_and_prints_a_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        synth.main(["--orders", "600", "--seed", "2", "--days", "90", "--out", str(tmp_path / "lake")]) == 0
    )
    out = capsys.readouterr().out
    assert "orders" in out and "positive rate" in out and "2024-01-01" in out
    assert (tmp_path / "lake" / "raw" / "orders").is_dir()
    assert re.search(r"orders\s+600 rows", out)
