"""returnguard.aws.serving_profile: a model archive's profile (thresholds, fallback) and the score
function's profiles keyed by the model version the endpoint answers with."""

from __future__ import annotations

import io
import json
import tarfile
from typing import Any

import pytest

from returnguard.aws import serving_profile
from returnguard.aws.serving_profile import Profile, ProfileError, ServingProfiles, profile_of_archive
from returnguard.features import FEATURE_NAMES


def fallback(version: str, medium: float = 0.2) -> dict[str, Any]:
    return {
        "kind": "logistic_regression",
        "model_version": version,
        "feature_names": [FEATURE_NAMES[0]],
        "intercept": -2.0,
        "coefficients": [0.5],
        "means": [1.0],
        "scales": [2.0],
        "thresholds": {"medium": medium, "high": medium + 0.2, "critical": medium + 0.4},
    }


def archive(files: dict[str, Any]) -> bytes:
    """model.tar.gz as SageMaker ships it, with these JSON files (name → document) at its root."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, document in files.items():
            data = json.dumps(document).encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def model_files(version: str, medium: float) -> dict[str, Any]:
    thresholds = {"medium": medium, "high": medium + 0.2, "critical": medium + 0.4}
    return {
        "config.json": {"model_version": version, "thresholds": thresholds, "feature_names": ["x"]},
        "fallback_model.json": fallback(f"{version}-fallback", medium / 2),
        "return/config.json": {"model_version": "r1", "thresholds": thresholds},
        "return/fallback_model.json": fallback("r1-fallback"),
        "xgboost-model.ubj": {"not": "read"},
    }


def test_an_archives_profile_has_its_thresholds_lanes_and_fallback():
    profile = profile_of_archive(io.BytesIO(archive(model_files("v2", 0.1))))

    assert profile["config"] == {
        "model_version": "v2",
        "thresholds": {"medium": 0.1, "high": pytest.approx(0.3), "critical": 0.5},
        "return": {
            "model_version": "r1",
            "thresholds": {"medium": 0.1, "high": pytest.approx(0.3), "critical": 0.5},
        },
    }
    assert profile["fallback"]["model_version"] == "v2-fallback"
    assert Profile.of(profile).return_fallback.model_version == "r1-fallback"


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"fallback_model.json": fallback("f")}, "no config.json"),
        (
            {
                "config.json": {
                    "model_version": "v",
                    "thresholds": {"medium": 0.5, "high": 0.2, "critical": 0.9},
                }
            },
            "thresholds must",
        ),
    ],
)
def test_an_archive_without_usable_thresholds_is_refused(files, message):
    with pytest.raises(ValueError, match=message):
        profile_of_archive(io.BytesIO(archive(files)))


def test_something_that_is_not_an_archive_is_refused():
    with pytest.raises(ProfileError, match="does not open"):
        profile_of_archive(io.BytesIO(b"not a tarball"))


def deployed() -> Profile:
    return Profile.of(profile_of_archive(io.BytesIO(archive(model_files("v1", 0.4)))))


def test_a_version_is_mapped_with_its_own_thresholds_and_the_champions_fallback_follows():
    published = {"v2": profile_of_archive(io.BytesIO(archive(model_files("v2", 0.1))))}
    reads: list[str] = []

    def load(version: str) -> dict[str, Any]:
        reads.append(version)
        return published[version]

    profiles = ServingProfiles(deployed(), load, {"velocity_orders": 4})

    assert profiles.policy_for("v1").medium == 0.4 and reads == []  # the deployed one: no read
    assert profiles.policy_for("v2").medium == 0.1 and profiles.policy_for("v2").velocity_orders == 4
    assert profiles.current.version == "v1"  # a challenger's answer does not change the champion
    profiles.served("v2")
    assert profiles.current.fallback is not None and profiles.current.fallback.model_version == "v2-fallback"
    profiles.served("v2")
    assert reads == ["v2"]  # once per version
    profiles.served("v1")  # a rollback
    assert profiles.current.policy.medium == 0.4 and profiles.current.fallback.model_version == "v1-fallback"


def test_a_profile_that_cannot_be_read_keeps_the_current_one_and_is_retried_later():
    now = [0.0]
    errors: list[str] = []
    reads: list[str] = []

    def load(version: str) -> dict[str, Any]:
        reads.append(version)
        raise KeyError(version)

    profiles = ServingProfiles(
        deployed(), load, clock=lambda: now[0], on_error=lambda version, error: errors.append(version)
    )

    assert profiles.policy_for("v9").medium == 0.4
    profiles.served("v9")
    assert profiles.current.version == "v1" and reads == ["v9"] and errors == ["v9"]
    now[0] = serving_profile.RETRY_S + 1
    profiles.policy_for("v9")
    assert reads == ["v9", "v9"]


def test_a_profile_naming_another_version_is_not_used():
    other = profile_of_archive(io.BytesIO(archive(model_files("v3", 0.1))))
    profiles = ServingProfiles(deployed(), lambda version: other)

    assert profiles.policy_for("v2").medium == 0.4


def test_without_a_lake_every_version_is_mapped_as_the_deployed_one():
    profiles = ServingProfiles(deployed(), None)
    profiles.served("v2")
    assert profiles.policy_for("v2").medium == 0.4 and profiles.current.version == "v1"


def test_profile_keys_are_one_object_per_version():
    assert serving_profile.profile_key("v20261130-abc") == "models/serving/v20261130-abc.json"
    assert serving_profile.profile_key("a/b") == "models/serving/a%2Fb.json"
