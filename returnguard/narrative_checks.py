"""Checks a Bedrock narrative must pass before anyone reads it: what the reviewer and the shopper see
is either text that passed every check here, or the template.

Every lexical check runs on `fold(text)`: NFKC, invisible format characters removed, every decimal
digit (Devanagari included) as ASCII, case folded, Cyrillic and Greek look-alikes as the Latin letter
they imitate, Devanagari nukta and chandrabindu folded. The raw text is checked too: it may hold no
invisible characters and no letters outside Latin and Devanagari, so what passes is also what a
reader sees.

The checks, in order (the first that fails names the fallback reason):
- hidden_characters: zero-width, bidi or other format characters, variation selectors, private use;
  a zero-width (non-)joiner only between two Devanagari characters, where Hindi spelling uses it.
- unexpected_script: a letter that is neither Latin nor Devanagari (a Cyrillic "а" in "frаud").
- contact_details: a URL, a domain (also "example[.]com", "example dot com"), an e-mail address
  ("@", "[at]") or a phone number (seven or more digits in any script, with separators).
- unlisted_number: a number (digits in any script, or a number word in English, Hindi or Hinglish)
  that is not one of the numbers in the facts given to the model.
- reveals_signal (customer message only): words that tell the shopper why (risk, returns, order
  history, payment method, address, "because", "की वजह से", "kyunki" ...), in English, Hindi and
  Hinglish. For a return request (`lane` "return") the return and the refund are the subject, not
  a reason: there only the customer's return history ("your previous returns") reveals.
- contradicts_action (customer message only): a review, OTP or block decision that says the order is
  confirmed, approved or shipped (or "पुष्टि हो गई", "confirm ho gaya"); an approval that says it is
  on hold; an OTP decision that never mentions the code. For a return request: a refund said to be
  refused (a person confirms a denial first); an instant refund said to be held or checked; any
  other refund action said to be paid already ("your refund has been approved").

These are word lists, so they are conservative: a good text that happens to use a listed word falls
back to the template, which is always safe to show.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation

# --- normalisation -----------------------------------------------------------------------------

_CONFUSABLES = str.maketrans(
    {
        # Cyrillic letters that pass for Latin ones (lower case: fold() case-folds first)
        "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "п": "n",
        "р": "p", "с": "c", "т": "t", "у": "y", "х": "x", "ь": "b", "ѕ": "s", "і": "i", "ї": "i", "ј": "j", "һ": "h", "ԁ": "d", "ԛ": "q",
        "ԝ": "w", "ӏ": "l", "ү": "y", "ҳ": "x", "ɡ": "g",
        # Greek
        "α": "a", "β": "b", "γ": "y", "δ": "d", "ε": "e", "η": "n", "ι": "i", "κ": "k", "μ": "u",
        "ν": "v", "ο": "o", "ρ": "p", "σ": "o", "ς": "c", "τ": "t", "υ": "u", "χ": "x", "ω": "w",
        "ϲ": "c", "ϳ": "j",
        # Latin look-alikes NFKC keeps
        "ı": "i", "ȷ": "j", "ɑ": "a", "ɩ": "i", "ɪ": "i", "ʟ": "l", "ʀ": "r", "ꜱ": "s",
        # Devanagari: nukta dropped, chandrabindu as anusvara (ज़्यादा = ज्यादा, पाँच = पांच)
        "\u093c": None, "\u0901": "\u0902",
    }
)  # fmt: skip
_JOINERS = frozenset("\u200c\u200d")  # ZWNJ, ZWJ: part of Hindi spelling between Devanagari letters
_DEVANAGARI = re.compile(r"[\u0900-\u097f\ua8e0-\ua8ff]")


def _is_hidden(char: str) -> bool:
    code = ord(char)
    return (
        unicodedata.category(char) in ("Cf", "Co", "Cs", "Cn")
        or 0xFE00 <= code <= 0xFE0F  # variation selectors
        or 0xE0100 <= code <= 0xE01EF
        or (unicodedata.category(char) == "Cc" and char != "\n")
    )


def fold(text: str) -> str:
    """The text every lexical check reads: see the module docstring."""
    text = unicodedata.normalize("NFKC", text)
    text = "".join(str(unicodedata.digit(ch)) if ch.isdecimal() else ch for ch in text if not _is_hidden(ch))
    text = unicodedata.normalize("NFKC", text.casefold()).translate(_CONFUSABLES)
    return re.sub(r"\s+", " ", text).strip()


# --- hidden characters and scripts -------------------------------------------------------------


def hidden_characters(text: str) -> bool:
    for i, char in enumerate(text):
        if char in _JOINERS:
            before, after = text[i - 1 : i], text[i + 1 : i + 2]
            if before and after and _DEVANAGARI.match(before) and _DEVANAGARI.match(after):
                continue
            return True
        if _is_hidden(char):
            return True
    return False


def unexpected_script(text: str) -> bool:
    """A letter (after NFKC, so full-width and mathematical letters count as Latin) that is neither
    Latin nor Devanagari: the narratives are English or Hindi, so it can only be a look-alike."""
    for char in unicodedata.normalize("NFKC", text):
        if unicodedata.category(char).startswith("L"):
            name = unicodedata.name(char, "")
            if not name.startswith(("LATIN ", "DEVANAGARI ")):
                return True
    return False


# --- contact details ---------------------------------------------------------------------------

_WORD = r"[\w\u0900-\u097f-]"
_DOT = r"(?:\.|\s*[\[\(\{<]\s*(?:\.|dot|डॉट|ड[ॉो]ट)\s*[\]\)\}>]\s*)"
_TLDS = r"(?:com|in|net|org|co|io|me|info|biz|shop|store|xyz|app|link|site|online|top|club|live|ly)"
_CONTACT = re.compile(
    "|".join(
        (
            r"[a-z][a-z0-9+.-]*\s*:\s*//",  # scheme://
            r"\bwww\d?\s*" + _DOT,
            # label.label where the second label starts with a letter and has two or more characters:
            # "e.g." and "Rs.500" are not domains, "verify-now.in" and "example[.]com" are
            _WORD + r"+" + _DOT + r"(?=[^\W\d_])" + _WORD + r"{2,}",
            r"\b[\w-]+\s+(?:dot|डॉट)\s+" + _TLDS + r"\b",  # example dot com
            r"@|[\[\(\{]\s*at\s*[\]\)\}]",  # e-mail, also name [at] example
            r"(?:\+|\b)\d(?:[\s().-]*\d){6,}",  # phone: seven or more digits, any separators
        )
    )
)


def contact_details(folded: str) -> bool:
    return bool(_CONTACT.search(folded))


# --- numbers -----------------------------------------------------------------------------------

_NUMBER = re.compile(r"\d+(?:,\d+)*(?:\.\d+)?")
# Number words a paraphrase could use instead of digits. "one"/"एक" are left out: they are articles.
_NUMBER_WORDS = {
    **dict.fromkeys(("two", "दो"), 2),
    **dict.fromkeys(("three", "तीन", "teen"), 3),
    **dict.fromkeys(("four", "चार", "char", "chaar"), 4),
    **dict.fromkeys(("five", "पांच", "paanch", "panch"), 5),
    **dict.fromkeys(("six", "छह", "छः", "chhe", "chhah"), 6),
    **dict.fromkeys(("seven", "सात", "saat"), 7),
    **dict.fromkeys(("eight", "आठ", "aath"), 8),
    **dict.fromkeys(("nine", "नौ"), 9),
    **dict.fromkeys(("ten", "दस", "das"), 10),
    **dict.fromkeys(("eleven", "ग्यारह"), 11),
    **dict.fromkeys(("twelve", "dozen", "बारह", "दर्जन"), 12),
    **dict.fromkeys(("fifteen", "पंद्रह"), 15),
    **dict.fromkeys(("twenty", "बीस", "bees"), 20),
    **dict.fromkeys(("thirty", "तीस"), 30),
    **dict.fromkeys(("fifty", "पचास"), 50),
    **dict.fromkeys(("hundred", "सौ"), 100),
    **dict.fromkeys(("thousand", "हजार", "hazaar", "hazar"), 1000),
    **dict.fromkeys(("lakh", "लाख"), 100_000),
    **dict.fromkeys(("crore", "करोड़", "करोड"), 10_000_000),
}
_NUMBER_WORDS = {fold(word): value for word, value in _NUMBER_WORDS.items()}
_NUMBER_WORD = re.compile(
    r"(?<![\w\u0900-\u097f])("
    + "|".join(sorted(map(re.escape, _NUMBER_WORDS), key=len, reverse=True))
    + r")(?![\w\u0900-\u097f])"
)


def _value(token: str) -> Decimal | None:
    try:
        return Decimal(token.replace(",", "")).normalize()
    except InvalidOperation:
        return None


def numbers(folded: str) -> set[Decimal]:
    """The numbers a folded text states: digits (grouping commas dropped, Indian or Western) and
    number words."""
    found = {value for token in _NUMBER.findall(folded) if (value := _value(token)) is not None}
    found |= {Decimal(_NUMBER_WORDS[word]) for word in _NUMBER_WORD.findall(folded)}
    return found


def fact_numbers(facts: Iterable[str]) -> set[Decimal]:
    return set().union(*(numbers(fold(fact)) for fact in facts))


# --- what the shopper may read ------------------------------------------------------------------

# English and Hinglish (Latin script) match at a word start; Devanagari matches anywhere, since
# Python's \b does not see Devanagari vowel signs as word characters.
_SIGNAL_LATIN = (
    r"risk|fraud|abus|scor(?:e|ing)|block ?list|black ?list|suspic|flag|model|algorithm|signal"
    r"|rules?\b|pattern|behaviou?r|histor|(?:previous(?:ly)?|past|prior|recent|earlier) (?:order|purchase)"
    r"|too many|number of (?:order|purchase)"
    r"|(?:many|several|multiple|a lot of|lots of|so many|a number of) (?:of your )?(?:order|purchase|item)"
    r"|frequen|repeated|cash on delivery|cod\b|payment (?:method|type|mode|option)"
    r"|address|pin ?code|device|card\b|account (?:age|is new)|new account|velocity|unusual|irregular"
    r"|because|due to|owing to|as a result of|since you|the reason|reasons?\b|therefore"
    # Hinglish
    r"|kyu+n?ki|kyo+n?ki|wajah|vajah|kaa?ran|pich+h?le|bahut (?:saa?re|zyada|jyada)"
    r"|kai (?:order|baar|bar)|(?:zyada|jyada|kaa?fi) order|dhokh|jokhim|sandigdh|itihaa?s|naqad|nakad"
    r"|isi?liye|is wajah|is karan"
)
_SIGNAL_DEVANAGARI = (
    "जोखिम|धोखा|धोखे|संदिग्ध|दुरुपयोग|स्कोर|ब्लॉकलिस्ट|ब्लैकलिस्ट|फ्रॉड|रिस्क"
    "|इतिहास|पिछले|कई ऑर्डर|कई बार|बहुत सारे|बहुत ज्यादा|ज्यादा ऑर्डर|अधिक ऑर्डर|कैश ऑन डिलीवरी"
    "|नकद|भुगतान का तरीका|भुगतान विधि|भुगतान के तरीके|नया पता|पते|डिलीवरी पता|डिलीवरी का पता|कार्ड|डिवाइस"
    "|क्योंकि|कारण|वजह|इसलिए|इसीलिए|असामान्य|संकेत|नियम|पैटर्न|व्यवहार|गतिविधि|बहुत से|कई सारे"
)
# Returning and refunds: for an order, a reason (the customer's returns); for a return request, the
# subject itself ("we will refund you after pickup"), so there only the customer's return *history* is.
_RETURNS_LATIN = (
    r"return|refund|(?:sent|send|sending|came|coming|given|gave) back|wa+pa?s|va+pa?s|wapsi|vapsi|lauta"
)
_RETURNS_DEVANAGARI = "लौटा|वापस कि|वापस कर|वापस भेज|वापसी|रिटर्न|रिफंड"
_RETURN_HISTORY_LATIN = (
    r"(?:previous(?:ly)?|past|prior|recent|earlier|other|many|several|multiple|frequent|so many|a lot of"
    r"|lots of|number of|count of|all (?:of )?(?:your|the)) (?:of your )?(?:return|refund)"
    r"|(?:return|refund)s? (?:history|rate|count|record)|(?:returned|refunded) (?:before|often|again|many"
    r"|several|multiple|frequently)|(?:pehle|pahle) (?:bhi )?(?:return|wapas|vapas|refund)"
)
_RETURN_HISTORY_DEVANAGARI = "कई रिटर्न|पिछले रिटर्न|पहले भी|रिटर्न की संख्या|कई रिफंड|पिछले रिफंड"
_REVEALS = re.compile(
    rf"\b(?:{_SIGNAL_LATIN}|{_RETURNS_LATIN})|{fold(_SIGNAL_DEVANAGARI)}|{fold(_RETURNS_DEVANAGARI)}"
)
_REVEALS_FOR_RETURN = re.compile(
    rf"\b(?:{_SIGNAL_LATIN}|{_RETURN_HISTORY_LATIN})|{fold(_SIGNAL_DEVANAGARI)}"
    rf"|{fold(_RETURN_HISTORY_DEVANAGARI)}"
)
LANES = ("order", "return")  # `lane`: whose decision the message is about


def reveals_signal(folded_message: str, lane: str = "order") -> bool:
    """A return request's message (`lane` "return") may name the return and the refund, not the
    customer's returns before it."""
    return bool((_REVEALS_FOR_RETURN if lane == "return" else _REVEALS).search(folded_message))


_NOT = r"(?<!not )(?<!n't )(?<!never )(?<!yet to be )"
_DONE_LATIN = (
    _NOT + r"\b(?:confirmed|approved|accepted|shipped|dispatched|on (?:its|the) way|out for delivery"
    r"|will be (?:shipped|dispatched|delivered)|(?:successfully|been) placed|all set|good to go)"
    # Hinglish
    r"|\b(?:confirm|approve|accept|ship|dispatch)\s*(?:ho|kar)\s*(?:gaya|gayi|gaye|diya|di|chuka|chuki)"
    r"|\b(?:bhej|nikal)\s*(?:diya|di|gaya|gayi)"
)
_DONE_DEVANAGARI = fold(
    "पुष्ट हो|पुष्टि हो गई|पुष्टि कर दी|कन्फर्म हो|कंफर्म हो|स्वीकार कर लिया|स्वीकार हो गया|स्वीकृत"
    "|भेज दिया|भेजा जा चुका|शिप हो|शिप कर|डिस्पैच|रवाना|मंजूर"
)
_DONE = re.compile(rf"{_DONE_LATIN}|{_DONE_DEVANAGARI}")
_HELD = re.compile(
    r"\b(?:hold|review|verif|cancel|block|could not|unable|otp|one-time|code|wait)"
    r"|\b(?:rok|ruk|radd|jaanch|jaach)|"
    + fold("रोक|रुक|समीक्षा|सत्यापन|रद्द|ब्लॉक|ओटीपी|जांच|प्रतीक्षा|इंतजार|नहीं कर सके")
)
# a refund said to be paid already (only an instant refund is), and a refund said to be refused (a
# denial is never announced before a person confirms it)
_REFUND_DONE = re.compile(
    r"\brefund\b[^.!?।]{0,24}?\b(?:has been|have been|is|was|got|already)\s+(?:approved|issued|processed"
    r"|credited|initiated|completed|granted|sent|paid)"
    r"|\b(?:we(?: have|'ve)|has been|have been) (?:approved|issued|processed|credited|initiated|completed"
    r"|granted|sent|paid)\b[^.!?।]{0,16}\brefund|\b(?:has|have) been refunded|\brefunded to"
    r"|\brefund\s*(?:ho|kar|de|mil)\s*(?:gaya|gayi|diya|di|chuka)|\brefund\s*(?:approve|process)\s*ho"
    r"|" + fold("रिफंड स्वीकृत|रिफंड हो गया|रिफंड कर दिया|रिफंड जारी कर दिया|रिफंड मिल गया|पैसे भेज दिए")
)
_REFUND_REFUSED = re.compile(
    r"\b(?:den(?:y|ied|ial)|reject|declin|refus|no refund|not (?:be )?refunded|won't (?:be )?refund"
    r"|cannot refund|can't refund|refund nahi|refund nahin)|" + fold("अस्वीकार|नामंजूर|रिफंड नहीं")
)
_CHECKED_FIRST = re.compile(r"\b(?:inspect|check|proof|photo|video|pending)|" + fold("फोटो|वीडियो|प्रूफ|लंबित"))
_ASKS_FOR_CODE = re.compile(
    r"\b(?:otp|one-time|one time|code|verif|pin\b)|" + fold("ओटीपी|कोड|सत्यापन|वन-टाइम")
)


def contradicts_action(folded_message: str, action: str, lane: str = "order") -> bool:
    if lane == "return":
        if _REFUND_REFUSED.search(folded_message):
            return True
        if action == "instant_refund":  # paid now: nothing is held or checked first
            return bool(_HELD.search(folded_message) or _CHECKED_FIRST.search(folded_message))
        return bool(_REFUND_DONE.search(folded_message))
    if action == "approve":
        return bool(_HELD.search(folded_message))
    if _DONE.search(folded_message):
        return True
    return action == "otp_verification" and not _ASKS_FOR_CODE.search(folded_message)


# --- all of it ----------------------------------------------------------------------------------


def failed_check(
    narrative: str, message: str, *, action: str, facts: Iterable[str], lane: str = "order"
) -> str | None:
    """The first check the output fails (its name is the fallback reason), or None when it passes.
    `lane`: "return" for a return request's decision (its refund actions), else an order's."""
    if lane not in LANES:
        raise ValueError(f"lane must be one of {', '.join(LANES)}, got {lane!r}")
    both = (narrative, message)
    if any(hidden_characters(text) for text in both):
        return "hidden_characters"
    if any(unexpected_script(text) for text in both):
        return "unexpected_script"
    folded_narrative, folded_message = fold(narrative), fold(message)
    if contact_details(folded_narrative) or contact_details(folded_message):
        return "contact_details"
    allowed = fact_numbers(facts)
    if not (numbers(folded_narrative) | numbers(folded_message)) <= allowed:
        return "unlisted_number"
    if reveals_signal(folded_message, lane):
        return "reveals_signal"
    if contradicts_action(folded_message, action, lane):
        return "contradicts_action"
    return None


CHECKS = (
    "hidden_characters",
    "unexpected_script",
    "contact_details",
    "unlisted_number",
    "reveals_signal",
    "contradicts_action",
)
