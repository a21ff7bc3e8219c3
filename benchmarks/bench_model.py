"""Model benchmarks: score + exact SHAP latency through predict_fn vs plain XGBoost, batch throughput,
and training wall time (XGBoost + both baselines) at two scales.

The baseline is xgboost's own `predict(pred_contribs=True)` on the same model and rows in the same
run, so the ratio is our contract's overhead (JSON parsing and validation excluded; see bench_api).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from returnguard import synth
from returnguard.features import FEATURE_NAMES


def _table(orders: int) -> pd.DataFrame:
    return synth.replay_table(synth.generate(synth.SynthConfig(orders=orders, seed=7)))


def _train(table: pd.DataFrame, root: Path, baselines: bool) -> float:
    from training import train

    started = time.perf_counter()
    train.train_frame(table, root, "--baselines", "1" if baselines else "0")
    return time.perf_counter() - started


def _percentiles(samples: list[float]) -> tuple[float, float]:
    return float(np.percentile(samples, 50)), float(np.percentile(samples, 99))


def run(scale: str) -> list[dict]:
    import xgboost as xgb

    from training.inference import model_fn, predict_fn

    sizes = [20_000, 100_000] if scale == "quick" else [100_000, 1_000_000]
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        tables = {}
        for size in sizes:
            started = time.perf_counter()
            tables[size] = _table(size)
            rows.append(
                {
                    "name": f"replay features, {size:,} orders",
                    "value": time.perf_counter() - started,
                    "unit": "s",
                }
            )
        for size in sizes:
            seconds = _train(tables[size], root / f"m{size}", baselines=True)
            rows.append(
                {"name": f"train xgboost + LR + RF/SMOTE, {size:,} orders", "value": seconds, "unit": "s"}
            )
        model = model_fn(str(root / f"m{sizes[0]}" / "model"))
        sample = tables[sizes[0]][list(FEATURE_NAMES)].to_numpy(dtype=np.float64)[:500]
        ours, plain = [], []
        for row in sample:
            one = row.reshape(1, -1)
            started = time.perf_counter()
            predict_fn(one, model)
            ours.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            model.booster.predict(xgb.DMatrix(one, feature_names=list(FEATURE_NAMES)), pred_contribs=True)
            plain.append((time.perf_counter() - started) * 1000)
        (ours50, ours99), (plain50, plain99) = _percentiles(ours), _percentiles(plain)
        rows.append(
            {
                "name": "single-row score+SHAP p50",
                "value": ours50,
                "unit": "ms",
                "baseline": plain50,
                "ratio": ours50 / plain50,
            }
        )
        rows.append(
            {
                "name": "single-row score+SHAP p99",
                "value": ours99,
                "unit": "ms",
                "baseline": plain99,
                "ratio": ours99 / plain99,
            }
        )
        batch = tables[sizes[0]][list(FEATURE_NAMES)].to_numpy(dtype=np.float64)[:1000]
        started = time.perf_counter()
        predict_fn(batch, model)
        ours_rate = len(batch) / (time.perf_counter() - started)
        started = time.perf_counter()
        model.booster.predict(xgb.DMatrix(batch, feature_names=list(FEATURE_NAMES)), pred_contribs=True)
        plain_rate = len(batch) / (time.perf_counter() - started)
        rows.append(
            {
                "name": "batch score+SHAP (1,000 rows)",
                "value": ours_rate,
                "unit": "rows/s",
                "baseline": plain_rate,
                "ratio": ours_rate / plain_rate,
            }
        )
    return rows
