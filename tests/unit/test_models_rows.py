"""`returnguard models list`'s row for one version (returnguard.aws.models_cli)."""

from __future__ import annotations

from returnguard.aws.models import ModelVersion
from returnguard.aws.models_cli import _row


def version(**metadata: str) -> ModelVersion:
    return ModelVersion(
        version=4,
        arn="arn:aws:sagemaker:us-east-1:123456789012:model-package/g/4",
        status="Approved",
        created="2026-11-30T10:00:00Z",
        model_data_url="s3://lake/models/artifacts/run-4/output/model.tar.gz",
        image="xgboost",
        environment={},
        metadata={"gate_reasons": "none", "candidate_roc_auc": "0.9", **metadata},
    )


def test_a_candidate_the_pipeline_did_not_promote_during_an_experiment_says_so():
    assert "(not promoted: experiment_running)" in _row(version(promotion_refused="experiment_running"))
    assert "not promoted" not in _row(version())
