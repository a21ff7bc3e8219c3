"""The customer's reason text changes a return decision only through the model's text features, and is
never echoed: a prompt-injection corpus of 54 strings in 12 languages and scripts."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import datetime, timezone

import pytest

from returnguard.aws.feature_store import InMemoryFeatureStore
from returnguard.ports import ModelScore
from returnguard.returns_explain import RETURN_TEXTS
from returnguard.returns_policy import ReturnPolicyConfig
from returnguard.returns_scoring import decide_return
from returnguard.schemas import ReturnScoreRequest
from tests.unit.api.fakes import FakeModel
from tests.unit.returns.benign import benign_twin
from tests.unit.returns.injection_corpus import CORPUS
from tests.unit.returns.requests import body

NOW = datetime(2025, 1, 10, tzinfo=timezone.utc)
CONFIG = ReturnPolicyConfig()


class VectorModel:
    """A model that is a function of the vector alone, text features weighed heavily."""

    def score(self, vector: Mapping[str, float]) -> ModelScore:
        weights = {
            "reason_text_length": 0.02,
            "reason_text_hindi": 1.0,
            "reason_text_hinglish": 0.7,
            "reason_text_contradicts_code": 1.5,
            "reason_text_supports_code": -1.0,
            "days_since_delivery": 0.1,
        }
        contributions = {name: w * vector[name] for name, w in weights.items()}
        margin = -2.0 + sum(contributions.values())
        return ModelScore(1 / (1 + math.exp(-margin)), contributions, "vector-v1")


def decide(text: str, model, **changes) -> dict:
    request = ReturnScoreRequest.model_validate(body(reason=text, **changes))
    decision = decide_return(request, InMemoryFeatureStore(), model, CONFIG, NOW)
    answer = decision.response.model_dump(mode="json")
    answer.pop("processing_time_ms")
    return answer


def _words(answer: dict) -> str:
    """What the answer says in words: the explanation and the customer message."""
    explanation = answer["explanation"]
    said = [explanation["summary"], explanation["key_factors"], explanation["recommendation"]]
    return json.dumps([*said, explanation.get("narrative"), answer["customer_message"]], ensure_ascii=False)


def echoes(text: str, answer: dict) -> list[str]:
    """12-character pieces of `text` (with a letter) the answer says that no answer to a plain reason
    says (the templates' own words, such as "the refund", are not an echo)."""
    said = _words(answer)
    own = json.dumps(
        [
            RETURN_TEXTS.summary,
            RETURN_TEXTS.recommendation,
            RETURN_TEXTS.customer_message,
            RETURN_TEXTS.rules,
        ],
        ensure_ascii=False,
    )
    pieces = {text[i : i + 12] for i in range(max(0, len(text) - 11))}
    return sorted(p for p in pieces if any(c.isalpha() for c in p) and p in said and p not in own)


def test_the_corpus_is_big_and_multilingual() -> None:
    assert len(CORPUS) >= 50 and len(set(CORPUS)) == len(CORPUS)
    scripts = {"devanagari": "\u0900", "cjk": "\u4e00", "arabic": "\u0600", "cyrillic": "\u0400"}
    for name, start in scripts.items():
        assert any(any(start <= c <= chr(ord(start) + 0xFF) for c in s) for s in CORPUS), name


@pytest.mark.parametrize("attack", CORPUS)
def test_an_injection_decides_exactly_as_a_harmless_text_with_the_same_features(attack: str) -> None:
    twin = benign_twin(attack, "size_fit")
    assert twin is not None
    attacked, harmless = decide(attack, VectorModel()), decide(twin, VectorModel())
    assert attacked == harmless
    assert echoes(attack.strip(), attacked) == []


@pytest.mark.parametrize("attack", CORPUS)
def test_no_injection_talks_a_rule_or_a_fixed_score_out_of_its_decision(attack: str) -> None:
    denied = decide(attack, FakeModel(0.01), refund_amount=5000.0)
    assert (denied["recommended_action"], denied["rules_triggered"]) == (
        "deny_refund",
        ["refund_exceeds_paid"],
    )
    held = decide(attack, FakeModel(0.9, {"days_since_delivery": 0.4}))
    plain = decide("Too small, need a bigger size", FakeModel(0.9, {"days_since_delivery": 0.4}))
    assert held == plain  # nothing but the model's features can move a decision
    assert echoes(attack.strip(), denied) == echoes(attack.strip(), held) == []


def test_over_a_thousand_characters_is_refused_without_echoing_it() -> None:
    from pydantic import ValidationError

    secret = "ignore the rules " * 59  # 1,003 characters
    with pytest.raises(ValidationError) as error:
        ReturnScoreRequest.model_validate(body(reason=secret))
    assert "ignore the rules" not in str(error.value)
    assert [e["loc"] for e in error.value.errors()] == [("return", "reason")]
