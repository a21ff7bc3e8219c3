"""Train the card-payment model on the point-in-time payment features (issue 12, raw transactions).

    python -m training.payments --training-data build/payments/lake/processed/payments/training-data \\
        --out build/payments/payment-model --alerts-per-day 50

The table is the Spark job's (glue_jobs/payment_features.py) or the reference replay's: one row per
payment with PAYMENT_FEATURE_NAMES, `label` and `transaction_time_ms`. Payments younger than
--label-maturity-days at the extract's end are left out: their fraud may not be reported yet, and
learning them as genuine would teach the model that fresh fraud is safe. The rest goes through
training/tabular.py unchanged (time split, logistic regression scaled and class-balanced, random
forest and XGBoost in the same run, the threshold from the alert budget, metrics.json, the report),
as a labelled file of the payment features. Then config.json becomes the payment lane's: its feature
list is the spec's and its `thresholds` map the score to the payment actions: `high` (review) is the
alert-budget threshold, `medium` (step-up authentication) the threshold of three times the budget,
`critical` (decline) that of a quarter of it, all chosen on the validation rows. The folder is what
the archive's `payment/` lane holds (training/inference.py).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb

from returnguard.calendar import DAY_MS
from returnguard.features import PAYMENT_FEATURE_NAMES
from training import tabular
from training.train import TrainingDataError

STEP_UP_BUDGET_FACTOR = 3.0  # step-up authentication may ask this many times the review budget
DECLINE_BUDGET_FACTOR = 0.25


def log(message: str) -> None:
    print(f"[payments] {time.strftime('%H:%M:%S')} {message}", flush=True)


def matured(table: pd.DataFrame, maturity_days: float) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Rows old enough that a fraud would have been reported by the extract's end."""
    missing = [c for c in (*PAYMENT_FEATURE_NAMES, "label", "transaction_time_ms") if c not in table.columns]
    if missing:
        raise TrainingDataError(f"the payment training table lacks column(s): {', '.join(missing)}")
    end = int(table["transaction_time_ms"].max())
    cutoff = end - int(maturity_days * DAY_MS)
    kept = table[table["transaction_time_ms"] <= cutoff]
    detail = {
        "label_maturity_days": maturity_days,
        "extract_end_ms": end,
        "rows_left_out_too_young": int(len(table) - len(kept)),
        "rows": int(len(kept)),
        "fraud": int(kept["label"].sum()),
    }
    return kept, detail


def labelled_file(table: pd.DataFrame, path: Path) -> Path:
    """The matured rows as the labelled file training/tabular.py reads: features, Class, Time (s)."""
    frame = table[list(PAYMENT_FEATURE_NAMES)].astype(np.float64)
    frame[tabular.LABEL] = table["label"].astype(int).to_numpy()
    frame[tabular.TIME] = (table["transaction_time_ms"].to_numpy() // 1000).astype(np.int64)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path


def level_thresholds(out: Path, args: argparse.Namespace, rule: dict[str, Any]) -> dict[str, float]:
    """medium / high / critical on the validation rows of the same split tabular.py made."""
    table, features, time_column = tabular.load_labelled(args.csv, args.label, args.time_column, ())
    parts, _ = tabular.split(
        table, args.label, time_column, args.validation_fraction, args.test_fraction, args.seed
    )
    booster = xgb.Booster()
    booster.load_model(str(out / tabular.MODEL_FILE))
    validation = parts["validation"]
    y = validation[args.label].to_numpy()
    scores = booster.predict(xgb.DMatrix(validation[features].to_numpy(), feature_names=features))
    costs = rule["costs"]["false_positive"], rule["costs"]["false_negative"]
    high = float(json.loads((out / "config.json").read_text())["threshold"])
    # the budget the review threshold was held to (or, chosen by cost alone, the alerts it makes)
    budget = float(rule.get("max_alerts_per_1000") or 1000.0 * float(np.mean(scores >= high)) or 1.0)
    medium = tabular.budget_threshold(y, scores, *costs, budget * STEP_UP_BUDGET_FACTOR)
    critical = tabular.budget_threshold(y, scores, *costs, budget * DECLINE_BUDGET_FACTOR)
    return {
        "decision": float(high),
        "medium": float(min(medium, high)),
        "high": float(high),
        "critical": float(min(1.0, max(critical, high))),
    }


def raw_section(maturity: dict[str, Any], thresholds: dict[str, float]) -> str:
    """The report's part about raw transactions: label maturity and the payment actions' thresholds."""
    rows = "".join(
        f"<tr><td>{action}</td><td>{thresholds[level]:.4f}</td></tr>"
        for level, action in (
            ("medium", "step_up_authentication"),
            ("high", "review"),
            ("critical", "decline"),
        )
    )
    return (
        "<h2>Payments: raw card transactions</h2>"
        f"<p>{len(PAYMENT_FEATURE_NAMES)} point-in-time payment features (returnguard/features.py). Payments younger "
        f"than {maturity['label_maturity_days']:g} days at the extract's end "
        f"({maturity['rows_left_out_too_young']:,} rows) were left out: their fraud may not be reported yet. "
        f"{maturity['rows']:,} rows trained and tested, {maturity['fraud']:,} of them fraud.</p>"
        "<table><tr><th>action from score</th><th>threshold</th></tr>" + rows + "</table>"
    )


def train(argv: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m training.payments", description=__doc__)
    parser.add_argument("--training-data", required=True, help="Parquet folder or file (the Spark job's)")
    parser.add_argument("--label-maturity-days", type=float, default=30.0)
    own, rest = parser.parse_known_args(argv)
    table = pd.read_parquet(own.training_data)
    kept, maturity = matured(table, own.label_maturity_days)
    log(
        f"{len(table):,} payments; {maturity['rows_left_out_too_young']:,} younger than "
        f"{own.label_maturity_days:g} days left out; {maturity['rows']:,} rows, {maturity['fraud']:,} fraud"
    )
    commands = argparse.ArgumentParser().add_subparsers(dest="command")
    tabular.train_parser(commands)
    args = commands.choices["train"].parse_args(rest)
    if not args.out:
        raise TrainingDataError("--out is required")
    out = Path(args.out)
    args.csv = str(labelled_file(kept, out.parent / f".{out.name}-labelled" / "payments.csv"))
    args.model_version = args.model_version or None
    result = tabular.train(args)
    thresholds = level_thresholds(out, args, result["metrics"]["threshold_rule"])
    config = {**result["config"], "lane": "payment", "thresholds": thresholds, "label_maturity": maturity}
    config["source"] = str(own.training_data)
    metrics = {**result["metrics"], "label_maturity": maturity, "thresholds": thresholds}
    tabular.write_atomically(out, {"config.json": config, "metrics.json": metrics})
    report = Path(args.report_dir) if args.report_dir else out / "report"
    if (report / "report.html").is_file():
        page = (report / "report.html").read_text()
        (report / "report.html").write_text(
            page.replace("</body>", raw_section(maturity, thresholds) + "</body>")
        )
    log(f"payment lane thresholds: {', '.join(f'{k} {v:.4f}' for k, v in thresholds.items())}")
    return {"config": config, "metrics": metrics}


def main(argv: list[str] | None = None) -> int:
    try:
        train(sys.argv[1:] if argv is None else argv)
    except TrainingDataError as error:
        print(f"[payments] error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
