"""Similar cases in AWS (returnguard/aws/similar_cases.py): the Titan V2 request, the vector a verdict puts
into S3 Vectors (moto), the query a case view makes (botocore Stubber: moto has no QueryVectors), and
that a failing Bedrock or index lists no similar cases instead of failing the page."""

from __future__ import annotations

import io
import json
from datetime import datetime, timezone

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber
from moto import mock_aws

from returnguard.aws.reason_clusters import IndexedEncoder, reason_key
from returnguard.aws.similar_cases import (
    DIMENSIONS,
    TITAN_MODEL_ID,
    TitanEmbedder,
    VectorSimilarCases,
    forget_cases,
)
from returnguard.console import Case, case_text

NOW = datetime(2026, 11, 30, tzinfo=timezone.utc)


def case(decision_id: str, status: str = "open", reason: str = "the box was empty") -> Case:
    return Case(
        decision_id=decision_id,
        lane="return",
        order_id=f"O-{decision_id}",
        customer_id="C1",
        created_at=NOW,
        risk_level="high",
        risk_score=0.8,
        action="photo_proof",
        rules=(),
        model_version="v1",
        amount=999.0,
        currency="INR",
        region="MH",
        status=status,
        request={"return": {"reason_code": "empty_box", "reason_text": reason}},
    )


class FakeEmbedder:
    def __init__(self, dimensions: int = 4):
        self.dimensions, self.texts = dimensions, []

    def embed(self, text: str) -> list[float]:
        self.texts.append(text)
        return [0.5] * self.dimensions


class FakeStore:
    def __init__(self, *cases: Case):
        self._cases = {c.decision_id: c for c in cases}

    def case(self, decision_id: str) -> Case | None:
        return self._cases.get(decision_id)


def _body(payload: dict) -> StreamingBody:
    raw = json.dumps(payload).encode()
    return StreamingBody(io.BytesIO(raw), len(raw))


def test_titan_is_asked_for_normalized_512_dimension_vectors():
    client = boto3.client("bedrock-runtime", region_name="us-east-1")
    embedder = TitanEmbedder(client)
    with Stubber(client) as stub:
        stub.add_response(
            "invoke_model",
            {"body": _body({"embedding": [0.1] * DIMENSIONS, "inputTextTokenCount": 7}), "contentType": "x"},
            {
                "modelId": TITAN_MODEL_ID,
                "body": ANY,
                "contentType": "application/json",
                "accept": "application/json",
            },
        )
        assert len(embedder.embed("the box was empty")) == DIMENSIONS
        stub.add_response("invoke_model", {"body": _body({"embedding": [0.1] * 3}), "contentType": "x"})
        with pytest.raises(ValueError, match="3 dimensions"):
            embedder.embed("a model that answers the wrong size is refused")


def test_a_verdict_puts_the_case_with_its_verdict_into_the_index():
    with mock_aws():
        vectors = boto3.client("s3vectors", region_name="us-east-1")
        vectors.create_vector_bucket(vectorBucketName="vec")
        vectors.create_index(
            vectorBucketName="vec",
            indexName="cases",
            dataType="float32",
            dimension=4,
            distanceMetric="cosine",
        )
        embedder = FakeEmbedder()
        decided = case("d1", status="confirmed_abuse")
        VectorSimilarCases(embedder, vectors, "vec", "cases", FakeStore()).remember(decided)
        (stored,) = vectors.get_vectors(
            vectorBucketName="vec", indexName="cases", keys=["d1"], returnMetadata=True
        )["vectors"]
        assert stored["metadata"] == {"verdict": "confirmed_abuse", "lane": "return"}
        assert embedder.texts == [case_text(decided)]  # the same text the local console embeds


def test_a_case_view_lists_the_nearest_decided_cases_but_not_itself():
    vectors = boto3.client("s3vectors", region_name="us-east-1")
    opened, twin = case("d2"), case("d1", status="confirmed_abuse")
    similar = VectorSimilarCases(FakeEmbedder(), vectors, "vec", "cases", FakeStore(opened, twin), top_k=5)
    with Stubber(vectors) as stub:
        stub.add_response(
            "query_vectors",
            {
                "vectors": [
                    {"key": "d2", "distance": 0.0},
                    {"key": "d1", "distance": 0.12},
                    {"key": "gone", "distance": 0.3},  # expired from the table since: left out
                ],
                "distanceMetric": "cosine",
            },
            {
                "vectorBucketName": "vec",
                "indexName": "cases",
                "topK": 6,
                "queryVector": {"float32": [0.5] * 4},
                "returnDistance": True,
            },
        )
        found = similar(opened, [])
    assert [(c.decision_id, round(s, 2)) for c, s in found] == [("d1", 0.88)]


def test_when_the_index_fails_the_case_view_lists_no_similar_cases():
    vectors = boto3.client("s3vectors", region_name="us-east-1")
    similar = VectorSimilarCases(FakeEmbedder(), vectors, "vec", "cases", FakeStore())
    with Stubber(vectors) as stub:
        stub.add_client_error("query_vectors", "ServiceUnavailableException", http_status_code=503)
        stub.add_client_error("put_vectors", "AccessDeniedException", http_status_code=403)
        assert similar(case("d2"), []) == []
        similar.remember(case("d2", status="legitimate"))  # logged; the verdict stands


def test_forgetting_cases_deletes_at_most_500_keys_a_call_and_answers_the_ones_it_could_not():
    vectors = boto3.client("s3vectors", region_name="us-east-1")
    ids = [f"d{i}" for i in range(501)]
    with Stubber(vectors) as stub:
        stub.add_response(
            "delete_vectors",
            {},
            {"vectorBucketName": "case-vectors", "indexName": "cases", "keys": ids[:500]},
        )
        stub.add_client_error("delete_vectors", "ServiceUnavailableException", http_status_code=503)
        assert forget_cases(vectors, "case-vectors", "cases", ids) == ["d500"]
        stub.assert_no_pending_responses()


def test_the_reasons_index_keeps_only_the_runs_reasons_reading_every_page_first():
    vectors = boto3.client("s3vectors", region_name="us-east-1")
    where = {"vectorBucketName": "case-vectors", "indexName": "reasons"}
    keep, stale = reason_key("the box was empty"), [reason_key(f"old reason {i}") for i in range(501)]
    with Stubber(vectors) as stub:
        stub.add_response(
            "list_vectors",
            {"vectors": [{"key": keep}, *({"key": k} for k in stale[:300])], "nextToken": "p2"},
            where,
        )
        stub.add_response(
            "list_vectors", {"vectors": [{"key": k} for k in stale[300:]]}, {**where, "nextToken": "p2"}
        )
        stub.add_response("delete_vectors", {}, {**where, "keys": stale[:500]})
        stub.add_response("delete_vectors", {}, {**where, "keys": stale[500:]})
        encoder = IndexedEncoder(FakeEmbedder(), vectors, "case-vectors", "reasons")
        assert encoder.keep_only(["the box was empty"]) == 501
        stub.assert_no_pending_responses()
