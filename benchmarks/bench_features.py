"""Spark feature job wall time and throughput at two scales (local[2], the demo's settings).

Baseline in the same run: the pure-Python reference replay over the same history, so the ratio says
what Spark costs or saves on this machine.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from returnguard import synth
from returnguard.aggregates import replay


def run(scale: str) -> list[dict]:
    from glue_jobs.features import local_session
    from glue_jobs.features import run as run_job

    sizes = [10_000, 100_000] if scale == "quick" else [100_000, 1_000_000]
    spark = local_session("local[2]")
    spark.sparkContext.setLogLevel("ERROR")
    rows: list[dict] = []
    try:
        for size in sizes:
            with tempfile.TemporaryDirectory() as tmp:
                data = synth.generate(synth.SynthConfig(orders=size, seed=7))
                synth.write_raw(data, Path(tmp))
                started = time.perf_counter()
                run_job(spark, str(Path(tmp) / "raw"), str(Path(tmp) / "processed"))
                spark_seconds = time.perf_counter() - started
                started = time.perf_counter()
                _, walk = replay(*synth.to_contexts(data))
                for _ in walk:
                    pass
                replay_seconds = time.perf_counter() - started
            rows.append(
                {
                    "name": f"spark feature job, {size:,} orders",
                    "value": spark_seconds,
                    "unit": "s",
                    "baseline": replay_seconds,
                    "ratio": spark_seconds / replay_seconds,
                }
            )
            rows.append(
                {
                    "name": f"spark feature job throughput, {size:,} orders",
                    "value": size / spark_seconds,
                    "unit": "orders/s",
                }
            )
    finally:
        spark.stop()
    return rows
