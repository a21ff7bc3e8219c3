"""The promotion gate's AWS side: read a candidate's evidence from its model.tar.gz in the lake, judge it
(returnguard.gate), and record the decision in the lake under GATE_DECISIONS_PREFIX.

The record is one JSON object per decision at
`models/metadata/gate-decisions/date=<YYYY-MM-DD>/<execution>.json` (Hive-style date partitions, so an
Athena table over the prefix can filter by day): the decision, its reasons, every number it looked at,
each other lane's decision (`lanes`: the return lane the job retrained, judged the same way), the
bounds, the candidate's artifact and when it was decided. The retraining state machine then
registers the candidate with the decision as its approval status, CustomerMetadataProperties and
ModelMetrics (pointing at this record), whichever way it went.

When the order candidate is rejected but a retrained lane's candidate is approved and served
(returnguard.gate.lanes_to_promote), the lane is promoted alone: returnguard.aws.lane_promotion builds
the serving archive with that lane's folder replaced, the record says so (`lane_promotion`: the lanes,
the new archive and version, or why it was refused), and the state machine registers that archive as
its own Approved package (`lane_metadata`) and serves it; the candidate stays registered as Rejected.

Fails closed: an artifact that cannot be read or holds no evidence is judged as missing evidence (a
rejection, recorded); only a failure to write the record raises, and then nothing is registered.
"""

from __future__ import annotations

import contextlib
import io
import json
import tarfile
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from returnguard import gate
from returnguard.aws.lane_promotion import LanePromotionRefused, promote_lanes

GATE_DECISIONS_PREFIX = "models/metadata/gate-decisions/"
MAX_ARCHIVE_BYTES = 512 * 1024 * 1024  # a model.tar.gz larger than this is not one of ours


def split_s3_url(url: str) -> tuple[str, str]:
    if not url.startswith("s3://") or "/" not in url[5:]:
        raise ValueError(f"not an s3:// object URL: {url!r}")
    bucket, _, key = url[5:].partition("/")
    return bucket, key


def read_evidence(s3: Any, artifact_url: str) -> tuple[dict[str, Any] | None, str | None]:
    """(evaluation.json of the model archive, None) or (None, why it could not be read)."""
    try:
        bucket, key = split_s3_url(artifact_url)
        answer = s3.get_object(Bucket=bucket, Key=key)
        if int(answer.get("ContentLength") or 0) > MAX_ARCHIVE_BYTES:
            return None, f"{artifact_url} is larger than {MAX_ARCHIVE_BYTES} bytes"
        with tarfile.open(fileobj=io.BytesIO(answer["Body"].read()), mode="r:gz") as archive:
            member = archive.extractfile(gate.EVIDENCE_FILE)
            if member is None:
                return None, f"{gate.EVIDENCE_FILE} in {artifact_url} is not a file"
            evidence = json.loads(member.read())
    except KeyError:
        return None, f"{artifact_url} holds no {gate.EVIDENCE_FILE}"
    except Exception as error:  # any failure to read is missing evidence: the gate rejects
        return None, f"{type(error).__name__}: {error}"[:500]
    if not isinstance(evidence, dict):
        return None, f"{gate.EVIDENCE_FILE} in {artifact_url} is not a JSON object"
    return evidence, None


def record_key(execution: str, decided_at: datetime) -> str:
    return f"{GATE_DECISIONS_PREFIX}date={decided_at:%Y-%m-%d}/{execution}.json"


def gate_candidate(
    s3: Any,
    *,
    lake_bucket: str,
    artifact_url: str,
    execution: str,
    serving_features: Sequence[str],
    bounds: gate.GateBounds,
    serving_url: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Judge the candidate at `artifact_url`, write the record to the lake, and return what the state
    machine needs: approved, approval_status, reasons, metadata (CustomerMetadataProperties) and
    record_url (ModelMetrics); lanes_promoted, serve_artifact (the archive to serve: the candidate's, or
    the lane promotion's) and serve_metadata (the served package's metadata)."""
    decided_at = now or datetime.now(timezone.utc)
    evidence, error = read_evidence(s3, artifact_url)
    decision = gate.decide(evidence, serving_features, bounds)
    record: dict[str, Any] = {
        **decision.as_record(),
        "execution": execution,
        "candidate_artifact": artifact_url,
        "decided_at": decided_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        **({"evidence_error": error} if error else {}),
    }
    lanes = gate.lanes_to_promote(decision)
    promotion: dict[str, Any] | None = None
    refused: str | None = None
    if lanes:
        try:
            if not serving_url:
                raise LanePromotionRefused(
                    "serving_archive_unknown", "the state machine named no serving archive"
                )
            promotion = promote_lanes(
                s3,
                lake_bucket=lake_bucket,
                serving_url=serving_url,
                candidate_url=artifact_url,
                lanes=lanes,
                execution=execution,
            )
            record["lane_promotion"] = {**promotion, "serving_artifact": serving_url}
        except LanePromotionRefused as error:
            refused = error.code
            record["lane_promotion"] = {"lanes": list(lanes), "refused": refused, "error": str(error)[:500]}
    key = record_key(execution, decided_at)
    try:
        s3.put_object(
            Bucket=lake_bucket,
            Key=key,
            Body=json.dumps(record, indent=2, sort_keys=True).encode(),
            ContentType="application/json",
        )
    except Exception:
        # The run fails and nothing is registered: take back the combined archive no record names, so
        # no unregistered model is left in the lake (a retry of the step writes both again).
        if promotion:
            _, archive_key = split_s3_url(promotion["model_artifact"])
            with contextlib.suppress(Exception):  # the record's error is what the run must report
                s3.delete_object(Bucket=lake_bucket, Key=archive_key)
        raise
    record_url = f"s3://{lake_bucket}/{key}"
    metadata = gate.registry_metadata(decision, execution=execution, gate_record=record_url)
    if refused:
        metadata["lane_promotion_refused"] = refused
    served = lane_metadata(metadata, promotion, serving_url) if promotion else metadata
    return {
        "approved": decision.approved,
        "approval_status": decision.approval_status,
        "reasons": list(decision.reasons),
        "metadata": metadata,
        "record_url": record_url,
        "lanes_promoted": promotion is not None,
        "serve_artifact": promotion["model_artifact"] if promotion else artifact_url,
        "serve_metadata": served,
    }


def lane_metadata(
    candidate: dict[str, str], promotion: dict[str, Any], serving_url: str | None
) -> dict[str, str]:
    """The lane promotion's package metadata: Approved, its own version, which lanes it promotes from
    which rejected candidate, and those lanes' numbers (the order numbers are the rejected candidate's,
    on its own package)."""
    lanes = sorted(promotion["lanes"])
    metadata = {
        "gate_decision": "Approved",
        "gate_reasons": "none",
        "model_version": str(promotion["model_version"]),
        "lane_promotion": ",".join(lanes),
        "order_model_version": str(promotion["serving_model_version"]),
        "champion_version": str(promotion["serving_model_version"]),
        "rejected_candidate_version": candidate.get("model_version", ""),
        "serving_artifact": serving_url or "",
        "execution": candidate.get("execution", ""),
        "gate_record": candidate.get("gate_record", ""),
        **{key: value for key, value in candidate.items() if key.split("_", 1)[0] in lanes},
    }
    return {key[:128]: value[:1024] for key, value in metadata.items() if value != ""}
