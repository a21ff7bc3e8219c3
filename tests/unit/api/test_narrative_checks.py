"""The output checks on their own: normalisation, each check, and properties over generated text."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from returnguard.explain import _TEMPLATES, explain
from returnguard.narrative_checks import (
    contact_details,
    contradicts_action,
    failed_check,
    fold,
    hidden_characters,
    numbers,
    reveals_signal,
    unexpected_script,
)
from returnguard.returns_explain import RETURN_TEXTS
from returnguard.returns_policy import REFUND_STRICTNESS
from tests.unit.api.test_explain import BASE, DIWALI_MS, PLAIN_MS

_TEMPLATE_FEATURES = set(_TEMPLATES)
FACTS_EN = ("Customer returned 4 of the last 6 orders (67%)", "Cash on delivery during Diwali week")
FACTS_HI = ("ग्राहक ने पिछले 6 में से 4 ऑर्डर लौटाए (67%)", "दिवाली सप्ताह के दौरान कैश ऑन डिलीवरी")
REVIEW_EN = "Your order is being verified. We will update you shortly."
REVIEW_HI = "आपके ऑर्डर का सत्यापन हो रहा है। हम जल्द ही आपको सूचित करेंगे।"
NARRATIVE_EN = (
    "The customer returned 4 of the last 6 orders (67%) and pays cash on delivery; hold for review."
)
NARRATIVE_HI = "ग्राहक ने पिछले ६ में से ४ ऑर्डर लौटाए (67%) और कैश ऑन डिलीवरी चुनी; समीक्षा तक ऑर्डर रोकें।"
HOMOGLYPHS = {"a": "а", "e": "е", "o": "о", "p": "р", "c": "с", "x": "х", "i": "і", "s": "ѕ", "k": "κ"}
ZERO_WIDTH = ("\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u202e", "\u2066")


def test_fold_normalises_width_case_digits_homoglyphs_and_invisible_characters() -> None:
    assert fold("ＦＲＡＵＤ") == "fraud"  # full-width, NFKC
    assert fold("fr\u200baud") == "fraud"  # zero-width space
    assert fold("frаud") == "fraud"  # Cyrillic а
    assert fold("𝐟𝐫𝐚𝐮𝐝") == "fraud"  # mathematical bold
    assert fold("९८७६५") == "98765"  # Devanagari digits
    assert fold("ज़्यादा") == fold("ज्यादा") and fold("पाँच") == fold("पांच")  # nukta, chandrabindu


@pytest.mark.parametrize("char", ZERO_WIDTH)
def test_invisible_characters_are_refused(char: str) -> None:
    assert hidden_characters(f"Your order{char} is being verified.")


def test_a_joiner_inside_a_devanagari_word_is_hindi_spelling() -> None:
    assert not hidden_characters("क्\u200dष")  # ZWJ between two Devanagari characters
    assert hidden_characters("ok\u200dyes")


def test_letters_outside_latin_and_devanagari_are_refused() -> None:
    assert unexpected_script("Your оrder")  # Cyrillic о
    assert unexpected_script("Your order ορder")  # Greek
    assert not unexpected_script(NARRATIVE_HI + " " + NARRATIVE_EN)
    assert not unexpected_script("Café ₹2,499")


@pytest.mark.parametrize(
    "text",
    [
        "Visit https://example.com now",
        "hxxps://evil.example",
        "go to www.verify-order.in",
        "see returnguard-help.in",
        "see example[.]com",
        "see example (dot) com",
        "see example dot com",
        "write to help@example.com",
        "write to help [at] example",
        "call +91 98765 43210",
        "call 98765-43210",
        "कॉल करें ९८७६५४३२१०",
        "call (022) 2345 6789",
        "bit.ly/abc",
    ],
)
def test_contact_details_are_found(text: str) -> None:
    assert contact_details(fold(text))


@pytest.mark.parametrize(
    "text", [NARRATIVE_EN, NARRATIVE_HI, "e.g. a review, i.e. a check", "Rs.500 and 1.5x", "₹2,499.00"]
)
def test_ordinary_text_has_no_contact_details(text: str) -> None:
    assert not contact_details(fold(text))


def test_numbers_in_any_script_and_as_words() -> None:
    assert numbers(fold("4 of 6 (67%), ₹1,00,000 and 5,000 USD, 1.5x")) == {4, 6, 67, 100_000, 5000, 1.5}
    assert numbers(fold("६ में से ४")) == {6, 4}
    assert numbers(fold("five of the last six orders")) == {5, 6}
    assert numbers(fold("पिछले छह में से पाँच")) == {6, 5}
    assert numbers(fold("often one order, विचार, दोनों")) == set()  # words inside words, articles


@pytest.mark.parametrize(
    "message",
    [
        "Your order is on hold because you returned many orders.",
        "We paused this order as several of your recent purchases came back to us.",
        "Your order needs a check since you use cash on delivery often.",
        "आपका ऑर्डर रोका गया है क्योंकि आपने कई ऑर्डर वापस किए हैं।",
        "आपने हाल में बहुत से ऑर्डर लौटाए हैं, इसलिए यह ऑर्डर रुका हुआ है।",
        "Aapka order hold par hai kyunki aapne bahut saare orders return kiye hain.",
        "Aapne kaafi orders wapas bheje the, isliye order abhi ruka hai.",
    ],
)
def test_paraphrases_of_the_reason_are_caught(message: str) -> None:
    assert reveals_signal(fold(message))


@pytest.mark.parametrize(
    "message",
    [
        REVIEW_EN,
        REVIEW_HI,
        "To keep your account safe, please confirm this order with the one-time code we sent you.",
        "We could not confirm this order. Please contact customer support.",
        "Aapke order ki jaanch ho rahi hai. Hum jaldi aapko batayenge.",
    ],
)
def test_messages_that_say_only_what_happens_next_pass(message: str) -> None:
    assert not reveals_signal(fold(message))


@pytest.mark.parametrize(
    ("message", "action"),
    [
        ("Your order is confirmed.", "manual_review"),
        ("Great news, your order has been shipped!", "manual_review"),
        ("Your order is approved and on its way.", "block"),
        ("आपका ऑर्डर कन्फर्म हो गया है।", "manual_review"),
        ("आपका ऑर्डर भेज दिया गया है।", "otp_verification"),
        ("Aapka order confirm ho gaya hai.", "manual_review"),
        ("Please wait while we look at your order.", "otp_verification"),  # never asks for the code
        ("Your order is on hold for review.", "approve"),
    ],
)
def test_a_message_that_contradicts_the_action_is_caught(message: str, action: str) -> None:
    assert contradicts_action(fold(message), action)


@pytest.mark.parametrize(
    ("message", "action"),
    [
        ("Your order is confirmed.", "approve"),
        ("आपका ऑर्डर पुष्ट हो गया है।", "approve"),
        (REVIEW_EN, "manual_review"),
        ("Your order is not confirmed yet; we are verifying it.", "manual_review"),
        ("Please enter the one-time code we sent to confirm your order.", "otp_verification"),
        ("कृपया भेजे गए वन-टाइम कोड से इस ऑर्डर की पुष्टि करें।", "otp_verification"),
        ("हम इस ऑर्डर की पुष्टि नहीं कर सके। कृपया ग्राहक सहायता से संपर्क करें।", "block"),
    ],
)
def test_a_message_that_matches_the_action_passes(message: str, action: str) -> None:
    assert not contradicts_action(fold(message), action)


def test_good_outputs_pass_in_english_and_hindi() -> None:
    assert failed_check(NARRATIVE_EN, REVIEW_EN, action="manual_review", facts=FACTS_EN) is None
    assert failed_check(NARRATIVE_HI, REVIEW_HI, action="manual_review", facts=FACTS_HI) is None


# --- properties ---------------------------------------------------------------------------------

_text = st.text(st.characters(codec="utf-8"), max_size=60)


@given(_text)
def test_fold_is_idempotent(text: str) -> None:
    assert fold(fold(text)) == fold(text)


@given(
    st.sampled_from(
        [
            "Your order is on hold because you returned many orders.",
            "Your order was flagged as high risk.",
            "Aapka order hold par hai kyunki aapne bahut saare orders return kiye hain.",
        ]
    ),
    st.data(),
)
@settings(max_examples=200)
def test_hiding_a_signal_with_homoglyphs_or_invisible_characters_never_passes(message: str, data) -> None:
    # Given a message that names the reason, when any letters are swapped for look-alikes and any
    # invisible characters are inserted, then the message still fails, and the folded text still
    # names the reason.
    disguised = ""
    for char in message:
        if char in HOMOGLYPHS and data.draw(st.booleans()):
            char = HOMOGLYPHS[char]
        disguised += char + data.draw(st.sampled_from(("",) * 4 + ZERO_WIDTH))
    assert failed_check(NARRATIVE_EN, disguised, action="manual_review", facts=FACTS_EN) is not None
    assert reveals_signal(fold(disguised))


@given(st.integers(min_value=0, max_value=10**9))
def test_a_number_not_in_the_facts_never_passes(number: int) -> None:
    narrative = f"The customer returned 4 of the last {number} orders."
    expected = None if number in (4, 6, 67) else "unlisted_number"
    if expected and number >= 1_000_000:
        expected = "contact_details"  # seven digits read as a phone number first
    assert failed_check(narrative, REVIEW_EN, action="manual_review", facts=FACTS_EN) == expected


@given(
    st.lists(st.integers(0, 9), min_size=10, max_size=10),
    st.sampled_from(("", " ", "-", ".", " - ")),
    st.sampled_from(("0123456789", "०१२३४५६७८९", "０１２３４５６７８９")),
    st.sampled_from(("", "+91 ")),
)
def test_a_phone_number_in_any_digits_and_separators_is_found(digits, separator, script, prefix) -> None:
    grouped = [script[d] for d in digits]
    phone = prefix + "".join(grouped[:5]) + separator + "".join(grouped[5:])
    assert contact_details(fold(f"Call us on {phone} today"))


_ACTIONS = {"low": "approve", "medium": "otp_verification", "high": "manual_review", "critical": "block"}


@given(
    st.dictionaries(
        st.sampled_from(sorted(_TEMPLATE_FEATURES)), st.floats(0.01, 1.0), min_size=1, max_size=6
    ),
    st.fixed_dictionaries(
        {
            "customer_order_count": st.integers(1, 60),
            "customer_returns_last_6_orders": st.integers(0, 6),
            "customer_return_rate_last_6": st.floats(0, 1),
            "customer_return_rate": st.floats(0, 1),
            "customer_cod_refusals": st.integers(0, 9),
            "amount_vs_customer_avg": st.floats(0.1, 40),
            "customer_orders_last_60s": st.integers(0, 9),
            "customer_orders_last_1h": st.integers(0, 40),
            "customer_damaged_claims": st.integers(0, 9),
            "customer_account_age_days": st.integers(0, 4000),
            "product_return_rate": st.floats(0, 1),
            "region_return_rate": st.floats(0, 1),
            "payment_is_cod": st.sampled_from((0, 1)),
        }
    ),
    st.sampled_from(sorted(_ACTIONS)),
    st.sampled_from(("en", "hi")),
    st.sampled_from((PLAIN_MS, DIWALI_MS)),
    st.lists(st.sampled_from(("blocklisted", "high_amount", "velocity")), max_size=2, unique=True),
    st.booleans(),
)
@settings(max_examples=300, deadline=None)
def test_a_faithful_reply_always_passes(contributions, values, level, locale, order_time_ms, rules, known):
    # Given any template explanation, when the model restates its key factors and recommendation for
    # the reviewer and gives the template's message to the shopper, then no check refuses it: the
    # checks cost nothing on a faithful reply.
    told = explain(
        {**BASE, **values},
        contributions,
        risk_level=level,
        action=_ACTIONS[level],
        rules_triggered=tuple(rules),
        order_time_ms=order_time_ms,
        customer_known=known,
        locale=locale,
    )
    narrative = " ".join((*told.key_factors, told.recommendation))
    facts = (*told.key_factors, told.recommendation)
    assert failed_check(narrative, told.customer_message, action=_ACTIONS[level], facts=facts) is None


# --- return requests (refund actions) -------------------------------------------------------------


@pytest.mark.parametrize("locale", ["en", "hi"])
@pytest.mark.parametrize("action", sorted(REFUND_STRICTNESS))
def test_a_faithful_return_reply_passes_for_every_refund_action(locale: str, action: str) -> None:
    # a return's message is about the return and its refund: those words are its subject, not a reason
    # (the order lane's word list refused every one, so every return narrative fell back)
    recommendation = RETURN_TEXTS.recommendation[locale][action]
    message = RETURN_TEXTS.customer_message[locale][action]
    facts = (recommendation,)
    assert failed_check(recommendation, message, action=action, facts=facts, lane="return") is None
    # the same words still reveal the signal in an order's message
    assert failed_check(recommendation, message, action="manual_review", facts=facts) == "reveals_signal"


@pytest.mark.parametrize(
    "message",
    [
        "Given your many returns, please share a photo of the item first.",
        "Your previous refunds mean a courier will check the item at pickup.",
        "We looked at your return history and will inspect the item.",
        "Aapke pehle bhi return hue hain, isliye photo bhejiye.",
        "आपके कई रिटर्न देखते हुए कृपया फोटो भेजें।",
    ],
)
def test_a_return_message_naming_the_customers_return_history_is_caught(message: str) -> None:
    assert reveals_signal(fold(message), "return")


@pytest.mark.parametrize(
    ("message", "action"),
    [
        ("Your refund has been approved.", "refund_after_pickup_inspection"),
        ("Good news: we have issued your refund.", "photo_or_video_proof"),
        ("आपका रिफंड स्वीकृत हो गया है।", "manual_review"),
        ("Aapka refund ho gaya hai.", "open_box_pickup"),
        ("Your refund request is denied.", "deny_refund"),  # never announced before a person confirms
        ("We cannot refund this item.", "manual_review"),
        ("We will inspect the item before your refund.", "instant_refund"),
        ("Your refund is on hold for review.", "instant_refund"),
    ],
)
def test_a_return_message_that_contradicts_the_refund_action_is_caught(message: str, action: str) -> None:
    assert contradicts_action(fold(message), action, "return")


@pytest.mark.parametrize(
    ("message", "action"),
    [
        (
            "Your refund will be processed once the item is picked up and checked.",
            "refund_after_pickup_inspection",
        ),
        ("Your refund is on its way to your account.", "instant_refund"),
        ("Your refund is not approved yet; a reviewer will update you.", "manual_review"),
    ],
)
def test_a_return_message_that_matches_the_refund_action_passes(message: str, action: str) -> None:
    assert not contradicts_action(fold(message), action, "return")
