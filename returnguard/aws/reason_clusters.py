"""Return reason clusters in AWS: the latest written reasons from the lake's raw/returns, embedded with
Titan Text Embeddings V2 through an S3 Vectors index that keeps every reason's vector, grouped by the
same code as the local report (returnguard/reason_clusters.py), written back to the lake as an HTML
report that the console's `/clusters` page shows to leads.

The index (`reasons`, 512 dimensions, cosine) is keyed by a hash of the reason's text, so a reason is
embedded once while it stays in the window: a run asks the index for the vectors it has (GetVectors),
embeds only the new reasons and puts their vectors. After the report is written, the run deletes every
vector that is not one of its reasons (`keep_only`), so the index holds the latest report's reasons and
nothing older. Reasons are customer text: they never leave the report unescaped.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import numpy as np

REPORT_PREFIX = "reports/reason-clusters/"
LATEST_REPORT = f"{REPORT_PREFIX}latest.html"
RETURNS_PREFIX = "raw/returns/"
GET_BATCH = 100  # GetVectors takes up to 100 keys
PUT_BATCH = 500  # PutVectors takes up to 500 vectors
DELETE_BATCH = 500  # DeleteVectors takes up to 500 keys


def reason_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class IndexedEncoder:
    """`encode(texts)` for returnguard.reason_clusters: vectors from the index, Titan for the rest.
    `embedder`: returnguard.aws.similar_cases.TitanEmbedder; `vectors`: a boto3 s3vectors client."""

    def __init__(self, embedder: Any, vectors: Any, bucket: str, index: str, workers: int = 4):
        self._embedder, self._vectors, self._workers = embedder, vectors, workers
        self._where = {"vectorBucketName": bucket, "indexName": index}
        self.embedded = 0  # how many reasons this encoder sent to Titan

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        keys = [reason_key(t) for t in texts]
        known: dict[str, list[float]] = {}
        for start in range(0, len(keys), GET_BATCH):
            answer = self._vectors.get_vectors(
                **self._where, keys=keys[start : start + GET_BATCH], returnData=True
            )
            known.update({v["key"]: v["data"]["float32"] for v in answer.get("vectors", [])})
        missing = [(key, text) for key, text in zip(keys, texts, strict=True) if key not in known]
        with ThreadPoolExecutor(self._workers) as pool:
            fresh = list(pool.map(lambda pair: self._embedder.embed(pair[1]), missing))
        self.embedded += len(fresh)
        for start in range(0, len(missing), PUT_BATCH):
            batch = list(
                zip(missing[start : start + PUT_BATCH], fresh[start : start + PUT_BATCH], strict=True)
            )
            self._vectors.put_vectors(
                **self._where,
                vectors=[{"key": key, "data": {"float32": vector}} for (key, _), vector in batch],
            )
        known.update({key: vector for (key, _), vector in zip(missing, fresh, strict=True)})
        return np.array([known[key] for key in keys], dtype=np.float64)

    def keep_only(self, texts: Sequence[str]) -> int:
        """Delete from the index every vector that is not one of `texts` (the run's reasons): a reason
        leaves the index when it leaves the window, and comes back (embedded again) if it is written
        again. Lists the whole index first (ListVectors, paged), then deletes; answers how many went."""
        keep = {reason_key(t) for t in texts}
        stale: list[str] = []
        token: str | None = None
        seen: set[str] = set()
        while True:
            page = self._vectors.list_vectors(**self._where, **({"nextToken": token} if token else {}))
            stale += [v["key"] for v in page.get("vectors", []) if v["key"] not in keep]
            token = page.get("nextToken")
            if not token or token in seen:  # a token seen before would page forever
                break
            seen.add(token)
        for start in range(0, len(stale), DELETE_BATCH):
            self._vectors.delete_vectors(**self._where, keys=stale[start : start + DELETE_BATCH])
        return len(stale)


def latest_reasons(
    s3: Any, bucket: str, now: datetime, days: int = 30, latest: int = 2_000
) -> tuple[list[str], list[str], list[str], int]:
    """(reasons, reason codes, months, how many written reasons were read): the latest `latest` written
    reasons, from the raw/returns/dt=<day>/ partitions of the last `days` days, newest day first, read
    until `latest` are in hand (so a busy lake costs one or two days' files, not the whole window)."""
    import pyarrow.parquet as pq

    rows: list[dict[str, Any]] = []
    for back in range(days):
        day = (now - timedelta(days=back)).strftime("%Y-%m-%d")
        pages = s3.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=f"{RETURNS_PREFIX}dt={day}/"
        )
        for page in pages:
            for item in page.get("Contents", []):
                if item["Key"].endswith(".parquet"):
                    body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
                    table = pq.read_table(io.BytesIO(body), columns=["return_time", "reason_code", "reason"])
                    rows += [r for r in table.to_pylist() if (r.get("reason") or "").strip()]
        if len(rows) >= latest:
            break
    sample = sorted(rows, key=lambda r: r["return_time"])[-latest:]
    return (
        [r["reason"].strip() for r in sample],
        [str(r["reason_code"]) for r in sample],
        [r["return_time"].strftime("%Y-%m") for r in sample],
        len(rows),
    )


def write_report(s3: Any, bucket: str, section: str, now: datetime) -> list[str]:
    """The report under reports/reason-clusters/: one per day, and latest.html for the console."""
    keys = [f"{REPORT_PREFIX}dt={now:%Y-%m-%d}/clusters.html", LATEST_REPORT]
    for key in keys:
        s3.put_object(
            Bucket=bucket, Key=key, Body=section.encode("utf-8"), ContentType="text/html; charset=utf-8"
        )
    return keys
