"""The batch pipeline's AWS side: lake objects, the file's claim (its digest in the idempotency table) and
the flagged rows in DynamoDB. The same class serves the Lambda, the Glue job and the local command."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from returnguard.aws.batches import until_processed
from returnguard.batch import CLAIM_PREFIX, ModelNotPublished

FLAGGED_TTL_DAYS = 90  # as decisions: flagged rows are for the analysts' queue, the lake keeps the rest
CHUNK_BYTES = 8 * 1024 * 1024


class BatchStore:
    def __init__(
        self,
        s3: Any,
        dynamodb: Any,
        *,
        bucket: str,
        flagged_table: str,
        claims_table: str,
    ) -> None:
        self.s3, self.dynamodb = s3, dynamodb
        self.bucket, self.flagged_table, self.claims_table = bucket, flagged_table, claims_table

    # --- objects ---

    def digest(self, key: str) -> tuple[str, int]:
        """(SHA-256 of the object's bytes, its size), read in chunks: the ETag of a multipart upload is
        not a content digest, and the same bytes uploaded twice must get the same name."""
        body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"]
        digest, size = hashlib.sha256(), 0
        for chunk in iter(lambda: body.read(CHUNK_BYTES), b""):
            digest.update(chunk)
            size += len(chunk)
        return digest.hexdigest(), size

    def get(self, key: str) -> bytes:
        return bytes(self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def put(self, key: str, body: bytes | str, content_type: str) -> None:
        data = body.encode("utf-8") if isinstance(body, str) else body
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)

    def move(self, source_key: str, key: str) -> None:
        """Copy, then delete the source (the lake is versioned: the upload stays recoverable)."""
        self.s3.copy_object(
            Bucket=self.bucket, Key=key, CopySource={"Bucket": self.bucket, "Key": source_key}
        )
        self.s3.delete_object(Bucket=self.bucket, Key=source_key)

    def model_files(self, prefix: str, names: Iterable[str]) -> dict[str, bytes]:
        """The published model's files; ModelNotPublished when one is missing."""
        self.require_model(prefix, names)
        return {name: self.get(f"{prefix}{name}") for name in names}

    def require_model(self, prefix: str, names: Iterable[str]) -> None:
        """ModelNotPublished unless every file of the model is under `prefix` (one HEAD each)."""
        missing = []
        for name in names:
            try:
                self.s3.head_object(Bucket=self.bucket, Key=f"{prefix}{name}")
            except self.s3.exceptions.ClientError as error:
                if error.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
                    raise
                missing.append(name)
        if missing:
            raise ModelNotPublished(self.bucket, prefix, missing)

    # --- the claim: one run per file content ---

    def claim(self, digest: str, source_key: str, now: int, lease_s: int) -> bool:
        """True when this run owns the file's digest: nobody claimed it, or a claim that never finished
        has outlived its lease (its execution timed out). False: it was processed, or is in progress."""
        try:
            self.dynamodb.put_item(
                TableName=self.claims_table,
                Item={
                    "id": {"S": claim_id(digest)},
                    "status": {"S": "in_progress"},
                    "source_key": {"S": source_key},
                    "lease_until": {"N": str(now + lease_s)},
                    "claimed_at": {"N": str(now)},
                },
                ConditionExpression="attribute_not_exists(id) OR (#s = :running AND lease_until < :now)",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":running": {"S": "in_progress"}, ":now": {"N": str(now)}},
            )
        except self.dynamodb.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def finish(self, digest: str, outcome: str) -> None:
        self.dynamodb.update_item(
            TableName=self.claims_table,
            Key={"id": {"S": claim_id(digest)}},
            UpdateExpression="SET #s = :done, outcome = :outcome",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":done": {"S": "done"}, ":outcome": {"S": outcome}},
        )

    def release(self, digest: str) -> None:
        """A failed run gives the digest back, so uploading the file again retries it."""
        self.dynamodb.delete_item(TableName=self.claims_table, Key={"id": {"S": claim_id(digest)}})

    # --- flagged rows ---

    def write_flagged(
        self, digest: str, source_key: str, model_version: str, rows: list[Mapping[str, Any]], now: int
    ) -> int:
        """One item per flagged row, keyed (file digest, row): writing the same file again overwrites."""
        expires_at = str(now + FLAGGED_TTL_DAYS * 86_400)
        items = []
        for row in rows:
            item: dict[str, Any] = {
                "file_digest": {"S": digest},
                "row": {"N": str(row["row"])},
                "source_key": {"S": source_key},
                "score": {"N": repr(float(row["score"]))},
                "model_version": {"S": model_version},
                "factors": {"S": json.dumps(row["factors"])},
                "flagged_at": {"N": str(now)},
                "expires_at": {"N": expires_at},
            }
            if row.get("transaction_id"):
                item["transaction_id"] = {"S": str(row["transaction_id"])}
            items.append({"PutRequest": {"Item": item}})
        for start in range(0, len(items), 25):
            request = {self.flagged_table: items[start : start + 25]}
            for _ in until_processed(self.dynamodb.batch_write_item, request, what="flagged rows"):
                pass
        return len(items)


def bounded_store(
    *, bucket: str, flagged_table: str, claims_table: str, region: str | None = None
) -> BatchStore:
    """The store the batch Lambda and the Glue job use: S3 and DynamoDB clients with bounded timeouts and
    attempts (returnguard.aws.clients), not boto3's defaults (60 s reads, legacy retries)."""
    import boto3

    from returnguard.aws.clients import BATCH_DYNAMODB, BATCH_S3

    return BatchStore(
        boto3.client("s3", region_name=region, config=BATCH_S3.config()),
        boto3.client("dynamodb", region_name=region, config=BATCH_DYNAMODB.config()),
        bucket=bucket,
        flagged_table=flagged_table,
        claims_table=claims_table,
    )


def claim_id(digest: str) -> str:
    return f"{CLAIM_PREFIX}{digest}"
