"""The fraud rules (seed 002), pure: thresholds, flags, risk score and risk category.

One definition for every runtime: the Glue rules job (`glue_jobs/rules.py`) builds its Spark column
expressions from these constants, and the API's policy applies the same hard rules to one order.
Amount rules are stated in US dollars; convert with `returnguard.currency.to_usd` first.
See docs/rules.md for the reasoning behind each number.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from returnguard.features import VELOCITY_SHORT_MS

HIGH_RISK_USD = 5000.0  # an order strictly above this many US dollars is high risk
VELOCITY_WINDOW_MS = VELOCITY_SHORT_MS  # the customer's earlier orders in [t - 60 s, t) ...
VELOCITY_ORDERS = 2  # ... velocity when they and this order make at least this many (seed 002: two)
# Amount outlier, point-in-time: the customer's orders strictly before this one.
OUTLIER_MIN_HISTORY = 3  # fewer previous orders than this: no baseline, never an outlier
OUTLIER_STD_MULTIPLIER = 3.0  # amount > mean + 3 * population std of the previous amounts ...
OUTLIER_MIN_RATIO = 2.0  # ... and amount > 2 * mean (a flat history has std 0; 101 vs 100 is no outlier)

# Risk score: the sum of the weights of the flags that fired, capped at 100.
WEIGHT_BLOCKLISTED = 100
WEIGHT_HIGH_AMOUNT = 60
WEIGHT_VELOCITY = 30
WEIGHT_OUTLIER = 30
MAX_RISK_SCORE = 100
MEDIUM_RISK_FROM = 30  # score >= 30: Medium (one soft signal)
HIGH_RISK_FROM = 60  # score >= 60: High (blocklisted, over 5,000 USD, or velocity and outlier together)

RiskCategory = Literal["Low", "Medium", "High"]
RISK_CATEGORIES: tuple[RiskCategory, ...] = ("Low", "Medium", "High")


def is_high_amount(amount_usd: float) -> bool:
    return amount_usd > HIGH_RISK_USD


def is_velocity(orders_in_window: float, velocity_orders: int = VELOCITY_ORDERS) -> bool:
    """True when this order and the customer's `orders_in_window` earlier ones make `velocity_orders`.

    `orders_in_window` counts the window `[t - 60 s, t)`: the `customer_orders_last_60s` feature
    online, the same range window in the rules job, so both agree on every order.
    """
    return orders_in_window + 1 >= velocity_orders


def is_outlier(amount_usd: float, history_count: int, history_mean: float, history_std: float) -> bool:
    """Amount far above the customer's own previous orders (count, mean, population std in USD)."""
    if history_count < OUTLIER_MIN_HISTORY:
        return False
    return (
        amount_usd > history_mean + OUTLIER_STD_MULTIPLIER * history_std
        and amount_usd > OUTLIER_MIN_RATIO * history_mean
    )


@dataclass(frozen=True)
class RuleFlags:
    """The rules that fired for one order."""

    blocklisted: bool = False  # customer, delivery address or card on the blocklist
    high_amount: bool = False
    velocity: bool = False
    outlier: bool = False

    def triggered(self) -> tuple[str, ...]:
        """Names of the rules that fired, in a stable order (for `rules_triggered`)."""
        names = ("blocklisted", "high_amount", "velocity", "outlier")
        return tuple(name for name in names if getattr(self, name))


def online_flags(
    amount_usd: float,
    customer_orders_last_60s: float,
    blocklisted: bool,
    velocity_orders: int = VELOCITY_ORDERS,
) -> RuleFlags:
    """The hard rules the API can check for one order from its feature vector and blocklist items.

    `customer_orders_last_60s` is the feature of that name (the window of `is_velocity`). The outlier
    rule needs the spread of the customer's history, which the online aggregate does not keep, so it
    is a batch flag only (processed/rules/transactions).
    """
    return RuleFlags(
        blocklisted=blocklisted,
        high_amount=is_high_amount(amount_usd),
        velocity=is_velocity(customer_orders_last_60s, velocity_orders),
    )


def risk_score(flags: RuleFlags) -> int:
    score = (
        WEIGHT_BLOCKLISTED * flags.blocklisted
        + WEIGHT_HIGH_AMOUNT * flags.high_amount
        + WEIGHT_VELOCITY * flags.velocity
        + WEIGHT_OUTLIER * flags.outlier
    )
    return min(MAX_RISK_SCORE, score)


def risk_category(score: int) -> RiskCategory:
    if score >= HIGH_RISK_FROM:
        return "High"
    if score >= MEDIUM_RISK_FROM:
        return "Medium"
    return "Low"
