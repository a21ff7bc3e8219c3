"""Template explanations of card-payment decisions (en, hi): the order lane's contract for payments.

Key factors are the contributions that raised the score, in business language with the payment's
real values; a risk signal (direction +1 in PAYMENT_FEATURES) is cited only when present. An approval
says what kept the score low instead. The customer message asks for what the action needs and never
names a signal.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from returnguard.explain import Explanation
from returnguard.features import PAYMENT_FEATURES, PAYMENT_SPEND_WINDOWS_DAYS

MAX_FACTORS = 3
_BY_NAME = {f.name: f for f in PAYMENT_FEATURES}
Template = Callable[[Mapping[str, float]], tuple[str, str]]


_TEMPLATES: dict[str, Template] = {
    "payment_amount": lambda v: (
        f"Payment amount {v['payment_amount']:,.2f}",
        f"भुगतान राशि {v['payment_amount']:,.2f}",
    ),
    "payment_card_not_present": lambda v: (
        ("Card not present (online payment)", "कार्ड मौजूद नहीं (ऑनलाइन भुगतान)")
        if v["payment_card_not_present"]
        else ("Card present at the terminal", "टर्मिनल पर कार्ड मौजूद")
    ),
    "amount_vs_customer_avg_30d": lambda v: (
        f"Amount is {v['amount_vs_customer_avg_30d']:.1f}x the customer's 30-day average",
        f"राशि ग्राहक के 30-दिन के औसत की {v['amount_vs_customer_avg_30d']:.1f} गुना है",
    ),
    "customer_payments_last_10m": lambda v: (
        f"{v['customer_payments_last_10m']:.0f} payments by the customer in the previous 10 minutes",
        f"पिछले 10 मिनट में ग्राहक के {v['customer_payments_last_10m']:.0f} भुगतान",
    ),
    "customer_payments_last_1h": lambda v: (
        f"{v['customer_payments_last_1h']:.0f} payments by the customer in the previous hour",
        f"पिछले एक घंटे में ग्राहक के {v['customer_payments_last_1h']:.0f} भुगतान",
    ),
    "card_payments_last_1h": lambda v: (
        f"{v['card_payments_last_1h']:.0f} payments with this card in the previous hour",
        f"पिछले एक घंटे में इस कार्ड से {v['card_payments_last_1h']:.0f} भुगतान",
    ),
    "card_payments_last_24h": lambda v: (
        f"{v['card_payments_last_24h']:.0f} payments with this card in the previous 24 hours",
        f"पिछले 24 घंटों में इस कार्ड से {v['card_payments_last_24h']:.0f} भुगतान",
    ),
    "card_spend_last_24h": lambda v: (
        f"{v['card_spend_last_24h']:,.2f} spent on this card in the previous 24 hours",
        f"पिछले 24 घंटों में इस कार्ड पर {v['card_spend_last_24h']:,.2f} खर्च",
    ),
    "card_age_days": lambda v: (
        ("Card never seen before", "कार्ड पहले कभी नहीं देखा गया")
        if v["card_age_days"] < 0
        else (
            f"Card first used {v['card_age_days']:.0f} days ago",
            f"कार्ड पहली बार {v['card_age_days']:.0f} दिन पहले इस्तेमाल हुआ",
        )
    ),
    "card_is_new_for_customer": lambda v: (
        ("A card this customer never paid with before", "ऐसा कार्ड जिससे ग्राहक ने पहले कभी भुगतान नहीं किया")
        if v["card_is_new_for_customer"]
        else ("A card this customer paid with before", "ग्राहक पहले इस कार्ड से भुगतान कर चुका है")
    ),
    "customer_distinct_cards": lambda v: (
        f"The customer paid with {v['customer_distinct_cards']:.0f} different cards before",
        f"ग्राहक पहले {v['customer_distinct_cards']:.0f} अलग-अलग कार्ड से भुगतान कर चुका है",
    ),
    "terminal_fraud_rate_7d": lambda v: (
        f"Confirmed fraud at this terminal in the past week: {100 * v['terminal_fraud_rate_7d']:.1f}%",
        f"पिछले सप्ताह इस टर्मिनल पर पुष्ट धोखाधड़ी: {100 * v['terminal_fraud_rate_7d']:.1f}%",
    ),
    "terminal_fraud_rate_28d": lambda v: (
        f"Confirmed fraud at this terminal in the past 28 days: {100 * v['terminal_fraud_rate_28d']:.1f}%",
        f"पिछले 28 दिनों में इस टर्मिनल पर पुष्ट धोखाधड़ी: {100 * v['terminal_fraud_rate_28d']:.1f}%",
    ),
    "merchant_fraud_rate_28d": lambda v: (
        f"Confirmed fraud at this merchant in the past 28 days: {100 * v['merchant_fraud_rate_28d']:.1f}%",
        f"पिछले 28 दिनों में इस व्यापारी पर पुष्ट धोखाधड़ी: {100 * v['merchant_fraud_rate_28d']:.1f}%",
    ),
    "terminal_payments_28d": lambda v: (
        f"{v['terminal_payments_28d']:.0f} payments at this terminal in the past 28 days",
        f"पिछले 28 दिनों में इस टर्मिनल पर {v['terminal_payments_28d']:.0f} भुगतान",
    ),
    "customer_avg_payment_30d": lambda v: (
        f"Customer's average payment over 30 days: {v['customer_avg_payment_30d']:,.2f}",
        f"30 दिनों में ग्राहक का औसत भुगतान: {v['customer_avg_payment_30d']:,.2f}",
    ),
}


def _window_templates(days: int) -> dict[str, Template]:
    def payments(v: Mapping[str, float]) -> tuple[str, str]:
        n = v[f"customer_payments_{days}d"]
        return (
            f"{n:.0f} payments by the customer in the last {days} days",
            f"पिछले {days} दिनों में ग्राहक के {n:.0f} भुगतान",
        )

    def spend(v: Mapping[str, float]) -> tuple[str, str]:
        amount = v[f"customer_spend_{days}d"]
        return (
            f"Customer spent {amount:,.2f} in the last {days} days",
            f"पिछले {days} दिनों में ग्राहक ने {amount:,.2f} खर्च किए",
        )

    return {f"customer_payments_{days}d": payments, f"customer_spend_{days}d": spend}


for _days in PAYMENT_SPEND_WINDOWS_DAYS:
    _TEMPLATES.update(_window_templates(_days))
assert set(_TEMPLATES) == set(_BY_NAME), "every payment feature needs a template"

_RULES = {
    "blocklisted": ("The card or customer is on the blocklist", "कार्ड या ग्राहक ब्लॉकलिस्ट में है"),
    "high_amount": ("Amount over 5,000 USD", "राशि 5,000 USD से अधिक"),
    "velocity": ("Several payments by the customer within minutes", "कुछ ही मिनटों में ग्राहक के कई भुगतान"),
}
_NEW = ("No payment history for this customer yet", "इस ग्राहक का अभी कोई भुगतान इतिहास नहीं")
_NOTHING = ("No risk factor stood out", "कोई जोखिम कारक सामने नहीं आया")
_SUMMARY = {
    "en": {
        "low": "Low fraud risk.",
        "medium": "Some fraud risk: confirm the cardholder.",
        "high": "High fraud risk: hold for review.",
        "critical": "Very high fraud risk.",
    },
    "hi": {
        "low": "धोखाधड़ी का जोखिम कम।",
        "medium": "कुछ जोखिम: कार्डधारक की पुष्टि करें।",
        "high": "धोखाधड़ी का जोखिम अधिक: समीक्षा के लिए रोकें।",
        "critical": "धोखाधड़ी का जोखिम बहुत अधिक।",
    },
}
_RECOMMENDATION = {
    "en": {
        "approve": "Approve the payment.",
        "step_up_authentication": "Ask for strong customer authentication (3-D Secure or a one-time code) before approving.",
        "review": "Hold the payment for an analyst's review.",
        "decline": "Decline the payment.",
    },
    "hi": {
        "approve": "भुगतान स्वीकार करें।",
        "step_up_authentication": "स्वीकार करने से पहले मज़बूत प्रमाणीकरण (3-D Secure या वन-टाइम कोड) माँगें।",
        "review": "विश्लेषक की समीक्षा तक भुगतान रोकें।",
        "decline": "भुगतान अस्वीकार करें।",
    },
}
CUSTOMER_MESSAGE = {
    "en": {
        "approve": "Your payment is approved.",
        "step_up_authentication": "To protect your card, please confirm this payment with your bank.",
        "review": "Your payment is being verified. We will let you know shortly.",
        "decline": "We could not complete this payment. Please contact your bank or our support.",
    },
    "hi": {
        "approve": "आपका भुगतान स्वीकार हो गया है।",
        "step_up_authentication": "आपके कार्ड की सुरक्षा के लिए, कृपया अपने बैंक से इस भुगतान की पुष्टि करें।",
        "review": "आपके भुगतान का सत्यापन हो रहा है। हम जल्द ही आपको सूचित करेंगे।",
        "decline": "हम यह भुगतान पूरा नहीं कर सके। कृपया अपने बैंक या सहायता से संपर्क करें।",
    },
}


def explain_payment(
    vector: Mapping[str, float],
    contributions: Mapping[str, float] | None,
    *,
    risk_level: str,
    action: str,
    rules_triggered: tuple[str, ...] = (),
    customer_known: bool,
    locale: str = "en",
) -> Explanation:
    idx = 0 if locale == "en" else 1
    out: list[str] = [_RULES[r][idx] for r in rules_triggered if r in _RULES]
    if not customer_known:
        out.append(_NEW[idx])
    if risk_level == "low" and not rules_triggered:  # an approval says what kept the score low
        for _, name in sorted((c, n) for n, c in (contributions or {}).items() if c < 0):
            if len(out) >= MAX_FACTORS:
                break
            if _BY_NAME[name].direction > 0 and vector[name] > _BY_NAME[name].default:
                continue  # a present risk signal never reassures
            text = _TEMPLATES[name](vector)[idx]
            if text not in out:
                out.append(text)
        factors = tuple(out) or (_NOTHING[idx],)
    else:
        for _, name in sorted((-c, n) for n, c in (contributions or {}).items() if c > 0):
            if len(out) >= MAX_FACTORS + len(rules_triggered):
                break
            if _BY_NAME[name].direction > 0 and vector[name] <= _BY_NAME[name].default:
                continue  # the absence of a risk signal is never a reason for risk
            text = _TEMPLATES[name](vector)[idx]
            if text not in out:
                out.append(text)
        factors = tuple(out)
    language = "en" if idx == 0 else "hi"
    return Explanation(
        summary=_SUMMARY[language][risk_level],
        key_factors=factors,
        recommendation=_RECOMMENDATION[language][action],
        customer_message=CUSTOMER_MESSAGE[language][action],
    )
