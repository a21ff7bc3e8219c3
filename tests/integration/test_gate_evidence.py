"""training/train.py's gate evidence: the candidate and the serving model scored on the same mature window
(evaluation.json), and what returnguard.gate decides from it. Reuses the session's trained model."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
import xgboost as xgb

from returnguard import gate
from returnguard.features import FEATURE_NAMES
from training import train

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def window(small_table, trained_model):
    """The trained model's own test window (as train.run cut it) and its scores there."""
    model_dir, _, result = trained_model
    args = train.parse_args(["--train", "unused"])
    _, _, test, report = train.time_split(
        small_table.sort_values([train.TIME, "order_id"], kind="stable"),
        args.test_fraction,
        args.validation_fraction,
        train.maturity_ms(args),
    )
    booster = xgb.Booster()
    booster.load_model(str(model_dir / train.MODEL_FILE))
    scores = booster.predict(xgb.DMatrix(train.matrix(test), feature_names=list(FEATURE_NAMES)))
    return test, scores, report, result["config"]


def evidence_for(window, champion: Path | None) -> dict:
    test, scores, report, config = window
    return train.gate_evidence(
        test,
        scores,
        version="candidate",
        thresholds=config["thresholds"],
        labels_as_of=report["splits"]["test"]["labels_as_of"],
        champion=champion,
    )


def test_the_model_written_by_training_carries_its_gate_evidence(trained_model):
    model_dir, _, result = trained_model
    evidence = json.loads((model_dir / gate.EVIDENCE_FILE).read_text())

    assert evidence["kind"] == gate.EVIDENCE_KIND
    assert evidence["window"]["rows"] == result["metrics"]["models"]["xgboost"]["rows"]
    assert evidence["window"]["from"] == result["config"]["data_window"]["test"]["from"]
    assert evidence["candidate"]["roc_auc"] == pytest.approx(
        result["metrics"]["models"]["xgboost"]["roc_auc"]
    )
    # Trained with no champion: the gate must not let it through on its own numbers.
    assert "error" in evidence["champion"]
    assert gate.decide(evidence, FEATURE_NAMES).reasons == ("champion_unscored",)


def test_the_champion_is_scored_on_the_same_window_from_its_model_tar_gz(window, trained_model, tmp_path):
    # Given the serving model packed as SageMaker ships it, and a candidate that is the same model
    model_dir, _, _ = trained_model
    channel = tmp_path / "champion"
    channel.mkdir()
    with tarfile.open(channel / "model.tar.gz", "w:gz") as tar:
        for path in model_dir.iterdir():
            tar.add(path, arcname=path.name)

    evidence = evidence_for(window, channel)

    candidate, champion = evidence["candidate"], evidence["champion"]
    assert champion["model_version"] == window[3]["model_version"]
    assert champion["roc_auc"] == pytest.approx(candidate["roc_auc"])
    assert champion["pr_auc"] == pytest.approx(candidate["pr_auc"])
    assert champion["alert_rate"] == pytest.approx(candidate["alert_rate"])
    assert evidence["score_psi"] == pytest.approx(0.0, abs=1e-9)
    assert champion["level_shares"] == pytest.approx(candidate["level_shares"])
    assert set(candidate["level_shares"]) == {"below", "medium", "high", "critical"}
    assert sum(candidate["level_shares"].values()) == pytest.approx(1.0)
    assert evidence["level_psi"] == pytest.approx(0.0, abs=1e-9)
    assert evidence["window"]["rows"] == len(window[0]) and evidence["window"]["positives"] > 0
    assert gate.decide(evidence, FEATURE_NAMES).approved


def test_a_worse_candidate_on_the_same_window_is_rejected(window, trained_model):
    test, scores, report, config = window
    weak = scores * 0.0 + (test["order_time_ms"].to_numpy() % 1000) / 1000.0  # noise, no signal
    evidence = train.gate_evidence(
        test,
        weak,
        version="noise",
        thresholds=config["thresholds"],
        labels_as_of=report["splits"]["test"]["labels_as_of"],
        champion=trained_model[0],  # the champion as a model folder
    )

    decision = gate.decide(evidence, FEATURE_NAMES)
    assert not decision.approved
    assert {"roc_auc_worse", "pr_auc_worse"} <= set(decision.reasons)
    assert decision.numbers["roc_auc_change"] < -0.2


def test_a_champion_on_features_the_window_lacks_is_unscored_and_the_gate_rejects(
    window, trained_model, tmp_path
):
    model_dir, _, _ = trained_model
    champion = tmp_path / "old"
    champion.mkdir()
    for path in model_dir.iterdir():
        champion.joinpath(path.name).write_bytes(path.read_bytes())
    config = json.loads((champion / "config.json").read_text())
    config["feature_names"] = [*config["feature_names"][:-1], "retired_feature"]
    (champion / "config.json").write_text(json.dumps(config))

    evidence = evidence_for(window, champion)

    assert "retired_feature" in evidence["champion"]["error"]
    assert gate.decide(evidence, FEATURE_NAMES).reasons == ("champion_unscored",)


def test_an_unreadable_champion_is_unscored_not_a_crash(window, tmp_path):
    (tmp_path / "model.tar.gz").write_bytes(b"not a tarball")
    evidence = evidence_for(window, tmp_path)
    assert "error" in evidence["champion"] and evidence["score_psi"] is None and evidence["level_psi"] is None
    assert not gate.decide(evidence, FEATURE_NAMES).approved
