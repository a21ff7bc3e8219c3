"""Lane promotion: serve a retrained lane's approved model when the order candidate was rejected.

The training job writes one archive, the order candidate with each lane's winner; when the gate rejects
the order candidate, a lane whose own candidate it approved (returnguard.gate.lanes_to_promote) can still
be served: this module builds the serving archive with that lane's folder replaced by the candidate's,
under `models/artifacts/lane-promotions/<execution>/model.tar.gz` in the lake. Every other member (the
order model, its fallback, other lanes) is copied byte for byte; only `config.json` changes: it gets a
version of its own, `<serving version>+<lane>-<lane candidate version>`, because the endpoint answers
with that version and the score function loads each version's serving profile (thresholds, the return
lane's config and fallback) once: under the old version, warm functions would keep the old return
thresholds. `lane_promotion` in it records what was combined.

Refuses (LanePromotionRefused, with a stable `code`; the gate records it and serves nothing new) when
the serving archive is not one the gate may read (the first deployed model is a CDK asset outside the
lake: the gate reads only the lake's models/artifacts/), cannot be read, or either archive lacks what the
combination needs.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Mapping, Sequence
from typing import Any

LANE_PROMOTIONS_PREFIX = "models/artifacts/lane-promotions/"
READABLE_PREFIX = "models/artifacts/"  # the only archives the gate function may read
MAX_ARCHIVE_BYTES = 512 * 1024 * 1024


class LanePromotionRefused(RuntimeError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _split(url: str) -> tuple[str, str]:
    if not url.startswith("s3://") or "/" not in url[5:]:
        raise LanePromotionRefused("serving_archive_unreadable", f"not an s3:// object URL: {url!r}")
    bucket, _, key = url[5:].partition("/")
    return bucket, key


def _members(archive: bytes) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        out = []
        for member in tar:
            handle = tar.extractfile(member) if member.isfile() else None
            out.append((member, handle.read() if handle else None))
        return out


def _name(member: tarfile.TarInfo) -> str:
    return member.name.removeprefix("./")


def _config(members: Sequence[tuple[tarfile.TarInfo, bytes | None]], name: str) -> dict[str, Any] | None:
    for member, data in members:
        if _name(member) == name and data is not None:
            config = json.loads(data)
            return config if isinstance(config, dict) and "model_version" in config else None
    return None


def combined_version(serving_version: str, lane_versions: Mapping[str, str]) -> str:
    return serving_version + "".join(f"+{lane}-{version}" for lane, version in sorted(lane_versions.items()))


def combine(serving: bytes, candidate: bytes, lanes: Sequence[str]) -> tuple[bytes, dict[str, Any]]:
    """(the serving archive with each of `lanes`' folders taken from `candidate`, its new config.json)."""
    try:
        kept, taken = _members(serving), _members(candidate)
    except (tarfile.TarError, OSError, EOFError, ValueError) as error:
        raise LanePromotionRefused(
            "archive_unreadable", f"a model archive does not open: {error!r}"
        ) from None
    config = _config(kept, "config.json")
    if config is None:
        raise LanePromotionRefused("serving_archive_unreadable", "the serving archive has no config.json")
    lane_versions = {}
    for lane in lanes:
        lane_config = _config(taken, f"{lane}/config.json")
        if lane_config is None:
            raise LanePromotionRefused(
                "candidate_lane_missing", f"the candidate archive has no {lane}/config.json"
            )
        lane_versions[lane] = str(lane_config["model_version"])
    # A serving archive that is itself a lane promotion keeps its base version and its other lanes'
    # versions: the version names the order model and each lane once, however many promotions it saw.
    earlier = config.get("lane_promotion") or {}
    serving_version = str(earlier.get("serving_model_version") or config["model_version"])
    lane_versions = {**earlier.get("lanes", {}), **lane_versions}
    config = {
        **config,
        "model_version": combined_version(serving_version, lane_versions),
        "lane_promotion": {"serving_model_version": serving_version, "lanes": lane_versions},
    }

    def in_lanes(member: tarfile.TarInfo) -> bool:
        return _name(member).split("/", 1)[0] in lanes

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for member, data in kept:
            if in_lanes(member):
                continue
            if _name(member) == "config.json":
                data = json.dumps(config, indent=2, sort_keys=True).encode()
                member = tarfile.TarInfo(member.name)
                member.size = len(data)
            tar.addfile(member, io.BytesIO(data) if data is not None else None)
        for member, data in taken:
            if in_lanes(member):
                tar.addfile(member, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue(), config


def _read(s3: Any, bucket: str, key: str) -> bytes:
    answer = s3.get_object(Bucket=bucket, Key=key)
    if int(answer.get("ContentLength") or 0) > MAX_ARCHIVE_BYTES:
        raise LanePromotionRefused(
            "archive_too_large", f"s3://{bucket}/{key} is over {MAX_ARCHIVE_BYTES} bytes"
        )
    return bytes(answer["Body"].read())


def promote_lanes(
    s3: Any,
    *,
    lake_bucket: str,
    serving_url: str,
    candidate_url: str,
    lanes: Sequence[str],
    execution: str,
) -> dict[str, Any]:
    """Build and write the combined archive; {"model_artifact", "model_version", "serving_model_version",
    "lanes": {lane: version}}. A failure to write it raises as is (the gate run fails, nothing registered)."""
    bucket, key = _split(serving_url)
    if bucket != lake_bucket or not key.startswith(READABLE_PREFIX):
        raise LanePromotionRefused(
            "serving_archive_outside_lake",
            f"the serving archive {serving_url} is not under s3://{lake_bucket}/{READABLE_PREFIX} (the first "
            "deployed model's archive is a deployment asset): promote the next approved order candidate first",
        )
    try:
        serving = _read(s3, bucket, key)
        candidate = _read(s3, *_split(candidate_url))
    except LanePromotionRefused:
        raise
    except Exception as error:  # access denied, gone: refused and recorded, the endpoint keeps its model
        raise LanePromotionRefused(
            "serving_archive_unreadable", f"{type(error).__name__}: {error}"[:500]
        ) from None
    body, config = combine(serving, candidate, lanes)
    target = f"{LANE_PROMOTIONS_PREFIX}{execution}/model.tar.gz"
    s3.put_object(Bucket=lake_bucket, Key=target, Body=body, ContentType="application/gzip")
    return {
        "model_artifact": f"s3://{lake_bucket}/{target}",
        "model_version": config["model_version"],
        **config["lane_promotion"],
    }
