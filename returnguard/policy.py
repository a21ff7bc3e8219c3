"""Decision policy: model score + hard rules -> risk level, recommended action, rules triggered.

Config-driven: the thresholds come from the model's config.json (`thresholds`: decision, medium,
high, critical); a deployment may override them, the velocity rule's order count and what degraded
decisions may do (RG_POLICY, from the `policy` context). A degraded decision (the model endpoint did
not answer) is scored by the fallback model on its own thresholds, its score-based level kept within
`degraded_floor`..`degraded_ceiling`; with no score at all it is never below medium. Hard rules come from `returnguard.rules` so the API and the
batch rules job agree on what "blocklisted", "high amount" and "velocity" mean.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from returnguard.rules import VELOCITY_ORDERS, RuleFlags

RiskLevel = Literal["low", "medium", "high", "critical"]
Action = Literal["approve", "otp_verification", "manual_review", "block"]
LEVELS: tuple[RiskLevel, ...] = ("low", "medium", "high", "critical")
ACTIONS: dict[RiskLevel, Action] = {
    "low": "approve",
    "medium": "otp_verification",
    "high": "manual_review",
    "critical": "block",
}
COD_HINT_MIN_REFUSALS = 1  # the customer refused at least one COD order before


# what a deployment may override
POLICY_SETTINGS = ("medium", "high", "critical", "velocity_orders", "degraded_floor", "degraded_ceiling")


@dataclass(frozen=True)
class PolicyConfig:
    medium: float = 0.3
    high: float = 0.6
    critical: float = 0.85
    velocity_orders: int = VELOCITY_ORDERS  # orders by one customer within 60 s that mean velocity
    # A fallback-scored decision's level is kept within these (hard rules still raise it, e.g. a
    # blocklisted customer is blocked): by default the weaker model may ask for review, never block.
    degraded_floor: RiskLevel = "low"
    degraded_ceiling: RiskLevel = "high"

    def __post_init__(self) -> None:
        if not 0.0 <= self.medium <= self.high <= self.critical <= 1.0:
            raise ValueError("thresholds must satisfy 0 <= medium <= high <= critical <= 1")
        if not 2 <= self.velocity_orders <= 100:
            raise ValueError(f"velocity_orders must be between 2 and 100, got {self.velocity_orders}")
        for name in ("degraded_floor", "degraded_ceiling"):
            if getattr(self, name) not in LEVELS:
                raise ValueError(f"{name} must be one of {', '.join(LEVELS)}, got {getattr(self, name)!r}")
        if LEVELS.index(self.degraded_floor) > LEVELS.index(self.degraded_ceiling):
            raise ValueError("degraded_floor must not be above degraded_ceiling")

    def with_thresholds(self, thresholds: Mapping[str, float]) -> PolicyConfig:
        """The same policy on another score scale (the fallback model's own medium/high/critical)."""
        return replace(
            self,
            medium=float(thresholds["medium"]),
            high=float(thresholds["high"]),
            critical=float(thresholds["critical"]),
        )

    @classmethod
    def from_model_config(
        cls, config: Mapping[str, object], overrides: Mapping[str, Any] | None = None
    ) -> PolicyConfig:
        """The model's thresholds (config.json `thresholds`), then the deployment's `overrides`: any of
        POLICY_SETTINGS. An unknown setting or a value out of range is a ValueError naming it."""
        unknown = sorted(set(overrides or {}) - set(POLICY_SETTINGS))
        if unknown:
            raise ValueError(
                f"unknown policy setting {', '.join(unknown)} (known: {', '.join(POLICY_SETTINGS)})"
            )
        for name, value in (overrides or {}).items():
            wanted: Any = str if name.startswith("degraded_") else (int, float)
            if not isinstance(value, wanted) or isinstance(value, bool):
                kind = "a risk level" if wanted is str else "a number"
                raise ValueError(f"{name} must be {kind}, got {value!r}")
        raw = dict(config.get("thresholds", config))  # type: ignore[call-overload]
        raw.update(overrides or {})
        orders = float(raw.get("velocity_orders", VELOCITY_ORDERS))
        if not orders.is_integer():
            raise ValueError(f"velocity_orders must be a whole number, got {orders}")
        return cls(
            medium=float(raw["medium"]),
            high=float(raw["high"]),
            critical=float(raw["critical"]),
            velocity_orders=int(orders),
            degraded_floor=raw.get("degraded_floor", "low"),
            degraded_ceiling=raw.get("degraded_ceiling", "high"),
        )


@dataclass(frozen=True)
class PolicyResult:
    risk_level: RiskLevel
    recommended_action: Action
    rules_triggered: tuple[str, ...]
    hints: tuple[str, ...]


def level_for_score(score: float, config: PolicyConfig) -> RiskLevel:
    if score >= config.critical:
        return "critical"
    if score >= config.high:
        return "high"
    if score >= config.medium:
        return "medium"
    return "low"


def _at_least(level: RiskLevel, floor: RiskLevel) -> RiskLevel:
    return level if LEVELS.index(level) >= LEVELS.index(floor) else floor


def _at_most(level: RiskLevel, ceiling: RiskLevel) -> RiskLevel:
    return level if LEVELS.index(level) <= LEVELS.index(ceiling) else ceiling


def apply(
    score: float | None,
    flags: RuleFlags,
    config: PolicyConfig,
    *,
    cod_refusals: float = 0.0,
    payment_is_cod: bool = False,
    cod_drives_risk: bool = False,
    degraded: bool = False,
) -> PolicyResult:
    """The decision for one order. `degraded`: the model endpoint did not answer and `score` is the
    fallback model's (on `config`'s thresholds, see PolicyConfig.with_thresholds), kept within
    degraded_floor..degraded_ceiling, or None when nothing could score: then at least medium.

    Hard rules only ever raise the level: blocklisted -> critical (block); amount over 5,000 USD ->
    at least high (manual_review); velocity -> at least medium (otp_verification).
    `cod_drives_risk` (COD refusals among the top risk-raising contributions) or a history of COD
    refusals on a COD order above low adds a `prepaid_only` hint (`cod_disabled` when blocked).
    """
    level: RiskLevel = "low" if score is None else level_for_score(score, config)
    if degraded:
        level = _at_most(_at_least(level, config.degraded_floor), config.degraded_ceiling)
        if score is None:  # nothing scored this order: never approve it blind
            level = _at_least(level, "medium")
    if flags.velocity:
        level = _at_least(level, "medium")
    if flags.high_amount:
        level = _at_least(level, "high")
    if flags.blocklisted:
        level = "critical"
    hints: list[str] = []
    if level != "low" and (cod_drives_risk or (payment_is_cod and cod_refusals >= COD_HINT_MIN_REFUSALS)):
        hints.append("cod_disabled" if level == "critical" else "prepaid_only")
    return PolicyResult(level, ACTIONS[level], flags.triggered(), tuple(hints))
