"""Glue (PySpark) rules job, seed 002: orders + customers + blocklist -> flagged transactions and customer aggregates.

Reads `<raw>/orders/dt=*/`, `<raw>/customers/dt=*/` (latest snapshot), `<raw>/blocklist/dt=*/*.csv`
(the blocklist sync's change files, folded to the current state) and the USD rates table
`<lake>/external/rates/` (CSV `currency,units_per_usd`; rows override `DEFAULT_RATES_PER_USD`).
Writes Parquet `<processed>/rules/transactions/dt=YYYY-MM-DD/` and `<processed>/rules/customers/`.
Every threshold and weight comes from `returnguard.rules`; docs/rules.md has the schema.

    Glue 5.0:  --raw_path s3://<lake>/raw --processed_path s3://<lake>/processed
               [--rates_path s3://<lake>/external/rates]   (returnguard.zip in --extra-py-files)
    Locally:   .venv/bin/python -m glue_jobs.rules --raw_path build/demo/lake/raw \
                   --processed_path build/demo/lake/processed
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from returnguard import rules
from returnguard.aws.blocklist import SNAPSHOT_COLUMNS
from returnguard.currency import DEFAULT_RATES_PER_USD

# The blocklist sync's change-file columns (one list, `SNAPSHOT_COLUMNS`), all text but the row id.
BLOCKLIST_SCHEMA = T.StructType(
    [T.StructField(name, T.LongType() if name == "id" else T.StringType()) for name in SNAPSHOT_COLUMNS]
)
RATES_SCHEMA = T.StructType(
    [T.StructField("currency", T.StringType()), T.StructField("units_per_usd", T.DoubleType())]
)
# Checked in order; a row is counted under the first reason that applies.
INVALID_REASONS = (
    "missing_order_id",
    "missing_customer_id",
    "missing_order_time",
    "invalid_amount",
    "unknown_currency",
    "duplicate_order_id",
)


def run(
    spark: SparkSession,
    raw_path: str,
    processed_path: str,
    rates: Mapping[str, float] | None = None,
    rates_path: str | None = None,
    velocity_orders: int = rules.VELOCITY_ORDERS,
) -> dict[str, Any]:
    """Run the rules over the whole raw history; returns counts (read, invalid by reason, flags, categories).

    `velocity_orders`: orders by one customer within 60 s that make velocity (the API's policy gets
    the same number from the same deployment setting)."""
    if velocity_orders < 2:
        raise ValueError(f"velocity_orders must be at least 2, got {velocity_orders}")
    raw_path, processed_path = raw_path.rstrip("/"), processed_path.rstrip("/")
    rates_path = rates_path or raw_path.rsplit("/", 1)[0] + "/external/rates"
    rate_table = load_rates(spark, rates_path, rates)

    orders = spark.read.parquet(f"{raw_path}/orders")
    orders_read = orders.count()
    checked = _validate(orders, rate_table)
    invalid = {r["invalid_reason"]: r["count"] for r in checked.groupBy("invalid_reason").count().collect()}
    valid = checked.where(F.col("invalid_reason") == "").drop("invalid_reason")

    customers = _latest_customers(spark, f"{raw_path}/customers")
    blocklist = load_blocklist(spark, f"{raw_path}/blocklist")
    transactions = _flag(valid, customers, blocklist, velocity_orders).cache()

    (  # one file per date: the shuffle's partitions would each write a file into every date
        transactions.repartition("dt")
        .write.mode("overwrite")
        .partitionBy("dt")
        .parquet(f"{processed_path}/rules/transactions")
    )
    aggregates = customer_aggregates(transactions, customers)
    aggregates.coalesce(1).write.mode("overwrite").parquet(f"{processed_path}/rules/customers")

    totals = transactions.agg(
        F.count("*").alias("transactions"),
        *[F.sum(F.col(c).cast("long")).alias(c) for c in FLAG_COLUMNS],
    ).first()
    categories = {
        r["risk_category"]: r["count"] for r in transactions.groupBy("risk_category").count().collect()
    }
    result = {
        "orders_read": orders_read,
        "orders_invalid": sum(n for reason, n in invalid.items() if reason),
        "invalid_by_reason": {reason: invalid[reason] for reason in INVALID_REASONS if reason in invalid},
        "transactions_written": int(totals["transactions"]),
        "customers_written": aggregates.count(),
        "blocklist_entries": blocklist.count(),
        "flagged": {c: int(totals[c] or 0) for c in FLAG_COLUMNS},
        "risk_categories": {c: int(categories.get(c, 0)) for c in rules.RISK_CATEGORIES},
    }
    transactions.unpersist()
    return result


FLAG_COLUMNS = (
    "is_high_amount",
    "is_velocity",
    "is_outlier",
    "is_customer_blocklisted",
    "is_address_blocklisted",
    "is_card_blocklisted",
    "is_blocklisted",
)


def load_rates(spark: SparkSession, path: str, overrides: Mapping[str, float] | None) -> DataFrame:
    """currency -> units per USD: defaults, then the lake's rates table, then `overrides` (tests)."""
    table = dict(DEFAULT_RATES_PER_USD)
    if _exists(spark, path):
        for row in spark.read.option("header", True).schema(RATES_SCHEMA).csv(path).collect():
            if row["currency"] and row["units_per_usd"] and row["units_per_usd"] > 0:
                table[row["currency"].strip().upper()] = float(row["units_per_usd"])
    table.update({k.upper(): float(v) for k, v in (overrides or {}).items()})
    return spark.createDataFrame(sorted(table.items()), RATES_SCHEMA)


def load_blocklist(spark: SparkSession, path: str) -> DataFrame:
    """Current (entity_type, entity_key) listings: the latest change of each source row, if active."""
    if not _exists(spark, path):
        return spark.createDataFrame([], "entity_type string, entity_key string")
    changes = spark.read.option("header", True).schema(BLOCKLIST_SCHEMA).csv(path)
    latest = Window.partitionBy("id").orderBy(F.col("updated_at").desc())
    return (
        changes.withColumn("n", F.row_number().over(latest))
        .where((F.col("n") == 1) & (F.col("active") == "true"))
        .select("entity_type", "entity_key")
        .distinct()
    )


def spark_address_key(column: Column) -> Column:
    """`returnguard.features.address_key` in Spark: lower, whitespace runs -> one space, trim, SHA-1[:16]."""
    normalised = F.trim(F.regexp_replace(F.lower(column), r"\s+", " "))
    return F.substring(F.sha1(normalised), 1, 16)


def _validate(orders: DataFrame, rate_table: DataFrame) -> DataFrame:
    orders = (
        orders.withColumn("order_id", F.trim("order_id"))
        .withColumn("customer_id", F.trim("customer_id"))
        .withColumn("currency", F.upper(F.trim("currency")))
        .join(F.broadcast(rate_table), "currency", "left")
    )
    first = Window.partitionBy("order_id").orderBy("order_time", "customer_id")
    orders = orders.withColumn("copy", F.row_number().over(first))
    amount = F.col("amount")
    reason = (
        F.when(F.col("order_id").isNull() | (F.col("order_id") == ""), "missing_order_id")
        .when(F.col("customer_id").isNull() | (F.col("customer_id") == ""), "missing_customer_id")
        .when(F.col("order_time").isNull(), "missing_order_time")
        .when(amount.isNull() | F.isnan(amount) | (amount < 0), "invalid_amount")
        .when(F.col("units_per_usd").isNull(), "unknown_currency")
        .when(F.col("copy") > 1, "duplicate_order_id")
        .otherwise("")
    )
    return orders.withColumn("invalid_reason", reason).drop("copy")


def _latest_customers(spark: SparkSession, path: str) -> DataFrame:
    customers = spark.read.parquet(path)
    if "dt" in customers.columns:  # several snapshots: the newest one is the truth
        customers = customers.where(F.col("dt") == customers.agg(F.max("dt")).first()[0]).drop("dt")
    return customers.select(
        F.trim("customer_id").alias("customer_id"),
        F.col("registered_at").alias("customer_registered_at"),
        F.col("home_region").alias("customer_home_region"),
    ).dropDuplicates(["customer_id"])


def _flag(orders: DataFrame, customers: DataFrame, blocklist: DataFrame, velocity_orders: int) -> DataFrame:
    by_customer = Window.partitionBy("customer_id").orderBy("order_time_ms")
    before = by_customer.rangeBetween(Window.unboundedPreceding, -1)  # strictly earlier, point-in-time
    last_minute = by_customer.rangeBetween(-rules.VELOCITY_WINDOW_MS, -1)
    df = (
        orders.withColumn("order_time_ms", F.expr("unix_millis(order_time)"))
        .withColumn("amount_usd", F.round(F.col("amount") / F.col("units_per_usd"), 2))
        .withColumn("address_key", spark_address_key(F.col("delivery_address")))
        .withColumn("card_fingerprint", F.lower(F.trim("card_fingerprint")))
        .withColumn("orders_last_60s", F.count("*").over(last_minute))
        .withColumn("previous_order_count", F.count("*").over(before))
        .withColumn("previous_mean_usd", F.avg("amount_usd").over(before))
        .withColumn("previous_std_usd", F.coalesce(F.stddev_pop("amount_usd").over(before), F.lit(0.0)))
    )
    df = df.withColumn("is_high_amount", F.col("amount_usd") > F.lit(rules.HIGH_RISK_USD))
    # rules.is_velocity: this order and the earlier ones in the minute make `velocity_orders`
    df = df.withColumn("is_velocity", F.col("orders_last_60s") + 1 >= F.lit(velocity_orders))
    df = df.withColumn(
        "is_outlier",
        (F.col("previous_order_count") >= rules.OUTLIER_MIN_HISTORY)
        & (
            F.col("amount_usd")
            > F.col("previous_mean_usd") + rules.OUTLIER_STD_MULTIPLIER * F.col("previous_std_usd")
        )
        & (F.col("amount_usd") > rules.OUTLIER_MIN_RATIO * F.col("previous_mean_usd")),
    ).withColumn("is_outlier", F.coalesce("is_outlier", F.lit(False)))
    for kind, column in (
        ("customer", "customer_id"),
        ("address", "address_key"),
        ("card", "card_fingerprint"),
    ):
        listed = blocklist.where(F.col("entity_type") == kind).select(
            F.col("entity_key").alias(column), F.lit(True).alias(f"is_{kind}_blocklisted")
        )
        df = df.join(F.broadcast(listed), column, "left").fillna(False, [f"is_{kind}_blocklisted"])
    df = df.withColumn(
        "is_blocklisted",
        F.col("is_customer_blocklisted") | F.col("is_address_blocklisted") | F.col("is_card_blocklisted"),
    )
    weights = (
        ("is_blocklisted", rules.WEIGHT_BLOCKLISTED, "blocklisted"),
        ("is_high_amount", rules.WEIGHT_HIGH_AMOUNT, "high_amount"),
        ("is_velocity", rules.WEIGHT_VELOCITY, "velocity"),
        ("is_outlier", rules.WEIGHT_OUTLIER, "outlier"),
    )
    score = sum((F.when(F.col(flag), weight).otherwise(0) for flag, weight, _ in weights), F.lit(0))
    df = df.withColumn("risk_score", F.least(score, F.lit(rules.MAX_RISK_SCORE)).cast("int"))
    df = df.withColumn("risk_category", _category(F.col("risk_score")))
    triggered = F.array(*[F.when(F.col(flag), F.lit(name)) for flag, _, name in weights])
    df = df.withColumn("rules_triggered", F.filter(triggered, lambda x: x.isNotNull()))
    df = df.join(customers, "customer_id", "left").withColumn("dt", F.to_date("order_time"))
    return df.select(*TRANSACTION_COLUMNS, "dt")


TRANSACTION_COLUMNS = (
    "order_id",
    "customer_id",
    "product_id",
    "seller_id",
    "order_time",
    "order_time_ms",
    "amount",
    "currency",
    "amount_usd",
    "payment_method",
    "delivery_region",
    "address_key",
    "card_fingerprint",
    "customer_registered_at",
    "customer_home_region",
    "orders_last_60s",
    "previous_order_count",
    "previous_mean_usd",
    "previous_std_usd",
    *FLAG_COLUMNS,
    "risk_score",
    "risk_category",
    "rules_triggered",
)


def _category(score: Column) -> Column:
    return (
        F.when(score >= rules.HIGH_RISK_FROM, "High")
        .when(score >= rules.MEDIUM_RISK_FROM, "Medium")
        .otherwise("Low")
    )


def customer_aggregates(transactions: DataFrame, customers: DataFrame) -> DataFrame:
    """One row per customer (every known customer, plus any ordering customer missing from the snapshot)."""
    per_customer = transactions.groupBy("customer_id").agg(
        F.count("*").alias("order_count"),
        F.round(F.sum("amount_usd"), 2).alias("total_amount_usd"),
        F.round(F.avg("amount_usd"), 2).alias("avg_amount_usd"),
        F.max("amount_usd").alias("max_amount_usd"),
        F.sum(F.when(F.col("risk_score") > 0, 1).otherwise(0)).alias("flagged_count"),
        F.sum(F.col("is_high_amount").cast("int")).alias("high_amount_count"),
        F.sum(F.col("is_velocity").cast("int")).alias("velocity_count"),
        F.sum(F.col("is_outlier").cast("int")).alias("outlier_count"),
        F.max(F.col("is_customer_blocklisted")).alias("is_customer_blocklisted"),
        F.max("risk_score").alias("max_risk_score"),
        F.min("order_time").alias("first_order_time"),
        F.max("order_time").alias("last_order_time"),
    )
    zero = ["order_count", "total_amount_usd", "flagged_count", "high_amount_count", "velocity_count"]
    df = (
        customers.join(per_customer, "customer_id", "full_outer")
        .fillna(0, [*zero, "outlier_count", "max_risk_score"])
        .fillna(False, ["is_customer_blocklisted"])
    )
    return df.withColumn("risk_category", _category(F.col("max_risk_score")))


def _exists(spark: SparkSession, path: str) -> bool:
    jvm = spark.sparkContext._jvm
    hadoop_path = jvm.org.apache.hadoop.fs.Path(path)  # type: ignore[union-attr]
    fs = hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())  # type: ignore[union-attr]
    return bool(fs.exists(hadoop_path))


def _arguments(argv: list[str]) -> dict[str, str]:
    try:  # under Glue
        from awsglue.utils import getResolvedOptions  # type: ignore[import-not-found]

        options = ["raw_path", "processed_path"]
        options += [o for o in ("rates_path", "velocity_orders") if any(a.startswith(f"--{o}") for a in argv)]
        return dict(getResolvedOptions(argv, options))
    except ImportError:
        parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
        parser.add_argument("--raw_path", required=True)
        parser.add_argument("--processed_path", required=True)
        parser.add_argument("--rates_path")
        parser.add_argument("--velocity_orders")
        known, _ = parser.parse_known_args(argv[1:])  # Glue-style extras (--database ...) are ignored
        return {k: v for k, v in vars(known).items() if v is not None}


def _session() -> SparkSession:
    try:  # under Glue: Glue's session and settings
        import awsglue  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:  # locally: the settings every local Spark job shares
        from local.spark import local_session

        session: SparkSession = local_session("returnguard-rules")
        return session
    return (
        SparkSession.builder.appName("returnguard-rules")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )


def main(argv: list[str] | None = None) -> None:
    args = _arguments(argv or sys.argv)
    spark = _session()
    result = run(
        spark,
        args["raw_path"],
        args["processed_path"],
        rates_path=args.get("rates_path"),
        velocity_orders=int(args.get("velocity_orders", rules.VELOCITY_ORDERS)),
    )
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
