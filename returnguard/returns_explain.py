"""What the return lane says, en and hi: factor templates for the return features, its rules, and the
sentences per risk level and refund action. returnguard.explain renders them (LaneTexts), exactly as it
renders the order lane's.

No template quotes the customer's reason text: text features are described by what they measure
(length, language, agreement with the chosen reason, repeats across customers), never by the words.
`customer_message` tells the shopper what happens next and never why; a denial is not announced before
the person who confirms it has looked.
"""

from __future__ import annotations

from collections.abc import Mapping

from returnguard.explain import LaneTexts, Template, _account_age, _damaged, _entity_rate, _pct
from returnguard.features import NEVER, RETURN_FEATURES, RETURN_REASON_CODES, RETURN_RISK_SIGNALS

_REASON_HI = {
    "damaged": "क्षतिग्रस्त",
    "defective": "खराब",
    "empty_box": "खाली बॉक्स",
    "wrong_item": "गलत सामान",
    "size_fit": "साइज़/फिटिंग",
    "not_as_described": "विवरण से अलग",
    "quality": "गुणवत्ता",
    "changed_mind": "मन बदल गया",
    "late_delivery": "देर से डिलीवरी",
}


def _reason(code: str) -> Template:
    def render(v: Mapping[str, float], _: str | None) -> tuple[str, str]:
        return f"Return reason: {code.replace('_', ' ')}", f"रिटर्न का कारण: {_REASON_HI.get(code, code)}"

    return render


def _claim_rate(label_en: str, label_hi: str, name: str) -> Template:
    def render(v: Mapping[str, float], _: str | None) -> tuple[str, str]:
        pct = _pct(v[name])
        return (
            f"{label_en} damage/mismatch claim rate is {pct}%",
            f"{label_hi} की क्षति/गलत सामान दावा दर {pct}% है",
        )

    return render


def _count(en: str, hi: str, name: str) -> Template:
    def render(v: Mapping[str, float], _: str | None) -> tuple[str, str]:
        n = int(v[name])
        return en.format(n=n), hi.format(n=n)

    return render


def _fixed(en: str, hi: str) -> Template:
    return lambda v, _: (en, hi)


def _refund_ratio(v: Mapping[str, float], _: str | None) -> tuple[str, str]:
    pct = _pct(v["refund_ratio"])
    return f"Refund asked is {pct}% of what was paid", f"मांगा गया रिफंड भुगतान का {pct}% है"


def _order_value(v: Mapping[str, float], _: str | None) -> tuple[str, str]:
    x = v["order_value"]
    return f"Order value is {x:,.2f}", f"ऑर्डर मूल्य {x:,.2f} है"


def _days_since_delivery(v: Mapping[str, float], _: str | None) -> tuple[str, str]:
    d = int(v["days_since_delivery"])
    return f"Return requested {d} day(s) after delivery", f"डिलीवरी के {d} दिन बाद रिटर्न का अनुरोध"


def _return_share(v: Mapping[str, float], _: str | None) -> tuple[str, str]:
    r, n = int(v["return_count"]), int(v["customer_order_count"])
    pct = _pct(r / n) if n else 0
    return (
        f"Customer returned {r} of {n} past orders ({pct}%)",
        f"ग्राहक ने पिछले {n} में से {r} ऑर्डर लौटाए ({pct}%)",
    )


def _last_return(v: Mapping[str, float], _: str | None) -> tuple[str, str]:
    d = v["days_since_last_return"]
    if d == NEVER:
        return "No earlier return by the customer", "ग्राहक का कोई पिछला रिटर्न नहीं"
    return f"Previous return {int(d)} day(s) before", f"पिछला रिटर्न {int(d)} दिन पहले"


TEMPLATES: dict[str, Template] = {
    "order_value": _order_value,
    "refund_ratio": _refund_ratio,
    "days_since_delivery": _days_since_delivery,
    **{f"reason_{code}": _reason(code) for code in RETURN_REASON_CODES},
    "damaged_flag": _fixed("Claims the item arrived damaged or empty", "दावा कि सामान क्षतिग्रस्त या खाली पहुंचा"),
    "return_by_pickup": _fixed("Return by courier pickup", "कूरियर पिकअप से रिटर्न"),
    "pickup_address_differs": _fixed(
        "Pickup address differs from the delivery address", "पिकअप पता डिलीवरी पते से अलग है"
    ),
    "return_item_count": _count("{n} item(s) in the return", "रिटर्न में {n} सामान", "return_item_count"),
    "reason_text_length": _count(
        "Reason text is {n} characters long", "कारण का विवरण {n} अक्षरों का है", "reason_text_length"
    ),
    "reason_text_hindi": _fixed("Reason written in Hindi", "कारण हिंदी में लिखा गया"),
    "reason_text_hinglish": _fixed("Reason written in Hinglish", "कारण हिंग्लिश में लिखा गया"),
    "reason_text_supports_code": _fixed(
        "Reason text matches the chosen reason", "विवरण चुने गए कारण से मेल खाता है"
    ),
    "reason_text_contradicts_code": _fixed(
        "Reason text describes a different reason than the one chosen", "विवरण चुने गए कारण से अलग कारण बताता है"
    ),
    "reason_text_other_customers": _count(
        "The same reason text came from {n} other customer(s)",
        "यही विवरण {n} अन्य ग्राहकों ने भी भेजा",
        "reason_text_other_customers",
    ),
    "customer_account_age_days": _account_age,
    "customer_order_count": _count(
        "Customer placed {n} order(s) before", "ग्राहक ने पहले {n} ऑर्डर दिए", "customer_order_count"
    ),
    "return_count": _return_share,
    "customer_return_share": _return_share,
    "days_since_last_return": _last_return,
    "customer_returns_last_30d": _count(
        "{n} return(s) by the customer in the last 30 days",
        "पिछले 30 दिनों में ग्राहक के {n} रिटर्न",
        "customer_returns_last_30d",
    ),
    "customer_damage_claims_30d": _count(
        "{n} damage claim(s) in the last 30 days",
        "पिछले 30 दिनों में {n} क्षति दावे",
        "customer_damage_claims_30d",
    ),
    "customer_mismatch_claims_30d": _count(
        "{n} wrong-item or not-as-described claim(s) in the last 30 days",
        "पिछले 30 दिनों में गलत सामान या विवरण से अलग होने के {n} दावे",
        "customer_mismatch_claims_30d",
    ),
    "customer_fit_quality_claims_30d": _count(
        "{n} size or quality claim(s) in the last 30 days",
        "पिछले 30 दिनों में साइज़ या गुणवत्ता के {n} दावे",
        "customer_fit_quality_claims_30d",
    ),
    "customer_damaged_claims": _damaged,
    "product_return_rate": _entity_rate("Product", "उत्पाद", "product_return_rate"),
    "category_return_rate": _entity_rate("Category", "श्रेणी", "category_return_rate"),
    "seller_return_rate": _entity_rate("Seller", "विक्रेता", "seller_return_rate"),
    "product_claim_rate": _claim_rate("Product", "उत्पाद", "product_claim_rate"),
    "category_claim_rate": _claim_rate("Category", "श्रेणी", "category_claim_rate"),
    "seller_claim_rate": _claim_rate("Seller", "विक्रेता", "seller_claim_rate"),
}

RULES = {
    "en": {
        "refund_exceeds_paid": "Refund asked is above what was paid for the order",
        "outside_return_window": "Requested after the return window closed",
        "not_delivered": "The order has no delivery on record",
        "already_returned": "This item of the order was already returned",
        "blocklisted": "Customer is on the blocklist",
        "order_customer_mismatch": "The order belongs to another customer",
    },
    "hi": {
        "refund_exceeds_paid": "मांगा गया रिफंड ऑर्डर के भुगतान से अधिक है",
        "outside_return_window": "रिटर्न अवधि समाप्त होने के बाद अनुरोध",
        "not_delivered": "ऑर्डर की डिलीवरी का कोई रिकॉर्ड नहीं है",
        "already_returned": "ऑर्डर का यह सामान पहले ही लौटाया जा चुका है",
        "blocklisted": "ग्राहक ब्लॉकलिस्ट में है",
        "order_customer_mismatch": "ऑर्डर किसी अन्य ग्राहक का है",
    },
}
_REVIEWING = {
    "en": "Your return is being reviewed. We will update you shortly.",
    "hi": "आपके रिटर्न की समीक्षा हो रही है। हम जल्द ही आपको सूचित करेंगे।",
}

RETURN_TEXTS = LaneTexts(
    templates=TEMPLATES,
    history=frozenset(f.name for f in RETURN_FEATURES if f.group == "customer"),
    # cited as a risk only when above the default: the risk signals, and every yes/no feature (a "no"
    # is never a reason for risk: "reason text contradicts the code" must not be said when it does not)
    risk_signals=RETURN_RISK_SIGNALS | {f.name for f in RETURN_FEATURES if f.kind == "bool"},
    defaults={f.name: f.default for f in RETURN_FEATURES},
    absent={
        "pickup_address_differs": ("Pickup from the delivery address", "डिलीवरी वाले पते से पिकअप"),
        "damaged_flag": ("No damage claimed", "क्षति का कोई दावा नहीं"),
        "reason_text_contradicts_code": (
            "Reason text does not contradict the chosen reason",
            "विवरण चुने गए कारण के विपरीत नहीं है",
        ),
    },
    rules=RULES,
    summary={
        "en": {
            "low": "Low risk: no strong signals of return abuse.",
            "medium": "Medium risk: some signals warrant checking the item before the refund.",
            "high": "High risk: several signals point to possible return abuse.",
            "critical": "Critical risk: a person decides this refund.",
        },
        "hi": {
            "low": "कम जोखिम: रिटर्न दुरुपयोग के कोई मजबूत संकेत नहीं।",
            "medium": "मध्यम जोखिम: कुछ संकेतों के कारण रिफंड से पहले सामान की जांच उचित है।",
            "high": "उच्च जोखिम: कई संकेत संभावित रिटर्न दुरुपयोग की ओर इशारा करते हैं।",
            "critical": "गंभीर जोखिम: इस रिफंड का निर्णय एक व्यक्ति करेगा।",
        },
    },
    recommendation={
        "en": {
            "instant_refund": "Refund now.",
            "refund_after_pickup_inspection": "Refund after the picked-up item passes inspection.",
            "photo_or_video_proof": "Ask for a photo or video of the item before the refund.",
            "open_box_pickup": "Open the box at pickup and check the item before the refund.",
            "manual_review": "Hold the refund for manual review.",
            "deny_refund": "A hard rule denies this refund; a reviewer confirms before any money is withheld.",
        },
        "hi": {
            "instant_refund": "तुरंत रिफंड करें।",
            "refund_after_pickup_inspection": "पिकअप किए गए सामान की जांच के बाद रिफंड करें।",
            "photo_or_video_proof": "रिफंड से पहले सामान की फोटो या वीडियो मांगें।",
            "open_box_pickup": "पिकअप पर बॉक्स खोलकर सामान जांचें, फिर रिफंड करें।",
            "manual_review": "रिफंड को मैन्युअल समीक्षा के लिए रोकें।",
            "deny_refund": "एक नियम यह रिफंड अस्वीकार करता है; पैसा रोकने से पहले समीक्षक पुष्टि करेगा।",
        },
    },
    customer_message={
        "en": {
            "instant_refund": "Your refund has been approved.",
            "refund_after_pickup_inspection": "We will refund you once the item is picked up and checked.",
            "photo_or_video_proof": "Please share a photo or video of the item so we can process your refund.",
            "open_box_pickup": "Our courier will check the item with you at pickup before your refund.",
            "manual_review": _REVIEWING["en"],
            "deny_refund": _REVIEWING["en"],
        },
        "hi": {
            "instant_refund": "आपका रिफंड स्वीकृत हो गया है।",
            "refund_after_pickup_inspection": "सामान के पिकअप और जांच के बाद हम आपको रिफंड करेंगे।",
            "photo_or_video_proof": "कृपया सामान की फोटो या वीडियो साझा करें ताकि हम आपका रिफंड प्रोसेस कर सकें।",
            "open_box_pickup": "रिफंड से पहले हमारा कूरियर पिकअप पर आपके सामने सामान की जांच करेगा।",
            "manual_review": _REVIEWING["hi"],
            "deny_refund": _REVIEWING["hi"],
        },
    },
    hints={"en": {}, "hi": {}},
)
