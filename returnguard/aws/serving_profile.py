"""A model's serving profile: what the score function needs from a model besides the endpoint's answer,
its thresholds (the archive's `config.json`, and its lanes' `return/` and `payment/` configs) and its
fallback model (`fallback_model.json`), for when the endpoint does not answer.

- `publish`: the promote step (the pipeline's promote function, `returnguard models promote` and
  `rollback`, through returnguard.aws.promotion) reads the promoted model's archive and writes its
  profile to the lake as `models/serving/<model_version>.json` BEFORE it updates the endpoint, so the
  profile exists by the time the endpoint answers with that version. The endpoint answers a return or
  payment request with that lane model's own version (`return/config.json`'s), so the same profile is
  also written as `models/serving/<lane>/<lane model_version>.json` for each lane the archive carries.
  Any failure fails the promotion.
- `ServingProfiles`: the score function's profiles, keyed by the `model_version` each lane's answer
  reports: the order lane's by the archive's version, the return and payment lanes' by their model's.
  The deployed model's (RG_MODEL_CONFIG and the bundled fallbacks) is known at cold start; another
  version's is read from the lake the first time a lane answers with it (one GetObject per execution
  environment, lane and version, none when an archive already read carries that lane model: no
  per-request read, and nothing to refresh in a SnapStart snapshot). Each lane maps its score with the
  thresholds of the version that answered it. Each lane's latest profile is its `current`: its fallback
  answers when that lane's model does not (the order lane's answer moves the other lanes' too, as one
  archive carries every lane). A profile that cannot be read is retried after RETRY_S, and until then
  the score is mapped with the lane's current thresholds (the deployed ones until a readable version
  answered); the function logs it.
"""

from __future__ import annotations

import functools
import json
import tarfile
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from returnguard.fallback import FILE_NAME as FALLBACK_FILE
from returnguard.fallback import FallbackModel
from returnguard.payment_scoring import PAYMENT_MODEL_DIR
from returnguard.policy import PolicyConfig
from returnguard.returns_policy import RETURN_MODEL_DIR

PROFILES_PREFIX = "models/serving/"
RETRY_S = 60.0
UNKNOWN = "unknown"  # a lane config without a version: nothing to find its profile by
_LANES = (RETURN_MODEL_DIR, PAYMENT_MODEL_DIR)
_MAX_MEMBER_BYTES = 8 * 1024 * 1024  # a config or a fallback model is a few KB


class ProfileError(ValueError):
    """A model archive without a usable config.json (version and thresholds) or fallback model."""


def profile_key(version: str) -> str:
    return f"{PROFILES_PREFIX}{urllib.parse.quote(version, safe='')}.json"


def lane_profile_key(lane: str, version: str) -> str:
    """Where the profile of an archive carrying `lane`'s model `version` is found by that version (what
    the endpoint answers a lane request with): `models/serving/<lane>/<version>.json`."""
    return f"{PROFILES_PREFIX}{lane}/{urllib.parse.quote(version, safe='')}.json"


def lane_versions(config: Mapping[str, Any]) -> dict[str, str]:
    """{lane: its model's version} of the lanes an archive's config (RG_MODEL_CONFIG's shape) carries."""
    found = {}
    for lane in _LANES:
        version = str((config.get(lane) or {}).get("model_version") or UNKNOWN)
        if version != UNKNOWN:
            found[lane] = version
    return found


def profile_of_archive(archive: Any) -> dict[str, Any]:
    """The profile of a model.tar.gz (a readable binary stream, read once, front to back):
    {"config": RG_MODEL_CONFIG's shape, "fallback": fallback_model.json or None, "return_fallback":
    return/fallback_model.json or None}."""
    wanted = {
        "config.json",
        FALLBACK_FILE,
        f"{RETURN_MODEL_DIR}/{FALLBACK_FILE}",
        *(f"{lane}/config.json" for lane in _LANES),
    }
    found: dict[str, Any] = {}
    try:
        with tarfile.open(fileobj=archive, mode="r|gz") as tar:
            for member in tar:
                name = member.name.removeprefix("./")
                if name in wanted and member.isfile() and member.size <= _MAX_MEMBER_BYTES:
                    handle = tar.extractfile(member)
                    found[name] = json.loads(handle.read()) if handle else None
    except (tarfile.TarError, OSError, EOFError, ValueError) as error:
        raise ProfileError(f"model archive does not open: {error!r}") from None
    main = found.get("config.json")
    if not isinstance(main, dict) or "model_version" not in main or "thresholds" not in main:
        raise ProfileError("model archive has no config.json with model_version and thresholds")
    config: dict[str, Any] = {"model_version": str(main["model_version"]), "thresholds": main["thresholds"]}
    for lane in _LANES:
        lane_config = found.get(f"{lane}/config.json")
        if isinstance(lane_config, dict) and "thresholds" in lane_config:
            config[lane] = {
                "model_version": str(lane_config.get("model_version", "unknown")),
                "thresholds": lane_config["thresholds"],
            }
    profile = {
        "config": config,
        "fallback": found.get(FALLBACK_FILE),
        "return_fallback": found.get(f"{RETURN_MODEL_DIR}/{FALLBACK_FILE}"),
    }
    Profile.of(profile)  # refuses thresholds the score function could not use, before anything is written
    return profile


def _split(url: str) -> tuple[str, str]:
    if not url.startswith("s3://"):
        raise ProfileError(f"model data is not in S3: {url!r}")
    bucket, _, key = url[5:].partition("/")
    return bucket, key


def publish(s3: Any, sagemaker: Any, *, bucket: str, model_name: str) -> str:
    """Write the profile of SageMaker model `model_name` (its archive) to the lake; its model version."""
    url = sagemaker.describe_model(ModelName=model_name)["PrimaryContainer"]["ModelDataUrl"]
    source_bucket, key = _split(url)
    body = s3.get_object(Bucket=source_bucket, Key=key)["Body"]
    profile = profile_of_archive(body)  # streamed: tarfile's "r|gz" reads it front to back
    version = str(profile["config"]["model_version"])
    body = json.dumps({**profile, "model_data_url": url}, sort_keys=True).encode("utf-8")
    keys = [lane_profile_key(lane, v) for lane, v in lane_versions(profile["config"]).items()]
    for key in [*keys, profile_key(version)]:  # the same profile, found by each version it answers with
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")
    return version


def read(s3: Any, bucket: str, version: str, lane: str | None = None) -> dict[str, Any]:
    """The published profile of `version`, of the archive or of `lane`'s model (botocore's NoSuchKey
    when none was published)."""
    key = profile_key(version) if lane is None else lane_profile_key(lane, version)
    return dict(json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read()))


@dataclass(frozen=True)
class Profile:
    version: str
    config: dict[str, Any]  # RG_MODEL_CONFIG's shape: model_version, thresholds, return?, payment?
    policy: PolicyConfig
    fallback: FallbackModel | None
    return_fallback: FallbackModel | None = None  # the return lane's, from the same archive

    @classmethod
    def of(cls, document: Mapping[str, Any], overrides: Mapping[str, Any] | None = None) -> Profile:
        """From a published profile; ValueError when its thresholds or fallback cannot be used."""
        config = dict(document["config"])
        fallback, return_fallback = document.get("fallback"), document.get("return_fallback")
        return cls(
            version=str(config["model_version"]),
            config=config,
            policy=PolicyConfig.from_model_config(config, overrides),
            fallback=FallbackModel.from_json(fallback) if fallback else None,
            return_fallback=FallbackModel.from_json(return_fallback) if return_fallback else None,
        )


class ServingProfiles:
    """Per execution environment: the profile of each model version an endpoint lane answered with.

    The order lane answers with the archive's version (`profile`, `current`); the return and payment
    lanes answer with their own model's version, found by `lane_profile` (the profile of an archive that
    carries that lane model: its lane folder, config and fallback, is the same in every archive that does).
    Each lane has its own current profile (`lane_current`): the archive it last answered from, or the
    order lane's when that answered later; its fallback answers when the lane's model does not."""

    def __init__(
        self,
        deployed: Profile,
        load: Callable[[str], Mapping[str, Any]] | None,
        overrides: Mapping[str, Any] | None = None,
        *,
        load_lane: Callable[[str, str], Mapping[str, Any]] | None = None,
        on_error: Callable[[str, Exception], None] = lambda version, error: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.current = deployed
        self._known: dict[str, Profile] = {}
        self._by_lane: dict[tuple[str, str], Profile] = {}
        self._lane_current = dict.fromkeys(_LANES, deployed)
        # by lane (None: the archive's profile by the order lane's version): how a version's profile is read
        self._reads: dict[str | None, Callable[[str], Mapping[str, Any]]] = {}
        if load is not None:
            self._reads[None] = load
        if load_lane is not None:
            self._reads.update({lane: functools.partial(load_lane, lane) for lane in _LANES})
        self._overrides, self._on_error, self._clock = dict(overrides or {}), on_error, clock
        self._failed: dict[tuple[str | None, str], float] = {}
        self._know(deployed)

    def _know(self, profile: Profile) -> None:
        self._known.setdefault(profile.version, profile)
        for lane, version in lane_versions(profile.config).items():
            self._by_lane.setdefault((lane, version), profile)

    def _fetch(self, lane: str | None, version: str) -> Profile | None:
        """Read once (a failure: again after RETRY_S); the archive's profile, or `lane`'s by its version."""
        read = self._reads.get(lane)
        if read is None or version == UNKNOWN:
            return None
        failed = self._failed.get((lane, version))
        if failed is not None and self._clock() - failed < RETRY_S:
            return None
        try:
            found = Profile.of(read(version), self._overrides)
            named = found.version if lane is None else lane_versions(found.config).get(lane)
            if named != version:
                raise ProfileError(f"profile of {lane or 'model'} {version} names {named}")
        except Exception as error:  # missing, unreadable or unusable: the caller keeps what it has
            self._failed[(lane, version)] = self._clock()
            self._on_error(version if lane is None else f"{lane}:{version}", error)
            return None
        self._failed.pop((lane, version), None)
        self._know(found)
        return found

    def profile(self, version: str) -> Profile | None:
        return self._known.get(version) or self._fetch(None, version)

    def lane_profile(self, lane: str, version: str) -> Profile | None:
        """The profile whose `lane` model is `version` (what the endpoint answered a lane request with)."""
        return self._by_lane.get((lane, version)) or self._fetch(lane, version)

    def policy_for(self, version: str) -> PolicyConfig:
        """The policy a score of model `version` is mapped with (the current one when unknown)."""
        return (self.profile(version) or self.current).policy

    def for_lane(self, lane: str, version: str) -> Profile:
        """The profile a `lane` score of its model `version` decides with (the lane's current one when
        unknown: the deployed one until the lane or the order lane answered with another)."""
        return self.lane_profile(lane, version) or self._lane_current[lane]

    def lane_current(self, lane: str) -> Profile:
        return self._lane_current[lane]

    def served(self, version: str) -> None:
        """The champion answered with `version`: its profile becomes current (fallback included), and
        the current one of each lane its archive carries, until that lane's model answers otherwise."""
        if version != self.current.version:
            found = self.profile(version)
            if found is not None:
                self.current = found
                for lane in _LANES:
                    if lane in found.config:
                        self._lane_current[lane] = found

    def lane_served(self, lane: str, version: str) -> None:
        """`lane`'s model answered with `version`: its profile becomes that lane's current one."""
        found = self.lane_profile(lane, version)
        if found is not None:
            self._lane_current[lane] = found
