"""Fixtures shared by the integration tests that execute synthesized state machines, and the feature
job's one lake for its parity tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Template

from tests.cdk_synth import Synthesized


@pytest.fixture(scope="session")
def dev_templates(dev: Synthesized) -> dict[str, dict[str, Any]]:
    """Every stack of the dev stage as its template JSON, from the session's one dev synth (the infra
    tests' too): the retraining and batch state machine tests read their definitions and resources."""
    synthesized = dev
    return {
        name: Template.from_stack(getattr(synthesized.stacks, name)).to_json()
        for name in ("pipeline", "etl", "ml", "batch")
    }


@pytest.fixture(scope="session")
def feature_lake(tmp_path_factory) -> tuple[Any, Any, Path]:
    """One raw lake for the Spark feature job's parity tests (test_glue_features and
    payments/test_payment_parity): 4,000 synthetic orders over 120 days (no return requests) and the card
    payments of 40 customers over 40 days. Returns (orders data, payments table, lake root)."""
    from returnguard import payment_synth, synth

    data = synth.generate(synth.SynthConfig(orders=4_000, seed=3, days=120))
    payments = payment_synth.generate(payment_synth.PaymentSynthConfig(customers=40, days=40, seed=11))
    root = tmp_path_factory.mktemp("feature-lake")
    synth.write_raw(data, root)
    payment_synth.write_raw(payments, root)
    return data, payments, root


@pytest.fixture(scope="session")
def feature_job(spark, feature_lake) -> tuple[dict[str, int], Path]:
    """The feature job the pipeline runs (glue_jobs/features.py run), once on feature_lake: the order
    and return lanes, and with raw/payments in the lake the payment job too. (counts, processed path)"""
    from glue_jobs import features

    root = feature_lake[2]
    processed = root / "processed"
    return features.run(spark, str(root / "raw"), str(processed)), processed
