"""Fixtures shared by the integration tests that execute synthesized state machines."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk.assertions import Template

from tests.infra.conftest import DEV_CONTEXT, _synth, fake_model_dir  # noqa: F401 (a fixture)


@pytest.fixture(scope="session")
def dev_templates(fake_model_dir, tmp_path_factory) -> dict[str, dict[str, Any]]:  # noqa: F811
    """Every stack of the dev stage as its template JSON, synthesized once for the session (~1 min):
    the retraining and batch state machine tests read their definitions and resources from it."""
    synthesized = _synth(DEV_CONTEXT, fake_model_dir, tmp_path_factory.mktemp("cdk-dev-integration"))
    return {
        name: Template.from_stack(getattr(synthesized.stacks, name)).to_json()
        for name in ("pipeline", "etl", "ml", "batch")
    }
