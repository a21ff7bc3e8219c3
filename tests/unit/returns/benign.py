"""A harmless reason text with the same text features as a given one (same length, language, agreement
with the reason code): what an injection attempt must be indistinguishable from."""

from __future__ import annotations

from returnguard.returns import _DEVANAGARI, _REASON_WORDS, reason_agreement, text_language

FILLER = {"hi": "क", "hinglish": "x", "en": "x", "": "1"}


def _word(codes: list[str], language: str) -> str | None:
    for code in codes:
        for word in sorted(_REASON_WORDS[code]):
            devanagari = bool(_DEVANAGARI.search(word))
            fits_script = (language == "hi") == devanagari
            if fits_script and (language != "" or not any(c.isalpha() for c in word)):
                return word
    return None


def benign_twin(text: str, reason_code: str) -> str | None:
    """The twin, or None when this builder cannot make one."""
    text = text.strip()
    language = text_language(text)
    supports, contradicts = reason_agreement(reason_code, text)
    words = ["hai"] if language == "hinglish" else []
    if supports:
        word = _word([reason_code], language)
        if word is None:
            return None
        words.append(word)
    elif contradicts:
        word = _word([c for c in _REASON_WORDS if c != reason_code], language)
        if word is None:
            return None
        words.append(word)
    twin = " ".join(words)
    if twin:
        twin += " "
    twin += FILLER[language] * (len(text) - len(twin))
    if len(twin) != len(text) or text_language(twin) != language:
        return None
    if reason_agreement(reason_code, twin) != (supports, contradicts):
        return None
    return twin
