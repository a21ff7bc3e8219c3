"""`make demo`: the whole local pipeline, offline, then sample orders scored over HTTP.

synthetic lake → Spark point-in-time features → XGBoost + baselines on a time split → report →
local inference server (the SageMaker contract) → 100 orders from the test window scored over HTTP.
Outputs go under build/demo/; steps whose outputs exist for the same settings are reused.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd

from returnguard.features import FEATURE_NAMES, FEATURES_BY_NAME
from training.bootstrap import (
    PipelinePaths,
    build_features,
    done,
    generate_lake,
    step,
    train_model,
    write_report,
)

ROOT = Path(__file__).resolve().parent.parent
TOTAL_STEPS = 6


def risk_level(score: float, thresholds: dict[str, float]) -> str:
    for level in ("critical", "high", "medium"):
        if score >= thresholds[level]:
            return level
    return "low"


def top_factors(contributions: dict[str, float], vector: dict[str, float], count: int = 3) -> str:
    raising = sorted((item for item in contributions.items() if item[1] > 0), key=lambda kv: -kv[1])[:count]
    return "; ".join(f"{FEATURES_BY_NAME[name].description} = {vector[name]:g}" for name, _ in raising) or "-"


def score_samples(
    url: str, table: pd.DataFrame, thresholds: dict[str, float], count: int = 100
) -> pd.DataFrame:
    """POST sample orders to /invocations (one request each, as the API does) and tabulate the answers."""
    sample = pd.concat(
        [
            table[table.label == 1].sample(min(count // 5, int(table.label.sum())), random_state=1),
            table[table.label == 0].sample(count - min(count // 5, int(table.label.sum())), random_state=1),
        ]
    ).sort_values("order_time_ms")
    rows, latencies = [], []
    for record in sample.to_dict("records"):
        vector = {name: float(record[name]) for name in FEATURE_NAMES}
        request = urllib.request.Request(
            f"{url}/invocations",
            data=json.dumps({"instances": [vector]}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=5) as response:
            prediction = json.loads(response.read())["predictions"][0]
        latencies.append((time.perf_counter() - started) * 1000)
        rows.append(
            {
                "order_id": record["order_id"],
                "abuse": int(record["label"]),
                "score": round(prediction["score"], 3),
                "level": risk_level(prediction["score"], thresholds),
                "top factors": top_factors(prediction["contributions"], vector),
            }
        )
    result = pd.DataFrame(rows)
    result.attrs["latency_ms"] = latencies
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=100_000, help="synthetic orders to generate")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--work", default=str(ROOT / "build" / "demo"))
    parser.add_argument("--force", action="store_true", help="redo every step")
    parser.add_argument("--serve", action="store_true", help="keep the servers up until Ctrl-C")
    args = parser.parse_args(argv)
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    paths = PipelinePaths(Path(args.work))
    began = time.perf_counter()
    print(f"ReturnGuard demo: everything runs locally, offline, under {paths.work}", flush=True)

    started = step(
        1, TOTAL_STEPS, f"generate a synthetic marketplace: {args.orders:,} orders (seed {args.seed})"
    )
    generate_lake(paths, args.orders, args.seed, args.force)
    done(started)

    started = step(2, TOTAL_STEPS, "Spark feature job: point-in-time features and latest aggregates")
    build_features(paths, args.force)
    done(started)

    started = step(3, TOTAL_STEPS, "train XGBoost and the seeds' baselines on a time-based split")
    result = train_model(paths)
    done(started)

    started = step(4, TOTAL_STEPS, "evaluation report")
    report = write_report(paths)
    metrics = result["metrics"]["models"]
    for name, values in metrics.items():
        print(
            f"      {name:<22} ROC-AUC {values['roc_auc']:.3f}  PR-AUC {values['pr_auc']:.3f}  "
            f"recall at 1% FPR {values['recall_at_1pct_fpr']:.2f}",
            flush=True,
        )
    print(f"      report: {report}", flush=True)
    done(started)

    from local.inference_server import serve

    started = step(
        5, TOTAL_STEPS, "start the local inference server (SageMaker /ping + /invocations contract)"
    )
    server = serve(str(paths.model))
    print(f"      {server.url} serving model {server.model_version}", flush=True)
    done(started)

    try:
        started = step(6, TOTAL_STEPS, "score 100 sample orders from the test window over HTTP")
        table = pd.read_parquet(paths.table)
        test_from = pd.read_parquet(paths.output / "test_predictions.parquet").order_id
        scored = score_samples(
            server.url, table[table.order_id.isin(set(test_from))], result["config"]["thresholds"]
        )
        with pd.option_context("display.max_colwidth", 110, "display.width", 200):
            print(scored.head(25).to_string(index=False), flush=True)
        by_level = scored.groupby("level").abuse.agg(["count", "sum"]).rename(columns={"sum": "abusive"})
        print(f"\n      by level (100 orders, 20 of them known abuse):\n{by_level.to_string()}", flush=True)
        latency = pd.Series(scored.attrs["latency_ms"])
        print(
            f"      HTTP latency p50 {latency.quantile(0.5):.1f} ms, p95 {latency.quantile(0.95):.1f} ms",
            flush=True,
        )
        done(started)
        print(f"\nDemo finished in {time.perf_counter() - began:.0f}s. Try it yourself:", flush=True)
        example = {name: float(v) for name, v in table.iloc[0][list(FEATURE_NAMES)].items()}
        print(
            f"  curl -s {server.url}/invocations -H 'Content-Type: application/json' "
            f"-d '{json.dumps({'instances': [example]})}'",
            flush=True,
        )
        if args.serve and sys.stdin.isatty():
            print("Servers are up; Ctrl-C to stop.", flush=True)
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
