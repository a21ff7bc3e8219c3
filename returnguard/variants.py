"""Champion and challenger: which model decides an order, and the challenger's shadow score.

- `off`: the champion decides every order.
- `shadow`: the champion decides every order; the challenger scores it too, and its score is stored
  with the decision (never shown, never used).
- `ab`: a sticky share of customers (a hash of the customer id and a per-deployment salt, so a
  customer always sees the same model) is decided by the challenger. Orders a hard rule decides
  (blocklist, amount, velocity) always go to the champion: the experiment compares models, not rules.
  A challenger that cannot answer hands the order to the champion (recorded as `champion`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from returnguard.ports import Model, ModelScore, ModelUnavailable

Mode = Literal["off", "shadow", "ab"]
Variant = Literal["champion", "challenger"]
MODES: tuple[str, ...] = ("off", "shadow", "ab")
MAX_SHARE = 0.5  # an A-B test beyond half the traffic is a rollout: promote the challenger instead


class VariantConfigError(ValueError):
    code = "invalid_variant_config"


@dataclass(frozen=True)
class VariantConfig:
    mode: Mode = "off"
    challenger_share: float = 0.0  # ab: the share of customers the challenger decides for
    salt: str = "returnguard"  # change it to reshuffle which customers are in the challenger group

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise VariantConfigError(f"variant mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if not 0.0 <= self.challenger_share <= MAX_SHARE:
            raise VariantConfigError(
                f"challenger share must be between 0 and {MAX_SHARE}, got {self.challenger_share}"
            )
        if self.mode == "ab" and self.challenger_share == 0.0:
            raise VariantConfigError("variant mode ab needs a challenger share above 0")
        if not self.salt:
            raise VariantConfigError("variant salt must not be empty")


def bucket(customer_id: str, salt: str) -> float:
    """The customer's place in [0, 1): the same for every order of the customer, uniform over customers."""
    digest = hashlib.sha256(f"{salt}\x00{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign(customer_id: str, config: VariantConfig) -> Variant:
    if config.mode == "ab" and bucket(customer_id, config.salt) < config.challenger_share:
        return "challenger"
    return "champion"


@dataclass(frozen=True)
class Challenger:
    model: Model
    config: VariantConfig


class _ChallengerFirst:
    """The challenger scores; if it cannot, the champion does, and `answered` says which one did."""

    def __init__(self, challenger: Model, champion: Model) -> None:
        self._challenger = challenger
        self._champion = champion
        self.answered: Variant = "challenger"

    def score(self, vector: Mapping[str, float]) -> ModelScore:
        try:
            return self._challenger.score(vector)
        except ModelUnavailable:
            self.answered = "champion"
            return self._champion.score(vector)


@dataclass
class Route:
    """The model that decides one order; `variant` reads which one did after it scored."""

    model: Model | None
    _chosen: _ChallengerFirst | None = None

    @property
    def variant(self) -> Variant:
        return self._chosen.answered if self._chosen is not None else "champion"


def route(
    challenger: Challenger | None, customer_id: str, *, hard_rule: bool, champion: Model | None
) -> Route:
    """Who decides this order: the champion, unless the A-B test puts the customer in the challenger
    group and no hard rule fired."""
    if challenger is None or champion is None or hard_rule:
        return Route(champion)
    if assign(customer_id, challenger.config) == "challenger":
        chosen = _ChallengerFirst(challenger.model, champion)
        return Route(chosen, chosen)
    return Route(champion)


def shadow_score(challenger: Challenger | None, vector: Mapping[str, float]) -> dict[str, object] | None:
    """In shadow mode, the challenger's score of the same vector (or why there is none); else None."""
    if challenger is None or challenger.config.mode != "shadow":
        return None
    try:
        result = challenger.model.score(vector)
    except ModelUnavailable as error:
        return {"error": error.reason}
    return {"model_version": result.model_version, "score": round(result.score, 4)}
