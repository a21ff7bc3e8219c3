"""Glue (PySpark) feature job: raw orders/returns → point-in-time training table + latest aggregates.

Runs unchanged under AWS Glue 5.0 (arguments through getResolvedOptions) and locally:

    python glue_jobs/features.py --raw_path build/demo/lake/raw --processed_path build/demo/lake/processed

Every feature of an order uses only events strictly before the order's time (epoch milliseconds), with
the same window bounds and the same integer arithmetic as `returnguard.features.compute_features`,
so the training rows equal what the online function computes from the aggregates (the parity test
compares them with ==). Outputs under processed_path:
    training-data/       order_id, customer_id, order_time_ms, dt, <FEATURE_NAMES>, label,
                         labeled_at_ms (when the label row became known; null: none yet, label 0),
                         abuse_type (the label's pattern when the lake has one, else null)
    features/customers/  latest customer aggregates (layout of returnguard.aggregates)
    features/entities/   latest product / seller / category / region counters
    features/links/      latest link items: address, card, device, phone, ip (earliest customers of each)
    features/pairs/      latest customer_seller / customer_category items (a customer's counts with each)
    features/online/     JSON lines {"pk", "state"} ready for the DynamoDB features table
Also the return lane's outputs (glue_jobs/return_features.py; an empty return-training-data without
raw/return_requests); with raw/payments, the card-payment outputs under processed/payments/ (glue_jobs/payment_features.py).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from returnguard.calendar import DAY_MS, festival_ranges_ms, ranges_ms
from returnguard.features import (
    CLAIM_TYPES,
    COD_REFUSAL_REASON_CODE,
    DAMAGE_REASON_CODES,
    FEATURE_NAMES,
    FESTIVAL_LOOKAHEAD_DAYS,
    HOUR_MS,
    LINK_CAP,
    LINK_GROUPS,
    LINK_IDENTIFIERS,
    LINK_ITEMS,
    PAIR_GROUPS,
    PRICE_BAND_BOUNDS_MINOR,
    PRICE_BANDS,
    RATE_PRIOR_ORDERS,
    RATE_PRIOR_RETURNS,
    RECENT_ORDERS,
    RETURN_WINDOW_MS,
    SELLER_BASELINE_DAYS,
    SELLER_CLAIM_TYPES,
    SELLER_DAYS_KEPT,
    SELLER_RECENT_DAYS,
    VELOCITY_LONG_MS,
    VELOCITY_SHORT_MS,
)
from returnguard.tables import entity_key

ENTITY_COLUMNS = {"product": "product_id", "seller": "seller_id", "category": "category", "region": "region"}
NO_RETURN = 2**62  # stands in for "never returned" inside Spark arrays (collect_list drops nulls)


def log(message: str) -> None:
    print(f"[features] {time.strftime('%H:%M:%S')} {message}", flush=True)


# --- inputs -------------------------------------------------------------------------------------


def address_key_column(address: Any) -> Any:
    """sha1 of the normalised address, first 16 hex digits: returnguard.features.address_key."""
    normalised = F.trim(F.regexp_replace(F.lower(address), r"\s+", " "))
    return F.substring(F.sha1(normalised), 1, 16)


def pair_key_column(customer_id: Any, other: Any) -> Any:
    """returnguard.features.pair_key: sha1 of '<length>:<customer id><other>', first 16 hex digits."""
    return F.substring(
        F.sha1(F.concat(F.length(customer_id).cast("string"), F.lit(":"), customer_id, other)), 1, 16
    )


def load_orders(spark: SparkSession, raw: str) -> DataFrame:
    products = spark.read.parquet(f"{raw}/products").select("product_id", "category")
    orders = spark.read.parquet(f"{raw}/orders")
    return orders.join(products, "product_id", "left").select(
        "order_id",
        "customer_id",
        "product_id",
        "seller_id",
        F.coalesce(F.col("category"), F.lit("unknown")).alias("category"),
        F.col("delivery_region").alias("region"),
        F.unix_millis(F.col("order_time")).alias("t"),
        F.round(F.col("amount") * 100).cast("long").alias("amount_minor"),
        "payment_method",
        address_key_column(F.col("delivery_address")).alias("address_key"),
        *[
            (F.col(name).cast("string") if name in orders.columns else F.lit(None).cast("string")).alias(name)
            for name in LINK_IDENTIFIERS.values()
        ],
        F.to_date(F.col("order_time")).alias("dt"),
    )


def load_returns(spark: SparkSession, raw: str, orders: DataFrame) -> DataFrame:
    """Each return with its order's facts (the ones ReturnContext carries), named once."""
    returns = spark.read.parquet(f"{raw}/returns")
    who = ("customer_id", "product_id", "seller_id", "category", "region")
    links = ("address_key", *LINK_IDENTIFIERS.values())
    return returns.join(orders.select("order_id", *who, *links), "order_id", "inner").select(
        "return_id",
        "order_id",
        *who,
        F.unix_millis(F.col("return_time")).alias("t"),
        "reason_code",
        *links,
    )


def load_profiles(spark: SparkSession, raw: str) -> DataFrame:
    customers = spark.read.parquet(f"{raw}/customers")
    return customers.select("customer_id", F.unix_millis(F.col("registered_at")).alias("registered_at_ms"))


def load_labels(spark: SparkSession, raw: str) -> DataFrame | None:
    """One row per labelled order: label (any abusive label row wins), when it became known, pattern.

    labeled_at_ms is the earliest time the final label was known (the first abusive row for a
    positive, the first row for a negative); training uses it to leave out labels not yet known.
    """
    if not _exists(spark, f"{raw}/labels"):
        return None
    labels = spark.read.parquet(f"{raw}/labels")
    abuse_type = (
        F.col("abuse_type").cast("string") if "abuse_type" in labels.columns else F.lit(None).cast("string")
    )
    rows = labels.select(
        "order_id",
        F.col("is_abuse").cast("int").alias("is_abuse"),
        F.unix_millis(F.col("labeled_at")).alias("labeled_at_ms"),
        abuse_type.alias("abuse_type"),
    )
    final = rows.groupBy("order_id").agg(F.max("is_abuse").alias("label"))
    return (
        rows.join(final, "order_id")
        .where(F.col("is_abuse") == F.col("label"))
        .groupBy("order_id")
        .agg(
            F.first("label").alias("label"),
            F.min("labeled_at_ms").alias("labeled_at_ms"),
            F.min_by("abuse_type", "labeled_at_ms").alias("abuse_type"),
        )
    )


def _exists(spark: SparkSession, path: str) -> bool:
    jvm_path = spark._jvm.org.apache.hadoop.fs.Path(path)  # type: ignore[union-attr]
    return bool(jvm_path.getFileSystem(spark._jsc.hadoopConfiguration()).exists(jvm_path))  # type: ignore[union-attr]


# --- the training table ---------------------------------------------------------------------------


def festival_flag(t: Any) -> Any:
    condition = F.lit(False)
    for start, end, _ in ranges_ms():
        condition = condition | ((t >= F.lit(start)) & (t < F.lit(end)))
    return F.when(condition, 1.0).otherwise(0.0)


def days_to_festival(t: Any) -> Any:
    """returnguard.calendar.days_to_festival: the nearest max(start - t, 0) over the festivals not yet
    over, in days, at most FESTIVAL_LOOKAHEAD_DAYS."""
    nearest = F.least(
        *[
            F.when(t < F.lit(end), F.greatest(F.lit(start) - t, F.lit(0)))
            for start, end in festival_ranges_ms()
        ]
    )
    cap = F.lit(FESTIVAL_LOOKAHEAD_DAYS)
    return F.when(nearest.isNull(), cap).otherwise(F.least(nearest / F.lit(DAY_MS), cap))


def customer_features(orders: DataFrame, returns: DataFrame, profiles: DataFrame) -> DataFrame:
    """Customer features of every order from the customer's events strictly before it."""
    first_use = Window.partitionBy("customer_id", "address_key")
    events = orders.select(
        "customer_id",
        "order_id",
        "t",
        F.lit(1).alias("is_order"),
        F.lit(0).alias("is_return"),
        "amount_minor",
        F.when(F.min("t").over(first_use) == F.col("t"), 1).otherwise(0).alias("first_address_use"),
        F.lit(None).cast("string").alias("reason_code"),
    ).unionByName(
        returns.select(
            "customer_id",
            F.lit(None).cast("string").alias("order_id"),
            "t",
            F.lit(0).alias("is_order"),
            F.lit(1).alias("is_return"),
            F.lit(0).cast("long").alias("amount_minor"),
            F.lit(0).alias("first_address_use"),
            "reason_code",
        )
    )
    by_time = Window.partitionBy("customer_id").orderBy("t")
    history = by_time.rangeBetween(Window.unboundedPreceding, -1)
    damaged = F.col("reason_code").isin(*sorted(DAMAGE_REASON_CODES)).cast("int")
    refused = (F.col("reason_code") == COD_REFUSAL_REASON_CODE).cast("int")
    claims = {claim: claim_flag(claim) for claim in ("mismatch", "fit_quality")}
    counted = events.select(
        "order_id",
        "is_order",
        F.coalesce(F.sum("is_order").over(history), F.lit(0)).alias("n"),
        F.coalesce(F.sum("is_return").over(history), F.lit(0)).alias("k"),
        F.coalesce(F.sum("amount_minor").over(history), F.lit(0)).alias("amount_sum"),
        F.coalesce(F.sum(F.coalesce(damaged, F.lit(0))).over(history), F.lit(0)).alias("damaged"),
        F.coalesce(F.sum(F.coalesce(refused, F.lit(0))).over(history), F.lit(0)).alias("refusals"),
        F.max(F.when(F.col("is_return") == 1, F.col("t"))).over(history).alias("last_return"),
        F.min(F.when(F.col("is_return") == 1, F.col("t"))).over(history).alias("first_return"),
        F.max(F.when(F.col("is_order") == 1, F.col("t"))).over(history).alias("last_order"),
        *[
            F.coalesce(F.sum(F.coalesce(flag, F.lit(0))).over(history), F.lit(0)).alias(f"claims_{claim}")
            for claim, flag in claims.items()
        ],
        F.coalesce(F.sum("is_return").over(by_time.rangeBetween(-RETURN_WINDOW_MS, -1)), F.lit(0)).alias(
            "r30"
        ),
        F.coalesce(F.sum("is_order").over(by_time.rangeBetween(-VELOCITY_SHORT_MS, -1)), F.lit(0)).alias(
            "v60"
        ),
        F.coalesce(F.sum("is_order").over(by_time.rangeBetween(-VELOCITY_LONG_MS, -1)), F.lit(0)).alias(
            "v1h"
        ),
        F.coalesce(F.sum("first_address_use").over(history), F.lit(0)).alias("addresses"),
    ).where(F.col("is_order") == 1)

    # Returned-before-t among the last 6 orders: each prior order's first return time, in a list.
    returned_at = returns.groupBy("order_id").agg(F.min("t").alias("returned_at"))
    last6 = Window.partitionBy("customer_id").orderBy("t", "order_id").rowsBetween(-RECENT_ORDERS, -1)
    recent = (
        orders.join(returned_at, "order_id", "left")
        .select(
            "order_id",
            "t",
            F.collect_list(F.coalesce(F.col("returned_at"), F.lit(NO_RETURN))).over(last6).alias("last6"),
        )
        .select(
            "order_id",
            F.size("last6").alias("last6_count"),
            F.size(F.filter("last6", lambda r: r < F.col("t"))).alias("last6_returned"),
        )
    )

    n, k, t = F.col("n"), F.col("k"), F.col("o.t")
    registered = F.col("registered_at_ms")
    joined = (
        orders.alias("o")
        .join(counted.drop("is_order"), "order_id")
        .join(recent, "order_id")
        .join(profiles, "customer_id", "left")
    )
    return joined.select(
        "order_id",
        F.when(registered.isNotNull() & (registered <= t), (t - registered) / F.lit(DAY_MS))
        .otherwise(0.0)
        .alias("customer_account_age_days"),
        n.cast("double").alias("customer_order_count"),
        k.cast("double").alias("customer_return_count"),
        F.when(n > 0, k / n).otherwise(0.0).alias("customer_return_rate"),
        F.col("last6_returned").cast("double").alias("customer_returns_last_6_orders"),
        F.when(F.col("last6_count") > 0, F.col("last6_returned") / F.col("last6_count"))
        .otherwise(0.0)
        .alias("customer_return_rate_last_6"),
        F.col("r30").cast("double").alias("customer_returns_last_30d"),
        F.when(F.col("last_return").isNotNull(), (t - F.col("last_return")) / F.lit(DAY_MS))
        .otherwise(-1.0)
        .alias("customer_days_since_last_return"),
        F.col("damaged").cast("double").alias("customer_damaged_claims"),
        F.col("refusals").cast("double").alias("customer_cod_refusals"),
        *[F.col(f"claims_{claim}").cast("double").alias(f"customer_{claim}_claims") for claim in claims],
        F.when(F.col("first_return").isNotNull(), (t - F.col("first_return")) / F.lit(DAY_MS))
        .otherwise(-1.0)
        .alias("customer_days_since_first_return"),
        F.when(F.col("last_order").isNotNull(), (t - F.col("last_order")) / F.lit(DAY_MS))
        .otherwise(-1.0)
        .alias("customer_days_since_last_order"),
        F.when(n > 0, F.col("amount_sum") / (n * 100)).otherwise(0.0).alias("customer_avg_order_amount"),
        F.when((n > 0) & (F.col("amount_sum") > 0), (F.col("o.amount_minor") * n) / F.col("amount_sum"))
        .otherwise(1.0)
        .alias("amount_vs_customer_avg"),
        F.col("addresses").cast("double").alias("customer_distinct_addresses"),
        F.col("v60").cast("double").alias("customer_orders_last_60s"),
        F.col("v1h").cast("double").alias("customer_orders_last_1h"),
        n.alias("prior_orders"),  # for category_value_vs_customer_avg
        F.col("amount_sum").alias("prior_amount_sum"),
    )


def claim_flag(claim: str) -> Any:
    """1 when the row's reason_code is one of CLAIM_TYPES[claim] (returnguard.features.claim_types)."""
    return F.col("reason_code").isin(*sorted(CLAIM_TYPES[claim])).cast("int")


def seller_claim_flag() -> Any:
    return F.greatest(*[claim_flag(claim) for claim in SELLER_CLAIM_TYPES])


def cart_features(orders: DataFrame) -> DataFrame:
    """Same product / same category orders by the customer in the hour before each order."""
    result = orders.select("order_id")
    for name, column in (("product", "product_id"), ("category", "category")):
        last_hour = Window.partitionBy("customer_id", column).orderBy("t").rangeBetween(-VELOCITY_LONG_MS, -1)
        result = result.join(
            orders.select(
                "order_id",
                F.coalesce(F.sum(F.lit(1)).over(last_hour), F.lit(0))
                .cast("double")
                .alias(f"customer_same_{name}_last_1h"),
            ),
            "order_id",
        )
    return result


def price_band_column(amount_minor: Any) -> Any:
    """returnguard.features.price_band: how many PRICE_BAND_BOUNDS_MINOR the amount reaches."""
    return sum((amount_minor >= F.lit(bound)).cast("int") for bound in PRICE_BAND_BOUNDS_MINOR)


def day_number(t: str) -> Any:
    """The UTC day number of a time in ms (t // DAY_MS for the times we have, all after 1970)."""
    return F.expr(f"`{t}` div {DAY_MS}")


def category_features(orders: DataFrame, customers: DataFrame) -> DataFrame:
    """category_price_percentile and category_value_vs_customer_avg from the category's orders
    strictly before each order: counts per price band and the amount sum (returnguard.features
    ._category_features), with the customer's prior orders and amount sum from `customers`."""
    history = Window.partitionBy("category").orderBy("t").rangeBetween(Window.unboundedPreceding, -1)
    banded = orders.select(
        "order_id", "category", "t", "amount_minor", price_band_column(F.col("amount_minor")).alias("band")
    )
    bands = F.array(
        *[
            F.coalesce(F.sum((F.col("band") == b).cast("long")).over(history), F.lit(0))
            for b in range(PRICE_BANDS)
        ]
    )
    counted = banded.select(
        "order_id",
        "band",
        bands.alias("bands"),
        F.coalesce(F.sum("amount_minor").over(history), F.lit(0)).alias("category_sum"),
    ).select(
        "order_id",
        "category_sum",
        F.aggregate("bands", F.lit(0).cast("long"), lambda total, x: total + x).alias("category_orders"),
        F.aggregate(
            F.transform("bands", lambda x, i: F.when(i < F.col("band"), x).otherwise(F.lit(0).cast("long"))),
            F.lit(0).cast("long"),
            lambda total, x: total + x,
        ).alias("below"),
        F.element_at("bands", F.col("band") + 1).alias("same"),
    )
    m, k, total = F.col("category_orders"), F.col("prior_orders"), F.col("prior_amount_sum")
    return counted.join(customers.select("order_id", "prior_orders", "prior_amount_sum"), "order_id").select(
        "order_id",
        F.when(m > 0, (2 * F.col("below") + F.col("same")) / (2 * m))
        .otherwise(0.5)
        .alias("category_price_percentile"),
        F.when(
            (m > 0) & (k > 0) & (total > 0),
            (F.col("category_sum") * k).cast("double") / (m * total).cast("double"),
        )
        .otherwise(1.0)
        .alias("category_value_vs_customer_avg"),
    )


def seller_volume(orders: DataFrame) -> DataFrame:
    """seller_volume_change: the seller's orders in the SELLER_RECENT_DAYS UTC days before the
    order's day against its weekly average over the SELLER_BASELINE_DAYS before those."""
    days = orders.select("order_id", "seller_id", day_number("t").alias("day"))
    by_day = Window.partitionBy("seller_id").orderBy("day")
    recent = by_day.rangeBetween(-SELLER_RECENT_DAYS, -1)
    baseline = by_day.rangeBetween(-SELLER_DAYS_KEPT, -SELLER_RECENT_DAYS - 1)
    weeks = SELLER_BASELINE_DAYS // SELLER_RECENT_DAYS
    daily = (
        days.groupBy("seller_id", "day")
        .agg(F.count("*").alias("n"))
        .select(
            "seller_id",
            "day",
            F.coalesce(F.sum("n").over(recent), F.lit(0)).alias("recent"),
            F.coalesce(F.sum("n").over(baseline), F.lit(0)).alias("baseline"),
        )
    )
    return days.join(daily, ["seller_id", "day"]).select(
        "order_id",
        ((weeks * F.col("recent") + weeks) / (F.col("baseline") + weeks)).alias("seller_volume_change"),
    )


def first_with_seller() -> Any:
    """1 on a customer's first order with the seller by (time, order id): the order the replay applies
    while the customer_seller item counts no order yet (returnguard.aggregates, `buyers`)."""
    pair = Window.partitionBy("customer_id", "seller_id").orderBy("t", "order_id")
    return (F.row_number().over(pair) == 1).cast("int")


def seller_features(orders: DataFrame, returns: DataFrame) -> DataFrame:
    """Seller age (first order strictly before), smoothed claim rate and repeat-order share from counts
    strictly before."""
    events = orders.select(
        F.col("seller_id").alias("id"),
        "t",
        "order_id",
        F.lit(1).alias("o"),
        F.lit(0).alias("c"),
        first_with_seller().alias("b"),
    ).unionByName(
        returns.select(
            F.col("seller_id").alias("id"),
            "t",
            F.lit(None).cast("string").alias("order_id"),
            F.lit(0).alias("o"),
            seller_claim_flag().alias("c"),
            F.lit(0).alias("b"),
        )
    )
    history = Window.partitionBy("id").orderBy("t").rangeBetween(Window.unboundedPreceding, -1)
    first = F.min(F.when(F.col("o") == 1, F.col("t"))).over(history)
    seller_orders = F.coalesce(F.sum("o").over(history), F.lit(0))
    return (
        events.select(
            "order_id",
            "o",
            F.when(first.isNotNull(), (F.col("t") - first) / F.lit(DAY_MS))
            .otherwise(0.0)
            .alias("seller_age_days"),
            (
                (F.coalesce(F.sum("c").over(history), F.lit(0)) + F.lit(RATE_PRIOR_RETURNS))
                / (seller_orders + F.lit(RATE_PRIOR_ORDERS))
            ).alias("seller_claim_rate"),
            # every order but each buyer's first (the repeat orders), smoothed like the rates
            (
                (seller_orders - F.coalesce(F.sum("b").over(history), F.lit(0)) + F.lit(RATE_PRIOR_RETURNS))
                / (seller_orders + F.lit(RATE_PRIOR_ORDERS))
            ).alias("seller_repeat_order_share"),
        )
        .where(F.col("o") == 1)
        .drop("o")
    )


def pair_events(orders: DataFrame, returns: DataFrame) -> DataFrame:
    """(group, id, t, order_id, o, r, c) per order and return on the customer's items with its seller
    and its category (returnguard.features.pair_ids)."""
    frames = []
    for group, column in PAIR_GROUPS.items():
        key = pair_key_column(F.col("customer_id"), F.col(column)).alias("id")
        frames.append(
            orders.select(
                F.lit(group).alias("group"),
                key,
                "t",
                "order_id",
                F.lit(1).alias("o"),
                F.lit(0).alias("r"),
                F.lit(0).alias("c"),
            )
        )
        frames.append(
            returns.select(
                F.lit(group).alias("group"),
                key,
                "t",
                F.lit(None).cast("string").alias("order_id"),
                F.lit(0).alias("o"),
                F.lit(1).alias("r"),
                seller_claim_flag().alias("c"),
            )
        )
    events = frames[0]
    for frame in frames[1:]:
        events = events.unionByName(frame)
    return events


def pair_features(orders: DataFrame, returns: DataFrame) -> DataFrame:
    """customer_seller_orders / _claims and customer_category_returns / _return_rate from the pair's
    counts strictly before each order."""
    history = Window.partitionBy("group", "id").orderBy("t").rangeBetween(Window.unboundedPreceding, -1)
    counted = (
        pair_events(orders, returns)
        .select(
            "group",
            "order_id",
            "o",
            *[F.coalesce(F.sum(c).over(history), F.lit(0)).alias(f"n_{c}") for c in ("o", "r", "c")],
        )
        .where(F.col("o") == 1)
        .groupBy("order_id")
        .pivot("group", list(PAIR_GROUPS))
        .agg(F.first("n_o").alias("o"), F.first("n_r").alias("r"), F.first("n_c").alias("c"))
    )
    n, k = F.col("customer_category_o"), F.col("customer_category_r")
    return counted.select(
        "order_id",
        F.col("customer_seller_o").cast("double").alias("customer_seller_orders"),
        F.col("customer_seller_c").cast("double").alias("customer_seller_claims"),
        k.cast("double").alias("customer_category_returns"),
        F.when(n > 0, k / n).otherwise(0.0).alias("customer_category_return_rate"),
    )


def address_is_new(orders: DataFrame) -> DataFrame:
    """New unless this customer first used the address strictly earlier."""
    first_use = Window.partitionBy("customer_id", "address_key")
    return orders.select(
        "order_id",
        F.when(F.min("t").over(first_use) < F.col("t"), 0.0).otherwise(1.0).alias("delivery_address_is_new"),
    )


def link_events(orders: DataFrame, extra: tuple[str, ...] = ("order_id",)) -> DataFrame:
    """(group, id, customer_id, t, *extra) per order (or return) and link item: its address and each
    identifier it carries (returnguard.features.link_ids, ReturnContext.link_ids)."""
    events = orders.select(
        F.lit(LINK_ITEMS["address"]).alias("group"),
        F.col("address_key").alias("id"),
        "customer_id",
        "t",
        *extra,
    )
    for group, column in LINK_IDENTIFIERS.items():
        events = events.unionByName(
            orders.where(F.col(column).isNotNull() & (F.col(column) != "")).select(
                F.lit(LINK_ITEMS[group]).alias("group"),
                F.col(column).alias("id"),
                "customer_id",
                "t",
                *extra,
            )
        )
    return events


def first_uses(uses: DataFrame, item: list[str]) -> DataFrame:
    """Per link item (the `item` columns), its earliest LINK_CAP customers by (first use, id): the
    customers the item holds (returnguard.aggregates._link)."""
    first = uses.groupBy(*item, "customer_id").agg(F.min("t").alias("first"))
    rank = Window.partitionBy(*item).orderBy("first", "customer_id")
    return first.withColumn("rank", F.row_number().over(rank)).where(F.col("rank") <= LINK_CAP)


def link_first_uses(orders: DataFrame) -> DataFrame:
    return first_uses(link_events(orders), ["group", "id"])


def address_links(uses: DataFrame) -> DataFrame:
    """address_other_customers for uses of one kind of link item, keyed by `address_key`
    (order_id, customer_id, address_key, t): the return lane counts its text items with it."""
    linked = first_uses(uses, ["address_key"]).select(
        "address_key", F.col("customer_id").alias("other"), "first"
    )
    matches = (
        uses.select("order_id", "customer_id", "address_key", "t")
        .join(linked, "address_key")
        .where((F.col("other") != F.col("customer_id")) & (F.col("first") < F.col("t")))
        .groupBy("order_id")
        .agg(F.count("*").alias("n"))
    )
    return (
        uses.select("order_id")
        .join(matches, "order_id", "left")
        .select("order_id", F.coalesce(F.col("n"), F.lit(0)).cast("double").alias("address_other_customers"))
    )


def latest_addresses(uses: DataFrame) -> DataFrame:
    """The latest state of each item of one kind keyed by `address_key` (the return lane's texts)."""
    last = uses.groupBy("address_key").agg(F.max("t").cast("long").alias("last_event_ms"))
    customers = (
        first_uses(uses, ["address_key"])
        .groupBy("address_key")
        .agg(F.map_from_entries(F.collect_list(F.struct("customer_id", "first"))).alias("customers"))
    )
    return customers.join(last, "address_key")


def links(orders: DataFrame) -> DataFrame:
    """<group>_other_customers: other customers (of the item's capped set) first seen with the
    order's address / identifier strictly before the order; one join for every link group."""
    linked = link_first_uses(orders).select("group", "id", F.col("customer_id").alias("other"), "first")
    counts = (
        link_events(orders)
        .join(linked, ["group", "id"])
        .where((F.col("other") != F.col("customer_id")) & (F.col("first") < F.col("t")))
        .groupBy("order_id")
        .pivot("group", [LINK_ITEMS[group] for group in LINK_GROUPS])
        .count()
    )
    return (
        orders.select("order_id")
        .join(counts, "order_id", "left")
        .select(
            "order_id",
            *[
                F.coalesce(F.col(LINK_ITEMS[group]), F.lit(0))
                .cast("double")
                .alias(f"{group}_other_customers")
                for group in LINK_GROUPS
            ],
        )
    )


def link_returns(returns: DataFrame) -> DataFrame:
    """Per link item (group, id), its earliest LINK_CAP returns by (time, return id): what the item
    holds (returnguard.aggregates.apply_return_to_link)."""
    rank = Window.partitionBy("group", "id").orderBy("t", "return_id")
    claimed = returns.select("*", seller_claim_flag().alias("claim"))
    return (
        link_events(claimed, ("return_id", "claim"))
        .withColumn("rank", F.row_number().over(rank))
        .where(F.col("rank") <= LINK_CAP)
        .drop("rank")
    )


def linked_returns(orders: DataFrame, returns: DataFrame) -> DataFrame:
    """<group>_linked_returns / _claims: each link item's returns by other customers before the order."""
    linked = link_returns(returns).select(
        "group", "id", F.col("t").alias("rt"), F.col("customer_id").alias("other"), "claim"
    )
    groups = [LINK_ITEMS[group] for group in LINK_GROUPS]
    counts = (
        link_events(orders)
        .join(linked, ["group", "id"])
        .where((F.col("other") != F.col("customer_id")) & (F.col("rt") < F.col("t")))
        .groupBy("order_id")
        .pivot("group", groups)
        .agg(F.count("*").alias("n"), F.sum("claim").alias("claims"))
    )
    return (
        orders.select("order_id")
        .join(counts, "order_id", "left")
        .select(
            "order_id",
            *[
                F.coalesce(F.col(f"{LINK_ITEMS[group]}_{column}"), F.lit(0)).cast("double").alias(name)
                for group in LINK_GROUPS
                for column, name in (("n", f"{group}_linked_returns"), ("claims", f"{group}_linked_claims"))
            ],
        )
    )


def entity_rates(orders: DataFrame, returns: DataFrame) -> DataFrame:
    """product/seller/category/region return rates from counts strictly before each order."""
    result = orders.select("order_id")
    for group, column in ENTITY_COLUMNS.items():
        events = orders.select(
            F.col(column).alias("id"), "t", "order_id", F.lit(1).alias("o"), F.lit(0).alias("r")
        )
        events = events.unionByName(
            returns.select(
                F.col(column).alias("id"),
                "t",
                F.lit(None).cast("string").alias("order_id"),
                F.lit(0).alias("o"),
                F.lit(1).alias("r"),
            )
        )
        history = Window.partitionBy("id").orderBy("t").rangeBetween(Window.unboundedPreceding, -1)
        rates = (
            events.select(
                "order_id",
                "o",
                (
                    (F.coalesce(F.sum("r").over(history), F.lit(0)) + F.lit(RATE_PRIOR_RETURNS))
                    / (F.coalesce(F.sum("o").over(history), F.lit(0)) + F.lit(RATE_PRIOR_ORDERS))
                ).alias(f"{group}_return_rate"),
            )
            .where(F.col("o") == 1)
            .drop("o")
        )
        result = result.join(rates, "order_id")
    return result


def training_table(
    orders: DataFrame, returns: DataFrame, profiles: DataFrame, labels: DataFrame | None
) -> DataFrame:
    base = orders.select(
        "order_id",
        "customer_id",
        F.col("t").alias("order_time_ms"),
        "dt",
        (F.col("amount_minor") / 100).alias("order_amount"),
        F.when(F.col("payment_method") == "cod", 1.0).otherwise(0.0).alias("payment_is_cod"),
        festival_flag(F.col("t")).alias("is_festival_sale"),
        days_to_festival(F.col("t")).alias("days_to_festival"),
    )
    customers = customer_features(orders, returns, profiles).cache()
    table = (
        base.join(customers, "order_id")
        .join(category_features(orders, customers), "order_id")
        .join(seller_volume(orders), "order_id")
        .join(address_is_new(orders), "order_id")
        .join(entity_rates(orders, returns), "order_id")
        .join(links(orders), "order_id")
        .join(cart_features(orders), "order_id")
        .join(linked_returns(orders, returns), "order_id")
        .join(seller_features(orders, returns), "order_id")
        .join(pair_features(orders, returns), "order_id")
    )
    if labels is not None:
        table = table.join(labels, "order_id", "left")
    else:
        table = table.select(
            "*",
            F.lit(None).cast("int").alias("label"),
            F.lit(None).cast("long").alias("labeled_at_ms"),
            F.lit(None).cast("string").alias("abuse_type"),
        )
    # No label row: label 0 with labeled_at_ms null, so training can tell "known not abusive" (a label
    # row, or an order old enough that none will come) from "not known yet" (a young order).
    return table.select(
        "order_id",
        "customer_id",
        "order_time_ms",
        "dt",
        *[F.col(name).cast("double").alias(name) for name in FEATURE_NAMES],
        F.coalesce(F.col("label"), F.lit(0)).cast("int").alias("label"),
        F.col("labeled_at_ms").cast("long").alias("labeled_at_ms"),
        F.col("abuse_type"),
    )


# --- latest aggregates ----------------------------------------------------------------------------


def latest_customers(orders: DataFrame, returns: DataFrame, profiles: DataFrame) -> DataFrame:
    """The state `returnguard.aggregates` holds for each customer after the whole history."""
    returned_at = returns.groupBy("order_id").agg(F.min("t").alias("returned_at"))
    order_totals = orders.groupBy("customer_id").agg(
        F.count("*").alias("order_count"),
        F.sum("amount_minor").alias("amount_sum_minor"),
        F.max("t").alias("last_order_ms"),
    )
    damaged = F.col("reason_code").isin(*sorted(DAMAGE_REASON_CODES)).cast("int")
    return_totals = returns.groupBy("customer_id").agg(
        F.count("*").alias("return_count"),
        F.sum(damaged).alias("damaged_claims"),
        F.sum((F.col("reason_code") == COD_REFUSAL_REASON_CODE).cast("int")).alias("cod_refusals"),
        *[F.sum(claim_flag(claim)).alias(f"claims_{claim}") for claim in CLAIM_TYPES],
        F.min("t").alias("first_return_ms"),
        F.max("t").alias("last_return_ms"),
    )
    addresses = (
        orders.groupBy("customer_id", "address_key")
        .agg(F.min("t").alias("first_used"))
        .groupBy("customer_id")
        .agg(F.map_from_entries(F.collect_list(F.struct("address_key", "first_used"))).alias("addresses"))
    )
    ids = (
        profiles.select("customer_id")
        .unionByName(orders.select("customer_id"))
        .unionByName(returns.select("customer_id"))
        .distinct()
    )
    customers = (
        ids.join(profiles, "customer_id", "left")
        .join(order_totals, "customer_id", "left")
        .join(return_totals, "customer_id", "left")
        .join(addresses, "customer_id", "left")
        .select(
            "customer_id",
            "registered_at_ms",
            F.coalesce("order_count", F.lit(0)).cast("long").alias("order_count"),
            F.coalesce("amount_sum_minor", F.lit(0)).cast("long").alias("amount_sum_minor"),
            F.coalesce("return_count", F.lit(0)).cast("long").alias("return_count"),
            F.coalesce("damaged_claims", F.lit(0)).cast("long").alias("damaged_claims"),
            F.coalesce("cod_refusals", F.lit(0)).cast("long").alias("cod_refusals"),
            *[
                F.coalesce(f"claims_{claim}", F.lit(0)).cast("long").alias(f"claims_{claim}")
                for claim in CLAIM_TYPES
            ],
            "first_return_ms",
            "last_return_ms",
            F.greatest(F.coalesce("last_order_ms", F.lit(0)), F.coalesce("last_return_ms", F.lit(0)))
            .cast("long")
            .alias("last_event_ms"),
            "addresses",
        )
    )
    # Recent orders: the last 6, plus any within an hour of the customer's latest event.
    newest_first = Window.partitionBy("customer_id").orderBy(F.col("t").desc(), F.col("order_id").desc())
    recent_orders = (
        orders.join(returned_at, "order_id", "left")
        .join(customers.select("customer_id", "last_event_ms"), "customer_id")
        .withColumn("rank", F.row_number().over(newest_first))
        .where((F.col("rank") <= RECENT_ORDERS) | (F.col("t") >= F.col("last_event_ms") - HOUR_MS))
        .groupBy("customer_id")
        .agg(
            F.array_sort(
                F.collect_list(
                    F.struct(
                        "t",
                        "order_id",
                        "amount_minor",
                        "address_key",
                        "returned_at",
                        "product_id",
                        "category",
                    )
                )
            ).alias("recent_orders")
        )
    )
    recent_returns = (
        returns.join(customers.select("customer_id", "last_event_ms"), "customer_id")
        .where(F.col("t") >= F.col("last_event_ms") - RETURN_WINDOW_MS)
        .groupBy("customer_id")
        .agg(F.array_sort(F.collect_list(F.struct("t", "reason_code"))).alias("recent_returns"))
    )
    return customers.join(recent_orders, "customer_id", "left").join(recent_returns, "customer_id", "left")


def latest_entities(orders: DataFrame, returns: DataFrame) -> DataFrame:
    frames = []
    for group, column in ENTITY_COLUMNS.items():
        events = orders.select(
            F.col(column).alias("id"), "t", F.lit(1).alias("o"), F.lit(0).alias("r"), F.lit(0).alias("c")
        ).unionByName(
            returns.select(
                F.col(column).alias("id"),
                "t",
                F.lit(0).alias("o"),
                F.lit(1).alias("r"),
                seller_claim_flag().alias("c"),
            )
        )
        frames.append(
            events.groupBy("id").agg(
                F.lit(group).alias("group"),
                F.sum("o").cast("long").alias("order_count"),
                F.sum("r").cast("long").alias("return_count"),
                F.max("t").cast("long").alias("last_event_ms"),
                F.sum("c").cast("long").alias("claim_count"),
                F.min(F.when(F.col("o") == 1, F.col("t"))).cast("long").alias("first_order_ms"),
            )
        )
    result = frames[0]
    for frame in frames[1:]:
        result = result.unionByName(frame)
    bands = (
        orders.groupBy("category", price_band_column(F.col("amount_minor")).alias("band"))
        .agg(F.count("*").alias("n"))
        .groupBy("category")
        .agg(
            F.map_from_entries(F.collect_list(F.struct("band", "n"))).alias("counts"),
        )
        .join(orders.groupBy("category").agg(F.sum("amount_minor").alias("amount_sum_minor")), "category")
        .select(
            F.lit("category").alias("group"),
            F.col("category").alias("id"),
            F.transform(
                F.sequence(F.lit(0), F.lit(PRICE_BANDS - 1)),
                lambda b: F.coalesce(F.col("counts")[b], F.lit(0)).cast("long"),
            ).alias("price_bands"),
            F.col("amount_sum_minor").cast("long").alias("amount_sum_minor"),
        )
    )
    days = orders.groupBy("seller_id", day_number("t").alias("day")).agg(F.count("*").alias("n"))
    latest_day = Window.partitionBy("seller_id")
    daily = (
        days.withColumn("latest", F.max("day").over(latest_day))
        .where(F.col("day") >= F.col("latest") - SELLER_DAYS_KEPT)
        .groupBy("seller_id")
        .agg(F.array_sort(F.collect_list(F.struct("day", "n"))).alias("daily_orders"))
        .join(orders.groupBy("seller_id").agg(F.countDistinct("customer_id").alias("buyers")), "seller_id")
        .select(F.lit("seller").alias("group"), F.col("seller_id").alias("id"), "daily_orders", "buyers")
    )
    return (
        result.join(bands, ["group", "id"], "left")
        .join(daily, ["group", "id"], "left")
        .select(
            "group",
            "id",
            "order_count",
            "return_count",
            "last_event_ms",
            "claim_count",
            "first_order_ms",
            "price_bands",
            "amount_sum_minor",
            "daily_orders",
            F.col("buyers").cast("long").alias("buyers"),
        )
    )


def latest_pairs(orders: DataFrame, returns: DataFrame) -> DataFrame:
    """The customer_seller / customer_category items after the whole history (returnguard.aggregates)."""
    return (
        pair_events(orders, returns)
        .groupBy("group", "id")
        .agg(
            F.sum("o").cast("long").alias("order_count"),
            F.sum("r").cast("long").alias("return_count"),
            F.sum("c").cast("long").alias("claim_count"),
            F.max("t").cast("long").alias("last_event_ms"),
        )
    )


def pair_state(row: Any) -> dict[str, Any]:
    return {name: int(row[name]) for name in ("order_count", "return_count", "claim_count", "last_event_ms")}


def latest_links(orders: DataFrame, returns: DataFrame) -> DataFrame:
    """The state `returnguard.aggregates` holds for each link item after the whole history."""
    last = link_events(orders).groupBy("group", "id").agg(F.max("t").cast("long").alias("last_event_ms"))
    customers = (
        link_first_uses(orders)
        .groupBy("group", "id")
        .agg(F.map_from_entries(F.collect_list(F.struct("customer_id", "first"))).alias("customers"))
    )
    kept = (
        link_returns(returns)
        .groupBy("group", "id")
        .agg(
            F.array_sort(F.collect_list(F.struct("t", "return_id", "customer_id", "claim"))).alias("returns")
        )
    )
    return customers.join(last, ["group", "id"]).join(kept, ["group", "id"], "left")


def link_state(row: Any) -> dict[str, Any]:
    state: dict[str, Any] = {
        "customers": {k: int(v) for k, v in (row["customers"] or {}).items()},
        "last_event_ms": int(row["last_event_ms"]),
    }
    if row["returns"]:
        state["returns"] = [
            [int(r["t"]), r["return_id"], r["customer_id"], int(r["claim"])] for r in row["returns"]
        ]
    return state


def address_state(row: Any) -> dict[str, Any]:
    """A `latest_addresses` row as its item (customers and last event only)."""
    return {
        "customers": {k: int(v) for k, v in (row["customers"] or {}).items()},
        "last_event_ms": int(row["last_event_ms"]),
    }


def customer_state(row: Any) -> dict[str, Any]:
    """A `features/customers` row as the aggregate dict of returnguard.aggregates."""
    data = row.asDict(recursive=True) if hasattr(row, "asDict") else dict(row)
    return {
        "registered_at_ms": data["registered_at_ms"],
        "order_count": int(data["order_count"]),
        "amount_sum_minor": int(data["amount_sum_minor"]),
        "return_count": int(data["return_count"]),
        "damaged_claims": int(data["damaged_claims"]),
        "cod_refusals": int(data["cod_refusals"]),
        "claims": {claim: int(data[f"claims_{claim}"]) for claim in CLAIM_TYPES},
        "first_return_ms": data["first_return_ms"],
        "last_return_ms": data["last_return_ms"],
        "last_event_ms": int(data["last_event_ms"]),
        "addresses": dict(data["addresses"] or {}),
        "recent_orders": [
            [
                o["t"],
                o["order_id"],
                o["amount_minor"],
                o["address_key"],
                o["returned_at"],
                o["product_id"],
                o["category"],
            ]
            for o in data["recent_orders"] or []
        ],
        "recent_returns": [[r["t"], r["reason_code"]] for r in data["recent_returns"] or []],
    }


def entity_state(row: Any) -> dict[str, Any]:
    state = {
        "order_count": int(row["order_count"]),
        "return_count": int(row["return_count"]),
        "last_event_ms": int(row["last_event_ms"]),
        "claim_count": int(row["claim_count"]),
        "first_order_ms": None if row["first_order_ms"] is None else int(row["first_order_ms"]),
    }
    if row["price_bands"] is not None:  # a category
        state["price_bands"] = [int(n) for n in row["price_bands"]]
        state["amount_sum_minor"] = int(row["amount_sum_minor"])
    if row["daily_orders"] is not None:  # a seller
        state["daily_orders"] = [[int(d["day"]), int(d["n"])] for d in row["daily_orders"]]
        state["buyers"] = int(row["buyers"])
    return state


def load_online(path: str | Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(pk, state) pairs from a `features/online/` folder, for loading into the features table, and
    from the return lane's `features/online-texts/` beside it when there is one."""
    folders = [Path(path)]
    if folders[0].name == "online" and folders[0].with_name("online-texts").is_dir():
        folders.append(folders[0].with_name("online-texts"))
    for file in (f for folder in folders for f in sorted(folder.glob("*.jsonl"))):
        with file.open() as lines:
            for line in lines:
                if line.strip():
                    item = json.loads(line)
                    yield item["pk"], item["state"]


# --- writing ------------------------------------------------------------------------------------


def _is_local(path: str) -> bool:
    return "://" not in path or path.startswith("file://")


def write_parquet(frame: DataFrame, path: str, partition_by: list[str] | None = None) -> None:
    """Local paths: write beside, then swap in, so a failed run never leaves a half table in place."""
    writer = frame.write.mode("overwrite")
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    if not _is_local(path):
        writer.parquet(path)  # S3: Spark's committer writes _SUCCESS last; readers check for it
        return
    target = Path(path.removeprefix("file://"))
    staging = target.with_name(f".{target.name}.{uuid.uuid4().hex}")
    writer.parquet(str(staging))
    if target.exists():
        shutil.rmtree(target)
    os.replace(staging, target)


def write_online(
    customers: DataFrame, entities: DataFrame, path: str, link_items: DataFrame, pairs: DataFrame
) -> int:
    def lines(rows_of: Any) -> Iterator[str]:
        for row in rows_of(customers):
            yield json.dumps({"pk": entity_key("customer", row["customer_id"]), "state": customer_state(row)})
        for row in rows_of(entities):
            yield json.dumps({"pk": entity_key(row["group"], row["id"]), "state": entity_state(row)})
        for row in rows_of(link_items):
            yield json.dumps({"pk": entity_key(row["group"], row["id"]), "state": link_state(row)})
        for row in rows_of(pairs):
            yield json.dumps({"pk": entity_key(row["group"], row["id"]), "state": pair_state(row)})

    if not _is_local(path):
        rows = (
            customers.rdd.map(
                lambda r: json.dumps(
                    {"pk": entity_key("customer", r["customer_id"]), "state": customer_state(r)}
                )
            )
            .union(
                entities.rdd.map(
                    lambda r: json.dumps({"pk": entity_key(r["group"], r["id"]), "state": entity_state(r)})
                )
            )
            .union(
                link_items.rdd.map(
                    lambda r: json.dumps({"pk": entity_key(r["group"], r["id"]), "state": link_state(r)})
                )
            )
            .union(
                pairs.rdd.map(
                    lambda r: json.dumps({"pk": entity_key(r["group"], r["id"]), "state": pair_state(r)})
                )
            )
        )
        rows.saveAsTextFile(path)
        return int(rows.count())
    target = Path(path.removeprefix("file://"))
    staging = target.with_name(f".{target.name}.{uuid.uuid4().hex}")
    staging.mkdir(parents=True)
    count = 0
    with (staging / "part-0000.jsonl").open("w") as out:
        for line in lines(lambda frame: frame.toLocalIterator()):
            out.write(line + "\n")
            count += 1
    if target.exists():
        shutil.rmtree(target)
    os.replace(staging, target)
    return count


# --- the job --------------------------------------------------------------------------------------


def run(spark: SparkSession, raw_path: str, processed_path: str) -> dict[str, int]:
    """Build every output from raw_path into processed_path; returns row counts."""
    started = time.perf_counter()
    raw, processed = raw_path.rstrip("/"), processed_path.rstrip("/")
    orders = load_orders(spark, raw).cache()
    returns = load_returns(spark, raw, orders).cache()
    profiles = load_profiles(spark, raw).cache()
    labels = load_labels(spark, raw)
    counts = {"orders": orders.count(), "returns": returns.count(), "customers": profiles.count()}
    log(f"read {counts['orders']:,} orders, {counts['returns']:,} returns, {counts['customers']:,} customers")

    table = training_table(orders, returns, profiles, labels)
    write_parquet(table, f"{processed}/training-data", partition_by=None)
    counts["training_rows"] = spark.read.parquet(f"{processed}/training-data").count()
    log(f"wrote training-data: {counts['training_rows']:,} rows")

    customers = latest_customers(orders, returns, profiles)
    entities = latest_entities(orders, returns)
    write_parquet(customers, f"{processed}/features/customers")
    write_parquet(entities, f"{processed}/features/entities")
    write_parquet(latest_links(orders, returns), f"{processed}/features/links")
    write_parquet(latest_pairs(orders, returns), f"{processed}/features/pairs")
    customers = spark.read.parquet(f"{processed}/features/customers")
    entities = spark.read.parquet(f"{processed}/features/entities")
    link_items = spark.read.parquet(f"{processed}/features/links")
    pairs = spark.read.parquet(f"{processed}/features/pairs")
    counts["online_items"] = write_online(
        customers, entities, f"{processed}/features/online", link_items, pairs
    )
    log(
        f"wrote latest aggregates: {counts['online_items']:,} online items in {time.perf_counter() - started:.1f}s"
    )
    from glue_jobs import return_features  # the return lane (issue 11), from the same inputs

    counts.update(return_features.run(spark, raw, processed, orders, returns, profiles))
    if _exists(spark, f"{raw}/payments"):  # card payments (issue 12): processed/payments/
        from glue_jobs import payment_features

        counts.update({f"payment_{k}": v for k, v in payment_features.run(spark, raw, processed).items()})
    for frame in (orders, returns, profiles):
        frame.unpersist()
    return counts


def local_session(cores: str = "local[*]") -> SparkSession:
    """Outside Glue: the local settings every local Spark job shares (local/spark.py)."""
    from local.spark import local_session as shared_session

    session: SparkSession = shared_session("returnguard-features", cores)
    return session


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
        spark = local_session()
        run(spark, args.raw_path, args.processed_path)
        spark.stop()
        return 0
    options = getResolvedOptions(["job", *argv], ["JOB_NAME", "raw_path", "processed_path"])
    glue = GlueContext(SparkContext.getOrCreate())
    spark = glue.spark_session
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    run(spark, options["raw_path"], options["processed_path"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
