"""Batch scoring benchmark (issue 12): N transactions in one CSV validated, converted to Parquet, scored
and explained (exact contributions for the flagged rows) by batch/engine.py, against plain pandas +
xgboost `predict` + `pred_contribs` on the same flagged rows, in the same run. Each side runs in its own
process, so each peak memory (VmHWM) is its own.

    .venv/bin/python -m benchmarks.bench_batch --rows 100000       # any scale; make bench runs
                                                                   # 100k (quick) or 1M (full)

The full scale's target: 1,000,000 rows in at most 3 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROWS = {"quick": 100_000, "full": 1_000_000}
TARGET_S = 180.0


def peak_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def ours(csv: Path, model_dir: Path, explain: str) -> dict:
    import hashlib

    import xgboost  # noqa: F401 (imported before the clock starts, as the baseline's)

    from batch.engine import Model, read_file, score, to_parquet

    started = time.perf_counter()
    model = Model.from_dir(model_dir, "xgboost")
    data = csv.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    table = read_file(data, csv.name, digest, model.schema)
    converted = to_parquet(table)
    scored = score(
        table, model, bucket="bench", source_key=csv.name, digest=digest, file_kind="csv", explain=explain
    )
    predictions = to_parquet(scored.predictions)
    return {
        "seconds": time.perf_counter() - started,
        "rows": table.num_rows,
        "flagged": scored.result.flagged,
        "explained": scored.result.explained,
        "bytes_written": len(converted) + len(predictions),
        "peak_mb": peak_mb(),
    }


def baseline(csv: Path, model_dir: Path, explain: str) -> dict:
    import numpy as np
    import pandas as pd
    import xgboost as xgb

    started = time.perf_counter()
    config = json.loads((model_dir / "config.json").read_text())
    features = config["feature_names"]
    booster = xgb.Booster()
    booster.load_model(str(model_dir / "xgboost-model.ubj"))
    booster.set_param({"nthread": os.cpu_count() or 1})
    frame = pd.read_csv(csv)
    matrix = frame[features].to_numpy(dtype=np.float64)
    scores = booster.predict(xgb.DMatrix(matrix, feature_names=features))
    rows = np.arange(len(matrix)) if explain == "all" else np.flatnonzero(scores >= config["threshold"])
    contributions = booster.predict(xgb.DMatrix(matrix[rows], feature_names=features), pred_contribs=True)
    return {
        "seconds": time.perf_counter() - started,
        "rows": len(matrix),
        "flagged": int((scores >= config["threshold"]).sum()),
        "explained": len(contributions),
        "peak_mb": peak_mb(),
    }


def _child(kind: str, csv: Path, model_dir: Path, explain: str) -> dict:
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_batch", "--child", kind, "--csv", str(csv),
         "--model-dir", str(model_dir), "--explain", explain],
        capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[1],
    )  # fmt: skip
    return json.loads(completed.stdout.strip().splitlines()[-1])


def measure(rows: int, explain: str = "flagged", work: Path | None = None) -> list[dict]:
    from training import tabular

    with tempfile.TemporaryDirectory(dir=work) as tmp:
        root = Path(tmp)
        train_csv, csv = root / "train.csv", root / "transactions.csv"
        tabular.generate(20_000, fraud_rate=0.02, seed=1).to_csv(train_csv, index=False)
        code = tabular.main(
            ["train", "--csv", str(train_csv), "--out", str(root / "model"), "--alerts-per-1000", "10",
             "--forest-trees", "20", "--no-report"]
        )  # fmt: skip
        assert code == 0, "training the benchmark's model failed"
        table = tabular.generate(rows, fraud_rate=0.01, seed=2).drop(columns=["Class"])
        table.insert(0, "transaction_id", [f"T{i}" for i in range(rows)])
        table.to_csv(csv, index=False)
        size_mb = csv.stat().st_size / 1e6
        ours_run = _child("ours", csv, root / "model", explain)
        base_run = _child("baseline", csv, root / "model", explain)
    assert ours_run["explained"] == base_run["explained"], (ours_run, base_run)
    label = f"{rows:,} rows ({size_mb:,.0f} MB CSV), explain {explain}"
    return [
        {
            "name": f"validate+convert+score+explain, {label}",
            "value": ours_run["seconds"],
            "unit": "s",
            "baseline": base_run["seconds"],
            "ratio": ours_run["seconds"] / base_run["seconds"],
            "note": f"{ours_run['flagged']:,} flagged and explained; target <= {TARGET_S:.0f} s at 1M rows",
        },
        {
            "name": f"rows per second, {label}",
            "value": rows / ours_run["seconds"],
            "unit": "rows/s",
            "baseline": rows / base_run["seconds"],
            "ratio": base_run["seconds"] / ours_run["seconds"],
        },  # fmt: skip
        {
            "name": f"peak memory, {label}",
            "value": ours_run["peak_mb"],
            "unit": "MB",
            "baseline": base_run["peak_mb"],
            "ratio": ours_run["peak_mb"] / base_run["peak_mb"],
        },
    ]


def run(scale: str) -> list[dict]:
    return measure(ROWS[scale])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=ROWS["quick"])
    parser.add_argument("--explain", choices=["flagged", "all"], default="flagged")
    parser.add_argument("--child", choices=["ours", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--csv", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        measured = (ours if args.child == "ours" else baseline)(args.csv, args.model_dir, args.explain)
        print(json.dumps(measured))
        return 0
    for row in measure(args.rows, args.explain):
        print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
