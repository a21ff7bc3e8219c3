"""Synthetic data generator throughput: `generate` rows/s against a naive per-row Python loop, and `write_raw`."""

from __future__ import annotations

import random
import shutil
import tempfile
import time
from pathlib import Path

from returnguard.synth import PAYMENT_METHODS, SynthConfig, generate, write_raw

BASELINE_ROWS = 50_000


def naive_orders(rows: int, seed: int = 7) -> list[dict]:
    """The obvious way to write a generator: one dict per order from `random`, no abuse logic at all.

    Only the orders table with its columns, so the comparison flatters the baseline.
    """
    rnd = random.Random(seed)
    start = 1_704_067_200_000
    span = 730 * 86_400_000
    customers = max(40, rows // 8)
    products = max(100, rows // 20)
    out = []
    for i in range(rows):
        payment = rnd.choice(PAYMENT_METHODS)
        out.append(
            {
                "order_id": f"O{i + 1:08d}",
                "customer_id": f"C{rnd.randrange(customers) + 1:07d}",
                "product_id": f"P{rnd.randrange(products) + 1:06d}",
                "seller_id": f"S{rnd.randrange(100) + 1:05d}",
                "order_time": start + rnd.randrange(span),
                "amount": round(rnd.lognormvariate(7.0, 1.0), 2),
                "currency": "INR",
                "payment_method": payment,
                "delivery_address": f"{rnd.randrange(1, 400)} MG Road, Kothrud, Pune 411{rnd.randrange(100):03d}",
                "delivery_region": "MH",
                "card_fingerprint": f"{rnd.getrandbits(64):016x}" if payment == "card" else None,
            }
        )
    return out


def run(scale: str) -> list[dict]:
    orders = 100_000 if scale == "quick" else 1_000_000
    started = time.perf_counter()
    data = generate(SynthConfig(orders=orders))
    generate_seconds = time.perf_counter() - started

    started = time.perf_counter()
    naive_orders(BASELINE_ROWS)
    baseline_rate = BASELINE_ROWS / (time.perf_counter() - started)
    rate = orders / generate_seconds

    root = Path(tempfile.mkdtemp(prefix="bench-synth-"))
    try:
        started = time.perf_counter()
        written = write_raw(data, root)
        write_seconds = time.perf_counter() - started
        files = sum(1 for _ in (root / "raw").rglob("*.parquet"))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    rows = sum(written.values())
    return [
        {
            "name": f"generate {orders:,} orders (all tables)",
            "value": round(rate),
            "unit": "orders/s",
            "baseline": round(baseline_rate),
            "ratio": round(rate / baseline_rate, 2),
            "note": "baseline: naive per-row Python loop, orders table only, no abuse logic",
        },
        {"name": f"generate {orders:,} orders wall time", "value": round(generate_seconds, 2), "unit": "s"},
        {
            "name": f"write_raw {rows:,} rows, {files:,} Parquet files",
            "value": round(rows / write_seconds),
            "unit": "rows/s",
        },
        {"name": "write_raw wall time", "value": round(write_seconds, 2), "unit": "s"},
        {
            "name": "positive rate",
            "value": round(int(data.labels["is_abuse"].sum()) / orders, 4),
            "unit": "share",
        },
    ]
