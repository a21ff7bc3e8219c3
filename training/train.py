"""Train the order-risk model: SageMaker XGBoost script mode, and the same script locally.

SageMaker passes hyperparameters as CLI arguments and the data locations in SM_CHANNEL_TRAIN,
SM_MODEL_DIR and SM_OUTPUT_DATA_DIR; locally pass --train (a Parquet/CSV file or folder) and
--model-dir. The split is by time (train, then validation for early stopping and thresholds, then the
latest window as test), never random, and honest about label timing: a label known at time T is only
used by a split that is judged at or after T (train at the validation start, validation at the test
start, test at the extract's end), each split is separated from the next by a maturity gap (return
window + inspection delay), and orders too young for a mature label are left out and counted.
Logistic regression and random forest + SMOTE baselines are trained on the same split and reported
beside XGBoost. `--lane return` trains the return-request model (issue 11) by the same code: the return
feature spec, seed 000's baseline features, thresholds per refund action (see `Lane`).

Artifacts (model dir): xgboost-model.ubj, config.json (feature list, thresholds, model version, data
window, code version), metrics.json, fallback_model.json (the logistic regression as JSON, with its
own thresholds and test metrics: the score function evaluates it in pure Python when the endpoint
cannot answer; see returnguard/fallback.py), evaluation.json (the promotion gate's evidence: this model
and the serving one, given as --champion or the `champion` channel, scored on the same mature test
window; see returnguard/gate.py), drift_baseline.json (the drift job's reference histograms,
returnguard/drift.py). Output dir: test-window predictions for the report.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from returnguard import drift, fallback, gate
from returnguard.features import FEATURES, RETURN_FEATURES, RETURN_REASON_CODES, Feature
from returnguard.features import LANES as FEATURE_LANES

MODEL_FILE = "xgboost-model.ubj"
# The fallback stands in for a better model during an outage: its medium (step-up) cut catches 90% of
# abusive validation orders, not 80%, because a one-time OTP costs less than approving abuse blind.
FALLBACK_MEDIUM_RECALL = 0.9
LABEL = "label"
TIME = "order_time_ms"
LABELED_AT = "labeled_at_ms"  # when the order's label row became known; null: no label row (yet)
DAY_MS = 86_400_000


@dataclass(frozen=True)
class Lane:
    """What a model scores (--lane): its feature spec, the table's time and id columns, the features
    the seeds' random forest + SMOTE baseline sees (None: all), and the actions whose costs set the
    score thresholds (risk level -> (cost of the action on a good event, cost of not taking it on an
    abusive one); None: the order lane's single --cost_* pair)."""

    name: str
    features: tuple[Feature, ...]
    time: str
    id: str
    baseline_features: tuple[str, ...] | None = None
    action_costs: dict[str, tuple[str, float, float]] | None = None

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]


# Seed 000's returns model: order value, one-hot return reason, return count, damaged flag, days since
# the last return.
SEED_000_FEATURES = (
    "order_value",
    *(f"reason_{code}" for code in RETURN_REASON_CODES),
    "return_count",
    "damaged_flag",
    "days_since_last_return",
)
# Per refund action: (action, cost when it meets an honest return, cost when a fraudulent return gets
# an instant refund instead), in units of an average refund. A refund held for inspection costs the
# honest customer a few days; proof costs them effort; a person's review costs the most (and the delay).
RETURN_ACTION_COSTS = {
    "medium": ("refund_after_pickup_inspection", 0.05, 0.6),
    "high": ("photo_or_video_proof", 0.15, 0.8),
    "critical": ("manual_review", 0.5, 1.0),
}
ORDER = Lane("order", FEATURES, TIME, "order_id")
RETURN = Lane(
    "return", RETURN_FEATURES, "return_time_ms", "return_id", SEED_000_FEATURES, RETURN_ACTION_COSTS
)
LANES = {lane.name: lane for lane in (ORDER, RETURN)}


class TrainingDataError(ValueError):
    """The training table can't be used; the message names what is wrong."""


def log(message: str) -> None:
    print(f"[train] {time.strftime('%H:%M:%S')} {message}", flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--train", default=os.environ.get("SM_CHANNEL_TRAIN"), help="table file or folder")
    parser.add_argument(
        "--model-dir", "--model_dir", default=os.environ.get("SM_MODEL_DIR", "build/model/model")
    )
    parser.add_argument(
        "--output-data-dir",
        "--output_data_dir",
        default=os.environ.get("SM_OUTPUT_DATA_DIR", "build/model/output"),
    )
    parser.add_argument("--num_round", "--n_estimators", type=int, default=400, dest="num_round")
    parser.add_argument("--max_depth", type=int, default=6)
    parser.add_argument("--eta", type=float, default=0.08)
    parser.add_argument("--subsample", type=float, default=0.9)
    parser.add_argument("--colsample_bytree", type=float, default=0.9)
    parser.add_argument("--min_child_weight", type=float, default=2.0)
    parser.add_argument("--early_stopping_rounds", type=int, default=30)
    parser.add_argument("--test_fraction", type=float, default=0.2, help="latest share of the time range")
    parser.add_argument("--validation_fraction", type=float, default=0.15, help="share just before the test")
    parser.add_argument(
        "--return_window_days", type=float, default=30.0, help="how long after an order a return can come"
    )
    parser.add_argument(
        "--inspection_delay_days",
        type=float,
        default=21.0,
        help="how long after a return its abuse label is final; with the return window, the maturity gap",
    )
    parser.add_argument(
        "--as_of_ms",
        type=int,
        default=None,
        help="when the extract was taken (default: the latest order or label time in the table)",
    )
    parser.add_argument(
        "--cost_false_positive", type=float, default=1.0, help="cost of stepping up a good order"
    )
    parser.add_argument(
        "--cost_false_negative", type=float, default=10.0, help="cost of missing an abusive one"
    )
    parser.add_argument("--baselines", type=int, default=1, help="1: also train LR and RF+SMOTE")
    parser.add_argument("--baseline_max_rows", type=int, default=200_000)
    parser.add_argument(
        "--monotone",
        type=int,
        default=1,
        help="1: the model never lowers the score as a risk signal (returnguard.features direction +1) rises",
    )
    parser.add_argument(
        "--controls", type=int, default=1, help="1: also train the permuted-label and shuffled-time controls"
    )
    parser.add_argument(
        "--champion",
        default=os.environ.get("SM_CHANNEL_CHAMPION"),
        help="the serving model (its model.tar.gz or model folder): scored on the same test window for the "
        "promotion gate (evaluation.json); without it the gate has no champion and rejects",
    )
    parser.add_argument(
        "--return_train",
        default=os.environ.get("SM_CHANNEL_RETURN"),
        help="the return training data (the `return` channel): with --champion, an order run also retrains "
        "the return lane, gates it against the serving return model and keeps the one that wins",
    )
    for bound in fields(
        gate.GateBounds
    ):  # the stage's gate bounds (cdk.json `gate`), one hyperparameter each
        parser.add_argument(
            f"--gate_{bound.name}",
            type=int if bound.type in ("int", int) else float,
            default=bound.default,
            help=f"the promotion gate's {bound.name}, for the lanes this run gates itself",
        )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--lane",
        choices=sorted(LANES),
        default="order",
        help="which model: order (order_time_ms, FEATURES) or return (return_time_ms, RETURN_FEATURES)",
    )
    parser.add_argument("--model_version", default=None)
    args = parser.parse_args(argv)
    if not args.train:
        parser.error("--train is required (or SM_CHANNEL_TRAIN)")
    return args


def load_table(path: str | Path, lane: Lane = ORDER) -> pd.DataFrame:
    source = Path(path)
    if not source.exists():
        raise TrainingDataError(f"training data not found: {source}")
    files = (
        [source] if source.is_file() else sorted(source.rglob("*.parquet")) or sorted(source.rglob("*.csv"))
    )
    if not files:
        raise TrainingDataError(f"no .parquet or .csv files under {source}")
    frames = [pd.read_parquet(f) if f.suffix == ".parquet" else pd.read_csv(f) for f in files]
    table = pd.concat(frames, ignore_index=True)
    missing = [c for c in (*lane.names, LABEL, lane.time, LABELED_AT) if c not in table.columns]
    if missing:
        raise TrainingDataError(f"training data lacks column(s): {', '.join(missing)}")
    if table.empty:
        raise TrainingDataError("training data has no rows")
    labels = set(table[LABEL].unique().tolist())
    if not labels <= {0, 1}:
        raise TrainingDataError(f"label must be 0/1, found {sorted(labels)[:5]}")
    keys = [lane.time, lane.id] if lane.id in table.columns else [lane.time]
    return table.sort_values(keys, kind="stable")


def maturity_ms(args: argparse.Namespace) -> int:
    return int((args.return_window_days + args.inspection_delay_days) * DAY_MS)


def labels_known_at(
    frame: pd.DataFrame, cut_ms: int, maturity: int, time: str = TIME
) -> tuple[pd.DataFrame, dict[str, int]]:
    """The rows of `frame` whose label a training run at `cut_ms` could know, and what was left out.

    A row with a label row counts once that label is known (labeled_at < cut); a row without one is a
    negative only once its order is mature (order time + maturity <= cut). Everything else is unknown
    at cut_ms: orders too young, and labels that arrived later (a late positive here would otherwise
    leak the future into the split, or be used before anyone knew it).
    """
    labeled_at = frame[LABELED_AT]
    has_label = labeled_at.notna()
    mature = frame[time] + maturity <= cut_ms
    known = (has_label & (labeled_at < cut_ms)) | (~has_label & mature)
    too_young = ~known & ~mature
    late = ~known & mature
    excluded = {
        "too_young": int(too_young.sum()),
        "labelled_later": int(late.sum()),
        "labelled_later_positive": int((late & (frame[LABEL] == 1)).sum()),
    }
    return frame[known], excluded


def time_split(
    table: pd.DataFrame,
    test_fraction: float,
    validation_fraction: float,
    maturity: int = 0,
    as_of_ms: int | None = None,
    lane: Lane = ORDER,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """(train, validation, test, maturity report) by time, each split judged when the next begins.

    The extract ends at as_of_ms (default: the latest order or label time). The test window is the
    latest test_fraction of the matured range (orders at least `maturity` old at as_of), labels as of
    as_of; validation ends `maturity` before the test starts, labels as of the test start; training
    ends `maturity` before validation starts, labels as of the validation start. Orders inside the
    gaps and orders too young at the end are left out and counted.
    """
    TIME = lane.time  # noqa: N806 (the lane's time column, under the name the order lane's code uses)
    start = int(table[TIME].min())
    if as_of_ms is None:
        labeled = table[LABELED_AT].dropna()
        as_of_ms = max(int(table[TIME].max()), int(labeled.max()) if len(labeled) else 0)
    mature_end = as_of_ms - maturity  # orders after this are too young for a final label
    span = mature_end - start
    test_from = mature_end - int(span * test_fraction)
    validation_to = test_from - maturity
    validation_from = validation_to - int(span * validation_fraction)
    train_to = validation_from - maturity
    if train_to <= start or span <= 0:
        raise TrainingDataError(
            f"the history ({(as_of_ms - start) / DAY_MS:.0f} days) is too short for three splits "
            f"separated by a {maturity / DAY_MS:g}-day maturity gap"
        )
    windows = {
        "train": (table[TIME] < train_to, validation_from),
        "validation": ((table[TIME] >= validation_from) & (table[TIME] < validation_to), test_from),
        "test": ((table[TIME] >= test_from) & (table[TIME] <= mature_end), as_of_ms + 1),
    }
    parts: dict[str, pd.DataFrame] = {}
    report: dict[str, Any] = {
        "maturity_days": maturity / DAY_MS,
        "as_of": iso(as_of_ms),
        "orders": len(table),
        "in_gaps": int(
            (
                ((table[TIME] >= train_to) & (table[TIME] < validation_from))
                | ((table[TIME] >= validation_to) & (table[TIME] < test_from))
            ).sum()
        ),
        "too_young_at_end": int((table[TIME] > mature_end).sum()),
        "splits": {},
    }
    for name, (rows, cut) in windows.items():
        part, excluded = labels_known_at(table[rows], cut, maturity, TIME)
        parts[name] = part
        report["splits"][name] = {
            "labels_as_of": iso(cut - 1 if name == "test" else cut),
            "rows": len(part),
            "positives": int(part[LABEL].sum()),
            "excluded": excluded,
        }
        if part[LABEL].nunique() < 2:
            raise TrainingDataError(f"the {name} window has only one class; more data is needed")
    report["used"] = sum(len(p) for p in parts.values())
    report["left_out"] = len(table) - report["used"]
    return parts["train"], parts["validation"], parts["test"], report


def matrix(frame: pd.DataFrame, lane: Lane = ORDER, names: list[str] | None = None) -> np.ndarray:
    return frame[names or lane.names].to_numpy(dtype=np.float64)


def dmatrix(frame: pd.DataFrame, lane: Lane = ORDER, label: bool = False) -> xgb.DMatrix:
    y = frame[LABEL].to_numpy() if label else None
    return xgb.DMatrix(matrix(frame, lane), label=y, feature_names=lane.names)


def recall_at_fpr(y: np.ndarray, scores: np.ndarray, fpr_target: float = 0.01) -> float:
    fpr, tpr, _ = roc_curve(y, scores)
    return float(np.max(tpr[fpr <= fpr_target])) if np.any(fpr <= fpr_target) else 0.0


def evaluate(
    y: np.ndarray, scores: np.ndarray, threshold: float, costs: tuple[float, float]
) -> dict[str, float]:
    flagged = scores >= threshold
    tp = int(np.sum(flagged & (y == 1)))
    fp = int(np.sum(flagged & (y == 0)))
    fn = int(np.sum(~flagged & (y == 1)))
    return {
        "roc_auc": float(roc_auc_score(y, scores)),
        "pr_auc": float(average_precision_score(y, scores)),
        "recall_at_1pct_fpr": recall_at_fpr(y, scores),
        "threshold": float(threshold),
        "precision_at_threshold": tp / (tp + fp) if tp + fp else 0.0,
        "recall_at_threshold": tp / (tp + fn) if tp + fn else 0.0,
        "alerts_per_1000_orders": 1000.0 * float(np.mean(flagged)),
        "cost_per_1000_orders": 1000.0 * (costs[0] * fp + costs[1] * fn) / len(y),
        "positive_rate": float(np.mean(y)),
        "rows": len(y),
    }


def cost_threshold(y: np.ndarray, scores: np.ndarray, cost_fp: float, cost_fn: float) -> float:
    """The score cut that minimises cost_fp * FP + cost_fn * FN (ties: the higher, fewer alerts)."""
    order = np.argsort(-scores, kind="stable")
    sorted_scores, sorted_y = scores[order], y[order]
    tp = np.cumsum(sorted_y)
    fp = np.cumsum(1 - sorted_y)
    cost = cost_fp * fp + cost_fn * (tp[-1] - tp)
    # Only cut between distinct scores.
    distinct = np.r_[sorted_scores[1:] != sorted_scores[:-1], True]
    candidates = np.where(distinct)[0]
    best = candidates[np.argmin(cost[candidates])]
    return float(sorted_scores[best])


def level_thresholds(
    y: np.ndarray, scores: np.ndarray, decision: float, medium_recall: float = 0.8
) -> dict[str, float]:
    """Risk levels from the validation window.

    high = the cost-optimal decision threshold (manual review); critical = the lowest score whose
    orders above it are at least 90% abusive on validation (block), never below high; medium = the
    score that still catches `medium_recall` of abusive orders (step-up verification), never above high.
    """
    order = np.argsort(-scores, kind="stable")
    sorted_scores, sorted_y = scores[order], y[order]
    tp = np.cumsum(sorted_y)
    precision = tp / np.arange(1, len(y) + 1)
    recall = tp / max(tp[-1], 1)
    precise = np.where(precision >= 0.9)[0]
    critical = float(sorted_scores[precise[-1]]) if len(precise) else float(np.quantile(scores, 0.999))
    medium = float(sorted_scores[np.argmax(recall >= medium_recall)])
    high = decision
    critical = max(critical, high)
    medium = min(medium, high)
    return {"decision": decision, "medium": medium, "high": high, "critical": critical}


def action_thresholds(
    y: np.ndarray, scores: np.ndarray, action_costs: dict[str, tuple[str, float, float]]
) -> tuple[dict[str, float], dict[str, dict[str, Any]]]:
    """Per action, the cut that minimises its own cost pair on validation (the cost curve), raised
    where needed so a stricter action never starts below a more lenient one; `decision` is the high
    action's cut. Returns (level thresholds, per-action detail)."""
    thresholds: dict[str, float] = {}
    actions: dict[str, dict[str, Any]] = {}
    floor = 0.0
    for level, (action, cost_fp, cost_fn) in action_costs.items():
        optimal = cost_threshold(y, scores, cost_fp, cost_fn)
        thresholds[level] = floor = max(optimal, floor)
        actions[action] = {
            "level": level,
            "threshold": floor,
            "cost_optimal": optimal,
            "cost_false_positive": cost_fp,
            "cost_false_negative": cost_fn,
        }
    return {"decision": thresholds["high"], **thresholds}, actions


def cap_saturated(
    y: np.ndarray, scores: np.ndarray, thresholds: dict[str, float]
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Keep every level a score can still be ranked into: below the model's saturation point.

    A model that reaches 1.0 exactly (a logistic regression far out on a feature it never saw that
    high, e.g. twenty customers on one card) ranks nothing among those orders any more: they all tie
    at 1.0, and a level that starts there is one the model can only enter by overflowing. Such a
    level is capped at the highest validation score below 1.0. Returns the thresholds and, per capped
    level, what it would have been, where it is now and the validation precision from there up (the
    metrics and the report carry it, so a saturated model is visible rather than silently strict).
    """
    below = scores[scores < 1.0]
    ceiling = float(below.max()) if len(below) else float(np.nextafter(1.0, 0.0))
    capped: dict[str, dict[str, float]] = {}
    result = dict(thresholds)
    for level, value in thresholds.items():
        if value > ceiling:
            result[level] = ceiling
            flagged = scores >= ceiling
            capped[level] = {
                "uncapped": float(value),
                "capped": ceiling,
                "validation_precision": float(np.mean(y[flagged])) if flagged.any() else 0.0,
            }
    return result, capped


def monotone_constraints(lane: Lane = ORDER) -> str:
    """XGBoost's monotone_constraints in the lane's feature order: +1 where the business direction is known."""
    return "(" + ",".join(str(f.direction) for f in lane.features) + ")"


def train_xgboost(
    train: pd.DataFrame,
    validation: pd.DataFrame,
    args: argparse.Namespace,
    monotone: bool | None = None,
    lane: Lane = ORDER,
) -> xgb.Booster:
    positives = max(int(train[LABEL].sum()), 1)
    params = {
        "objective": "binary:logistic",
        "eval_metric": ["aucpr", "auc"],
        "tree_method": "hist",
        "max_depth": args.max_depth,
        "eta": args.eta,
        "subsample": args.subsample,
        "colsample_bytree": args.colsample_bytree,
        "min_child_weight": args.min_child_weight,
        "seed": args.seed,
        "nthread": os.cpu_count() or 1,
        # Moderate re-weighting only: scores stay close to probabilities for the report's calibration.
        "scale_pos_weight": min(3.0, (len(train) - positives) / positives),
    }
    if args.monotone if monotone is None else monotone:
        params["monotone_constraints"] = monotone_constraints(lane)
    dtrain, dvalid = dmatrix(train, lane, label=True), dmatrix(validation, lane, label=True)
    booster = xgb.train(
        params,
        dtrain,
        num_boost_round=args.num_round,
        evals=[(dvalid, "validation")],
        early_stopping_rounds=args.early_stopping_rounds,
        verbose_eval=False,
    )
    log(f"xgboost: best iteration {booster.best_iteration} of {args.num_round}")
    return booster[: booster.best_iteration + 1]


def baseline_sample(train: pd.DataFrame, args: argparse.Namespace) -> pd.DataFrame:
    if len(train) > args.baseline_max_rows:  # SMOTE + a forest on millions of rows would dominate the run
        return train.sample(args.baseline_max_rows, random_state=args.seed)
    return train


def train_logistic(train: pd.DataFrame, args: argparse.Namespace, lane: Lane = ORDER) -> Any:
    """Logistic regression on standardised features: the seeds' baseline and the served fallback."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    sample = baseline_sample(train, args)
    logistic = make_pipeline(StandardScaler(), LogisticRegression(class_weight="balanced", max_iter=2000))
    x, y = matrix(sample, lane), sample[LABEL].to_numpy()
    # With --monotone, a feature whose business direction is known may not get a coefficient against
    # it (collinear risk signals flip signs: a customer who returned 6 of 6 orders scored low in
    # degraded mode). Such a feature is held at 0 and the regression fitted again until none is left.
    directions = np.array([f.direction for f in lane.features], dtype=float)
    held = np.zeros(len(directions), dtype=bool)
    while True:
        logistic.fit(np.where(held, 0.0, x), y)
        against = (directions * logistic[-1].coef_[0] < 0) & ~held
        if not args.monotone or not against.any():
            break
        held |= against
    logistic.held_at_zero_ = [name for name, h in zip(lane.names, held, strict=True) if h]
    log(
        "baseline: logistic regression trained"
        + (f"; held at 0 against their direction: {', '.join(logistic.held_at_zero_)}" if held.any() else "")
    )
    return logistic


def export_fallback(
    logistic: Any, version: str, thresholds: dict[str, float], metrics: dict[str, float], lane: Lane = ORDER
) -> dict[str, Any]:
    """The logistic regression as returnguard.fallback reads it (checked by loading it back)."""
    scaler, regression = logistic[0], logistic[-1]
    exported = {
        "kind": fallback.KIND,
        "model_version": f"{version}-fallback",
        "feature_names": lane.names,
        "intercept": float(regression.intercept_[0]),
        "coefficients": [float(v) for v in regression.coef_[0]],
        "means": [float(v) for v in scaler.mean_],
        # a constant feature has scale 1 in StandardScaler (it contributes 0 either way)
        "scales": [float(v) for v in scaler.scale_],
        "thresholds": thresholds,
        "metrics": {k: metrics[k] for k in ("roc_auc", "pr_auc", "recall_at_1pct_fpr", "rows")},
    }
    fallback.FallbackModel.from_json(exported)
    return exported


def train_baselines(train: pd.DataFrame, args: argparse.Namespace, lane: Lane = ORDER) -> dict[str, Any]:
    """The seeds' other baseline on the same split: random forest after SMOTE (on the lane's baseline
    features: for returns, seed 000's own)."""
    from imblearn.over_sampling import SMOTE
    from imblearn.pipeline import Pipeline as ImbPipeline
    from sklearn.ensemble import RandomForestClassifier

    sample = baseline_sample(train, args)
    x, y = matrix(sample, lane, baseline_names(lane)), sample[LABEL].to_numpy()
    forest = ImbPipeline(
        [
            ("smote", SMOTE(random_state=args.seed)),
            (
                "forest",
                RandomForestClassifier(
                    n_estimators=150, min_samples_leaf=5, n_jobs=-1, random_state=args.seed
                ),
            ),
        ]
    )
    forest.fit(x, y)
    log("baseline: random forest + SMOTE trained")
    return {"random_forest_smote": forest}


def baseline_names(lane: Lane) -> list[str]:
    return list(lane.baseline_features or lane.names)


TOP_SHARE = 0.02  # "recall in the top 2%": the share of abusive orders among the 2% highest scores
PERMUTED_AUC_RANGE = (0.45, 0.55)  # a model trained on permuted labels must be no better than chance


def per_pattern(frame: pd.DataFrame, scores: np.ndarray) -> dict[str, dict[str, float]]:
    """ROC-AUC and recall in the top 2% per hidden abuse pattern (the lake's abuse_type), on one split.

    Each pattern's positives are ranked against every negative of the split, so a regression on one
    pattern shows even when the others carry the overall AUC.
    """
    if "abuse_type" not in frame.columns:
        return {}
    y = frame[LABEL].to_numpy()
    pattern = frame["abuse_type"].to_numpy(dtype=object)
    cut = np.quantile(scores, 1.0 - TOP_SHARE)
    negatives = y == 0
    result = {}
    names = sorted({str(p) for p in pattern[y == 1] if p is not None and p == p})
    for name in ["all", *names]:
        rows = (y == 1) if name == "all" else (y == 1) & (pattern == name)
        if not rows.any():
            continue
        pair = rows | negatives
        result[name] = {
            "positives": int(rows.sum()),
            "roc_auc": float(roc_auc_score(rows[pair], scores[pair])),
            "recall_top_2pct": float(np.mean(scores[rows] >= cut)),
        }
    return result


def honesty_controls(
    train: pd.DataFrame,
    validation: pd.DataFrame,
    test: pd.DataFrame,
    args: argparse.Namespace,
    lane: Lane = ORDER,
) -> dict[str, dict[str, Any]]:
    """Two controls trained in the same run with the same settings as the model.

    permuted_labels: the labels of every row of the three splits shuffled at random once, then the
    same training and the same test; a score that tells these labels apart (ROC-AUC outside
    0.45-0.55) means the training or evaluation code, not the features, carries the label.
    shuffled_time: the same rows split at random instead of by time; the gap to the time split shows
    how much a random split would overstate the model.
    """
    rng = np.random.default_rng(args.seed + 1)
    quiet = argparse.Namespace(**{**vars(args), "early_stopping_rounds": min(args.early_stopping_rounds, 10)})
    shuffled_labels = rng.permutation(
        np.concatenate([train[LABEL].to_numpy(), validation[LABEL].to_numpy(), test[LABEL].to_numpy()])
    )
    a, b = len(train), len(train) + len(validation)
    booster = train_xgboost(
        train.assign(**{LABEL: shuffled_labels[:a]}),
        validation.assign(**{LABEL: shuffled_labels[a:b]}),
        quiet,
        lane=lane,
    )
    y_test = shuffled_labels[b:]
    permuted = booster.predict(dmatrix(test, lane))
    low, high = PERMUTED_AUC_RANGE
    permuted_auc = float(roc_auc_score(y_test, permuted))

    pooled = pd.concat([train, validation, test], ignore_index=True)
    order = rng.permutation(len(pooled))
    shuffled_train, shuffled_valid = pooled.iloc[order[:a]], pooled.iloc[order[a:b]]
    shuffled_test = pooled.iloc[order[b:]]
    booster = train_xgboost(shuffled_train, shuffled_valid, args, lane=lane)
    shuffled = booster.predict(dmatrix(shuffled_test, lane))
    y_shuffled = shuffled_test[LABEL].to_numpy()
    return {
        "permuted_labels": {
            "roc_auc": permuted_auc,
            "pr_auc": float(average_precision_score(y_test, permuted)),
            "positive_rate": float(np.mean(y_test)),
            "expected_roc_auc": [low, high],
            "at_chance": bool(low <= permuted_auc <= high),
        },
        "shuffled_time": {
            "roc_auc": float(roc_auc_score(y_shuffled, shuffled)),
            "pr_auc": float(average_precision_score(y_shuffled, shuffled)),
            "positive_rate": float(np.mean(y_shuffled)),
            "rows": len(shuffled_test),
        },
    }


def code_version() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def window(frame: pd.DataFrame, lane: Lane = ORDER) -> dict[str, Any]:
    times = frame[lane.time]
    return {"from": iso(int(times.min())), "to": iso(int(times.max())), "rows": len(frame)}


def write_atomically(model_dir: Path, files: dict[str, Any]) -> None:
    """Write every artifact into a staging folder, then move each into place: no half model."""
    model_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=model_dir))
    try:
        for name, content in files.items():
            target = staging / name
            if isinstance(content, xgb.Booster):
                content.save_model(str(target))
            else:
                target.write_text(json.dumps(content, indent=2, sort_keys=False) + "\n")
        for name in files:
            os.replace(staging / name, model_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    lane = LANES[args.lane]
    table = load_table(args.train, lane)
    train, validation, test, maturity = time_split(
        table, args.test_fraction, args.validation_fraction, maturity_ms(args), args.as_of_ms, lane
    )
    log(
        f"{len(table):,} rows; train {len(train):,} / validation {len(validation):,} / test {len(test):,} "
        f"(by time, {maturity['maturity_days']:g}-day maturity gaps; {maturity['left_out']:,} left out "
        "with no mature label)"
    )
    costs = (args.cost_false_positive, args.cost_false_negative)
    if lane.action_costs:  # the model's metrics at the high action's cut and costs
        costs = lane.action_costs["high"][1:]

    booster = train_xgboost(train, validation, args, lane=lane)
    dvalid, dtest = dmatrix(validation, lane), dmatrix(test, lane)
    y_valid, y_test = validation[LABEL].to_numpy(), test[LABEL].to_numpy()
    valid_scores = booster.predict(dvalid)
    # The retraining state machine reads these two lines from the training job's log (its last values):
    # another lane trained in the same job names itself, so they stay the order model's.
    tag = "" if lane is ORDER else f"[{lane.name}]"
    print(f"validation_auc{tag}={roc_auc_score(y_valid, valid_scores):.6f}", flush=True)
    print(f"validation_pr_auc{tag}={average_precision_score(y_valid, valid_scores):.6f}", flush=True)
    actions: dict[str, Any] = {}
    if lane.action_costs:
        thresholds, actions = action_thresholds(y_valid, valid_scores, lane.action_costs)
        decision = thresholds["decision"]
    else:
        decision = cost_threshold(y_valid, valid_scores, *costs)
        thresholds = level_thresholds(y_valid, valid_scores, decision)
    thresholds, capped = cap_saturated(y_valid, valid_scores, thresholds)
    capped_levels: dict[str, dict[str, dict[str, float]]] = {"xgboost": capped}
    decision = thresholds["decision"]
    test_scores = {"xgboost": booster.predict(dtest)}
    models = {"xgboost": evaluate(y_test, test_scores["xgboost"], decision, costs)}

    # The logistic regression is always trained: it is the fallback the score function serves.
    logistic = train_logistic(train, args, lane)
    baselines = {
        "logistic_regression": logistic,
        **(train_baselines(train, args, lane) if args.baselines else {}),
    }
    fallback_thresholds: dict[str, float] = {}
    for name, model in baselines.items():
        names = lane.names if model is logistic else baseline_names(lane)
        validation_baseline = model.predict_proba(matrix(validation, lane, names))[:, 1]
        baseline_threshold = cost_threshold(y_valid, validation_baseline, *costs)
        test_scores[name] = model.predict_proba(matrix(test, lane, names))[:, 1]
        models[name] = evaluate(y_test, test_scores[name], baseline_threshold, costs)
        if model is logistic and lane.action_costs:
            fallback_thresholds, _ = action_thresholds(y_valid, validation_baseline, lane.action_costs)
        elif model is logistic:
            fallback_thresholds = level_thresholds(
                y_valid, validation_baseline, baseline_threshold, FALLBACK_MEDIUM_RECALL
            )
        if model is logistic:
            fallback_thresholds, capped_levels["fallback"] = cap_saturated(
                y_valid, validation_baseline, fallback_thresholds
            )

    patterns = per_pattern(test, test_scores["xgboost"])
    controls = honesty_controls(train, validation, test, args, lane) if args.controls else {}
    monotone = {
        "constrained": [f.name for f in lane.features if f.direction and args.monotone],
        "logistic_held_at_zero": getattr(logistic, "held_at_zero_", []),
    }
    if args.controls and args.monotone:
        # What the business constraints cost: the same model without them, on the same test window.
        free = train_xgboost(train, validation, args, monotone=False, lane=lane).predict(dtest)
        monotone["unconstrained"] = {
            "roc_auc": float(roc_auc_score(y_test, free)),
            "pr_auc": float(average_precision_score(y_test, free)),
        }
        monotone["roc_auc_cost"] = monotone["unconstrained"]["roc_auc"] - models["xgboost"]["roc_auc"]
        monotone["pr_auc_cost"] = monotone["unconstrained"]["pr_auc"] - models["xgboost"]["pr_auc"]
        log(
            f"monotone constraints cost ROC-AUC {monotone['roc_auc_cost']:+.3f}, "
            f"PR-AUC {monotone['pr_auc_cost']:+.3f} against the unconstrained model"
        )
    if controls:
        log(
            f"controls: permuted labels ROC-AUC {controls['permuted_labels']['roc_auc']:.3f} (chance 0.45-0.55); "
            f"shuffled time order ROC-AUC {controls['shuffled_time']['roc_auc']:.3f}"
        )

    version = args.model_version or f"v{datetime.now(timezone.utc):%Y%m%d}-{code_version()}"
    fallback_model = export_fallback(
        logistic, version, fallback_thresholds, models["logistic_regression"], lane
    )
    config = {
        "model_version": version,
        "lane": lane.name,
        "feature_names": lane.names,
        "thresholds": thresholds,
        **({"actions": actions} if actions else {}),
        "costs": {"false_positive": costs[0], "false_negative": costs[1]},
        "data_window": {
            "train": window(train, lane),
            "validation": window(validation, lane),
            "test": window(test, lane),
        },
        "label_maturity": maturity,
        "code_version": code_version(),
        "hyperparameters": {
            k: v for k, v in vars(args).items() if k not in {"train", "model_dir", "output_data_dir"}
        },
        "best_iteration": int(booster.num_boosted_rounds()),
        "trained_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    metrics = {
        "model_version": version,
        "lane": lane.name,
        "split": "time",
        "test_window": window(test, lane),
        "label_maturity": maturity,
        "models": models,
        "fallback": {"model": "logistic_regression", "file": fallback.FILE_NAME},
        "per_pattern": {"xgboost": patterns},
        "controls": controls,
        "monotone": monotone,
        "baseline_features": {"random_forest_smote": baseline_names(lane), "logistic_regression": lane.names},
        "thresholds_capped": {model: levels for model, levels in capped_levels.items() if levels},
    }
    evidence = gate_evidence(
        test,
        test_scores["xgboost"],
        version=version,
        thresholds=thresholds,
        labels_as_of=maturity["splits"]["test"]["labels_as_of"],
        champion=args.champion,
        lane=lane,
    )
    # The drift job's reference: features over the rows the model learned from, the score over its own
    # out-of-sample scores on the test window (in-sample scores are sharper than any live ones).
    drift_baseline = drift.build_baseline(
        version,
        {name: train[name].tolist() for name in lane.names},
        test_scores["xgboost"].tolist(),
        window={"features": window(train, lane), "score": window(test, lane)},
    )
    for model, levels in capped_levels.items():
        if levels:
            log(f"{model}: saturated at 1.0 on validation; capped levels {levels}")
    with tempfile.TemporaryDirectory(prefix="lanes-") as lanes_work:
        chosen: dict[str, Path] = {}
        if lane is ORDER and args.champion:
            # The archive serves every lane: each other lane is resolved (retrained and gated, or the
            # serving one kept) and recorded in the evidence, which the gate checks before promotion.
            evidence["lanes"], chosen = resolve_lanes(args, version, Path(lanes_work))
        write_atomically(
            Path(args.model_dir),
            {
                MODEL_FILE: booster,
                "config.json": config,
                "metrics.json": metrics,
                fallback.FILE_NAME: fallback_model,
                gate.EVIDENCE_FILE: evidence,
                drift.BASELINE_FILE: drift_baseline.as_dict(),
            },
        )
        for name in evidence.get("lanes", {}):  # exactly the resolved lanes, nothing left from before
            shutil.rmtree(Path(args.model_dir) / name, ignore_errors=True)
            if name in chosen:
                shutil.copytree(chosen[name], Path(args.model_dir) / name)

    output = Path(args.output_data_dir)
    output.mkdir(parents=True, exist_ok=True)
    predictions = pd.DataFrame(
        {lane.id: test.get(lane.id, pd.Series(range(len(test)))).to_numpy(), LABEL: y_test}
    )
    if "abuse_type" in test.columns:
        predictions["abuse_type"] = test["abuse_type"].to_numpy(dtype=object)
    for name, scores in test_scores.items():
        predictions[f"score_{name}"] = scores
    predictions.to_parquet(output / "test_predictions.parquet", index=False)
    (output / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    for name, result in models.items():
        log(
            f"{name:<22} ROC-AUC {result['roc_auc']:.3f}  PR-AUC {result['pr_auc']:.3f}  "
            f"recall@1%FPR {result['recall_at_1pct_fpr']:.2f}"
        )
    log(f"done in {time.perf_counter() - started:.1f}s; model {version} in {args.model_dir}")
    return {"config": config, "metrics": metrics}


def load_champion(location: str | Path) -> tuple[xgb.Booster, dict[str, Any]]:
    """The serving model from a folder holding its files or its model.tar.gz (a SageMaker channel)."""
    source = Path(location)
    archives = [source] if source.is_file() else sorted(source.glob("*.tar.gz"))
    with tempfile.TemporaryDirectory(prefix="champion-") as work:
        folder = source
        if archives:
            with tarfile.open(archives[0]) as tar:
                # the "data" filter (no absolute paths, links out, devices) where this Python has it
                tar.extractall(work, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
            folder = Path(work)
        config = json.loads((folder / "config.json").read_text())
        booster = xgb.Booster()
        booster.load_model(str(folder / MODEL_FILE))
    return booster, config


# The other lanes' folders in one model archive, named by their feature spec's lane as
# training/inference.py loads them (returnguard.returns_policy.RETURN_MODEL_DIR, payment_scoring's
# PAYMENT_MODEL_DIR): an order run with a serving archive resolves each of them (resolve_lanes).
OTHER_LANE_DIRS = tuple(name for name in FEATURE_LANES if name != "order")


def unpack_lanes(champion: str | Path, work: Path) -> Path:
    """The folder holding the serving archive's lanes (a model folder, or its model.tar.gz unpacked into
    `work`). Raises when the archive cannot be read."""
    source = Path(champion)
    archives = [source] if source.is_file() else sorted(source.glob("*.tar.gz"))
    if not archives:
        return source
    with tarfile.open(archives[0]) as tar:
        members = [m for m in tar.getmembers() if m.name.split("/", 1)[0] in OTHER_LANE_DIRS]
        tar.extractall(
            work, members=members, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {})
        )
    return work


def check_lane(folder: Path, name: str) -> None:
    """Raise unless `folder` holds a model the inference code can serve for lane `name`."""
    _, config = load_champion(folder)
    if list(config.get("feature_names") or []) != [f.name for f in FEATURE_LANES[name]]:
        raise TrainingDataError(f"the serving {name} model's feature list is not this code's")


def resolve_lanes(
    args: argparse.Namespace, version: str, work: Path
) -> tuple[dict[str, dict[str, Any]], dict[str, Path]]:
    """Each other lane of an order candidate's archive, and the folder to serve for it.

    With return training data (--return_train) the return lane is retrained here and gated against the
    serving return model on its own mature window, by the same gate (returnguard.gate.decide, this run's
    --gate_* bounds); the winner is served. Other lanes keep the serving archive's model unchanged. A
    serving archive or lane that cannot be read is recorded as the lane's `error` (never silently
    dropped): the gate then rejects the candidate (`<lane>_lane_unresolved`)."""
    lanes: dict[str, dict[str, Any]] = {}
    chosen: dict[str, Path] = {}
    try:
        serving = unpack_lanes(args.champion, work / "serving")
    except Exception as error:
        message = f"the serving archive could not be read: {type(error).__name__}: {error}"[:500]
        log(message)
        return {name: {"serves": None, "error": message} for name in OTHER_LANE_DIRS}, {}
    for name in OTHER_LANE_DIRS:
        folder = serving / name
        record: dict[str, Any] = {"serving_lane": (folder / "config.json").is_file(), "retrained": False}
        try:
            if record["serving_lane"]:
                check_lane(folder, name)
        except Exception as error:
            lanes[name] = {**record, "serves": None, "error": f"{type(error).__name__}: {error}"[:500]}
            log(f"{name} lane: the serving model cannot be served again: {error}")
            continue
        candidate = None
        if name == RETURN.name and args.return_train:
            record, candidate = retrain_lane(
                args, version, work, folder if record["serving_lane"] else None, record
            )
        serves = "candidate" if candidate else ("serving" if record["serving_lane"] else None)
        if serves:
            chosen[name] = candidate or folder
        lanes[name] = {**record, "serves": serves}
        log(f"{name} lane: serves {f'the {serves}' if serves else 'no'} model")
    return lanes, chosen


def retrain_lane(
    args: argparse.Namespace, version: str, work: Path, serving: Path | None, record: dict[str, Any]
) -> tuple[dict[str, Any], Path | None]:
    """Train the return lane's candidate with this run's settings, gate it against `serving` (the
    serving return model) on its mature window, and return (the lane's record, the candidate's folder
    if it won)."""
    lane_args = argparse.Namespace(
        **{
            **vars(args),
            "train": args.return_train,
            "return_train": None,
            "model_dir": str(work / RETURN.name / "model"),
            "output_data_dir": str(Path(args.output_data_dir) / RETURN.name),
            "lane": RETURN.name,
            "return_window_days": 0.0,  # a return request's label waits for its inspection only
            "champion": str(serving) if serving else None,
            "model_version": f"{version}-{RETURN.name}",
        }
    )
    try:
        run(lane_args)
    except TrainingDataError as error:  # e.g. a lake without return requests: the serving one stays
        log(f"{RETURN.name} lane: not retrained: {error}")
        return {**record, "why": str(error)[:500]}, None
    evidence = json.loads((Path(lane_args.model_dir) / gate.EVIDENCE_FILE).read_text())
    bounds = gate.GateBounds.from_mapping(
        {f.name: getattr(args, f"gate_{f.name}") for f in fields(gate.GateBounds)}
    )
    decision = gate.decide(evidence, RETURN.names, bounds)
    log(
        f"{RETURN.name} lane: candidate {decision.approval_status} ({', '.join(decision.reasons) or 'no reasons'})"
    )
    record = {**record, "retrained": True, "evidence": evidence}
    return record, Path(lane_args.model_dir) if decision.approved else None


def gate_evidence(
    test: pd.DataFrame,
    scores: np.ndarray,
    *,
    version: str,
    thresholds: dict[str, float],
    labels_as_of: str,
    champion: str | Path | None,
    lane: Lane = ORDER,
) -> dict[str, Any]:
    """What the promotion gate judges (returnguard.gate.decide): the candidate and the serving model
    scored on the same mature window (this run's test window), each at its own thresholds."""
    y = test[LABEL].to_numpy()
    threshold = thresholds["decision"]
    evidence: dict[str, Any] = {
        "kind": gate.EVIDENCE_KIND,
        "window": {**window(test, lane), "positives": int(y.sum()), "labels_as_of": labels_as_of},
        "candidate": {
            "model_version": version,
            "feature_names": lane.names,
            "roc_auc": float(roc_auc_score(y, scores)),
            "pr_auc": float(average_precision_score(y, scores)),
            "threshold": float(threshold),
            "alert_rate": gate.alert_rate(scores.tolist(), threshold),
            "level_shares": gate.level_shares(scores.tolist(), thresholds),
        },
        "champion": {"error": "no champion model was given (--champion / the champion channel)"},
        "score_psi": None,
        "level_psi": None,
    }
    if champion is None:
        return evidence
    try:
        booster, config = load_champion(champion)
        names = list(config["feature_names"])
        missing = [name for name in names if name not in test.columns]
        if missing:
            raise TrainingDataError(f"the window lacks the champion's feature(s): {', '.join(missing)}")
        matrix_ = test[names].to_numpy(dtype=np.float64)
        champion_scores = booster.predict(xgb.DMatrix(matrix_, feature_names=names))
        champion_threshold = float(config["thresholds"]["decision"])
        champion_shares = gate.level_shares(champion_scores.tolist(), config["thresholds"])
    except Exception as error:  # the gate rejects on an unscored champion; the run itself succeeds
        evidence["champion"] = {"error": f"{type(error).__name__}: {error}"}
        log(f"gate: the champion could not be scored: {error}")
        return evidence
    evidence["champion"] = {
        "model_version": str(config.get("model_version", "unknown")),
        "feature_names": names,
        "roc_auc": float(roc_auc_score(y, champion_scores)),
        "pr_auc": float(average_precision_score(y, champion_scores)),
        "threshold": champion_threshold,
        "alert_rate": gate.alert_rate(champion_scores.tolist(), champion_threshold),
        "level_shares": champion_shares,
    }
    evidence["score_psi"] = gate.score_psi(champion_scores.tolist(), scores.tolist())
    evidence["level_psi"] = gate.level_psi(champion_shares, evidence["candidate"]["level_shares"])
    log(
        f"gate evidence on {len(test):,} orders: candidate ROC-AUC {evidence['candidate']['roc_auc']:.3f} vs "
        f"champion {evidence['champion']['roc_auc']:.3f}; level PSI {evidence['level_psi']:.3f} "
        f"(score PSI {evidence['score_psi']:.3f})"
    )
    return evidence


def train_frame(table: pd.DataFrame, work_dir: str | Path, *extra: str) -> dict[str, Any]:
    """Train on an in-memory table: it is written to work_dir/table.parquet, artifacts land in
    work_dir/model and work_dir/output. For tests and benchmarks."""
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    table.to_parquet(work / "table.parquet", index=False)
    return run(
        parse_args(
            [
                "--train",
                str(work / "table.parquet"),
                "--model-dir",
                str(work / "model"),
                "--output-data-dir",
                str(work / "output"),
                *extra,
            ]
        )
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        run(args)
    except TrainingDataError as error:
        print(f"[train] error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
