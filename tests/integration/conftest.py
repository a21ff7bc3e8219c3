"""Fixtures shared by the integration tests that execute synthesized state machines."""

from __future__ import annotations

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
