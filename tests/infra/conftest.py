"""The infra tests' synthesized stages come from tests/cdk_synth.py (a plugin of the root conftest, shared
with the integration tests); its settings are importable from here as before."""

from tests.cdk_synth import DEV_CONTEXT, FALLBACK_MODEL, MODEL_CONFIG, PROD_CONTEXT, SECRET_ARN

__all__ = ["DEV_CONTEXT", "FALLBACK_MODEL", "MODEL_CONFIG", "PROD_CONTEXT", "SECRET_ARN"]
