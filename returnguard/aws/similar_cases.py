"""Similar past cases in AWS: Titan Text Embeddings V2 (Bedrock) and an S3 Vectors index.

The index holds the cases a person decided: each verdict embeds the case's text
(`returnguard.console.case_text`) and puts it under the decision id, with the verdict as metadata. A case
view embeds its own text and asks the index for the nearest decided cases (cosine). The locally served
console does the same with multilingual-e5-small in process (`local/embeddings.py`). Similar cases are an aid:
when Bedrock or the index fails, the case view lists none rather than failing.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from returnguard.aws.reviews import ReviewStore
from returnguard.console import Case, case_text

TITAN_MODEL_ID = "amazon.titan-embed-text-v2:0"
DIMENSIONS = 512
MAX_CHARS = 8_000  # Titan V2 takes up to 8,192 tokens; a case text is a few hundred characters
logger = logging.getLogger(__name__)


DELETE_BATCH = 500  # S3 Vectors' DeleteVectors takes up to 500 keys a call


def forget_cases(vectors: Any, bucket: str, index: str, decision_ids: list[str]) -> list[str]:
    """Delete these decisions' vectors from the similar-cases index (the decisions archive calls it for
    the decided cases the TTL removed, so the index forgets what the table forgot). Keys the index does
    not hold are no error. Best effort: the removed decision is already archived, and a vector left
    behind is harmless (the case view leaves out a hit whose decision is gone), so a failure is logged
    and answered with the ids it could not delete, never raised."""
    failed: list[str] = []
    for start in range(0, len(decision_ids), DELETE_BATCH):
        keys = decision_ids[start : start + DELETE_BATCH]
        try:
            vectors.delete_vectors(vectorBucketName=bucket, indexName=index, keys=keys)
        except (BotoCoreError, ClientError) as error:
            logger.warning("similar cases: could not forget %d removed cases: %s", len(keys), error)
            failed += keys
    return failed


class TitanEmbedder:
    """`client`: a boto3 bedrock-runtime client."""

    def __init__(self, client: Any, model_id: str = TITAN_MODEL_ID, dimensions: int = DIMENSIONS):
        self._client, self.model_id, self.dimensions = client, model_id, dimensions

    def embed(self, text: str) -> list[float]:
        body = json.dumps({"inputText": text[:MAX_CHARS], "dimensions": self.dimensions, "normalize": True})
        answer = self._client.invoke_model(
            modelId=self.model_id, body=body, contentType="application/json", accept="application/json"
        )
        vector = json.loads(answer["body"].read())["embedding"]
        if len(vector) != self.dimensions:
            raise ValueError(f"{self.model_id} answered {len(vector)} dimensions, not {self.dimensions}")
        return [float(v) for v in vector]


class VectorSimilarCases:
    """`similar(case, cases)` and `remember(case)` for `ConsoleApp`, over one S3 Vectors index."""

    def __init__(
        self, embedder: Any, vectors: Any, bucket: str, index: str, store: ReviewStore, top_k: int = 5
    ):
        self._embedder, self._vectors, self._store = embedder, vectors, store
        self._where = {"vectorBucketName": bucket, "indexName": index}
        self._top_k = top_k

    def remember(self, case: Case) -> None:
        """Index a decided case (called after a verdict); a failure is logged, the verdict stands."""
        try:
            self._vectors.put_vectors(
                **self._where,
                vectors=[
                    {
                        "key": case.decision_id,
                        "data": {"float32": self._embedder.embed(case_text(case))},
                        "metadata": {"verdict": case.status, "lane": case.lane},
                    }
                ],
            )
        except (BotoCoreError, ClientError, ValueError) as error:
            logger.warning("similar cases: could not index %s: %s", case.decision_id, error)

    def __call__(self, case: Case, cases: list[Case]) -> list[tuple[Case, float]]:
        try:
            answer = self._vectors.query_vectors(
                **self._where,
                topK=self._top_k + 1,  # the case itself may be in the index
                queryVector={"float32": self._embedder.embed(case_text(case))},
                returnDistance=True,
            )
        except (BotoCoreError, ClientError, ValueError) as error:
            logger.warning("similar cases: query failed: %s", error)
            return []
        found = []
        for hit in answer.get("vectors", []):
            if hit["key"] == case.decision_id:
                continue
            other = self._store.case(hit["key"])
            if other is not None:
                found.append((other, 1.0 - float(hit.get("distance", 1.0))))  # cosine distance
        return found[: self._top_k]
