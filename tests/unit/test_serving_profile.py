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


def lane_files(version: str, return_version: str, medium: float) -> dict[str, Any]:
    """An archive whose return and payment models are `return_version` and `p-<return_version>`."""
    files = model_files(version, 0.4)
    thresholds = {"medium": medium, "high": medium + 0.2, "critical": medium + 0.4}
    files["return/config.json"] = {"model_version": return_version, "thresholds": thresholds}
    files["return/fallback_model.json"] = fallback(f"{return_version}-fallback", medium)
    files["payment/config.json"] = {"model_version": f"p-{return_version}", "thresholds": thresholds}
    return files


def lane_profiles(
    published: dict[tuple[str, str], dict[str, Any]], archives: dict[str, Any] | None = None, **kw: Any
) -> tuple[ServingProfiles, list]:
    """The deployed archive v1 (return r1, payment p-r1, thresholds from 0.4); profiles `published` by
    (lane, lane version) and by archive version (`archives`); the reads made."""
    reads: list[tuple[str | None, str]] = []

    def load(version: str) -> dict[str, Any]:
        reads.append((None, version))
        return (archives or {})[version]

    def load_lane(lane: str, version: str) -> dict[str, Any]:
        reads.append((lane, version))
        return published[(lane, version)]

    first = Profile.of(profile_of_archive(io.BytesIO(archive(lane_files("v1", "r1", 0.4)))))
    return ServingProfiles(first, load, load_lane=load_lane, **kw), reads


@pytest.mark.parametrize("lane", ["return", "payment"])
def test_a_lane_decides_with_the_profile_of_the_lane_model_that_answered_without_an_order(lane):
    # Given a promotion to v2 (return r2, payment p-r2, thresholds from 0.1) that published its profile
    promoted = profile_of_archive(io.BytesIO(archive(lane_files("v2", "r2", 0.1))))
    version = {"return": "r2", "payment": "p-r2"}[lane]
    profiles, reads = lane_profiles({(lane, version): promoted})

    # the deployed lane model: the deployed profile, no read
    assert profiles.for_lane(lane, {"return": "r1", "payment": "p-r1"}[lane]).version == "v1" and reads == []
    # When the lane's model answers with the promoted version (no order scored in between)
    answered = profiles.for_lane(lane, version)
    profiles.lane_served(lane, version)
    profiles.for_lane(lane, version)
    # Then its profile is the promoted archive's, read once; the lane's fallback follows it
    assert answered.version == "v2" and answered.config[lane]["thresholds"]["medium"] == 0.1
    assert reads == [(lane, version)]
    assert profiles.lane_current(lane).version == "v2" and profiles.current.version == "v1"
    if lane == "return":
        assert profiles.lane_current(lane).return_fallback.model_version == "r2-fallback"
    other = "payment" if lane == "return" else "return"
    assert profiles.lane_current(other).version == "v1"  # the other lane has not answered from v2


def test_a_missing_lane_profile_keeps_the_deployed_one_is_logged_and_retried_later():
    now, errors = [0.0], []
    profiles, reads = lane_profiles(
        {}, clock=lambda: now[0], on_error=lambda version, error: errors.append(version)
    )

    assert profiles.for_lane("return", "r9").version == "v1"
    profiles.lane_served("return", "r9")
    assert profiles.lane_current("return").version == "v1" and errors == ["return:r9"]
    profiles.for_lane("return", "r9")
    assert reads == [("return", "r9")]  # not again before RETRY_S
    now[0] = serving_profile.RETRY_S + 1
    profiles.for_lane("return", "r9")
    assert reads == [("return", "r9")] * 2
    assert profiles.for_lane("return", "unknown").version == "v1" and len(reads) == 2  # nothing to read


def test_a_lane_profile_naming_another_lane_model_is_not_used():
    promoted = profile_of_archive(io.BytesIO(archive(lane_files("v2", "r2", 0.1))))
    profiles, _ = lane_profiles({("return", "r3"): promoted})
    assert profiles.for_lane("return", "r3").version == "v1"


def test_an_archive_read_for_the_order_lane_serves_its_lane_models_without_another_read():
    promoted = profile_of_archive(io.BytesIO(archive(lane_files("v2", "r2", 0.1))))
    profiles, reads = lane_profiles({}, {"v2": promoted})
    profiles.served("v2")  # the order lane answered with v2 first

    assert profiles.for_lane("return", "r2").version == "v2" and reads == [(None, "v2")]
    # the order lane's answer moved the lanes' current profile (their fallback) too
    assert (
        profiles.lane_current("return").version == "v2" and profiles.lane_current("payment").version == "v2"
    )


def test_a_lane_promotions_return_model_is_found_by_its_own_version():
    # v1+return-r2 carries v1's order and payment models and r2's return model: answers name r2 and p-r1
    combined = lane_files("v1+return-r2", "r2", 0.1)
    combined["payment/config.json"] = lane_files("v1", "r1", 0.4)["payment/config.json"]
    promoted = profile_of_archive(io.BytesIO(archive(combined)))
    profiles, reads = lane_profiles({("return", "r2"): promoted})

    assert profiles.for_lane("return", "r2").config["return"]["thresholds"]["medium"] == 0.1
    assert profiles.for_lane("payment", "p-r1").version == "v1" and reads == [("return", "r2")]


def test_lane_profile_keys_are_one_object_per_lane_and_version():
    assert serving_profile.lane_profile_key("return", "v2-return") == "models/serving/return/v2-return.json"
    assert serving_profile.lane_versions({"return": {"model_version": "unknown"}, "payment": {}}) == {}
