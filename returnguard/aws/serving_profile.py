"""A model's serving profile: what the score function needs from a model besides the endpoint's answer,
its thresholds (the archive's `config.json`, and its lanes' `return/` and `payment/` configs) and its
fallback model (`fallback_model.json`), for when the endpoint does not answer.

- `publish`: the promote step (the pipeline's promote function, `returnguard models promote` and
  `rollback`, through returnguard.aws.promotion) reads the promoted model's archive and writes its
  profile to the lake as `models/serving/<model_version>.json` BEFORE it updates the endpoint, so the
  profile exists by the time the endpoint answers with that version. Any failure fails the promotion.
- `ServingProfiles`: the score function's profiles, one per model version, keyed by the `model_version`
  the endpoint answers with. The deployed model's (RG_MODEL_CONFIG and the bundled fallback) is known at
  cold start; another version's is read from the lake the first time the endpoint answers with it
  (one GetObject per execution environment and version: no per-request read, and nothing to refresh
  in a SnapStart snapshot). The champion's latest version is `current`: its fallback answers when the
  endpoint does not, and, as one archive carries every lane, its return and payment configs and return
  fallback are what those lanes decide with. A profile that cannot be read is retried after RETRY_S, and until then the score is
  mapped with the current thresholds (what every score was mapped with before promotions published
  profiles); the function logs it.
"""

from __future__ import annotations

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
_LANES = (RETURN_MODEL_DIR, PAYMENT_MODEL_DIR)
_MAX_MEMBER_BYTES = 8 * 1024 * 1024  # a config or a fallback model is a few KB


class ProfileError(ValueError):
    """A model archive without a usable config.json (version and thresholds) or fallback model."""


def profile_key(version: str) -> str:
    return f"{PROFILES_PREFIX}{urllib.parse.quote(version, safe='')}.json"


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
    s3.put_object(
        Bucket=bucket,
        Key=profile_key(version),
        Body=json.dumps({**profile, "model_data_url": url}, sort_keys=True).encode("utf-8"),
        ContentType="application/json",
    )
    return version


def read(s3: Any, bucket: str, version: str) -> dict[str, Any]:
    """The published profile of `version` (botocore's NoSuchKey when none was published)."""
    return dict(json.loads(s3.get_object(Bucket=bucket, Key=profile_key(version))["Body"].read()))


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
    """Per execution environment: the profile of each model version the endpoint answered with."""

    def __init__(
        self,
        deployed: Profile,
        load: Callable[[str], Mapping[str, Any]] | None,
        overrides: Mapping[str, Any] | None = None,
        *,
        on_error: Callable[[str, Exception], None] = lambda version, error: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.current = deployed
        self._known = {deployed.version: deployed}
        self._load, self._overrides, self._on_error, self._clock = (
            load,
            dict(overrides or {}),
            on_error,
            clock,
        )
        self._failed: dict[str, float] = {}

    def profile(self, version: str) -> Profile | None:
        known = self._known.get(version)
        if known is not None or self._load is None:
            return known
        failed = self._failed.get(version)
        if failed is not None and self._clock() - failed < RETRY_S:
            return None
        try:
            found = Profile.of(self._load(version), self._overrides)
            if found.version != version:
                raise ProfileError(f"profile of {version} names {found.version}")
        except Exception as error:  # missing, unreadable or unusable: the caller keeps what it has
            self._failed[version] = self._clock()
            self._on_error(version, error)
            return None
        self._failed.pop(version, None)
        self._known[version] = found
        return found

    def policy_for(self, version: str) -> PolicyConfig:
        """The policy a score of model `version` is mapped with (the current one when unknown)."""
        return (self.profile(version) or self.current).policy

    def served(self, version: str) -> None:
        """The champion answered with `version`: its profile becomes current (fallback included)."""
        if version != self.current.version:
            found = self.profile(version)
            if found is not None:
                self.current = found
