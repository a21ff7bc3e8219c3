"""Local AWS on 127.0.0.1: a moto server with ReturnGuard's tables, stream and lake bucket.

Tables come from `returnguard.tables`, the same definitions the CDK data stack reads. The server is
moto's own WSGI application (what `moto_server` runs) behind a small HTTP/1.1 front end that keeps
connections alive: werkzeug's development server closes every connection, which doubles the cost of
each AWS call (measured: 4.5 ms → 2.2 ms per DynamoDB GetItem).
"""

from __future__ import annotations

import os
import socket
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BytesIO
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
    dlq_url: str = ""
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
                "RG_DLQ_URL": self.dlq_url,
                "AWS_ENDPOINT_URL": self.endpoint_url,
            }
        )
        return env

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None


class _WsgiHandler(BaseHTTPRequestHandler):
    """Just enough WSGI for moto's application, over kept-alive HTTP/1.1 connections."""

    server: _MotoServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline().strip():  # trailers
                pass
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _call(self) -> None:
        body = self._body()
        path, _, query = self.path.partition("?")
        environ: dict[str, Any] = {
            "REQUEST_METHOD": self.command,
            "SCRIPT_NAME": "",
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": str(self.server.server_address[1]),
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": self.client_address[0],
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.input": BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        for name, value in self.headers.items():
            key = name.upper().replace("-", "_")
            if key == "CONTENT_TYPE":
                environ["CONTENT_TYPE"] = value
            elif key not in ("CONTENT_LENGTH", "TRANSFER_ENCODING"):
                environ[f"HTTP_{key}"] = value
        started: list[Any] = []
        result = self.server.app(
            environ, lambda status, headers, exc_info=None: started.extend([status, headers])
        )
        try:
            payload = b"".join(result)
        finally:
            getattr(result, "close", lambda: None)()
        status, headers = started
        code, _, reason = status.partition(" ")
        self.send_response_only(int(code), reason)
        for name, value in headers:
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _call


def _dispatcher() -> Any:
    """moto's WSGI dispatcher, remembering which backend serves which host.

    moto finds the backend of every request by listing its own package folder, under a lock all
    requests wait on (`get_backend_for_host`: 0.3 ms a DynamoDB call, measured; about 5% of a local
    API decision's CPU). The answer depends on the host alone, so it is looked up once per host.
    """
    from moto.server import DomainDispatcherApplication, create_backend_app

    class Dispatcher(DomainDispatcherApplication):
        def __init__(self) -> None:
            super().__init__(create_backend_app)
            self._backends: dict[str | None, Any] = {}

        def get_backend_for_host(self, host: str | None) -> Any:
            if host not in self._backends:
                self._backends[host] = super().get_backend_for_host(host)
            return self._backends[host]

    return Dispatcher()


class _MotoServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int):
        super().__init__(("127.0.0.1", port), _WsgiHandler)
        self.app = _dispatcher()
        self._thread = threading.Thread(target=self.serve_forever, name="moto-server", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=5)


def run_until_interrupted(*servers: Any) -> None:
    """Block until Ctrl-C, then stop each server (anything with .stop()), last started first."""
    import time

    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        for server in reversed(servers):
            server.stop()


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
    if definition.stream_view:
        kwargs["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": definition.stream_view}
    client.create_table(**kwargs)
    if definition.ttl_attribute:
        client.update_time_to_live(
            TableName=name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": definition.ttl_attribute},
        )


_PREFIXES_USED: set[str] = set()


def start(port: int | None = None, prefix: str = "returnguard-local") -> LocalStack:
    """Start the moto server on 127.0.0.1 and create every resource the local stack needs.

    moto keeps its state per process, not per server: two stacks in one process need two prefixes.
    """
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    from local import moto_sagemaker

    moto_sagemaker.install()  # UpdateEndpoint for the local registry's promotions (returnguard models)
    if prefix in _PREFIXES_USED:
        raise RuntimeError(
            f"local stack {prefix!r} was already started in this process, and moto keeps every server's "
            "resources per process: its tables exist already. Give this stack its own prefix=..."
        )
    _PREFIXES_USED.add(prefix)
    server = _MotoServer(port or 0)
    server.start()
    port = server.server_address[1]
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
    stack.dlq_url = stack.client("sqs").create_queue(QueueName=f"{prefix}-stream-dlq")["QueueUrl"]
    return stack
