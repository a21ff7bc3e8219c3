"""The promotion gate (returnguard.gate): promote, reject for each reason, fail closed."""

from __future__ import annotations

import copy
import math
import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from returnguard import drift, gate
from returnguard.features import FEATURE_NAMES, RETURN_FEATURE_NAMES


def evidence(**changes: Any) -> dict[str, Any]:
    """A candidate slightly better than its champion on a 1,000-order window."""
    base: dict[str, Any] = {
        "kind": gate.EVIDENCE_KIND,
        "window": {
            "from": "2026-01-01T00:00:00Z",
            "to": "2026-03-01T00:00:00Z",
            "rows": 1000,
            "positives": 60,
            "labels_as_of": "2026-04-22T00:00:00Z",
        },
        "candidate": {
            "model_version": "v2",
            "feature_names": list(FEATURE_NAMES),
            "roc_auc": 0.91,
            "pr_auc": 0.52,
            "alert_rate": 0.06,
        },
        "champion": {"model_version": "v1", "roc_auc": 0.90, "pr_auc": 0.50, "alert_rate": 0.05},
        "score_psi": 0.03,
        "level_psi": 0.01,
    }
    for path, value in changes.items():
        target = base
        *parents, leaf = path.split("__")
        for parent in parents:
            target = target[parent]
        if value is DELETE:
            del target[leaf]
        else:
            target[leaf] = value
    return base


DELETE = object()


def test_a_candidate_within_every_bound_is_approved_with_its_numbers():
    decision = gate.decide(evidence(), FEATURE_NAMES)

    assert decision.approved and decision.reasons == ()
    assert decision.approval_status == "Approved"
    assert decision.numbers["roc_auc_change"] == pytest.approx(0.01)
    assert decision.numbers["pr_auc_change"] == pytest.approx(0.02)
    assert decision.numbers["alert_rate_ratio"] == pytest.approx(1.2)
    assert decision.numbers["window"]["rows"] == 1000


def test_slightly_worse_within_the_margin_is_still_approved():
    # 0.005 below on ROC-AUC and 0.015 below on PR-AUC: inside the default margins (0.01, 0.02)
    decision = gate.decide(evidence(candidate__roc_auc=0.895, candidate__pr_auc=0.485), FEATURE_NAMES)
    assert decision.approved


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"candidate__roc_auc": 0.88}, "roc_auc_worse"),
        ({"candidate__pr_auc": 0.47}, "pr_auc_worse"),
        ({"level_psi": 0.4}, "score_distribution_shift"),
        ({"candidate__alert_rate": 0.25}, "alert_rate_too_high"),
        ({"candidate__alert_rate": 0.09}, "alert_rate_shift"),  # 1.8x the champion's
        ({"candidate__alert_rate": 0.02}, "alert_rate_shift"),  # 0.4x: it would miss abuse it caught
        ({"candidate__feature_names": [*FEATURE_NAMES, "new_feature"]}, "feature_list_mismatch"),
        ({"candidate__feature_names": list(reversed(FEATURE_NAMES))}, "feature_list_mismatch"),
        ({"window__rows": 50}, "window_too_small"),
        ({"window__positives": 3}, "window_too_small"),
    ],
)
def test_each_failed_bound_rejects_with_its_reason(changes, reason):
    decision = gate.decide(evidence(**changes), FEATURE_NAMES)

    assert not decision.approved
    assert decision.reasons == (reason,)
    assert decision.approval_status == "Rejected"


def test_a_feature_mismatch_names_the_missing_and_extra_features():
    names = [*FEATURE_NAMES[1:], "new_feature"]
    decision = gate.decide(evidence(candidate__feature_names=names), FEATURE_NAMES)
    assert decision.numbers["features_missing"] == [FEATURE_NAMES[0]]
    assert decision.numbers["features_extra"] == ["new_feature"]


@pytest.mark.parametrize(
    ("given_evidence", "reason"),
    [
        (None, "missing_evidence"),
        ({}, "missing_evidence"),
        (evidence(kind="something else"), "missing_evidence"),
        (evidence(candidate__roc_auc=DELETE), "missing_metrics"),
        (evidence(champion__pr_auc=None), "missing_metrics"),
        (evidence(candidate__alert_rate=math.nan), "missing_metrics"),
        (evidence(champion__roc_auc="0.9"), "missing_metrics"),
        (evidence(level_psi=math.inf), "missing_metrics"),
        (evidence(level_psi=DELETE), "missing_metrics"),
        (evidence(window=DELETE), "missing_window"),
        (evidence(candidate__feature_names=DELETE), "feature_list_mismatch"),
    ],
)
def test_missing_or_malformed_evidence_fails_closed(given_evidence, reason):
    decision = gate.decide(given_evidence, FEATURE_NAMES)
    assert not decision.approved
    assert reason in decision.reasons


def test_a_champion_that_could_not_be_scored_rejects_the_candidate():
    champion = {"model_version": "v1", "error": "model was trained on features this table lacks: x"}
    decision = gate.decide(evidence(champion=champion, score_psi=None, level_psi=None), FEATURE_NAMES)

    assert decision.reasons == ("champion_unscored",)
    assert "lacks: x" in decision.numbers["champion_error"]


def test_bounds_are_configurable():
    strict = gate.GateBounds.from_mapping({"max_roc_auc_drop": 0, "max_pr_auc_drop": "0"})
    assert gate.decide(evidence(candidate__roc_auc=0.899), FEATURE_NAMES, strict).reasons == (
        "roc_auc_worse",
    )
    loose = gate.GateBounds.from_mapping({"max_level_psi": 1.0})
    assert gate.decide(evidence(level_psi=0.4), FEATURE_NAMES, loose).approved


@pytest.mark.parametrize(
    "values",
    [
        {"max_roc_auc_dropp": 0.1},
        {"max_level_psi": -1},
        {"max_level_psi": "a lot"},
        {"max_score_psi": 0.25},  # the raw-score bound this gate had; it decides nothing now
        {"max_alert_rate_ratio": 0.5},
        {"max_alert_rate": 2},
        {"min_window_rows": True},
    ],
)
def test_unusable_bounds_raise_naming_the_bound(values):
    with pytest.raises(gate.GateConfigError, match=next(iter(values)).rstrip("p")):
        gate.GateBounds.from_mapping(values)


def test_registry_metadata_holds_the_decision_as_strings():
    decision = gate.decide(evidence(candidate__roc_auc=0.5), FEATURE_NAMES)
    metadata = gate.registry_metadata(decision, execution="run-1")

    assert metadata["gate_decision"] == "Rejected"
    assert metadata["gate_reasons"] == "roc_auc_worse"
    assert metadata["candidate_roc_auc"] == "0.5"
    assert metadata["champion_roc_auc"] == "0.9"
    assert metadata["window_rows"] == "1000"
    assert metadata["execution"] == "run-1"
    assert all(isinstance(v, str) and len(v) <= 1024 for v in metadata.values())


def test_the_raw_score_psi_is_recorded_but_only_the_risk_level_mix_decides():
    # The default demo's better candidate: raw scores far from the champion's deciles, actions alike
    decision = gate.decide(evidence(score_psi=0.7, level_psi=0.01), FEATURE_NAMES)
    assert decision.approved
    assert decision.numbers["score_psi"] == 0.7 and decision.numbers["level_psi"] == 0.01
    assert gate.registry_metadata(decision, execution="run-1")["score_psi"] == "0.7"


def test_level_shares_put_each_score_at_the_highest_level_it_reaches():
    thresholds = {"decision": 0.5, "medium": 0.2, "high": 0.5, "critical": 0.9}
    shares = gate.level_shares([0.1, 0.19, 0.2, 0.49, 0.5, 0.95, 0.9, 0.0], thresholds)
    assert shares == {"below": 0.375, "medium": 0.25, "high": 0.125, "critical": 0.25}
    # two levels on one cut (a saturated level): the higher one takes the scores
    assert gate.level_shares([0.6, 0.1], {"medium": 0.5, "high": 0.5, "critical": 0.9}) == {
        "below": 0.5,
        "medium": 0.0,
        "high": 0.5,
        "critical": 0.0,
    }
    for unusable in ({"decision": 0.5}, {"medium": math.nan}):
        with pytest.raises(ValueError, match="thresholds"):
            gate.level_shares([0.1], unusable)
    with pytest.raises(ValueError, match="finite scores"):
        gate.level_shares([math.nan], thresholds)


def test_a_recalibrated_model_with_its_own_thresholds_moves_the_raw_scores_not_the_levels():
    rng = random.Random(5)
    champion = [rng.random() ** 6 for _ in range(5000)]  # most orders near zero, as a fraud model's are
    candidate = [s**0.5 for s in champion]  # the same ranking, calibrated higher
    cuts = {"medium": 0.05, "high": 0.3, "critical": 0.7}
    same_decisions = gate.level_psi(
        gate.level_shares(champion, cuts), gate.level_shares(candidate, {k: v**0.5 for k, v in cuts.items()})
    )
    assert gate.score_psi(champion, candidate) > 0.25
    assert same_decisions == pytest.approx(0.0)
    # the same candidate judged at the champion's cuts would move the mix of actions: that is a shift
    assert gate.level_psi(gate.level_shares(champion, cuts), gate.level_shares(candidate, cuts)) > 0.05


def test_level_psi_counts_a_level_one_side_lacks_as_empty():
    assert gate.level_psi({"below": 0.9, "high": 0.1}, {"below": 0.9, "high": 0.1}) == pytest.approx(0.0)
    assert gate.level_psi({"below": 1.0}, {"below": 0.5, "high": 0.5}) > 0.25


def test_psi_is_zero_for_the_same_distribution_and_grows_with_a_shift():
    rng = random.Random(3)
    scores = [rng.random() for _ in range(2000)]
    assert gate.score_psi(scores, scores) == pytest.approx(0.0)
    shifted = [min(1.0, s * 0.5 + 0.5) for s in scores]
    assert gate.score_psi(scores, shifted) > 0.25
    slightly = [min(1.0, s * 1.02) for s in scores]
    assert gate.score_psi(scores, slightly) < 0.01


@given(
    st.lists(st.floats(0, 1), min_size=1, max_size=200), st.lists(st.floats(0, 1), min_size=1, max_size=200)
)
def test_psi_is_finite_and_never_negative(expected, actual):
    value = gate.score_psi(expected, actual)
    assert math.isfinite(value) and value >= -1e-12


def test_the_gates_score_psi_is_the_drift_jobs_psi():
    # One PSI in the code base: the gate's shift bound and the drift alarm's 0.25 mean the same thing.
    # Evenly spaced scores nudged by half a step: quantile cuts that the two old implementations took
    # one rank apart (the gate's own version answered 0.0 here, the drift job's 0.002).
    expected = [i / 100 for i in range(100)]
    actual = [v + 0.005 for v in expected]
    assert gate.score_psi(expected, actual) == drift.psi(drift.histogram(expected), actual)[0]
    assert gate.score_psi(expected, actual) > 0


def test_psi_ignores_missing_scores_and_refuses_no_scores():
    assert gate.score_psi([0.1, 0.5, math.nan, 0.9], [0.1, 0.5, 0.9, math.nan]) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="finite scores"):
        gate.score_psi([math.nan], [0.5])
    with pytest.raises(ValueError, match="finite scores"):
        gate.score_psi([0.5], [])


def test_alert_rate_counts_scores_at_or_above_the_threshold():
    assert gate.alert_rate([0.1, 0.5, 0.7, 0.2], 0.5) == 0.5
    with pytest.raises(ValueError):
        gate.alert_rate([], 0.5)


def test_decide_does_not_change_its_input():
    given_evidence = evidence()
    before = copy.deepcopy(given_evidence)
    gate.decide(given_evidence, FEATURE_NAMES)
    assert given_evidence == before


def return_lane(serves: str | None, **changes: Any) -> dict[str, Any]:
    """A return lane the training job retrained: its own evidence on its own window (the same shape as the
    order lane's, with the return feature spec), and the model the archive serves for it."""
    lane_evidence = evidence(**changes)
    lane_evidence["candidate"]["feature_names"] = list(RETURN_FEATURE_NAMES)
    return {"serving_lane": True, "retrained": True, "serves": serves, "evidence": lane_evidence}


def test_a_retrained_return_lane_is_judged_by_the_same_rules_and_recorded_with_its_numbers():
    decision = gate.decide({**evidence(), "lanes": {"return": return_lane("candidate")}}, FEATURE_NAMES)

    assert decision.approved
    lane = decision.as_record()["lanes"]["return"]
    assert lane["approval_status"] == "Approved" and lane["serves"] == "candidate"
    assert lane["numbers"]["roc_auc_change"] == pytest.approx(0.01)
    metadata = gate.registry_metadata(decision)
    assert metadata["return_gate_decision"] == "Approved" and metadata["return_serves"] == "candidate"
    assert metadata["return_candidate_roc_auc"] == "0.91" and metadata["return_champion_roc_auc"] == "0.9"


def test_a_rejected_return_candidate_keeps_the_serving_return_model_and_the_order_candidate_goes_on():
    lanes = {"return": return_lane("serving", candidate__roc_auc=0.80)}

    decision = gate.decide({**evidence(), "lanes": lanes}, FEATURE_NAMES)

    assert decision.approved  # the archive serves the model the lane's gate chose
    lane = decision.lanes["return"]
    assert lane["approval_status"] == "Rejected" and "roc_auc_worse" in lane["reasons"]
    assert gate.registry_metadata(decision)["return_gate_reasons"].startswith("roc_auc_worse")


@pytest.mark.parametrize(
    ("lane", "reason"),
    [
        (return_lane("candidate", candidate__roc_auc=0.80), "return_lane_mismatch"),  # serves the loser
        (return_lane("serving"), "return_lane_mismatch"),  # drops the winner
        ({"serving_lane": True, "serves": None, "error": "ReadError: bad archive"}, "return_lane_unresolved"),
        ({"serving_lane": True, "retrained": False, "serves": None}, "return_lane_mismatch"),  # dropped
        ("not a record", "return_lane_unresolved"),
    ],
)
def test_an_archive_that_does_not_serve_a_lanes_winner_is_rejected(lane, reason):
    decision = gate.decide({**evidence(), "lanes": {"return": lane}}, FEATURE_NAMES)

    assert not decision.approved and decision.reasons == (reason,)


PAYMENT_KEPT = {"serving_lane": True, "retrained": False, "serves": "serving"}


def test_an_approved_return_candidate_is_promoted_alone_when_the_order_candidate_is_rejected():
    lanes = {"return": return_lane("candidate"), "payment": PAYMENT_KEPT}

    decision = gate.decide({**evidence(candidate__roc_auc=0.80), "lanes": lanes}, FEATURE_NAMES)

    assert not decision.approved and decision.reasons == ("roc_auc_worse",)
    assert gate.lanes_to_promote(decision) == ("return",)


@pytest.mark.parametrize(
    ("order_changes", "lanes"),
    [
        # the order candidate approved: its whole archive is promoted, no lane alone
        ({}, {"return": return_lane("candidate")}),
        # the return candidate rejected too: the archive serves the serving return model
        ({"candidate__roc_auc": 0.80}, {"return": return_lane("serving", candidate__roc_auc=0.80)}),
        # another lane unresolved: the candidate archive's lane folders cannot be trusted
        (
            {"candidate__roc_auc": 0.80},
            {"return": return_lane("candidate"), "payment": {"serves": None, "error": "ReadError"}},
        ),
        # the archive serves a lane the decision rejected
        ({"candidate__roc_auc": 0.80}, {"return": return_lane("candidate", candidate__roc_auc=0.80)}),
        # nothing retrained
        ({"candidate__roc_auc": 0.80}, {"payment": PAYMENT_KEPT}),
    ],
)
def test_no_lane_is_promoted_alone_unless_the_order_is_rejected_and_every_lane_is_resolved(
    order_changes, lanes
):
    decision = gate.decide({**evidence(**order_changes), "lanes": lanes}, FEATURE_NAMES)

    assert gate.lanes_to_promote(decision) == ()
