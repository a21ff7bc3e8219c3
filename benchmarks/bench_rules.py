"""Spark rules job (glue_jobs/rules.py) wall time and the files it writes, at two scales (local[2], the
shared local Spark settings of local/spark.py).

Baseline in the same run: the feature job over the same lake in the same session, so the ratio says
what the rules job costs next to the job the demo already runs. Files: Parquet files under
processed/rules/ (at most one per date partition, plus the customers table).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from returnguard import synth


def run(scale: str) -> list[dict]:
    from glue_jobs.features import run as run_features
    from glue_jobs.rules import run as run_rules
    from local.spark import local_session

    sizes = [10_000, 100_000] if scale == "quick" else [100_000, 1_000_000]
    spark = local_session("returnguard-bench-rules", "local[2]")
    spark.sparkContext.setLogLevel("ERROR")
    rows: list[dict] = []
    try:
        for size in sizes:
            with tempfile.TemporaryDirectory() as tmp:
                synth.write_raw(synth.generate(synth.SynthConfig(orders=size, seed=7)), Path(tmp))
                raw, processed = str(Path(tmp) / "raw"), str(Path(tmp) / "processed")
                started = time.perf_counter()
                result = run_rules(spark, raw, processed)
                rules_seconds = time.perf_counter() - started
                started = time.perf_counter()
                run_features(spark, raw, processed)
                features_seconds = time.perf_counter() - started
                files = sum(1 for _ in (Path(processed) / "rules").rglob("*.parquet"))
                dates = sum(1 for _ in (Path(processed) / "rules" / "transactions").glob("dt=*"))
            rows += [
                {
                    "name": f"spark rules job, {size:,} orders",
                    "value": rules_seconds,
                    "unit": "s",
                    "baseline": features_seconds,
                    "ratio": rules_seconds / features_seconds,
                },
                {
                    "name": f"spark rules job files, {size:,} orders ({dates} dates)",
                    "value": files,
                    "unit": "files",
                },
                {
                    "name": f"spark rules job throughput, {size:,} orders",
                    "value": result["orders_read"] / rules_seconds,
                    "unit": "orders/s",
                },
            ]
    finally:
        spark.stop()
    return rows
