"""The Glue rules job on small hand-built data: each rule fires exactly where it should."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from glue_jobs import rules as job
from returnguard.aws.blocklist import SNAPSHOT_COLUMNS
from returnguard.features import address_key

pytestmark = pytest.mark.slow

T0 = datetime(2025, 3, 1, 10, 0, 0, tzinfo=timezone.utc)
HOME = "14 MG Road, Kothrud, Pune 411038"
LISTED_ADDRESS = "7 Park Street, Kolkata 700016"
LISTED_CARD = "0a1b2c3d4e5f6a7b"


def at(ms: int) -> datetime:
    return T0 + timedelta(milliseconds=ms)


def order(order_id, customer, ms, amount, currency="USD", address=HOME, card=None, payment="upi"):
    return (
        order_id,
        customer,
        "P1",
        "S1",
        at(ms) if ms is not None else None,
        amount,
        currency,
        payment,
        address,
        "MH",
        card,
    )


ORDERS = [
    # amount boundary, with conversion: 5,000 USD is not "over 5,000"; 83 INR = 1 USD
    order("A1", "CA", 0, 5000.00),
    order("A2", "CB", 0, 5000.01),
    order("A3", "CC", 0, 415_000.00, "INR"),
    order("A4", "CD", 0, 415_000.83, "INR"),
    order("A5", "CE", 0, 2500.01, "EUR"),  # rate override in the test: 0.5 EUR per USD
    # velocity: exactly 60 s after counts, 60.001 s after does not, same millisecond is not "before"
    order("V1", "CV", 0, 10.0),
    order("V2", "CV", 60_000, 10.0),
    order("V3", "CV", 120_001, 10.0),
    order("S1", "CS", 0, 10.0),
    order("S2", "CS", 0, 11.0),
    order("W1", "CW", 0, 10.0),
    order("W2", "CW", 0 + 1, 10.0, address=" 7  PARK street, Kolkata 700016 "),
    # outliers: three orders of history, then one far above; with two orders of history, none
    order("O1", "CO", 0, 100.0),
    order("O2", "CO", 3_600_000, 100.0),
    order("O3", "CO", 7_200_000, 100.0),
    order("O4", "CO", 10_800_000, 200.01),
    order("O5", "CO", 14_400_000, 200.0),  # history mean 125, std ~43: above 2x mean is 250
    order("N1", "CN", 0, 100.0),
    order("N2", "CN", 3_600_000, 100.0),
    order("N3", "CN", 7_200_000, 1000.0),
    # blocklists: customer, card (case differs), and a card whose listing was withdrawn
    order("B1", "CBL", 0, 10.0),
    order("B2", "CX", 0, 10.0, card="0A1B2C3D4E5F6A7B", payment="card"),
    order("B3", "CY", 0, 10.0, card="ffffffffffffffff", payment="card"),
    # invalid rows
    order("I1", None, 0, 10.0),
    order("I2", "CI", None, 10.0),
    order("I3", "CI", 0, -1.0),
    order("I4", "CI", 0, float("nan")),
    order("I5", "CI", 0, 10.0, "XXX"),
    order("", "CI", 0, 10.0),
    order("A1", "CA", 5, 1.0),  # duplicate order id: the later copy goes
]
BLOCKLIST = [
    (1, "customer", "CBL", "x", "", "2025-02-01T00:00:00.000", "true"),
    (2, "address", address_key(LISTED_ADDRESS), "x", "", "2025-02-01T00:00:00.000", "true"),
    (3, "card", LISTED_CARD, "x", "", "2025-02-01T00:00:00.000", "true"),
    (4, "card", "ffffffffffffffff", "x", "", "2025-02-01T00:00:00.000", "true"),
    (4, "card", "ffffffffffffffff", "x", "", "2025-02-02T00:00:00.000", "false"),
]


ORDER_COLUMNS = (
    "order_id string, customer_id string, product_id string, seller_id string, order_time timestamp, "
    "amount double, currency string, payment_method string, delivery_address string, "
    "delivery_region string, card_fingerprint string"
)
CUSTOMER_COLUMNS = "customer_id string, registered_at timestamp, home_region string, preferred_payment string"


@pytest.fixture(scope="module")
def lake(spark, tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("lake")
    spark.createDataFrame(ORDERS, ORDER_COLUMNS).write.parquet(str(root / "raw/orders/dt=2025-03-01"))
    ids = sorted({o[1] for o in ORDERS if o[1]} | {"CQUIET"})
    customers = [(c, T0 - timedelta(days=30), "MH", "upi") for c in ids]
    spark.createDataFrame(customers, CUSTOMER_COLUMNS).write.parquet(
        str(root / "raw/customers/dt=2025-03-01")
    )
    blocklist = root / "raw/blocklist/dt=2025-02-02"
    blocklist.mkdir(parents=True)
    lines = [",".join(SNAPSHOT_COLUMNS)] + [",".join(map(str, row)) for row in BLOCKLIST]
    (blocklist / "changes-1.csv").write_text("\n".join(lines) + "\n")
    result = job.run(spark, str(root / "raw"), str(root / "processed"), rates={"EUR": 0.5})
    return root, result


@pytest.fixture(scope="module")
def transactions(spark, lake) -> dict[str, dict]:
    rows = spark.read.parquet(str(lake[0] / "processed/rules/transactions")).collect()
    return {r["order_id"]: r.asDict() for r in rows}


def flagged(transactions, flag):
    return {order_id for order_id, row in transactions.items() if row[flag]}


def test_amount_over_5000_usd_after_conversion_is_high_risk(transactions):
    assert flagged(transactions, "is_high_amount") == {"A2", "A4", "A5"}
    assert transactions["A3"]["amount_usd"] == 5000.0
    assert transactions["A2"]["risk_category"] == "High"
    assert transactions["A1"]["risk_category"] == "Low"


def test_velocity_window_is_the_previous_60_seconds(transactions):
    assert flagged(transactions, "is_velocity") == {"V2", "W2"}
    assert transactions["V2"]["risk_category"] == "Medium"
    assert transactions["V2"]["rules_triggered"] == ["velocity"]


def test_outlier_is_point_in_time_against_the_customers_previous_orders(transactions):
    assert flagged(transactions, "is_outlier") == {"O4"}
    assert transactions["O4"]["previous_order_count"] == 3
    assert transactions["O5"]["previous_mean_usd"] == pytest.approx(125.0025)


def test_blocklists_match_customer_normalised_address_and_card(transactions):
    assert flagged(transactions, "is_customer_blocklisted") == {"B1"}
    assert flagged(transactions, "is_address_blocklisted") == {"W2"}
    assert flagged(transactions, "is_card_blocklisted") == {"B2"}  # B3's card listing was withdrawn
    assert transactions["W2"]["address_key"] == address_key(LISTED_ADDRESS)
    assert transactions["W2"]["rules_triggered"] == ["blocklisted", "velocity"]
    assert transactions["W2"]["risk_score"] == 100


def test_invalid_rows_are_dropped_and_counted(lake, transactions):
    _, result = lake
    assert result["orders_read"] == len(ORDERS)
    assert result["invalid_by_reason"] == {
        "missing_order_id": 1,
        "missing_customer_id": 1,
        "missing_order_time": 1,
        "invalid_amount": 2,
        "unknown_currency": 1,
        "duplicate_order_id": 1,
    }
    assert result["orders_invalid"] == 7
    assert result["transactions_written"] == len(ORDERS) - 7 == len(transactions)
    assert transactions["A1"]["amount"] == 5000.0
    assert result["blocklist_entries"] == 3


def test_customer_aggregates(spark, lake):
    rows = spark.read.parquet(str(lake[0] / "processed/rules/customers")).collect()
    customers = {r["customer_id"]: r.asDict() for r in rows}
    co = customers["CO"]
    assert (co["order_count"], co["total_amount_usd"], co["flagged_count"], co["outlier_count"]) == (
        5,
        700.01,
        1,
        1,
    )
    assert co["risk_category"] == "Medium"
    assert customers["CBL"]["is_customer_blocklisted"] and customers["CBL"]["risk_category"] == "High"
    assert customers["CQUIET"]["order_count"] == 0 and customers["CQUIET"]["risk_category"] == "Low"
    assert "CI" in customers and customers["CI"]["order_count"] == 0  # all its orders were invalid


def test_partitioned_by_order_date(lake):
    partitions = sorted(p.name for p in (lake[0] / "processed/rules/transactions").glob("dt=*"))
    assert partitions == ["dt=2025-03-01"]


def test_at_most_one_file_per_date_whatever_the_shuffle_partitions(lake):
    # the session has 4 shuffle partitions: without a repartition by date each could write a file per date
    for partition in (lake[0] / "processed/rules/transactions").glob("dt=*"):
        assert len(list(partition.glob("*.parquet"))) == 1, partition.name
    assert len(list((lake[0] / "processed/rules/customers").glob("*.parquet"))) == 1


def test_local_runs_use_the_shared_local_spark_settings(monkeypatch):
    from glue_jobs import rules as job_module
    from local import spark as local_spark

    made: list[str] = []
    monkeypatch.setattr(local_spark, "local_session", lambda name, cores="local[*]": made.append(name) or "S")
    assert job_module._session() == "S" and made == ["returnguard-rules"]


def test_rates_table_in_the_lake_overrides_the_defaults(spark, tmp_path):
    root = tmp_path
    spark.createDataFrame([order("R1", "CR", 0, 6000.0, "INR")], ORDER_COLUMNS).write.parquet(
        str(root / "raw/orders/dt=2025-03-01")
    )
    spark.createDataFrame([("CR", T0, "MH", "upi")], CUSTOMER_COLUMNS).write.parquet(
        str(root / "raw/customers/dt=2025-03-01")
    )
    (root / "external/rates").mkdir(parents=True)
    (root / "external/rates/rates.csv").write_text("currency,units_per_usd\nINR,1.0\n")

    result = job.run(spark, str(root / "raw"), str(root / "processed"))

    assert result["flagged"]["is_high_amount"] == 1 and result["blocklist_entries"] == 0


def test_the_velocity_count_is_a_setting_of_the_job(spark, tmp_path):
    # Given one customer's orders at 0, 20, 40 and 100 s
    orders = [order(f"T{i}", "CT", ms, 10.0) for i, ms in enumerate((0, 20_000, 40_000, 100_000), start=1)]
    spark.createDataFrame(orders, ORDER_COLUMNS).write.parquet(str(tmp_path / "raw/orders/dt=2025-03-01"))
    spark.createDataFrame([("CT", T0, "MH", "upi")], CUSTOMER_COLUMNS).write.parquet(
        str(tmp_path / "raw/customers/dt=2025-03-01")
    )
    flagged_with = {}
    for velocity_orders in (2, 3):
        # When the job runs with that many orders a minute as velocity
        out = tmp_path / f"processed-{velocity_orders}"
        job.run(spark, str(tmp_path / "raw"), str(out), velocity_orders=velocity_orders)
        rows = spark.read.parquet(str(out / "rules/transactions")).collect()
        flagged_with[velocity_orders] = {r["order_id"] for r in rows if r["is_velocity"]}
    # Then two orders in a minute are velocity by default, and only T3 has three
    assert flagged_with == {2: {"T2", "T3", "T4"}, 3: {"T3"}}
    with pytest.raises(ValueError, match="at least 2"):
        job.run(spark, str(tmp_path / "raw"), str(tmp_path / "processed-1"), velocity_orders=1)


def test_the_status_listeners_queue_is_silenced_and_the_rest_stays_at_warn(spark):
    # local_session's quiet_status_listener on the suite's session: the one logger that printed a Spark
    # stack into the demo's output is off, Spark's own loggers keep their level
    from local import spark as local_spark

    local_spark.quiet_status_listener(spark)

    log_manager = spark.sparkContext._jvm.org.apache.logging.log4j.LogManager
    assert str(log_manager.getLogger(local_spark.LISTENER_QUEUE_LOGGER).getLevel()) == "OFF"
    assert str(log_manager.getLogger("org.apache.spark.scheduler.DAGScheduler").getLevel()) != "OFF"
