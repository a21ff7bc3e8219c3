"""The stream tests' moto fixtures (tables, bucket, dead-letter queue, a fresh stream handler)."""

from tests.integration.stream.conftest import aws, stream_handler

__all__ = ["aws", "stream_handler"]
