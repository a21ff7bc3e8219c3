"""Champion and challenger (returnguard.variants) through `decide`: sticky A-B assignment, shadow never
decides, hard rules never routed, a failing challenger hands over to the champion."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from returnguard.aws.feature_store import InMemoryFeatureStore
from returnguard.policy import PolicyConfig
from returnguard.ports import ModelScore
from returnguard.schemas import RiskScoreRequest
from returnguard.scoring import decide
from returnguard.tables import blocklist_key
from returnguard.variants import Challenger, VariantConfig, VariantConfigError, assign, bucket
from tests.unit.api.fakes import ADDRESS, FakeModel

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


class Versioned(FakeModel):
    def __init__(self, score: float, version: str, down: bool = False) -> None:
        super().__init__(score, down=down)
        self.result = ModelScore(score, {}, version)


def request(customer: str, order: str = "O1", amount: float = 100.0) -> RiskScoreRequest:
    return RiskScoreRequest.model_validate(
        {
            "event_type": "order",
            "order": {
                "order_id": order,
                "customer_id": customer,
                "product_id": "P1",
                "region": "KA",
                "amount": amount,
                "currency": "USD",
                "payment_method": "card",
                "delivery_address": ADDRESS,
                "order_time": NOW.isoformat(),
            },
        }
    )


def customers_in(group: str, config: VariantConfig, count: int = 3) -> list[str]:
    found = [c for c in (f"C{i}" for i in range(10_000)) if assign(c, config) == group]
    return found[:count]


AB = VariantConfig(mode="ab", challenger_share=0.2, salt="exp-1")


def test_assignment_is_sticky_per_customer_and_close_to_the_share() -> None:
    customers = [f"C{i}" for i in range(20_000)]
    groups = [assign(c, AB) for c in customers]
    assert groups == [assign(c, AB) for c in customers]  # the same customer, the same group, every time
    share = groups.count("challenger") / len(groups)
    assert share == pytest.approx(0.2, abs=0.01)
    # another salt reshuffles the groups: about 20 % of 20 % overlap, not all of them
    other = VariantConfig(mode="ab", challenger_share=0.2, salt="exp-2")
    both = sum(1 for c, g in zip(customers, groups, strict=True) if g == "challenger" == assign(c, other))
    assert both / groups.count("challenger") == pytest.approx(0.2, abs=0.05)


@given(st.text(min_size=1, max_size=40))
def test_bucket_is_in_unit_interval_and_shadow_or_off_never_assign_the_challenger(customer: str) -> None:
    assert 0.0 <= bucket(customer, "s") < 1.0
    for mode in ("off", "shadow"):
        assert assign(customer, VariantConfig(mode=mode, challenger_share=0.5)) == "champion"


def test_ab_customers_of_the_challenger_group_are_decided_by_it_every_time() -> None:
    champion, challenger = Versioned(0.05, "v-champion"), Versioned(0.95, "v-challenger")
    config = Challenger(challenger, AB)
    store = InMemoryFeatureStore()
    (in_group,) = customers_in("challenger", AB, 1)
    (outside,) = customers_in("champion", AB, 1)
    for order in ("O1", "O2", "O3"):
        decided = decide(request(in_group, order), store, champion, PolicyConfig(), NOW, challenger=config)
        assert decided.variant == "challenger"
        assert decided.response.model_version == "v-challenger"
        assert decided.response.recommended_action == "block"
        kept = decide(request(outside, order), store, champion, PolicyConfig(), NOW, challenger=config)
        assert kept.variant == "champion" and kept.response.model_version == "v-champion"
        assert kept.response.recommended_action == "approve"
    assert decided.shadow is None  # A-B stores no shadow score


def test_shadow_is_scored_and_stored_but_never_decides() -> None:
    champion, challenger = Versioned(0.05, "v-champion"), Versioned(0.99, "v-challenger")
    shadow = Challenger(challenger, VariantConfig(mode="shadow"))
    for customer in customers_in("challenger", AB, 2) + customers_in("champion", AB, 2):
        decided = decide(
            request(customer), InMemoryFeatureStore(), champion, PolicyConfig(), NOW, challenger=shadow
        )
        plain = decide(request(customer), InMemoryFeatureStore(), champion, PolicyConfig(), NOW)
        assert decided.variant == "champion"
        assert decided.shadow == {"model_version": "v-challenger", "score": 0.99}
        assert decided.response.model_dump(exclude={"processing_time_ms"}) == plain.response.model_dump(
            exclude={"processing_time_ms"}
        )
    assert challenger.vectors[0] == champion.vectors[0]  # the same vector, scored twice


def test_a_failing_shadow_is_recorded_and_changes_nothing() -> None:
    shadow = Challenger(Versioned(0.9, "v-challenger", down=True), VariantConfig(mode="shadow"))
    decided = decide(
        request("C1"), InMemoryFeatureStore(), Versioned(0.05, "v"), PolicyConfig(), NOW, challenger=shadow
    )
    assert decided.shadow == {"error": "model_error"}
    assert not decided.response.degraded and decided.response.recommended_action == "approve"


def test_hard_rule_orders_are_never_routed_to_the_challenger() -> None:
    champion, challenger = Versioned(0.05, "v-champion"), Versioned(0.06, "v-challenger")
    config = Challenger(challenger, AB)
    (in_group,) = customers_in("challenger", AB, 1)
    # over 5,000 USD: the amount rule
    big = decide(
        request(in_group, amount=9000),
        InMemoryFeatureStore(),
        champion,
        PolicyConfig(),
        NOW,
        challenger=config,
    )
    assert big.variant == "champion" and "high_amount" in big.response.rules_triggered
    # a blocklisted customer
    store = InMemoryFeatureStore({blocklist_key("customer", in_group): {"reason": "chargebacks"}})
    blocked = decide(request(in_group), store, champion, PolicyConfig(), NOW, challenger=config)
    assert blocked.variant == "champion" and blocked.response.recommended_action == "block"
    assert challenger.vectors == []  # the challenger never saw either order


def test_an_unavailable_challenger_hands_the_order_to_the_champion() -> None:
    champion = Versioned(0.05, "v-champion")
    config = Challenger(Versioned(0.9, "v-challenger", down=True), AB)
    (in_group,) = customers_in("challenger", AB, 1)
    decided = decide(
        request(in_group), InMemoryFeatureStore(), champion, PolicyConfig(), NOW, challenger=config
    )
    assert decided.variant == "champion" and decided.response.model_version == "v-champion"
    assert not decided.response.degraded


@pytest.mark.parametrize(
    ("mode", "share", "salt"),
    [("canary", 0.1, "s"), ("ab", 0.0, "s"), ("ab", 0.6, "s"), ("ab", -0.1, "s"), ("shadow", 0.0, "")],
)
def test_invalid_variant_settings_are_refused(mode: str, share: float, salt: str) -> None:
    with pytest.raises(VariantConfigError):
        VariantConfig(mode=mode, challenger_share=share, salt=salt)  # type: ignore[arg-type]
