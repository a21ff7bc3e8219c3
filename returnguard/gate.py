"""The promotion gate: may a retrained candidate replace the serving model (the champion)?

Both models are scored on the same mature time window (the training run's test window: every order
old enough for its return window and inspection delay, labels as known at the extract's end). The
training job measures them there and writes the evidence (`gate_evidence`, in the model's
`evaluation.json`); `decide` judges it against configurable bounds:

- ROC-AUC and PR-AUC: the candidate may be worse than the champion by at most a margin;
- the score distribution over the decisions: the PSI of the shares of the window each model puts at each
  risk level (below medium, medium, high, critical), each at its own thresholds. The thresholds travel
  with the model (its serving profile), so this is how far the mix of actions would move. The PSI of
  the raw scores against the champion's deciles is recorded beside it but decides nothing: two models
  calibrated a little differently move most orders across the champion's low deciles, where nothing is
  decided (docs/model.md, the gate);
- the alert rate (share of the window at or above each model's own decision threshold): an absolute
  ceiling, and at most a factor away from the champion's in either direction;
- the feature list: exactly what serving computes (the feature spec);
- the window: enough rows and positives for the numbers to mean something;
- the archive's other lanes (`lanes`: return, payment): a lane the job retrained is judged by the same
  rules on its own window against the serving model of that lane, and the archive must serve the one
  that won (the candidate if approved, the serving one otherwise); a lane the job could not resolve
  (the serving archive unreadable) or that serves the wrong model rejects the whole candidate;
- a lane promotion (`lanes_to_promote`): when the order candidate is rejected, a retrained lane whose
  candidate was approved and is served can still be served alone, in the serving archive with that
  lane's folder replaced (returnguard.aws.lane_promotion builds it).

It fails closed: evidence that is missing, malformed or not a finite number rejects the candidate
with a reason, never promotes it. Pure Python (no numpy): the promote step, the gate Lambda and the
`returnguard models` CLI all call it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from returnguard import drift
from returnguard.features import LANES

EVIDENCE_FILE = "evaluation.json"  # in the model directory (model.tar.gz), written by training/train.py
EVIDENCE_KIND = "returnguard.gate_evidence/1"


class GateConfigError(ValueError):
    """Gate bounds that cannot be used; the message names the bound."""


@dataclass(frozen=True)
class GateBounds:
    """What a candidate must satisfy against the champion; deployments override any of them."""

    max_roc_auc_drop: float = 0.01  # candidate ROC-AUC >= champion's - this
    max_pr_auc_drop: float = 0.02  # candidate PR-AUC >= champion's - this
    max_level_psi: float = 0.25  # PSI of candidate vs champion risk-level shares (0.25: a major shift)
    max_alert_rate: float = 0.20  # share of orders at or above the decision threshold, absolute ceiling
    max_alert_rate_ratio: float = 1.5  # candidate/champion alert rate within [1/this, this]
    min_window_rows: int = 200
    min_window_positives: int = 10

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> GateBounds:
        """Bounds from a mapping (cdk.json context `gate`, the Lambda's RG_GATE_BOUNDS); unknown keys and
        values out of range raise GateConfigError naming the key."""
        values = dict(values or {})
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise GateConfigError(f"unknown gate bound(s): {', '.join(unknown)}; known: {', '.join(known)}")
        parsed: dict[str, Any] = {}
        for name, value in values.items():
            kind = int if known[name].type in ("int", int) else float
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise GateConfigError(f"gate bound {name} must be a number, got {value!r}")
            try:
                number = kind(value)
            except ValueError:
                raise GateConfigError(f"gate bound {name} must be a number, got {value!r}") from None
            if not math.isfinite(number) or number < 0:
                raise GateConfigError(f"gate bound {name} must be a finite number >= 0, got {value!r}")
            parsed[name] = number
        bounds = cls(**parsed)
        if bounds.max_alert_rate_ratio < 1:
            raise GateConfigError("gate bound max_alert_rate_ratio must be >= 1")
        if bounds.max_alert_rate > 1:
            raise GateConfigError("gate bound max_alert_rate is a share of orders: at most 1")
        return bounds

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


@dataclass(frozen=True)
class GateDecision:
    approved: bool
    reasons: tuple[str, ...]  # stable codes; empty when approved
    numbers: dict[str, Any]  # every number the decision looked at, for the registry and the lake
    bounds: GateBounds = field(default_factory=GateBounds)
    lanes: dict[str, dict[str, Any]] = field(default_factory=dict)  # the other lanes' (judge_lanes)

    @property
    def approval_status(self) -> str:
        """The model package's ModelApprovalStatus."""
        return "Approved" if self.approved else "Rejected"

    def as_record(self) -> dict[str, Any]:
        return {
            "approved": self.approved,
            "approval_status": self.approval_status,
            "reasons": list(self.reasons),
            "numbers": self.numbers,
            "bounds": self.bounds.as_dict(),
            **({"lanes": self.lanes} if self.lanes else {}),
        }


# --- metrics on the window ---------------------------------------------------------------------------


def score_psi(expected: Sequence[float], actual: Sequence[float], bins: int = drift.DEFAULT_BINS) -> float:
    """Population stability index of `actual` against `expected`, on `expected`'s quantile bins: the
    drift job's PSI (returnguard.drift), so the gate and the drift alarm measure a shift the same way."""
    reference = [v for v in expected if math.isfinite(v)]
    if not reference or not any(math.isfinite(v) for v in actual):
        raise ValueError("PSI needs finite scores on both sides")
    value, _ = drift.psi(drift.histogram(reference, bins), actual)
    return value


BELOW_LEVELS = "below"  # the share under every level's threshold (the lane's most lenient action)


def level_shares(scores: Sequence[float], thresholds: Mapping[str, float]) -> dict[str, float]:
    """The share of `scores` at each risk level: a score belongs to the highest level whose threshold
    it reaches (`thresholds` as a model's config has them; `decision` is an alias, not a level), and
    to BELOW_LEVELS under all of them. Levels sharing one threshold: the higher level takes them."""
    if not scores:
        raise ValueError("level shares of no scores")
    levels = sorted(
        ((float(cut), name) for name, cut in thresholds.items() if name != "decision"),
        key=lambda level: level[0],
    )
    if not levels or not all(math.isfinite(cut) for cut, _ in levels):
        raise ValueError("level shares need finite level thresholds")
    counts = dict.fromkeys([BELOW_LEVELS, *(name for _, name in levels)], 0)
    for score in scores:
        if not math.isfinite(score):
            raise ValueError("level shares need finite scores")
        reached = BELOW_LEVELS
        for cut, name in levels:
            if score >= cut:
                reached = name
        counts[reached] += 1
    return {name: count / len(scores) for name, count in counts.items()}


def level_psi(champion: Mapping[str, float], candidate: Mapping[str, float]) -> float:
    """PSI of the candidate's level shares against the champion's, over the levels either names (a
    level one side lacks counts as empty there, floored as the drift job floors an empty bin)."""
    names = sorted(set(champion) | set(candidate))
    return drift.psi_of_shares([champion.get(n, 0.0) for n in names], [candidate.get(n, 0.0) for n in names])


def alert_rate(scores: Sequence[float], threshold: float) -> float:
    """The share of `scores` at or above `threshold` (what the model would send to review or block)."""
    if not scores:
        raise ValueError("alert rate of no scores")
    return sum(1 for s in scores if s >= threshold) / len(scores)


# --- the decision ------------------------------------------------------------------------------------


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def decide(
    evidence: Mapping[str, Any] | None, serving_features: Sequence[str], bounds: GateBounds | None = None
) -> GateDecision:
    """Judge the candidate in `evidence` (see training/train.py `gate_evidence`) against the champion
    measured on the same window. Every failed check adds its reason; anything missing rejects."""
    bounds = bounds or GateBounds()
    reasons: list[str] = []
    numbers: dict[str, Any] = {}
    if not isinstance(evidence, Mapping) or evidence.get("kind") != EVIDENCE_KIND:
        return GateDecision(False, ("missing_evidence",), numbers, bounds)
    window, candidate, champion = (
        _mapping(evidence.get(part)) for part in ("window", "candidate", "champion")
    )
    numbers["window"] = {k: window.get(k) for k in ("from", "to", "rows", "positives", "labels_as_of")}
    numbers["candidate_version"] = candidate.get("model_version")
    numbers["champion_version"] = champion.get("model_version")

    rows, positives = _number(window.get("rows")), _number(window.get("positives"))
    if rows is None or positives is None:
        reasons.append("missing_window")
    elif rows < bounds.min_window_rows or positives < bounds.min_window_positives:
        reasons.append("window_too_small")

    features = candidate.get("feature_names")
    numbers["feature_list_matches"] = isinstance(features, list) and list(features) == list(serving_features)
    if not numbers["feature_list_matches"]:
        reasons.append("feature_list_mismatch")
        if isinstance(features, list):
            numbers["features_missing"] = [f for f in serving_features if f not in features]
            numbers["features_extra"] = [f for f in features if f not in serving_features]

    if champion.get("error"):
        numbers["champion_error"] = str(champion["error"])[:500]
        reasons.append("champion_unscored")
    metrics: dict[str, dict[str, float | None]] = {}
    for side, source in (("candidate", candidate), ("champion", champion)):
        metrics[side] = {m: _number(source.get(m)) for m in ("roc_auc", "pr_auc", "alert_rate")}
        numbers[side] = metrics[side]
    if any(v is None for side in metrics.values() for v in side.values()):
        if "champion_unscored" not in reasons:
            reasons.append("missing_metrics")
    else:
        new, old = metrics["candidate"], metrics["champion"]
        assert all(v is not None for v in (*new.values(), *old.values()))
        numbers["roc_auc_change"] = new["roc_auc"] - old["roc_auc"]  # type: ignore[operator]
        numbers["pr_auc_change"] = new["pr_auc"] - old["pr_auc"]  # type: ignore[operator]
        if numbers["roc_auc_change"] < -bounds.max_roc_auc_drop:
            reasons.append("roc_auc_worse")
        if numbers["pr_auc_change"] < -bounds.max_pr_auc_drop:
            reasons.append("pr_auc_worse")
        new_rate, old_rate = float(new["alert_rate"]), float(old["alert_rate"])  # type: ignore[arg-type]
        ratio = new_rate / old_rate if old_rate > 0 else (1.0 if new_rate == 0 else math.inf)
        numbers["alert_rate_ratio"] = ratio
        if new_rate > bounds.max_alert_rate:
            reasons.append("alert_rate_too_high")
        elif not (1 / bounds.max_alert_rate_ratio <= ratio <= bounds.max_alert_rate_ratio):
            reasons.append("alert_rate_shift")

    numbers["score_psi"] = _number(evidence.get("score_psi"))  # recorded, decides nothing (see above)
    psi = _number(evidence.get("level_psi"))
    numbers["level_psi"] = psi
    numbers["level_shares"] = {
        side: _mapping(source.get("level_shares"))
        for side, source in (("candidate", candidate), ("champion", champion))
    }
    if psi is None:
        if "champion_unscored" not in reasons and "missing_metrics" not in reasons:
            reasons.append("missing_metrics")
    elif psi > bounds.max_level_psi:
        reasons.append("score_distribution_shift")
    lanes = judge_lanes(evidence.get("lanes"), bounds)
    reasons.extend(f"{name}_lane_{lane['problem']}" for name, lane in lanes.items() if lane.get("problem"))
    return GateDecision(not reasons, tuple(reasons), numbers, bounds, lanes)


# The model each other lane of the archive serves: the job's candidate, the serving archive's, or none.
SERVES = ("candidate", "serving", None)


def judge_lanes(lanes: Any, bounds: GateBounds) -> dict[str, dict[str, Any]]:
    """Each other lane the training job resolved (train.py `resolve_lanes`): a retrained lane's own
    decision (`decide` on its evidence, against that lane's feature spec), and a `problem` when the
    archive cannot be promoted for it: `unresolved` (the job could not read the serving lane, or says
    nothing usable) or `mismatch` (the archive serves another model than the decision chose)."""
    judged: dict[str, dict[str, Any]] = {}
    for name, lane in _mapping(lanes).items():
        if not isinstance(lane, Mapping) or name not in LANES or lane.get("serves") not in SERVES:
            judged[str(name)] = {"problem": "unresolved", "error": "not a lane record"}
            continue
        record: dict[str, Any] = {
            "retrained": lane.get("retrained") is True,
            "serving_lane": lane.get("serving_lane") is True,
            "serves": lane.get("serves"),
        }
        if lane.get("error"):
            judged[name] = {**record, "problem": "unresolved", "error": str(lane["error"])[:500]}
            continue
        if record["retrained"]:
            decision = decide(lane.get("evidence"), [f.name for f in LANES[name]], bounds)
            record.update({k: v for k, v in decision.as_record().items() if k != "bounds"})
            chosen = "candidate" if decision.approved else None
        else:
            if lane.get("why"):  # e.g. no rows of the lane's training data
                record["why"] = str(lane["why"])[:500]
            chosen = None
        expected = chosen or ("serving" if record["serving_lane"] else None)
        if record["serves"] != expected:
            record.update(problem="mismatch", expected=expected)
        judged[name] = record
    return judged


def lanes_to_promote(decision: GateDecision) -> tuple[str, ...]:
    """The lanes to serve alone when the order candidate is rejected: each retrained lane whose own
    decision approved its candidate and whose archive serves it. None when the order candidate is
    approved (its archive already serves them, promoted as a whole) or when any lane is unresolved or
    mismatched (the candidate archive's lane folders are then not what the decisions chose)."""
    if decision.approved or any(lane.get("problem") for lane in decision.lanes.values()):
        return ()
    return tuple(
        sorted(
            name
            for name, lane in decision.lanes.items()
            if lane.get("retrained") is True
            and lane.get("approved") is True
            and lane.get("serves") == "candidate"
        )
    )


def registry_metadata(decision: GateDecision, **extra: str) -> dict[str, str]:
    """The decision as a model package's CustomerMetadataProperties: string values, keys under 128
    characters, values under 1024 (SageMaker's limits)."""

    def text(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.6g}"
        return "" if value is None else str(value)

    numbers = decision.numbers
    window = numbers.get("window") or {}
    metadata = {
        "gate_decision": decision.approval_status,
        "gate_reasons": ",".join(decision.reasons) or "none",
        "window_from": text(window.get("from")),
        "window_to": text(window.get("to")),
        "window_rows": text(window.get("rows")),
        "window_positives": text(window.get("positives")),
        "champion_version": text(numbers.get("champion_version")),
        "model_version": text(numbers.get("candidate_version")),
        "feature_list_matches": text(numbers.get("feature_list_matches")),
        "score_psi": text(numbers.get("score_psi")),
        "level_psi": text(numbers.get("level_psi")),
    }
    for side in ("candidate", "champion"):
        for metric, value in (numbers.get(side) or {}).items():
            metadata[f"{side}_{metric}"] = text(value)
    for name, lane in decision.lanes.items():
        metadata[f"{name}_serves"] = text(lane.get("serves") or "none")
        metadata[f"{name}_gate_decision"] = text(lane.get("approval_status") or "not retrained")
        metadata[f"{name}_gate_reasons"] = ",".join(lane.get("reasons") or []) or text(lane.get("problem"))
        for side in ("candidate", "champion"):
            for metric in ("roc_auc", "pr_auc"):
                metadata[f"{name}_{side}_{metric}"] = text(
                    ((lane.get("numbers") or {}).get(side) or {}).get(metric)
                )
    metadata.update(extra)
    return {key[:128]: value[:1024] for key, value in metadata.items() if value != ""}
