"""Glue (PySpark) payment feature job: raw card transactions → point-in-time training table + latest aggregates.

Runs unchanged under AWS Glue 5.0 and locally, like glue_jobs/features.py:

    python glue_jobs/payment_features.py --raw_path build/payments/lake/raw \\
        --processed_path build/payments/lake/processed

Reads `raw/payments/` (the raw schema of returnguard.payments). Every feature of a payment uses only
what happened strictly before it, with the window bounds and the integer arithmetic of
`returnguard.payments.compute_payment_features`, so each training row equals the online vector
(the parity test compares them with ==). Terminal and merchant fraud rates count a fraud label from
the UTC day it became known (`labeled_at`), so a payment never sees a label that arrived on or after
its own day. Outputs under processed_path/payments/:
    training-data/       transaction_id, customer_id, transaction_time_ms, dt, <PAYMENT_FEATURE_NAMES>,
                         label (1 fraud, else 0), labeled_at_ms (null: no label yet)
    features/online/     JSON lines {"pk", "state"} for the DynamoDB features table (payment_customer#,
                         card#, terminal#, merchant# items in returnguard.payments' layout)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from glue_jobs.features import _is_local, write_parquet
from returnguard.calendar import DAY_MS
from returnguard.features import (
    CARD_WINDOW_MS,
    FRAUD_PRIOR_FRAUDS,
    FRAUD_PRIOR_PAYMENTS,
    PAYMENT_FEATURE_NAMES,
    PAYMENT_SPEND_WINDOWS_DAYS,
    PAYMENT_VELOCITY_MS,
    TERMINAL_WINDOWS_DAYS,
)
from returnguard.payments import (
    CARD_ENTITY,
    CUSTOMER_ENTITY,
    CUSTOMER_WINDOW_MS,
    MERCHANT_ENTITY,
    TERMINAL_DAYS,
    TERMINAL_ENTITY,
)
from returnguard.tables import entity_key

POINTS = {TERMINAL_ENTITY: "terminal_id", MERCHANT_ENTITY: "merchant_id"}


def log(message: str) -> None:
    print(f"[payment-features] {time.strftime('%H:%M:%S')} {message}", flush=True)


def load_payments(spark: SparkSession, raw: str) -> DataFrame:
    payments = spark.read.parquet(f"{raw}/payments")
    return payments.select(
        "transaction_id",
        "customer_id",
        "card_fingerprint",
        "merchant_id",
        "terminal_id",
        F.unix_millis(F.col("transaction_time")).alias("t"),
        F.round(F.col("amount") * 100).cast("long").alias("amount_minor"),
        "channel",
        F.col("label").cast("int").alias("label"),
        F.unix_millis(F.col("labeled_at")).alias("labeled_at_ms"),
        F.to_date(F.col("transaction_time")).alias("dt"),
    )


def fraud_labels(payments: DataFrame) -> DataFrame:
    """Known frauds: one row per fraud label, at the time it became known."""
    return payments.where((F.col("label") == 1) & F.col("labeled_at_ms").isNotNull()).select(
        "terminal_id", "merchant_id", F.col("labeled_at_ms").alias("t")
    )


def _day(t: Any) -> Any:
    return F.expr(f"{t} div {DAY_MS}")


# --- the training table ---------------------------------------------------------------------------


def customer_features(payments: DataFrame) -> DataFrame:
    by_time = Window.partitionBy("customer_id").orderBy("t")
    columns = []
    for days in PAYMENT_SPEND_WINDOWS_DAYS:
        window = by_time.rangeBetween(-days * DAY_MS, -1)
        columns += [
            F.count("t").over(window).alias(f"n{days}"),
            F.coalesce(F.sum("amount_minor").over(window), F.lit(0)).alias(f"s{days}"),
        ]
    short, long = PAYMENT_VELOCITY_MS
    columns += [
        F.count("t").over(by_time.rangeBetween(-short, -1)).alias("v_short"),
        F.count("t").over(by_time.rangeBetween(-long, -1)).alias("v_long"),
    ]
    card_first = Window.partitionBy("customer_id", "card_fingerprint")
    first_use = Window.partitionBy("customer_id", "card_fingerprint").orderBy("t", "transaction_id")
    flagged = payments.select(
        "*",
        F.when(F.row_number().over(first_use) == 1, 1).otherwise(0).alias("first_use"),
        F.min("t").over(card_first).alias("card_first"),
    )
    counted = flagged.select(
        "transaction_id",
        "amount_minor",
        "t",
        "card_first",
        *columns,
        F.coalesce(
            F.sum("first_use").over(by_time.rangeBetween(Window.unboundedPreceding, -1)), F.lit(0)
        ).alias("cards"),
    )
    n, s = F.col(f"n{PAYMENT_SPEND_WINDOWS_DAYS[-1]}"), F.col(f"s{PAYMENT_SPEND_WINDOWS_DAYS[-1]}")
    out = [F.col("transaction_id")]
    for days in PAYMENT_SPEND_WINDOWS_DAYS:
        out += [
            F.col(f"n{days}").cast("double").alias(f"customer_payments_{days}d"),
            (F.col(f"s{days}") / 100).alias(f"customer_spend_{days}d"),
        ]
    out += [
        F.when(n > 0, s / (n * 100)).otherwise(0.0).alias("customer_avg_payment_30d"),
        F.when((n > 0) & (s > 0), (F.col("amount_minor") * n) / s)
        .otherwise(1.0)
        .alias("amount_vs_customer_avg_30d"),
        F.col("v_short").cast("double").alias("customer_payments_last_10m"),
        F.col("v_long").cast("double").alias("customer_payments_last_1h"),
        F.col("cards").cast("double").alias("customer_distinct_cards"),
        F.when(F.col("card_first") < F.col("t"), 0.0).otherwise(1.0).alias("card_is_new_for_customer"),
    ]
    return counted.select(*out)


def card_features(payments: DataFrame) -> DataFrame:
    by_time = Window.partitionBy("card_fingerprint").orderBy("t")
    day = by_time.rangeBetween(-CARD_WINDOW_MS, -1)
    first = F.min("t").over(by_time.rangeBetween(Window.unboundedPreceding, -1))
    return payments.select(
        "transaction_id",
        F.count("t")
        .over(by_time.rangeBetween(-PAYMENT_VELOCITY_MS[1], -1))
        .cast("double")
        .alias("card_payments_last_1h"),
        F.count("t").over(day).cast("double").alias("card_payments_last_24h"),
        (F.coalesce(F.sum("amount_minor").over(day), F.lit(0)) / 100).alias("card_spend_last_24h"),
        F.when(first.isNotNull(), (F.col("t") - first) / F.lit(DAY_MS))
        .otherwise(-1.0)
        .alias("card_age_days"),
    )


def _daily(payments: DataFrame, frauds: DataFrame, column: str) -> DataFrame:
    """(id, day, payments that day, frauds that became known that day)."""
    return (
        payments.select(
            F.col(column).alias("id"), _day("t").alias("day"), F.lit(1).alias("p"), F.lit(0).alias("f")
        )
        .unionByName(
            frauds.select(
                F.col(column).alias("id"), _day("t").alias("day"), F.lit(0).alias("p"), F.lit(1).alias("f")
            )
        )
        .groupBy("id", "day")
        .agg(F.sum("p").cast("long").alias("p"), F.sum("f").cast("long").alias("f"))
    )


def point_features(payments: DataFrame, frauds: DataFrame) -> DataFrame:
    """Terminal payments and fraud rates, merchant fraud rate: whole UTC days before the payment's day."""
    result = payments.select(
        "transaction_id", F.col("terminal_id"), F.col("merchant_id"), _day("t").alias("day")
    )

    def rate(f: Any, p: Any) -> Any:
        return (f + F.lit(FRAUD_PRIOR_FRAUDS)) / (p + F.lit(FRAUD_PRIOR_PAYMENTS))

    by_day = Window.partitionBy("id").orderBy("day")
    terminal = _daily(payments, frauds, "terminal_id")
    sums = [F.col("id").alias("terminal_id"), "day"]
    for days in TERMINAL_WINDOWS_DAYS:
        window = by_day.rangeBetween(-days, -1)
        sums += [
            F.coalesce(F.sum("p").over(window), F.lit(0)).alias(f"p{days}"),
            F.coalesce(F.sum("f").over(window), F.lit(0)).alias(f"f{days}"),
        ]
    terminal = terminal.select(*sums).select(
        "terminal_id",
        "day",
        F.col(f"p{TERMINAL_DAYS}").cast("double").alias(f"terminal_payments_{TERMINAL_DAYS}d"),
        *(
            rate(F.col(f"f{d}"), F.col(f"p{d}")).alias(f"terminal_fraud_rate_{d}d")
            for d in TERMINAL_WINDOWS_DAYS
        ),
    )
    window = by_day.rangeBetween(-TERMINAL_DAYS, -1)
    merchant = _daily(payments, frauds, "merchant_id").select(
        F.col("id").alias("merchant_id"),
        "day",
        rate(
            F.coalesce(F.sum("f").over(window), F.lit(0)), F.coalesce(F.sum("p").over(window), F.lit(0))
        ).alias(f"merchant_fraud_rate_{TERMINAL_DAYS}d"),
    )
    return (
        result.join(terminal, ["terminal_id", "day"])
        .join(merchant, ["merchant_id", "day"])
        .drop("terminal_id", "merchant_id", "day")
    )


def training_table(payments: DataFrame) -> DataFrame:
    frauds = fraud_labels(payments)
    base = payments.select(
        "transaction_id",
        "customer_id",
        F.col("t").alias("transaction_time_ms"),
        "dt",
        (F.col("amount_minor") / 100).alias("payment_amount"),
        F.when(F.col("channel") == "online", 1.0).otherwise(0.0).alias("payment_card_not_present"),
        "label",
        "labeled_at_ms",
    )
    table = (
        base.join(customer_features(payments), "transaction_id")
        .join(card_features(payments), "transaction_id")
        .join(point_features(payments, frauds), "transaction_id")
    )
    # No label: 0 with labeled_at_ms null, so training can tell "known genuine" from "not known yet".
    return table.select(
        "transaction_id",
        "customer_id",
        "transaction_time_ms",
        "dt",
        *[F.col(name).cast("double").alias(name) for name in PAYMENT_FEATURE_NAMES],
        F.coalesce(F.col("label"), F.lit(0)).cast("int").alias("label"),
        F.col("labeled_at_ms").cast("long").alias("labeled_at_ms"),
    )


# --- latest aggregates ----------------------------------------------------------------------------


def latest_customers(payments: DataFrame) -> DataFrame:
    last = payments.groupBy("customer_id").agg(F.max("t").alias("last_event_ms"))
    cards = (
        payments.groupBy("customer_id", "card_fingerprint")
        .agg(F.min("t").alias("first"))
        .groupBy("customer_id")
        .agg(F.map_from_entries(F.collect_list(F.struct("card_fingerprint", "first"))).alias("cards"))
    )
    recent = (
        payments.join(last, "customer_id")
        .where(F.col("t") >= F.col("last_event_ms") - CUSTOMER_WINDOW_MS)
        .groupBy("customer_id")
        .agg(F.array_sort(F.collect_list(F.struct("t", "transaction_id", "amount_minor"))).alias("recent"))
    )
    return last.join(cards, "customer_id").join(recent, "customer_id")


def latest_cards(payments: DataFrame) -> DataFrame:
    last = payments.groupBy("card_fingerprint").agg(
        F.max("t").alias("last_event_ms"), F.min("t").alias("first_ms")
    )
    recent = (
        payments.join(last, "card_fingerprint")
        .where(F.col("t") >= F.col("last_event_ms") - CARD_WINDOW_MS)
        .groupBy("card_fingerprint")
        .agg(F.array_sort(F.collect_list(F.struct("t", "transaction_id", "amount_minor"))).alias("recent"))
    )
    return last.join(recent, "card_fingerprint")


def latest_points(payments: DataFrame) -> DataFrame:
    """Terminals and merchants: days of payments and of known frauds, pruned against the latest event."""
    frauds = fraud_labels(payments)
    frames = []
    for entity, column in POINTS.items():
        events = payments.select(F.col(column).alias("id"), "t", F.lit(1).alias("p")).unionByName(
            frauds.select(F.col(column).alias("id"), "t", F.lit(0).alias("p"))
        )
        last = events.groupBy("id").agg(F.max("t").alias("last_event_ms"))
        days = (
            events.join(last, "id")
            .where(_day("t") >= _day("last_event_ms") - TERMINAL_DAYS)
            .groupBy("id", _day("t").alias("day"))
            .agg(F.sum("p").alias("payments"), F.sum(1 - F.col("p")).alias("frauds"))
        )
        maps = days.groupBy("id").agg(
            F.map_from_entries(
                F.collect_list(
                    F.when(F.col("payments") > 0, F.struct(F.col("day").cast("string"), "payments"))
                )
            ).alias("payments_by_day"),
            F.map_from_entries(
                F.collect_list(F.when(F.col("frauds") > 0, F.struct(F.col("day").cast("string"), "frauds")))
            ).alias("frauds_by_day"),
        )
        frames.append(last.join(maps, "id", "left").select(F.lit(entity).alias("entity"), "*"))
    return frames[0].unionByName(frames[1])


def customer_state(row: Any) -> dict[str, Any]:
    return {
        "recent": [[r["t"], r["transaction_id"], r["amount_minor"]] for r in row["recent"] or []],
        "cards": {k: int(v) for k, v in (row["cards"] or {}).items()},
        "last_event_ms": int(row["last_event_ms"]),
    }


def card_state(row: Any) -> dict[str, Any]:
    return {
        "first_ms": int(row["first_ms"]),
        "recent": [[r["t"], r["transaction_id"], r["amount_minor"]] for r in row["recent"] or []],
        "last_event_ms": int(row["last_event_ms"]),
    }


def point_state(row: Any) -> dict[str, Any]:
    return {
        "payments_by_day": {k: int(v) for k, v in (row["payments_by_day"] or {}).items()},
        "frauds_by_day": {k: int(v) for k, v in (row["frauds_by_day"] or {}).items()},
        "last_event_ms": int(row["last_event_ms"]),
    }


def online_lines(customers: DataFrame, cards: DataFrame, points: DataFrame) -> Iterator[str]:
    for row in customers.toLocalIterator():
        yield json.dumps(
            {"pk": entity_key(CUSTOMER_ENTITY, row["customer_id"]), "state": customer_state(row)}
        )
    for row in cards.toLocalIterator():
        yield json.dumps({"pk": entity_key(CARD_ENTITY, row["card_fingerprint"]), "state": card_state(row)})
    for row in points.toLocalIterator():
        yield json.dumps({"pk": entity_key(row["entity"], row["id"]), "state": point_state(row)})


def write_online(customers: DataFrame, cards: DataFrame, points: DataFrame, path: str) -> int:
    """JSON lines of every item; local paths are written beside and swapped in whole."""
    if not _is_local(path):
        rows = (
            customers.rdd.map(
                lambda r: json.dumps(
                    {"pk": entity_key(CUSTOMER_ENTITY, r["customer_id"]), "state": customer_state(r)}
                )
            )
            .union(
                cards.rdd.map(
                    lambda r: json.dumps(
                        {"pk": entity_key(CARD_ENTITY, r["card_fingerprint"]), "state": card_state(r)}
                    )
                )
            )
            .union(
                points.rdd.map(
                    lambda r: json.dumps({"pk": entity_key(r["entity"], r["id"]), "state": point_state(r)})
                )
            )
        )
        rows.saveAsTextFile(path)
        return int(rows.count())
    import os
    import shutil
    import uuid

    target = Path(path.removeprefix("file://"))
    staging = target.with_name(f".{target.name}.{uuid.uuid4().hex}")
    staging.mkdir(parents=True)
    count = 0
    with (staging / "part-0000.jsonl").open("w") as out:
        for line in online_lines(customers, cards, points):
            out.write(line + "\n")
            count += 1
    if target.exists():
        shutil.rmtree(target)
    os.replace(staging, target)
    return count


def run(spark: SparkSession, raw_path: str, processed_path: str) -> dict[str, int]:
    started = time.perf_counter()
    raw, out = raw_path.rstrip("/"), f"{processed_path.rstrip('/')}/payments"
    payments = load_payments(spark, raw).cache()
    counts = {"payments": payments.count()}
    log(f"read {counts['payments']:,} payments")
    write_parquet(training_table(payments), f"{out}/training-data")
    counts["training_rows"] = spark.read.parquet(f"{out}/training-data").count()
    counts["online_items"] = write_online(
        latest_customers(payments), latest_cards(payments), latest_points(payments), f"{out}/features/online"
    )
    log(
        f"wrote {counts['training_rows']:,} training rows and {counts['online_items']:,} online items "
        f"in {time.perf_counter() - started:.1f}s"
    )
    payments.unpersist()
    return counts


def main(argv: list[str]) -> int:
    try:  # AWS Glue: arguments come as --raw_path ... and the context owns the session
        from awsglue.context import GlueContext  # type: ignore[import-not-found]
        from awsglue.utils import getResolvedOptions  # type: ignore[import-not-found]
        from pyspark.context import SparkContext
    except ImportError:
        parser = argparse.ArgumentParser(
            description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        parser.add_argument("--raw_path", required=True)
        parser.add_argument("--processed_path", required=True)
        args = parser.parse_args(argv)
        from local.spark import local_session

        spark = local_session("returnguard-payment-features", "local[*]")
        run(spark, args.raw_path, args.processed_path)
        spark.stop()
        return 0
    options = getResolvedOptions(["job", *argv], ["JOB_NAME", "raw_path", "processed_path"])
    spark = GlueContext(SparkContext.getOrCreate()).spark_session
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    run(spark, options["raw_path"], options["processed_path"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
