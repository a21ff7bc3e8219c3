"""Template explanations: top risk-raising SHAP contributions in business language, en and hi; for an
approval, the contributions that kept the score low.

Deterministic: the same vector and contributions give the same text. Each key factor quotes the
order's real feature values; a customer with no history is described as new, never given one.
`customer_message` is safe to show the shopper: it asks for verification and reveals no signal.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from returnguard.calendar import window_at
from returnguard.features import FEATURES, RISK_SIGNALS

Locale = Literal["en", "hi"]
MAX_FACTORS = 3


def _pct(x: float) -> int:
    return int(round(100 * x))


def _returns_last_6(v: Mapping[str, float], loc: str | None) -> tuple[str, str]:
    n = min(int(v.get("customer_order_count", 0)), 6)
    r = int(v["customer_returns_last_6_orders"])
    pct = _pct(r / n) if n else 0
    return (
        f"Customer returned {r} of the last {n} orders ({pct}%)",
        f"ग्राहक ने पिछले {n} में से {r} ऑर्डर लौटाए ({pct}%)",
    )


def _return_rate(v: Mapping[str, float], loc: str | None) -> tuple[str, str]:
    r, n = int(v["customer_return_count"]), int(v["customer_order_count"])
    pct = _pct(r / n) if n else 0
    return (
        f"Customer returned {r} of {n} past orders ({pct}%)",
        f"ग्राहक ने पिछले {n} में से {r} ऑर्डर लौटाए ({pct}%)",
    )


def _cod(v: Mapping[str, float], window: str | None) -> tuple[str, str]:
    if window:
        return f"Cash on delivery during {window}", f"{window} के दौरान कैश ऑन डिलीवरी"
    return "Cash on delivery payment", "कैश ऑन डिलीवरी भुगतान"


def _cod_refusals(v: Mapping[str, float], loc: str | None) -> tuple[str, str]:
    n = int(v["customer_cod_refusals"])
    return (
        f"Customer refused {n} cash-on-delivery order(s) before",
        f"ग्राहक ने पहले {n} कैश-ऑन-डिलीवरी ऑर्डर अस्वीकार किए",
    )


def _festival(v: Mapping[str, float], window: str | None) -> tuple[str, str]:
    name = window or "a sale period"
    return f"Placed during {name}", f"{name} के दौरान दिया गया ऑर्डर"


def _amount_ratio(v: Mapping[str, float], loc: str | None) -> tuple[str, str]:
    x = v["amount_vs_customer_avg"]
    return (
        f"Order amount is {x:.1f}x the customer's average",
        f"ऑर्डर राशि ग्राहक के औसत की {x:.1f} गुना है",
    )


def _velocity(v: Mapping[str, float], loc: str | None) -> tuple[str, str]:
    n = int(v.get("customer_orders_last_60s", 0))
    h = int(v.get("customer_orders_last_1h", 0))
    return (
        f"{n} order(s) in the previous minute, {h} in the previous hour",
        f"पिछले एक मिनट में {n} और पिछले एक घंटे में {h} ऑर्डर",
    )


def _damaged(v: Mapping[str, float], loc: str | None) -> tuple[str, str]:
    n = int(v["customer_damaged_claims"])
    return (
        f"Customer claimed {n} return(s) as damaged or empty",
        f"ग्राहक ने {n} रिटर्न को क्षतिग्रस्त या खाली बताया",
    )


def _new_address(v: Mapping[str, float], loc: str | None) -> tuple[str, str]:
    return "Delivery address not used by the customer before", "यह डिलीवरी पता ग्राहक ने पहले इस्तेमाल नहीं किया"


def _account_age(v: Mapping[str, float], loc: str | None) -> tuple[str, str]:
    d = int(v["customer_account_age_days"])
    return f"Account is {d} day(s) old", f"खाता {d} दिन पुराना है"


def _entity_rate(label_en: str, label_hi: str, name: str) -> Callable[..., tuple[str, str]]:
    def render(v: Mapping[str, float], loc: str | None) -> tuple[str, str]:
        pct = _pct(v[name])
        return f"{label_en} return rate is {pct}%", f"{label_hi} की रिटर्न दर {pct}% है"

    return render


_TEMPLATES: dict[str, Callable[[Mapping[str, float], str | None], tuple[str, str]]] = {
    "customer_returns_last_6_orders": _returns_last_6,
    "customer_return_rate_last_6": _returns_last_6,
    "customer_return_rate": _return_rate,
    "customer_return_count": _return_rate,
    "payment_is_cod": _cod,
    "customer_cod_refusals": _cod_refusals,
    "is_festival_sale": _festival,
    "amount_vs_customer_avg": _amount_ratio,
    "customer_orders_last_60s": _velocity,
    "customer_orders_last_1h": _velocity,
    "customer_damaged_claims": _damaged,
    "delivery_address_is_new": _new_address,
    "customer_account_age_days": _account_age,
    "product_return_rate": _entity_rate("Product", "उत्पाद", "product_return_rate"),
    "category_return_rate": _entity_rate("Category", "श्रेणी", "category_return_rate"),
    "seller_return_rate": _entity_rate("Seller", "विक्रेता", "seller_return_rate"),
    "region_return_rate": _entity_rate("Region", "क्षेत्र", "region_return_rate"),
}
# Customer-history features: for an unseen customer they are defaults, so they become "new customer".
_HISTORY = {n for n in _TEMPLATES if n.startswith("customer_")} | {
    "amount_vs_customer_avg",
    "delivery_address_is_new",
}
_NEW = ("New customer: no order history", "नया ग्राहक: कोई ऑर्डर इतिहास नहीं")
_NOTHING_STOOD_OUT = ("No risk factor stood out", "कोई जोखिम कारक सामने नहीं आया")
# Yes/no features that lowered a score by being absent: said as what the order did not have.
_ABSENT = {
    "payment_is_cod": ("Prepaid (not cash on delivery)", "प्रीपेड (कैश ऑन डिलीवरी नहीं)"),
    "is_festival_sale": ("Not placed during a festival or sale", "त्योहार या सेल के दौरान नहीं दिया गया"),
    "delivery_address_is_new": (
        "Delivery address used by the customer before",
        "यह डिलीवरी पता ग्राहक पहले इस्तेमाल कर चुका है",
    ),
}

_SUMMARY = {
    "en": {
        "low": "Low risk: no strong risk signals.",
        "medium": "Medium risk: some signals warrant a light check.",
        "high": "High risk: several signals point to possible return abuse.",
        "critical": "Critical risk: strong signals of fraud or return abuse.",
    },
    "hi": {
        "low": "कम जोखिम: कोई मजबूत जोखिम संकेत नहीं।",
        "medium": "मध्यम जोखिम: कुछ संकेतों के लिए हल्की जांच उचित है।",
        "high": "उच्च जोखिम: कई संकेत संभावित रिटर्न दुरुपयोग की ओर इशारा करते हैं।",
        "critical": "गंभीर जोखिम: धोखाधड़ी या रिटर्न दुरुपयोग के मजबूत संकेत।",
    },
}
_RECOMMENDATION = {
    "en": {
        "approve": "Approve the order.",
        "otp_verification": "Verify the customer with a one-time password before confirming.",
        "manual_review": "Hold the order for manual review.",
        "block": "Block the order.",
    },
    "hi": {
        "approve": "ऑर्डर स्वीकार करें।",
        "otp_verification": "पुष्टि से पहले ओटीपी से ग्राहक का सत्यापन करें।",
        "manual_review": "ऑर्डर को मैन्युअल समीक्षा के लिए रोकें।",
        "block": "ऑर्डर ब्लॉक करें।",
    },
}
_HINTS = {
    "en": {"prepaid_only": " Offer prepaid payment only.", "cod_disabled": " Disable cash on delivery."},
    "hi": {"prepaid_only": " केवल प्रीपेड भुगतान दें।", "cod_disabled": " कैश ऑन डिलीवरी बंद करें।"},
}
_RULES = {
    "en": {
        "blocklisted": "Customer, address or card is on the blocklist",
        "high_amount": "Order amount above 5,000 USD",
        "velocity": "Another order by the customer within the previous 60 seconds",
    },
    "hi": {
        "blocklisted": "ग्राहक, पता या कार्ड ब्लॉकलिस्ट में है",
        "high_amount": "ऑर्डर राशि 5,000 USD से अधिक",
        "velocity": "पिछले 60 सेकंड में ग्राहक का एक और ऑर्डर",
    },
}
_CUSTOMER_MESSAGE = {
    "en": {
        "approve": "Your order is confirmed.",
        "otp_verification": "To keep your account safe, please confirm this order with the one-time code we sent you.",
        "manual_review": "Your order is being verified. We will update you shortly.",
        "block": "We could not confirm this order. Please contact customer support.",
    },
    "hi": {
        "approve": "आपका ऑर्डर पुष्ट हो गया है।",
        "otp_verification": "आपके खाते की सुरक्षा के लिए, कृपया भेजे गए वन-टाइम कोड से इस ऑर्डर की पुष्टि करें।",
        "manual_review": "आपके ऑर्डर का सत्यापन हो रहा है। हम जल्द ही आपको सूचित करेंगे।",
        "block": "हम इस ऑर्डर की पुष्टि नहीं कर सके। कृपया ग्राहक सहायता से संपर्क करें।",
    },
}


Template = Callable[[Mapping[str, float], str | None], tuple[str, str]]


@dataclass(frozen=True)
class LaneTexts:
    """What one lane (orders, returns) says: factor templates by feature, which features are the
    customer's history (an unseen customer's are defaults), its risk signals and their defaults, and the
    sentences per level, action and rule, en and hi. The functions below read whichever lane they get."""

    templates: Mapping[str, Template]
    history: frozenset[str]
    risk_signals: frozenset[str]
    defaults: Mapping[str, float]
    absent: Mapping[str, tuple[str, str]]
    rules: Mapping[str, Mapping[str, str]]
    summary: Mapping[str, Mapping[str, str]]
    recommendation: Mapping[str, Mapping[str, str]]
    customer_message: Mapping[str, Mapping[str, str]]
    hints: Mapping[str, Mapping[str, str]]


ORDER_TEXTS = LaneTexts(
    templates=_TEMPLATES,
    history=frozenset(_HISTORY),
    risk_signals=RISK_SIGNALS,
    defaults={f.name: f.default for f in FEATURES},
    absent=_ABSENT,
    rules=_RULES,
    summary=_SUMMARY,
    recommendation=_RECOMMENDATION,
    customer_message=_CUSTOMER_MESSAGE,
    hints=_HINTS,
)


@dataclass(frozen=True)
class Explanation:
    summary: str
    key_factors: tuple[str, ...]
    recommendation: str
    customer_message: str
    source: str = "template"


def key_factors(
    vector: Mapping[str, float],
    contributions: Mapping[str, float] | None,
    *,
    order_time_ms: int,
    customer_known: bool,
    rules_triggered: tuple[str, ...] = (),
    locale: Locale = "en",
    limit: int = MAX_FACTORS,
    texts: LaneTexts = ORDER_TEXTS,
) -> tuple[str, ...]:
    """Rules first, then the top positive contributions (ties broken by name), deduplicated.

    Only contributions that raised the score are cited, and a risk signal (a feature whose business
    direction is "more is never safer") only when it is present: the text never presents a low value
    of one as a reason for risk, nor any factor as lowering it.
    """
    idx = 0 if locale == "en" else 1
    out: list[str] = [texts.rules[locale][r] for r in rules_triggered if r in texts.rules[locale]]
    if not customer_known:
        out.append(_NEW[idx])
    window = window_at(order_time_ms)
    ranked = sorted(((-c, n) for n, c in (contributions or {}).items() if c > 0))
    for _, name in ranked:
        if len(out) >= limit + len(rules_triggered):
            break
        template = texts.templates.get(name)
        if template is None or (not customer_known and name in texts.history):
            continue
        if name in texts.risk_signals and vector.get(name, 0.0) <= texts.defaults[name]:
            continue  # "returned 0 of 6 orders" is the absence of a risk signal, never a reason for risk
        text = template(vector, window)[idx]
        if text not in out:
            out.append(text)
    return tuple(out)


def reassuring_factors(
    vector: Mapping[str, float],
    contributions: Mapping[str, float] | None,
    *,
    customer_known: bool,
    locale: Locale = "en",
    limit: int = MAX_FACTORS,
    texts: LaneTexts = ORDER_TEXTS,
) -> tuple[str, ...]:
    """For an approval: what kept the score low, the most score-lowering contributions with the
    order's real values; "No risk factor stood out" when none can be said. Never a risk reason."""
    idx = 0 if locale == "en" else 1
    out: list[str] = [] if customer_known else [_NEW[idx]]
    for _, name in sorted((c, n) for n, c in (contributions or {}).items() if c < 0):
        if len(out) >= limit:
            break
        if not customer_known and name in texts.history:
            continue
        if name in texts.absent:
            if vector.get(name, 0):  # present, yet it lowered the score: nothing to reassure with
                continue
            text = texts.absent[name][idx]
        elif name in texts.templates:
            text = texts.templates[name](vector, None)[idx]
        else:
            continue
        if text not in out:
            out.append(text)
    return tuple(out) or (_NOTHING_STOOD_OUT[idx],)


def explain(
    vector: Mapping[str, float],
    contributions: Mapping[str, float] | None,
    *,
    risk_level: str,
    action: str,
    hints: tuple[str, ...] = (),
    rules_triggered: tuple[str, ...] = (),
    order_time_ms: int,
    customer_known: bool,
    locale: Locale = "en",
    texts: LaneTexts = ORDER_TEXTS,
) -> Explanation:
    if risk_level == "low" and not rules_triggered:  # an approval says what kept it low
        factors = reassuring_factors(
            vector, contributions, customer_known=customer_known, locale=locale, texts=texts
        )
    else:
        factors = key_factors(
            vector,
            contributions,
            order_time_ms=order_time_ms,
            customer_known=customer_known,
            rules_triggered=rules_triggered,
            locale=locale,
            texts=texts,
        )
    recommendation = texts.recommendation[locale][action] + "".join(texts.hints[locale][h] for h in hints)
    return Explanation(
        summary=texts.summary[locale][risk_level],
        key_factors=factors,
        recommendation=recommendation,
        customer_message=texts.customer_message[locale][action],
    )
