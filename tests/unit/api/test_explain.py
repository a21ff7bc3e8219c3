import pytest

from returnguard.calendar import ranges_ms
from returnguard.explain import explain, key_factors
from returnguard.features import FEATURES

DIWALI_MS = next(start for start, _, name in ranges_ms() if "Diwali" in name) + 3_600_000
PLAIN_MS = 1_700_000_000_000 - 400 * 86_400_000  # outside every window
BASE = {f.name: f.default for f in FEATURES}


def vector(**values: float) -> dict[str, float]:
    return {**BASE, **values}


def test_return_history_quotes_real_values() -> None:
    v = vector(customer_order_count=10, customer_returns_last_6_orders=4, customer_return_rate_last_6=0.67)
    en = key_factors(v, {"customer_returns_last_6_orders": 0.8}, order_time_ms=PLAIN_MS, customer_known=True)
    hi = key_factors(
        v, {"customer_returns_last_6_orders": 0.8}, order_time_ms=PLAIN_MS, customer_known=True, locale="hi"
    )
    assert en == ("Customer returned 4 of the last 6 orders (67%)",)
    assert hi == ("ग्राहक ने पिछले 6 में से 4 ऑर्डर लौटाए (67%)",)


def test_cod_during_diwali_names_the_window() -> None:
    contributions = {"payment_is_cod": 0.5}
    (en,) = key_factors(vector(payment_is_cod=1), contributions, order_time_ms=DIWALI_MS, customer_known=True)
    assert en.startswith("Cash on delivery during") and "Diwali" in en
    (hi,) = key_factors(
        vector(payment_is_cod=1), contributions, order_time_ms=DIWALI_MS, customer_known=True, locale="hi"
    )
    assert "Diwali" in hi and "कैश ऑन डिलीवरी" in hi
    (plain,) = key_factors(
        vector(payment_is_cod=1), contributions, order_time_ms=PLAIN_MS, customer_known=True
    )
    assert plain == "Cash on delivery payment"


def test_new_customer_never_gets_invented_history() -> None:
    contributions = {
        "customer_account_age_days": 0.9,
        "delivery_address_is_new": 0.4,
        "region_return_rate": 0.1,
    }
    factors = key_factors(
        vector(region_return_rate=0.25), contributions, order_time_ms=PLAIN_MS, customer_known=False
    )
    assert factors == ("New customer: no order history", "Region return rate is 25%")
    hi = key_factors(vector(), contributions, order_time_ms=PLAIN_MS, customer_known=False, locale="hi")
    assert hi[0] == "नया ग्राहक: कोई ऑर्डर इतिहास नहीं"


def test_only_positive_contributions_top_three_deterministic() -> None:
    v = vector(
        customer_order_count=20,
        customer_return_count=5,
        customer_cod_refusals=2,
        customer_damaged_claims=3,
        amount_vs_customer_avg=4.0,
        customer_orders_last_60s=2,
        customer_orders_last_1h=3,
    )
    contributions = {
        "customer_return_rate": -0.9,
        "customer_cod_refusals": 0.7,
        "customer_damaged_claims": 0.6,
        "amount_vs_customer_avg": 0.5,
        "customer_orders_last_60s": 0.4,
    }
    first = key_factors(v, contributions, order_time_ms=PLAIN_MS, customer_known=True)
    assert first == (
        "Customer refused 2 cash-on-delivery order(s) before",
        "Customer claimed 3 return(s) as damaged or empty",
        "Order amount is 4.0x the customer's average",
    )
    assert (
        key_factors(v, dict(reversed(contributions.items())), order_time_ms=PLAIN_MS, customer_known=True)
        == first
    )
    velocity = key_factors(v, {"customer_orders_last_60s": 1.0}, order_time_ms=PLAIN_MS, customer_known=True)
    assert velocity == ("2 order(s) in the previous minute, 3 in the previous hour",)


def test_rules_come_first_in_both_locales() -> None:
    en = key_factors(
        vector(), {}, order_time_ms=PLAIN_MS, customer_known=True, rules_triggered=("blocklisted",)
    )
    hi = key_factors(
        vector(),
        {},
        order_time_ms=PLAIN_MS,
        customer_known=True,
        rules_triggered=("blocklisted",),
        locale="hi",
    )
    assert en == ("Customer, address or card is on the blocklist",)
    assert hi == ("ग्राहक, पता या कार्ड ब्लॉकलिस्ट में है",)


@pytest.mark.parametrize("locale", ["en", "hi"])
def test_explanation_and_safe_customer_message(locale: str) -> None:
    v = vector(customer_cod_refusals=3, payment_is_cod=1)
    e = explain(
        v,
        {"customer_cod_refusals": 1.0},
        risk_level="high",
        action="manual_review",
        hints=("prepaid_only",),
        order_time_ms=PLAIN_MS,
        customer_known=True,
        locale=locale,  # type: ignore[arg-type]
    )
    assert e.source == "template" and e.summary and e.key_factors
    assert ("prepaid" in e.recommendation) if locale == "en" else ("प्रीपेड" in e.recommendation)
    for secret in ("refus", "3", "cash", "return", "अस्वीकार", "कैश"):
        assert secret not in e.customer_message.lower()


def test_an_absent_risk_signal_is_never_cited_as_raising_the_risk() -> None:
    # A customer with 10 orders, none returned or claimed, whose zeros still got positive contributions
    v = vector(customer_order_count=10, customer_return_count=0, customer_damaged_claims=0, payment_is_cod=1)
    contributions = {
        "customer_damaged_claims": 0.9,
        "customer_returns_last_6_orders": 0.8,
        "customer_return_rate": 0.7,
        "customer_cod_refusals": 0.6,
        "payment_is_cod": 0.1,
    }
    factors = key_factors(v, contributions, order_time_ms=PLAIN_MS, customer_known=True)
    assert factors == ("Cash on delivery payment",)
    # The same signals, present, are cited
    present = vector(customer_order_count=10, customer_return_count=3, customer_damaged_claims=2)
    cited = key_factors(present, contributions, order_time_ms=PLAIN_MS, customer_known=True)
    assert cited[0] == "Customer claimed 2 return(s) as damaged or empty"


def test_risk_signals_are_the_features_whose_direction_is_known() -> None:
    from returnguard.features import RISK_SIGNALS

    assert {"customer_damaged_claims", "customer_return_rate", "customer_cod_refusals"} <= RISK_SIGNALS
    assert "customer_account_age_days" not in RISK_SIGNALS and "order_amount" not in RISK_SIGNALS


def test_an_approval_says_what_kept_it_low_never_a_risk_reason() -> None:
    v = vector(
        customer_order_count=12, customer_returns_last_6_orders=0, is_festival_sale=1, payment_is_cod=0
    )
    contributions = {
        "is_festival_sale": 0.3,  # raised the score, but the order is still approved
        "customer_returns_last_6_orders": -0.9,
        "payment_is_cod": -0.4,
    }
    e = explain(
        v, contributions, risk_level="low", action="approve", order_time_ms=DIWALI_MS, customer_known=True
    )
    assert e.key_factors == (
        "Customer returned 0 of the last 6 orders (0%)",
        "Prepaid (not cash on delivery)",
    )
    assert not any(f.startswith("Placed during") for f in e.key_factors)
    hi = explain(
        v,
        contributions,
        risk_level="low",
        action="approve",
        order_time_ms=DIWALI_MS,
        customer_known=True,
        locale="hi",
    )
    assert hi.key_factors[1] == "प्रीपेड (कैश ऑन डिलीवरी नहीं)"


def test_an_approval_with_nothing_to_say_says_no_risk_factor_stood_out() -> None:
    e = explain(
        vector(is_festival_sale=1),
        {"is_festival_sale": -0.2, "category_return_rate": 0.1},  # present-yet-lowering is no reassurance
        risk_level="low",
        action="approve",
        order_time_ms=DIWALI_MS,
        customer_known=True,
    )
    assert e.key_factors == ("No risk factor stood out",)


def test_a_rule_on_a_low_score_still_explains_the_rule() -> None:
    e = explain(
        vector(customer_orders_last_60s=1),
        {"customer_returns_last_6_orders": -0.5},
        risk_level="low",
        action="approve",
        rules_triggered=("velocity",),
        order_time_ms=PLAIN_MS,
        customer_known=True,
    )
    assert e.key_factors == key_factors(
        vector(customer_orders_last_60s=1),
        {"customer_returns_last_6_orders": -0.5},
        order_time_ms=PLAIN_MS,
        customer_known=True,
        rules_triggered=("velocity",),
    )
