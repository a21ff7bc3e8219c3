"""Train and score a labelled CSV (numeric columns + a 0/1 `Class`, the card-fraud table shape) without code.

    python -m training.tabular generate --rows 20000 --out build/payments/transactions.csv
    python -m training.tabular train --csv build/payments/transactions.csv --out build/payments/model
    python -m training.tabular score --model-dir build/payments/model --csv build/payments/transactions.csv \\
        --out build/payments/scored.csv

train: the features are the file's columns except the label and the time column; a file that can't be
used is refused with what is wrong (exit status 2). With a time column the split is by time (train,
then validation for early stopping and thresholds, then the latest rows as test); without one it is
stratified at random. Logistic regression (scaled, class-balanced), random forest and XGBoost are
trained on the same split; each one's decision threshold comes from the validation rows, by cost or
under an alert budget. Missing feature values (empty cells) are allowed: XGBoost routes them, the
other two impute the training median; a missing label is refused. Like training/train.py it runs as
SageMaker script mode too (SM_CHANNEL_TRAIN, SM_MODEL_DIR, SM_OUTPUT_DATA_DIR).

Artifacts in --out: xgboost-model.ubj, config.json (feature list, threshold and its rule, split),
metrics.json; the report (report.html, ROC/PR plots) and the test predictions in --report-dir. The
model serves through training/inference.py and local/inference_server.py as it is.
"""

from __future__ import annotations

import argparse
import html
import math
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.metrics import f1_score, roc_auc_score

from training import evaluate as report_plots
from training.train import MODEL_FILE, TrainingDataError, code_version, cost_threshold, write_atomically
from training.train import evaluate as threshold_metrics

LABEL = "Class"
TIME = "Time"
DAY_SECONDS = 86_400.0
TIME_UNITS = {"s": 1.0, "ms": 1000.0, "min": 1 / 60, "h": 1 / 3600, "d": 1 / DAY_SECONDS}


def log(message: str) -> None:
    print(f"[tabular] {time.strftime('%H:%M:%S')} {message}", flush=True)


# ---------------------------------------------------------------------------------------------------
# Reading and validating the labelled file


def csv_files(source: Path) -> list[Path]:
    if not source.exists():
        raise TrainingDataError(f"file not found: {source}")
    files = [source] if source.is_file() else sorted(source.rglob("*.csv"))
    if not files:
        raise TrainingDataError(f"no .csv files under {source}")
    return files


def read_csv(path: str | Path) -> pd.DataFrame:
    """The file (or every .csv under a folder, e.g. a SageMaker channel) as one table."""
    frames = []
    for file in csv_files(Path(path)):
        try:
            frames.append(pd.read_csv(file, low_memory=False))
        except pd.errors.EmptyDataError:
            raise TrainingDataError(f"{file} is empty (no header, no rows)") from None
        except pd.errors.ParserError as error:
            raise TrainingDataError(f"{file} is not a readable CSV: {error}") from None
    table = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    if table.empty:
        raise TrainingDataError(f"{path} has a header but no rows")
    return table


def non_numeric(table: pd.DataFrame, columns: list[str]) -> list[str]:
    """'name (e.g. 'value')' for every column that is not numbers."""
    found = []
    for name in columns:
        column = table[name]
        if pd.api.types.is_numeric_dtype(column) or column.isna().all():
            continue
        sample = column.dropna()
        bad = sample[pd.to_numeric(sample, errors="coerce").isna()]
        found.append(f"{name} (e.g. {str(bad.iloc[0] if len(bad) else sample.iloc[0])!r})")
    return found


def load_labelled(
    path: str | Path, label: str = LABEL, time_column: str | None = TIME, exclude: tuple[str, ...] = ()
) -> tuple[pd.DataFrame, list[str], str | None]:
    """(table, feature names, time column or None), or TrainingDataError naming what is wrong.

    Features are every column but the label, the time column and `exclude`; all must be numbers
    (empty cells are missing values), the label 0/1 on every row with both classes present.
    """
    table = read_csv(path)
    columns = [str(c) for c in table.columns]
    if label not in columns:
        shown = ", ".join(columns if len(columns) <= 12 else [*columns[:6], "...", *columns[-5:]])
        raise TrainingDataError(f"no label column {label!r} (columns: {shown}); name it with --label")
    unknown = [c for c in exclude if c not in columns]
    if unknown:
        raise TrainingDataError(f"--exclude names column(s) the file lacks: {', '.join(unknown)}")
    has_time = bool(time_column) and time_column in columns
    features = [c for c in columns if c != label and c not in exclude and not (has_time and c == time_column)]
    if not features:
        raise TrainingDataError("no feature columns besides the label and the time column")
    refused = non_numeric(table, [*features, *([time_column] if has_time else [])])
    if refused:
        raise TrainingDataError(
            f"non-numeric column(s): {'; '.join(refused)}. Encode them as numbers or pass --exclude"
        )

    y = pd.to_numeric(table[label], errors="coerce")
    missing = table[label].isna()
    if missing.any():
        rows = (np.flatnonzero(missing.to_numpy())[:5] + 2).tolist()  # +2: the header is line 1
        raise TrainingDataError(f"label {label!r} is empty on {int(missing.sum())} row(s), lines {rows}")
    bad = ~y.isin([0, 1])
    if bad.any():
        found = ", ".join(pd.unique(table[label][bad].astype(str))[:6])
        rows = (np.flatnonzero(bad.to_numpy())[:5] + 2).tolist()
        raise TrainingDataError(f"label {label!r} must be 0 or 1; found {found} (lines {rows})")
    counts = y.value_counts()
    if len(counts) < 2:
        only = int(counts.index[0])
        raise TrainingDataError(
            f"label {label!r} has only class {only} ({len(y):,} rows); training needs rows of both 0 and 1"
        )
    matrix = table[features].astype(np.float64)
    infinite = [c for c in features if np.isinf(matrix[c].to_numpy()).any()]
    if infinite:
        raise TrainingDataError(f"infinite values in column(s): {', '.join(infinite)}")
    empty = [c for c in features if matrix[c].isna().all()]
    if empty:
        raise TrainingDataError(f"column(s) with no values at all: {', '.join(empty)}")
    if has_time and table[time_column].isna().any():
        raise TrainingDataError(f"time column {time_column!r} is empty on some rows")
    clean = matrix.assign(**{label: y.astype(np.int8)})
    if has_time:
        clean[time_column] = table[time_column].astype(np.float64)
    return clean, features, time_column if has_time else None


# ---------------------------------------------------------------------------------------------------
# Split


def split(
    table: pd.DataFrame,
    label: str,
    time_column: str | None,
    validation_fraction: float,
    test_fraction: float,
    seed: int,
) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """Train / validation / test: by time when there is a time column, stratified at random otherwise."""
    if time_column:
        ordered = table.sort_values(time_column, kind="stable")
        n = len(ordered)
        a, b = int(n * (1 - validation_fraction - test_fraction)), int(n * (1 - test_fraction))
        parts = {"train": ordered.iloc[:a], "validation": ordered.iloc[a:b], "test": ordered.iloc[b:]}
        kind = "time"
    else:
        from sklearn.model_selection import train_test_split

        try:
            rest, test = train_test_split(
                table, test_size=test_fraction, stratify=table[label], random_state=seed
            )
            train, validation = train_test_split(
                rest,
                test_size=validation_fraction / (1 - test_fraction),
                stratify=rest[label],
                random_state=seed,
            )
        except ValueError as error:  # too few rows of a class to stratify
            raise TrainingDataError(f"can't make a stratified split: {error}") from None
        parts = {"train": train, "validation": validation, "test": test}
        kind = "stratified"
    report: dict[str, Any] = {"kind": kind, "time_column": time_column, "splits": {}}
    for name, part in parts.items():
        positives = int(part[label].sum())
        if positives == 0 or positives == len(part):
            raise TrainingDataError(
                f"the {name} split ({len(part):,} rows, {kind} split) has only one class; "
                "the file needs more positive rows"
            )
        entry: dict[str, Any] = {"rows": len(part), "positives": positives}
        if time_column:
            entry["time_from"], entry["time_to"] = (
                float(part[time_column].min()),
                float(part[time_column].max()),
            )
        report["splits"][name] = entry
    return parts, report


# ---------------------------------------------------------------------------------------------------
# Models, thresholds, metrics


def train_models(
    train: pd.DataFrame, validation: pd.DataFrame, features: list[str], args: argparse.Namespace
) -> dict[str, Any]:
    """Logistic regression (seed 001's baseline), random forest and XGBoost on the same rows."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = train[features].to_numpy(), train[args.label].to_numpy()
    logistic = make_pipeline(
        SimpleImputer(strategy="median"),
        StandardScaler(),
        LogisticRegression(class_weight="balanced", max_iter=2000),
    )
    logistic.fit(x, y)
    log("logistic regression trained")
    # Bootstrap samples capped so a 300k-row file trains in minutes on two cores.
    forest = make_pipeline(
        SimpleImputer(strategy="median"),
        RandomForestClassifier(
            n_estimators=args.forest_trees,
            min_samples_leaf=2,
            class_weight="balanced_subsample",
            max_samples=min(1.0, args.forest_max_samples / len(train)),
            n_jobs=-1,
            random_state=args.seed,
        ),
    )
    forest.fit(x, y)
    log("random forest trained")
    params = {
        "objective": "binary:logistic",
        "eval_metric": ["aucpr", "auc"],
        "tree_method": "hist",
        "max_depth": args.max_depth,
        "eta": args.eta,
        "subsample": 0.9,
        "colsample_bytree": 0.9,
        "min_child_weight": 1.0,
        "seed": args.seed,
        "nthread": os.cpu_count() or 1,
    }
    dtrain = xgb.DMatrix(x, label=y, feature_names=features)
    dvalid = xgb.DMatrix(
        validation[features].to_numpy(), label=validation[args.label], feature_names=features
    )
    booster = xgb.train(
        params,
        dtrain,
        num_boost_round=args.num_round,
        evals=[(dvalid, "validation")],
        early_stopping_rounds=args.early_stopping_rounds,
        verbose_eval=False,
    )
    log(f"xgboost trained: best iteration {booster.best_iteration} of {args.num_round}")
    return {
        "logistic_regression": logistic,
        "random_forest": forest,
        "xgboost": booster[: booster.best_iteration + 1],
    }


def predict(model: Any, frame: pd.DataFrame, features: list[str]) -> np.ndarray:
    if isinstance(model, xgb.Booster):
        return np.asarray(model.predict(xgb.DMatrix(frame[features].to_numpy(), feature_names=features)))
    return np.asarray(model.predict_proba(frame[features].to_numpy())[:, 1])


def budget_threshold(
    y: np.ndarray, scores: np.ndarray, cost_fp: float, cost_fn: float, max_alerts_per_1000: float
) -> float:
    """The cheapest score cut (cost_fp * FP + cost_fn * FN) that flags at most max_alerts_per_1000 of
    every 1,000 rows; when even the top score alone is over budget, a cut above every score."""
    cheapest = cost_threshold(y, scores, cost_fp, cost_fn)
    allowed = math.floor(max_alerts_per_1000 * len(y) / 1000 + 1e-9)
    if np.sum(scores >= cheapest) <= allowed:
        return cheapest
    order = np.argsort(-scores, kind="stable")
    sorted_scores, sorted_y = scores[order], y[order]
    tp, fp = np.cumsum(sorted_y), np.cumsum(1 - sorted_y)
    cost = cost_fp * fp + cost_fn * (tp[-1] - tp)
    # Cutting at sorted_scores[i] flags every row scoring at least that: i + 1 rows when it is the
    # last of its ties.
    distinct = np.r_[sorted_scores[1:] != sorted_scores[:-1], True]
    candidates = np.where(distinct & (np.arange(len(y)) + 1 <= allowed))[0]
    if not len(candidates):
        return float(np.nextafter(sorted_scores[0], np.inf))
    return float(sorted_scores[candidates[np.argmin(cost[candidates])]])


def alert_budget(
    args: argparse.Namespace, validation: pd.DataFrame, time_column: str | None
) -> dict[str, Any]:
    """The threshold rule: by cost, or by cost within an alert budget (per 1,000 rows or per day)."""
    rule: dict[str, Any] = {
        "kind": "cost",
        "costs": {"false_positive": args.cost_false_positive, "false_negative": args.cost_false_negative},
    }
    if args.alerts_per_day is not None:
        if not time_column:
            raise TrainingDataError(
                "--alerts-per-day needs a time column to count days; use --alerts-per-1000 instead"
            )
        per_unit = TIME_UNITS[args.time_unit]
        days = (validation[time_column].max() - validation[time_column].min()) / per_unit / DAY_SECONDS
        if days <= 0:
            raise TrainingDataError("the validation rows all share one time; can't count rows per day")
        per_day = len(validation) / days
        rule.update(
            kind="alert_budget",
            alerts_per_day=args.alerts_per_day,
            transactions_per_day=per_day,
            max_alerts_per_1000=1000 * args.alerts_per_day / per_day,
        )
    elif args.alerts_per_1000 is not None:
        rule.update(kind="alert_budget", max_alerts_per_1000=args.alerts_per_1000)
    return rule


def choose_threshold(y: np.ndarray, scores: np.ndarray, rule: dict[str, Any]) -> float:
    costs = rule["costs"]["false_positive"], rule["costs"]["false_negative"]
    if rule["kind"] == "alert_budget":
        return budget_threshold(y, scores, *costs, rule["max_alerts_per_1000"])
    return cost_threshold(y, scores, *costs)


def metrics_at(y: np.ndarray, scores: np.ndarray, threshold: float, rule: dict[str, Any]) -> dict[str, Any]:
    """train.py's metrics (named per transaction) plus F1 and the confusion matrix at the threshold."""
    costs = rule["costs"]["false_positive"], rule["costs"]["false_negative"]
    base = threshold_metrics(y, scores, threshold, costs)
    result: dict[str, Any] = {k.replace("_orders", "_transactions"): v for k, v in base.items()}
    flagged = scores >= threshold
    result["f1_at_threshold"] = float(f1_score(y, flagged, zero_division=0))
    result["confusion_matrix"] = {
        "true_positive": int(np.sum(flagged & (y == 1))),
        "false_positive": int(np.sum(flagged & (y == 0))),
        "false_negative": int(np.sum(~flagged & (y == 1))),
        "true_negative": int(np.sum(~flagged & (y == 0))),
    }
    return result


# ---------------------------------------------------------------------------------------------------
# Train command


def train_parser(commands: Any) -> None:
    parser = commands.add_parser("train", help="train LR, RF and XGBoost on a labelled CSV")
    parser.add_argument("--csv", default=os.environ.get("SM_CHANNEL_TRAIN"), help="CSV file or folder")
    parser.add_argument("--out", default=os.environ.get("SM_MODEL_DIR"), help="model folder")
    parser.add_argument(
        "--report-dir", default=os.environ.get("SM_OUTPUT_DATA_DIR"), help="default: OUT/report"
    )
    parser.add_argument("--label", default=LABEL)
    parser.add_argument("--time-column", default=TIME, help="'' to split at random (stratified)")
    parser.add_argument("--time-unit", default="s", choices=sorted(TIME_UNITS), help="for --alerts-per-day")
    parser.add_argument("--exclude", action="append", default=[], help="a column that is not a feature")
    parser.add_argument("--cost-false-positive", type=float, default=1.0, help="cost of a needless alert")
    parser.add_argument("--cost-false-negative", type=float, default=25.0, help="cost of a missed fraud")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--alerts-per-1000", type=float, help="at most this many alerts per 1,000 rows")
    budget.add_argument("--alerts-per-day", type=float, help="at most this many alerts per day")
    parser.add_argument("--validation-fraction", type=float, default=0.2)
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--num-round", type=int, default=400)
    parser.add_argument("--max-depth", type=int, default=5)
    parser.add_argument("--eta", type=float, default=0.08)
    parser.add_argument("--early-stopping-rounds", type=int, default=30)
    parser.add_argument("--forest-trees", type=int, default=150)
    parser.add_argument("--forest-max-samples", type=int, default=50_000, help="bootstrap rows per tree")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--model-version", default=None)
    parser.add_argument("--no-report", action="store_true", help="skip the HTML report")


def train(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    if not args.csv:
        raise TrainingDataError("--csv is required (or SM_CHANNEL_TRAIN)")
    if not args.out:
        raise TrainingDataError("--out is required (or SM_MODEL_DIR)")
    table, features, time_column = load_labelled(
        args.csv, args.label, args.time_column or None, tuple(args.exclude)
    )
    parts, split_report = split(
        table, args.label, time_column, args.validation_fraction, args.test_fraction, args.seed
    )
    missing = {c: int(n) for c, n in table[features].isna().sum().items() if n}
    log(
        f"{len(table):,} rows, {len(features)} features, {int(table[args.label].sum()):,} positives; "
        f"{split_report['kind']} split"
        + (f" on {time_column!r} (not a feature)" if time_column else " (no time column)")
        + f"; train {len(parts['train']):,} / validation {len(parts['validation']):,} / test {len(parts['test']):,}"
    )
    rule = alert_budget(args, parts["validation"], time_column)
    models = train_models(parts["train"], parts["validation"], features, args)
    y_valid, y_test = parts["validation"][args.label].to_numpy(), parts["test"][args.label].to_numpy()
    results, test_scores, thresholds = {}, {}, {}
    for name, model in models.items():
        validation_scores = predict(model, parts["validation"], features)
        thresholds[name] = choose_threshold(y_valid, validation_scores, rule)
        test_scores[name] = predict(model, parts["test"], features)
        results[name] = metrics_at(y_test, test_scores[name], thresholds[name], rule)
        results[name]["validation_alerts_per_1000_transactions"] = 1000.0 * float(
            np.mean(validation_scores >= thresholds[name])
        )
        if name == "xgboost":
            print(f"validation_auc={roc_auc_score(y_valid, validation_scores):.6f}", flush=True)

    version = args.model_version or f"tab-{datetime.now(timezone.utc):%Y%m%d}-{code_version()}"
    decision = thresholds["xgboost"]
    config = {
        "model_version": version,
        "feature_source": "file",
        "feature_names": features,
        "label": args.label,
        "threshold": decision,
        "threshold_rule": rule,
        "thresholds": {"decision": decision},
        "split": split_report,
        "missing_values": missing,
        "source": str(args.csv),
        "code_version": code_version(),
        "hyperparameters": {
            k: v for k, v in vars(args).items() if k not in {"csv", "out", "report_dir", "command", "func"}
        },
        "trained_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    metrics = {
        "model_version": version,
        "split": split_report["kind"],
        "split_detail": split_report,
        "threshold_rule": rule,
        "missing_values": missing,
        "models": results,
    }
    out = Path(args.out)
    write_atomically(out, {MODEL_FILE: models["xgboost"], "config.json": config, "metrics.json": metrics})
    report_dir = Path(args.report_dir) if args.report_dir else out / "report"
    report_dir.mkdir(parents=True, exist_ok=True)
    predictions = pd.DataFrame({"label": y_test, **{f"score_{n}": s for n, s in test_scores.items()}})
    predictions.to_parquet(report_dir / "test_predictions.parquet", index=False)
    if not args.no_report:
        build_report(config, metrics, predictions, report_dir)
    for name, result in results.items():
        log(
            f"{name:<20} ROC-AUC {result['roc_auc']:.3f}  PR-AUC {result['pr_auc']:.3f}  "
            f"F1 {result['f1_at_threshold']:.3f}  alerts/1000 {result['alerts_per_1000_transactions']:.2f}"
        )
    log(f"done in {time.perf_counter() - started:.1f}s; model {version} in {out}")
    return {"config": config, "metrics": metrics}


# ---------------------------------------------------------------------------------------------------
# Report


def payments_section(config: dict[str, Any], metrics: dict[str, Any]) -> str:
    """The report's payments section: split, threshold rule, metrics at the threshold, confusion matrices."""
    s = metrics["split_detail"]
    if s["kind"] == "time":
        how = (
            f"Split by time on column {html.escape(str(s['time_column']))} (not used as a feature): "
            "train on the earliest rows, choose thresholds and stop boosting on the next, test on the latest."
        )
    else:
        how = "No time column: stratified random split (each split keeps the file's fraud rate)."
    rows = [[name, p["rows"], p["positives"]] for name, p in s["splits"].items()]
    rule = metrics["threshold_rule"]
    costs = rule["costs"]
    if rule["kind"] == "alert_budget":
        budget = f"at most {rule['max_alerts_per_1000']:.3f} alerts per 1,000 transactions"
        if "alerts_per_day" in rule:
            budget += f" ({rule['alerts_per_day']:g} per day at {rule['transactions_per_day']:,.0f} transactions a day)"
        rule_text = f"the cheapest threshold (FP {costs['false_positive']:g}, FN {costs['false_negative']:g}) within {budget}"
    else:
        rule_text = (
            f"the threshold of least cost (FP {costs['false_positive']:g}, FN {costs['false_negative']:g})"
        )
    columns = [
        "roc_auc",
        "pr_auc",
        "threshold",
        "precision_at_threshold",
        "recall_at_threshold",
        "f1_at_threshold",
        "alerts_per_1000_transactions",
    ]
    models = metrics["models"]
    table = report_plots._table(
        ["model", *(c.replace("_", " ") for c in columns)],
        [[report_plots.NAMES.get(n, n), *(m[c] for c in columns)] for n, m in models.items()],
    )
    matrices = report_plots._table(
        ["model", "true positive", "false positive", "false negative", "true negative"],
        [[report_plots.NAMES.get(n, n), *m["confusion_matrix"].values()] for n, m in models.items()],
    )
    missing = metrics.get("missing_values") or {}
    missing_text = (
        "Missing values (XGBoost routes them; the others impute the training median): "
        + ", ".join(f"{html.escape(c)} {n:,}" for c, n in missing.items())
        if missing
        else "No missing values."
    )
    return (
        f"<h2>Payments: labelled CSV</h2><p>{how}</p>"
        + report_plots._table(["split", "rows", "fraud rows"], rows)
        + f"<p>Each model's decision threshold is {rule_text}, chosen on the validation rows; the "
        f"served model is XGBoost at {config['threshold']:.4f}. {missing_text}</p>"
        + "<h3>Test rows</h3>"
        + table
        + "<h3>Confusion matrices at the threshold</h3>"
        + matrices
    )


def build_report(
    config: dict[str, Any], metrics: dict[str, Any], predictions: pd.DataFrame, report_dir: Path
) -> Path:
    images = report_plots.plot_curves(predictions, metrics["models"], report_dir)
    figures = "".join(
        f'<figure><img src="{name}" alt="{key}"></figure>'
        for key, name in images.items()
        if key in ("roc", "pr")
    )
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>ReturnGuard payments model {html.escape(config["model_version"])}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1150px;margin:2em auto;color:#222}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td:first-child{{text-align:left}}
figure{{display:inline-block;margin:8px}}img{{max-width:540px}}</style></head><body>
<h1>ReturnGuard payments model {html.escape(config["model_version"])}</h1>
<p>{len(config["feature_names"])} features from {html.escape(config["source"])}.</p>
{payments_section(config, metrics)}
<h2>Plots (test rows)</h2>{figures}
<p>Code version {html.escape(str(config.get("code_version")))}; trained {html.escape(config["trained_at"])}.</p>
</body></html>"""
    path = report_dir / "report.html"
    path.write_text(page)
    log(f"report: {path}")
    return path


# ---------------------------------------------------------------------------------------------------
# Score command


def score_parser(commands: Any) -> None:
    parser = commands.add_parser("score", help="score a CSV with a trained model, with exact contributions")
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--csv", required=True, help="a CSV with the model's feature columns")
    parser.add_argument("--out", required=True, help="scored rows: .csv or .parquet")
    parser.add_argument("--chunk-rows", type=int, default=50_000)


def score(args: argparse.Namespace) -> pd.DataFrame:
    """Every row's score, flag (score >= the model's threshold) and exact per-feature contributions
    (XGBoost pred_contribs; base_value + the contributions = the margin, score = sigmoid(margin))."""
    from training.inference import explain_rows, model_fn

    started = time.perf_counter()
    model = model_fn(args.model_dir)
    model.booster.set_param({"nthread": os.cpu_count() or 1})
    features = list(model.feature_names)
    table = read_csv(args.csv)
    absent = [c for c in features if c not in table.columns]
    if absent:
        raise TrainingDataError(f"the file lacks the model's feature column(s): {', '.join(absent)}")
    refused = non_numeric(table, features)
    if refused:
        raise TrainingDataError(f"non-numeric column(s): {'; '.join(refused)}")
    matrix = table[features].to_numpy(dtype=np.float64)
    if np.isinf(matrix).any():
        columns = [c for i, c in enumerate(features) if np.isinf(matrix[:, i]).any()]
        raise TrainingDataError(f"infinite values in column(s): {', '.join(columns)}")
    scores, contributions = [], []
    for start in range(0, len(matrix), args.chunk_rows):
        s, c = explain_rows(matrix[start : start + args.chunk_rows], model)
        scores.append(s)
        contributions.append(c)
    all_scores, all_contributions = np.concatenate(scores), np.concatenate(contributions)
    threshold = float(model.config["threshold"])
    result = pd.DataFrame({"row": np.arange(1, len(table) + 1), "score": all_scores})
    result["flagged"] = (all_scores >= threshold).astype(np.int8)
    label = model.config.get("label")
    if label in table.columns:
        result[label] = table[label].to_numpy()
    result["base_value"] = all_contributions[:, -1]
    for i, name in enumerate(features):
        result[f"contribution_{name}"] = all_contributions[:, i]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    if out.suffix == ".parquet":
        result.to_parquet(partial, index=False)
    else:
        result.to_csv(partial, index=False)
    os.replace(partial, out)  # no half-written output
    log(
        f"scored {len(result):,} rows in {time.perf_counter() - started:.1f}s: {int(result['flagged'].sum()):,} "
        f"flagged at {threshold:.4f} (model {model.version}); wrote {out}"
    )
    return result


# ---------------------------------------------------------------------------------------------------
# A generated file of the public card-fraud table's shape


def generate(rows: int, fraud_rate: float = 0.01, days: float = 2.0, seed: int = 0) -> pd.DataFrame:
    """Time (seconds), V1-V28 (uncorrelated components of decreasing spread), Amount, Class.

    Fraud comes from three mechanisms, none a single column: stolen cards (a joint shift of several
    components, of random strength, larger amounts), card testing (tiny amounts at night with a
    weaker shift) and account takeover (V3 and V7 both far out on the same side: an interaction a
    linear model can't draw). A share of fraud rows carries no signal at all, and the fraud rate
    rises slowly over time, so a time split is harder than a random one.
    """
    rng = np.random.default_rng(seed)
    spread = np.linspace(2.0, 0.3, 28)
    v = rng.normal(0.0, 1.0, (rows, 28)) * spread
    time_s = np.sort(rng.uniform(0, days * DAY_SECONDS, rows))
    hour = (time_s / 3600) % 24
    night = (hour < 6).astype(float)
    drift = 0.7 + 0.6 * time_s / (days * DAY_SECONDS)
    p = drift * (1 + 1.5 * night)
    fraud = rng.random(rows) < p / p.mean() * fraud_rate
    amount = np.round(rng.lognormal(3.0, 1.3, rows), 2)

    index = np.flatnonzero(fraud)
    mechanism = rng.choice(4, size=len(index), p=[0.62, 0.15, 0.15, 0.08])
    stolen, testing, takeover = (index[mechanism == k] for k in range(3))
    strength = rng.uniform(0.3, 1.3, len(stolen))[:, None]
    direction = np.zeros(28)
    direction[[13, 11, 9, 16]] = -1.0  # V14, V12, V10, V17
    direction[[3, 10]] = 1.0  # V4, V11
    v[stolen] += strength * direction * 2.2 * spread
    amount[stolen] = np.round(rng.lognormal(4.4, 1.0, len(stolen)), 2)
    v[testing, 16] -= rng.uniform(1.0, 2.5, len(testing)) * spread[16]
    amount[testing] = np.round(rng.uniform(0.5, 5.0, len(testing)), 2)
    side = rng.choice([-1.0, 1.0], len(takeover))
    v[takeover, 2] = side * rng.uniform(1.0, 2.5, len(takeover)) * spread[2]
    v[takeover, 6] = side * rng.uniform(1.0, 2.5, len(takeover)) * spread[6]
    table = pd.DataFrame({"Time": np.round(time_s, 0)})
    for k in range(28):
        table[f"V{k + 1}"] = np.round(v[:, k], 6)
    table["Amount"] = amount
    table["Class"] = fraud.astype(np.int8)
    return table


def generate_parser(commands: Any) -> None:
    parser = commands.add_parser("generate", help="write a generated file of the card-fraud table's shape")
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--fraud-rate", type=float, default=0.01)
    parser.add_argument("--days", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.tabular",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    train_parser(commands)
    score_parser(commands)
    generate_parser(commands)
    args = parser.parse_args(argv)
    try:
        if args.command == "train":
            train(args)
        elif args.command == "score":
            score(args)
        else:
            out = Path(args.out)
            out.parent.mkdir(parents=True, exist_ok=True)
            table = generate(args.rows, args.fraud_rate, args.days, args.seed)
            table.to_csv(out, index=False)
            log(f"wrote {len(table):,} rows ({int(table['Class'].sum()):,} fraud) to {out}")
    except TrainingDataError as error:
        print(f"[tabular] error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
