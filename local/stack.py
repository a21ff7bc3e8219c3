"""Local AWS on 127.0.0.1: a moto server with ReturnGuard's tables, stream and lake bucket.

Tables come from `returnguard.tables`, the same definitions the CDK data stack reads.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from typing import Any

from returnguard.tables import ALL_TABLES, TableDefinition

REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LocalStack:
    endpoint_url: str
    table_names: dict[str, str]
    stream_name: str
    bucket: str
    _server: Any = field(default=None, repr=False)

    def client(self, service: str) -> Any:
        import boto3

        return boto3.client(
            service,
            region_name=REGION,
            endpoint_url=self.endpoint_url,
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )

    def environment(self) -> dict[str, str]:
        """The Lambda environment a handler needs to run against this stack."""
        env = {f"RG_{logical.upper()}_TABLE": name for logical, name in self.table_names.items()}
        env.update(
            {
                "RG_STREAM_NAME": self.stream_name,
                "RG_LAKE_BUCKET": self.bucket,
                "AWS_ENDPOINT_URL": self.endpoint_url,
            }
        )
        return env

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None


def create_table(client: Any, definition: TableDefinition, name: str) -> None:
    attributes = {definition.partition_key.name: definition.partition_key.type}
    schema = [{"AttributeName": definition.partition_key.name, "KeyType": "HASH"}]
    if definition.sort_key:
        attributes[definition.sort_key.name] = definition.sort_key.type
        schema.append({"AttributeName": definition.sort_key.name, "KeyType": "RANGE"})
    indexes = []
    for index in definition.global_indexes:
        attributes[index.partition_key.name] = index.partition_key.type
        index_schema = [{"AttributeName": index.partition_key.name, "KeyType": "HASH"}]
        if index.sort_key:
            attributes[index.sort_key.name] = index.sort_key.type
            index_schema.append({"AttributeName": index.sort_key.name, "KeyType": "RANGE"})
        indexes.append(
            {"IndexName": index.name, "KeySchema": index_schema, "Projection": {"ProjectionType": "ALL"}}
        )
    kwargs: dict[str, Any] = {
        "TableName": name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": n, "AttributeType": t} for n, t in attributes.items()],
        "KeySchema": schema,
    }
    if indexes:
        kwargs["GlobalSecondaryIndexes"] = indexes
    client.create_table(**kwargs)
    if definition.ttl_attribute:
        client.update_time_to_live(
            TableName=name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": definition.ttl_attribute},
        )


def start(port: int | None = None, prefix: str = "returnguard-local") -> LocalStack:
    """Start moto's threaded server on 127.0.0.1 and create every resource the local stack needs."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    from moto.server import ThreadedMotoServer

    port = port or free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    stack = LocalStack(
        endpoint_url=f"http://127.0.0.1:{port}",
        table_names={t.logical_name: f"{prefix}-{t.logical_name}" for t in ALL_TABLES},
        stream_name=f"{prefix}-events",
        bucket=f"{prefix}-lake",
        _server=server,
    )
    dynamodb = stack.client("dynamodb")
    for definition in ALL_TABLES:
        create_table(dynamodb, definition, stack.table_names[definition.logical_name])
    stack.client("kinesis").create_stream(StreamName=stack.stream_name, ShardCount=1)
    stack.client("s3").create_bucket(Bucket=stack.bucket)
    return stack
