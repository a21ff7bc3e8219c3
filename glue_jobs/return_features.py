"""The return lane's part of the Glue (PySpark) feature job: raw return requests → point-in-time
training table + the latest reason-text link items.

`glue_jobs/features.py` runs it (its `run`); it reuses that job's loaded orders, returns and profiles and
its address-link functions (a text item links customers as an address item does). A lake without
raw/return_requests gets an empty return-training-data (its columns, no rows): the retraining job's
`return` channel needs the folder, and the return lane is then not retrained. Locally:

    python glue_jobs/return_features.py --raw_path build/demo/lake/raw --processed_path build/demo/lake/processed

Every feature uses the request itself and events strictly before its time (epoch ms), with the same
bounds and arithmetic as `returnguard.returns.compute_return_features`; the text signals are that
module's own pure-Python functions, run as a UDF. The parity test compares the rows with ==.
Outputs under processed_path:
    return-training-data/   return_id, customer_id, return_time_ms, dt, <RETURN_FEATURE_NAMES>, label,
                            labeled_at_ms (null: not inspected yet, label 0), outcome, abuse_type
                            (the abusive outcome, for per-pattern metrics)
    features/texts/         latest text#<key> link items
    features/online-texts/  JSON lines {"pk", "state"} of those items for the DynamoDB features table
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from glue_jobs import features as order_job
from returnguard.calendar import DAY_MS
from returnguard.features import (
    CLAIM_TYPES,
    DAMAGE_REASON_CODES,
    NEVER,
    RATE_PRIOR_ORDERS,
    RATE_PRIOR_RETURNS,
    RETURN_FEATURE_NAMES,
    RETURN_REASON_CODES,
    RETURN_WINDOW_MS,
)
from returnguard.returns import reason_agreement, text_key, text_language
from returnguard.tables import entity_key

RATED = {"product": "product_id", "seller": "seller_id", "category": "category"}


def log(message: str) -> None:
    print(f"[return-features] {time.strftime('%H:%M:%S')} {message}", flush=True)


_TEXT = T.StructType(
    [
        T.StructField("key", T.StringType()),
        T.StructField("length", T.LongType()),
        T.StructField("language", T.StringType()),
        T.StructField("supports", T.BooleanType()),
        T.StructField("contradicts", T.BooleanType()),
    ]
)


def _text_signals(reason_code: str, reason: str | None) -> tuple[Any, ...]:
    text = reason or ""
    supports, contradicts = reason_agreement(reason_code, text)
    return text_key(text), len(text), text_language(text), supports, contradicts


def has_requests(spark: SparkSession, raw: str) -> bool:
    return order_job._exists(spark, f"{raw}/return_requests")


def load_requests(spark: SparkSession, raw: str) -> DataFrame:
    requests = spark.read.parquet(f"{raw}/return_requests")
    signals = F.udf(_text_signals, _TEXT)("reason_code", "reason")
    return requests.select(
        "return_id",
        "order_id",
        "customer_id",
        "product_id",
        F.coalesce(F.col("seller_id"), F.lit("")).alias("seller_id"),
        F.coalesce(F.col("category"), F.lit("")).alias("category"),
        F.unix_millis(F.col("return_time")).alias("t"),
        F.unix_millis(F.col("delivered_at")).alias("delivered_ms"),
        F.round(F.col("order_amount") * 100).cast("long").alias("paid_minor"),
        F.round(F.col("refund_amount") * 100).cast("long").alias("refund_minor"),
        "reason_code",
        "return_method",
        F.col("item_count").cast("long").alias("item_count"),
        order_job.address_key_column(F.col("delivery_address")).alias("delivery_key"),
        order_job.address_key_column(F.col("pickup_address")).alias("pickup_key"),
        signals.alias("text"),
        F.to_date(F.col("return_time")).alias("dt"),
    )


def load_inspections(spark: SparkSession, raw: str) -> DataFrame | None:
    """One row per inspected request: the earliest inspection (a re-inspection does not relabel)."""
    if not order_job._exists(spark, f"{raw}/inspections"):
        return None
    rows = spark.read.parquet(f"{raw}/inspections").select(
        "return_id", "outcome", F.col("is_abuse").cast("int").alias("label"),
        F.unix_millis(F.col("labeled_at")).alias("labeled_at_ms"),
    )  # fmt: skip
    first = Window.partitionBy("return_id").orderBy("labeled_at_ms", "outcome")
    return rows.withColumn("rank", F.row_number().over(first)).where(F.col("rank") == 1).drop("rank")


def as_return_events(requests: DataFrame) -> DataFrame:
    """The requests as the aggregates count them: each request is also a return event."""
    return requests.select("customer_id", "t", "reason_code")


def request_facts(requests: DataFrame) -> DataFrame:
    paid, t, delivered = F.col("paid_minor"), F.col("t"), F.col("delivered_ms")
    pickup = F.col("return_method") == "pickup"
    columns = [
        "return_id",
        (paid / 100).alias("order_value"),
        F.when(paid > 0, F.col("refund_minor") / paid).otherwise(1.0).alias("refund_ratio"),
        F.when(delivered.isNotNull() & (delivered <= t), (t - delivered) / F.lit(DAY_MS))
        .otherwise(0.0)
        .alias("days_since_delivery"),
        *[
            F.when(F.col("reason_code") == code, 1.0).otherwise(0.0).alias(f"reason_{code}")
            for code in RETURN_REASON_CODES
        ],
        F.when(F.col("reason_code").isin(*sorted(DAMAGE_REASON_CODES)), 1.0)
        .otherwise(0.0)
        .alias("damaged_flag"),
        F.when(pickup, 1.0).otherwise(0.0).alias("return_by_pickup"),
        F.when(pickup & F.col("pickup_key").isNotNull() & (F.col("pickup_key") != F.col("delivery_key")), 1.0)
        .otherwise(0.0)
        .alias("pickup_address_differs"),
        F.col("item_count").alias("return_item_count"),
        F.col("text.length").alias("reason_text_length"),
        F.when(F.col("text.language") == "hi", 1.0).otherwise(0.0).alias("reason_text_hindi"),
        F.when(F.col("text.language") == "hinglish", 1.0).otherwise(0.0).alias("reason_text_hinglish"),
        F.when(F.col("text.supports"), 1.0).otherwise(0.0).alias("reason_text_supports_code"),
        F.when(F.col("text.contradicts"), 1.0).otherwise(0.0).alias("reason_text_contradicts_code"),
    ]
    return requests.select(*columns)


def customer_history(
    requests: DataFrame, orders: DataFrame, returns: DataFrame, profiles: DataFrame
) -> DataFrame:
    """The customer's orders and returns strictly before each request (returns: every return event)."""
    events = (
        orders.select("customer_id", "t", F.lit(1).alias("o"), F.lit(0).alias("r"),
                      F.lit(None).cast("string").alias("reason_code"), F.lit(None).cast("string").alias("rid"))
        .unionByName(returns.select("customer_id", "t", F.lit(0).alias("o"), F.lit(1).alias("r"), "reason_code",
                                    F.lit(None).cast("string").alias("rid")))
        .unionByName(requests.select("customer_id", "t", F.lit(0).alias("o"), F.lit(0).alias("r"),
                                     F.lit(None).cast("string").alias("reason_code"), F.col("return_id").alias("rid")))
    )  # fmt: skip
    by_time = Window.partitionBy("customer_id").orderBy("t")
    history = by_time.rangeBetween(Window.unboundedPreceding, -1)
    month = by_time.rangeBetween(-RETURN_WINDOW_MS, -1)

    def returns_of(codes: frozenset[str] | None) -> Any:
        hit = F.col("r") == 1
        if codes is not None:
            hit = hit & F.col("reason_code").isin(*sorted(codes))
        return F.when(hit, 1).otherwise(0)

    counted = (
        events.where(F.lit(True))
        .select(
            "rid",
            "customer_id",
            "t",
            F.coalesce(F.sum("o").over(history), F.lit(0)).alias("n"),
            F.coalesce(F.sum("r").over(history), F.lit(0)).alias("k"),
            F.coalesce(F.sum(returns_of(DAMAGE_REASON_CODES)).over(history), F.lit(0)).alias("damaged"),
            F.max(F.when(F.col("r") == 1, F.col("t"))).over(history).alias("last_return"),
            F.coalesce(F.sum("r").over(month), F.lit(0)).alias("r30"),
            *[
                F.coalesce(F.sum(returns_of(codes)).over(month), F.lit(0)).alias(f"claims_{name}")
                for name, codes in CLAIM_TYPES.items()
            ],
        )
        .where(F.col("rid").isNotNull())
    )
    n, k, t, registered = F.col("n"), F.col("k"), F.col("t"), F.col("registered_at_ms")
    return counted.join(profiles, "customer_id", "left").select(
        F.col("rid").alias("return_id"),
        F.when(registered.isNotNull() & (registered <= t), (t - registered) / F.lit(DAY_MS))
        .otherwise(0.0)
        .alias("customer_account_age_days"),
        n.cast("double").alias("customer_order_count"),
        k.cast("double").alias("return_count"),
        F.when(n > 0, k / n).otherwise(0.0).alias("customer_return_share"),
        F.when(F.col("last_return").isNotNull(), (t - F.col("last_return")) / F.lit(DAY_MS))
        .otherwise(NEVER)
        .alias("days_since_last_return"),
        F.col("r30").cast("double").alias("customer_returns_last_30d"),
        *[
            F.col(f"claims_{name}").cast("double").alias(f"customer_{name}_claims_30d")
            for name in CLAIM_TYPES
        ],
        F.col("damaged").cast("double").alias("customer_damaged_claims"),
    )


def entity_rates(requests: DataFrame, orders: DataFrame, returns: DataFrame) -> DataFrame:
    """product/seller/category smoothed return and claim rates from counts strictly before each request
    (a claim: a return with a damage or mismatch reason, the entity aggregate's claim_count)."""
    result = requests.select("return_id")
    prior = RATE_PRIOR_RETURNS / RATE_PRIOR_ORDERS
    for group, column in RATED.items():
        events = (
            orders.select(F.col(column).alias("id"), "t", F.lit(1).alias("o"), F.lit(0).alias("r"),
                          F.lit(0).alias("c"), F.lit(None).cast("string").alias("rid"))
            .unionByName(returns.select(F.col(column).alias("id"), "t", F.lit(0).alias("o"), F.lit(1).alias("r"),
                                        order_job.seller_claim_flag().alias("c"),
                                        F.lit(None).cast("string").alias("rid")))
            .unionByName(requests.select(F.col(column).alias("id"), "t", F.lit(0).alias("o"), F.lit(0).alias("r"),
                                         F.lit(0).alias("c"), F.col("return_id").alias("rid")))
        )  # fmt: skip
        history = Window.partitionBy("id").orderBy("t").rangeBetween(Window.unboundedPreceding, -1)
        orders_before = F.coalesce(F.sum("o").over(history), F.lit(0)) + F.lit(RATE_PRIOR_ORDERS)
        rates = events.select(
            F.col("rid").alias("return_id"),
            "id",
            (
                (F.coalesce(F.sum("r").over(history), F.lit(0)) + F.lit(RATE_PRIOR_RETURNS)) / orders_before
            ).alias(f"{group}_return_rate"),
            (
                (F.coalesce(F.sum("c").over(history), F.lit(0)) + F.lit(RATE_PRIOR_RETURNS)) / orders_before
            ).alias(f"{group}_claim_rate"),
        )
        # an empty seller/category is "not given": the prior, as the online lookup finds no item
        rates = rates.where(F.col("return_id").isNotNull()).select(
            "return_id",
            *[
                F.when(F.col("id") == "", prior).otherwise(F.col(f"{group}_{rate}")).alias(f"{group}_{rate}")
                for rate in ("return_rate", "claim_rate")
            ],
        )
        result = result.join(rates, "return_id")
    return result


def _text_uses(requests: DataFrame) -> DataFrame:
    """Requests with text in the columns the address-link functions take (a text links like an address)."""
    return requests.where(F.col("text.key").isNotNull()).select(
        F.col("return_id").alias("order_id"), "customer_id", F.col("text.key").alias("address_key"), "t"
    )


def text_links(requests: DataFrame) -> DataFrame:
    links = order_job.address_links(_text_uses(requests))
    return (
        requests.select("return_id")
        .join(links.withColumnRenamed("order_id", "return_id"), "return_id", "left")
        .select(
            "return_id",
            F.coalesce(F.col("address_other_customers"), F.lit(0.0)).alias("reason_text_other_customers"),
        )
    )


def latest_texts(requests: DataFrame) -> DataFrame:
    """The state of every text#<key> item after the whole history (returnguard.aggregates._link)."""
    return order_job.latest_addresses(_text_uses(requests)).withColumnRenamed("address_key", "text_key")


def training_table(
    requests: DataFrame,
    orders: DataFrame,
    returns: DataFrame,
    profiles: DataFrame,
    inspections: DataFrame | None,
) -> DataFrame:
    table = (
        requests.select("return_id", "customer_id", F.col("t").alias("return_time_ms"), "dt")
        .join(request_facts(requests), "return_id")
        .join(customer_history(requests, orders, returns, profiles), "return_id")
        .join(entity_rates(requests, orders, returns), "return_id")
        .join(text_links(requests), "return_id")
    )
    if inspections is not None:
        table = table.join(inspections, "return_id", "left")
    else:
        table = table.select(
            "*",
            F.lit(None).cast("int").alias("label"),
            F.lit(None).cast("long").alias("labeled_at_ms"),
            F.lit(None).cast("string").alias("outcome"),
        )
    return table.select(
        "return_id",
        "customer_id",
        "return_time_ms",
        "dt",
        *[F.col(name).cast("double").alias(name) for name in RETURN_FEATURE_NAMES],
        F.coalesce(F.col("label"), F.lit(0)).cast("int").alias("label"),
        F.col("labeled_at_ms").cast("long").alias("labeled_at_ms"),
        F.col("outcome").cast("string").alias("outcome"),
        F.when(F.col("label") == 1, F.col("outcome")).cast("string").alias("abuse_type"),
    )


def no_requests_table(spark: SparkSession) -> DataFrame:
    """The training table's columns (training_table's) with no rows."""
    columns = [
        ("return_id", T.StringType()),
        ("customer_id", T.StringType()),
        ("return_time_ms", T.LongType()),
        ("dt", T.DateType()),
        *((name, T.DoubleType()) for name in RETURN_FEATURE_NAMES),
        ("label", T.IntegerType()),
        ("labeled_at_ms", T.LongType()),
        ("outcome", T.StringType()),
        ("abuse_type", T.StringType()),
    ]
    return spark.createDataFrame([], T.StructType([T.StructField(n, t) for n, t in columns]))


def write_online_texts(texts: DataFrame, path: str) -> int:
    def line(row: Any) -> str:
        return json.dumps({"pk": entity_key("text", row["text_key"]), "state": order_job.address_state(row)})

    if not order_job._is_local(path):
        rows = texts.rdd.map(line)
        rows.saveAsTextFile(path)
        return int(rows.count())
    target = Path(path.removeprefix("file://"))
    staging = target.with_name(f".{target.name}.{uuid.uuid4().hex}")
    staging.mkdir(parents=True)
    count = 0
    with (staging / "part-0000.jsonl").open("w") as out:
        for row in texts.toLocalIterator():
            out.write(line(row) + "\n")
            count += 1
    if target.exists():
        shutil.rmtree(target)
    os.replace(staging, target)
    return count


def run(
    spark: SparkSession,
    raw: str,
    processed: str,
    orders: DataFrame,
    returns: DataFrame,
    profiles: DataFrame,
) -> dict[str, int]:
    """The return lane's outputs, from the order job's loaded inputs; returns row counts."""
    started = time.perf_counter()
    if not has_requests(spark, raw):
        order_job.write_parquet(no_requests_table(spark), f"{processed}/return-training-data")
        log("no raw/return_requests: wrote an empty return-training-data")
        return {"return_requests": 0, "return_training_rows": 0}
    requests = load_requests(spark, raw).cache()
    counts = {"return_requests": requests.count()}
    table = training_table(requests, orders, returns, profiles, load_inspections(spark, raw))
    order_job.write_parquet(table, f"{processed}/return-training-data")
    counts["return_training_rows"] = spark.read.parquet(f"{processed}/return-training-data").count()
    order_job.write_parquet(latest_texts(requests), f"{processed}/features/texts")
    texts = spark.read.parquet(f"{processed}/features/texts")
    counts["text_items"] = write_online_texts(texts, f"{processed}/features/online-texts")
    requests.unpersist()
    log(
        f"wrote return-training-data: {counts['return_training_rows']:,} rows, {counts['text_items']:,} text "
        f"items in {time.perf_counter() - started:.1f}s"
    )
    return counts


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--raw_path", required=True)
    parser.add_argument("--processed_path", required=True)
    args = parser.parse_args(argv)
    spark = order_job.local_session()
    raw, processed = args.raw_path.rstrip("/"), args.processed_path.rstrip("/")
    orders = order_job.load_orders(spark, raw).cache()
    returns = order_job.load_returns(spark, raw, orders).cache()
    run(spark, raw, processed, orders, returns, order_job.load_profiles(spark, raw))
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
