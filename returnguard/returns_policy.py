"""Refund-action ladder for return requests: return-model score + return hard rules -> risk level, action.

The ladder is per deployment (RG_RETURN_POLICY, from the `return_policy` context), like the order
policy: the score thresholds default to the return model's config.json `thresholds` and may be
overridden, and each risk level names its refund action. The actions are ranked from lenient to
strict (REFUND_STRICTNESS) and a ladder must never get more lenient as the level rises, so a higher
score never gets a more lenient action; `critical` always goes to a person (manual_review).

`deny_refund` is not on the ladder: only a hard rule (returnguard.returns_rules) gives it, never the
model, and even then a person confirms it before money is withheld (`review_required`).
A return the model could not score (no return model answered) is never refunded instantly: its level
is at least medium, also when the fallback model (returnguard.fallback, the same run's logistic
regression) scored it in the model's place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from returnguard.policy import LEVELS, RiskLevel
from returnguard.returns_rules import DEFAULT_RETURN_WINDOW_DAYS

RefundAction = Literal[
    "instant_refund",
    "refund_after_pickup_inspection",
    "photo_or_video_proof",
    "open_box_pickup",
    "manual_review",
    "deny_refund",
]
# Lenient (0) to strict. Proof and open-box pickup are two ways to check a high-risk return: equal rank.
REFUND_STRICTNESS: dict[str, int] = {
    "instant_refund": 0,
    "refund_after_pickup_inspection": 1,
    "photo_or_video_proof": 2,
    "open_box_pickup": 2,
    "manual_review": 3,
    "deny_refund": 4,
}
LADDER_ACTIONS: tuple[str, ...] = tuple(a for a in REFUND_STRICTNESS if a != "deny_refund")
DEFAULT_LADDER: dict[str, str] = {
    "low": "instant_refund",
    "medium": "refund_after_pickup_inspection",
    "high": "photo_or_video_proof",
    "critical": "manual_review",
}
DEFAULT_THRESHOLDS = {"medium": 0.3, "high": 0.6, "critical": 0.85}
# the return model's folder inside the one model archive (beside the order model's files)
RETURN_MODEL_DIR = "return"
# the return lane's fallback model as the score function's asset carries it (in the model folder it is
# return/fallback_model.json)
RETURN_FALLBACK_FILE = "return_fallback_model.json"
# what a deployment may set in RG_RETURN_POLICY
RETURN_POLICY_SETTINGS = ("medium", "high", "critical", "ladder", "return_window_days")


@dataclass(frozen=True)
class ReturnPolicyConfig:
    medium: float = DEFAULT_THRESHOLDS["medium"]
    high: float = DEFAULT_THRESHOLDS["high"]
    critical: float = DEFAULT_THRESHOLDS["critical"]
    ladder: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_LADDER))
    return_window_days: int = DEFAULT_RETURN_WINDOW_DAYS  # returnguard.returns_rules' window after delivery

    def __post_init__(self) -> None:
        if not 0.0 <= self.medium <= self.high <= self.critical <= 1.0:
            raise ValueError("return thresholds must satisfy 0 <= medium <= high <= critical <= 1")
        if set(self.ladder) != set(LEVELS):
            raise ValueError(f"ladder must name an action for each of {', '.join(LEVELS)}")
        for level in LEVELS:
            if self.ladder[level] not in LADDER_ACTIONS:
                raise ValueError(
                    f"ladder.{level} must be one of {', '.join(LADDER_ACTIONS)} "
                    f"(deny_refund comes from hard rules only), got {self.ladder[level]!r}"
                )
        for lower, higher in zip(LEVELS[:-1], LEVELS[1:], strict=True):
            if REFUND_STRICTNESS[self.ladder[higher]] < REFUND_STRICTNESS[self.ladder[lower]]:
                raise ValueError(
                    f"ladder.{higher} ({self.ladder[higher]}) is more lenient than ladder.{lower} "
                    f"({self.ladder[lower]}): a higher risk level must never get a more lenient action"
                )
        if not 1 <= self.return_window_days <= 365:
            raise ValueError(f"return_window_days must be between 1 and 365, got {self.return_window_days}")
        if self.ladder["critical"] != "manual_review":
            raise ValueError("ladder.critical must be manual_review: a person decides critical returns")

    @property
    def thresholds(self) -> dict[str, float]:
        return {"medium": self.medium, "high": self.high, "critical": self.critical}

    def with_thresholds(self, thresholds: Mapping[str, float]) -> ReturnPolicyConfig:
        """The same ladder on another model's score scale (the fallback model's own thresholds)."""
        return replace(
            self,
            medium=float(thresholds["medium"]),
            high=float(thresholds["high"]),
            critical=float(thresholds["critical"]),
        )

    @classmethod
    def from_settings(
        cls, model_thresholds: Mapping[str, Any] | None, overrides: Mapping[str, Any] | None = None
    ) -> ReturnPolicyConfig:
        """The return model's thresholds (its config.json `thresholds`; None: DEFAULT_THRESHOLDS), then
        the deployment's `overrides`: any of RETURN_POLICY_SETTINGS, `ladder` a partial
        {level: action}. An unknown setting or a value out of range is a ValueError naming it."""
        overrides = dict(overrides or {})
        unknown = sorted(set(overrides) - set(RETURN_POLICY_SETTINGS))
        if unknown:
            raise ValueError(
                f"unknown return policy setting {', '.join(unknown)} "
                f"(known: {', '.join(RETURN_POLICY_SETTINGS)})"
            )
        thresholds = {
            **DEFAULT_THRESHOLDS,
            **{k: v for k, v in (model_thresholds or {}).items() if k in DEFAULT_THRESHOLDS},
        }
        for name in DEFAULT_THRESHOLDS:
            value = overrides.get(name, thresholds[name])
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise ValueError(f"{name} must be a number, got {value!r}")
            thresholds[name] = float(value)
        ladder_overrides = overrides.get("ladder", {})
        if not isinstance(ladder_overrides, Mapping):
            raise ValueError('ladder must be a JSON object, e.g. {"high": "open_box_pickup"}')
        unknown_levels = sorted(set(ladder_overrides) - set(LEVELS))
        if unknown_levels:
            raise ValueError(
                f"ladder: unknown level {', '.join(map(str, unknown_levels))} (known: {', '.join(LEVELS)})"
            )
        window = overrides.get("return_window_days", DEFAULT_RETURN_WINDOW_DAYS)
        if not isinstance(window, int) or isinstance(window, bool):
            raise ValueError(f"return_window_days must be a whole number of days, got {window!r}")
        return cls(**thresholds, ladder={**DEFAULT_LADDER, **ladder_overrides}, return_window_days=window)

    def to_json(self) -> dict[str, Any]:
        return {**self.thresholds, "ladder": dict(self.ladder), "return_window_days": self.return_window_days}


def level_for_return_score(score: float, config: ReturnPolicyConfig) -> RiskLevel:
    if score >= config.critical:
        return "critical"
    if score >= config.high:
        return "high"
    if score >= config.medium:
        return "medium"
    return "low"


def return_policy(model_config: Mapping[str, Any], overrides: Any) -> ReturnPolicyConfig:
    """The deployment's ladder from RG_MODEL_CONFIG (the return model's thresholds under `return`) and
    RG_RETURN_POLICY's overrides; ValueError naming what is wrong."""
    if not isinstance(overrides, Mapping):
        raise ValueError('must be a JSON object, e.g. {"ladder": {"high": "open_box_pickup"}}')
    return_model = model_config.get(RETURN_MODEL_DIR) or {}
    return ReturnPolicyConfig.from_settings(return_model.get("thresholds"), overrides)


@dataclass(frozen=True)
class ReturnPolicyResult:
    risk_level: RiskLevel
    recommended_action: str
    rules_triggered: tuple[str, ...]
    review_required: bool  # a person looks before the refund is paid or withheld


def apply_return(
    score: float | None,
    rules_triggered: tuple[str, ...],
    config: ReturnPolicyConfig,
    *,
    deny: bool = False,
    review: bool = False,
    degraded: bool = False,
) -> ReturnPolicyResult:
    """The refund action for one return.

    `score`: the return model's, None when no model answered (then at least medium).
    `rules_triggered`: the hard rules that fired (returnguard.returns_rules); `deny` when one of them
    denies the refund (critical, deny_refund, a person confirms); `review` when one of them needs a
    person without denying (at least critical's manual_review). Rules only ever make it stricter.
    `degraded`: the return model did not answer and `score`, if any, is the fallback model's: at
    least medium, never an instant refund.
    """
    level = "medium" if score is None else level_for_return_score(score, config)
    if degraded and LEVELS.index(level) < LEVELS.index("medium"):
        level = "medium"
    if review or deny:
        level = "critical"
    action = "deny_refund" if deny else config.ladder[level]
    return ReturnPolicyResult(
        level, action, rules_triggered, review_required=action in ("manual_review", "deny_refund")
    )
