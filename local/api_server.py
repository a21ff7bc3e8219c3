"""The risk-score API on 127.0.0.1: real HTTP in front of the score Lambda's own handler.

Each request becomes an API Gateway REST proxy event and goes to `lambdas/score/handler.py`'s
`lambda_handler`, unchanged. Behind it: the local moto server (tables from `returnguard.tables`, the
definitions the CDK data stack uses, seeded with the Spark job's latest aggregates) and the local
inference server (the SageMaker contract). What API Gateway itself does in front of the Lambda is
mimicked where a caller can see it: the stage's token-bucket throttle answers 429 in the API's error
shape, a body over API Gateway's 10 MB limit answers 413 without reaching the function, and, given
API keys (`serve(api_keys=...)`), a keyed route called without one answers 403 while the key's id
reaches the function as `requestContext.identity.apiKeyId`. The request-model validation is not
mimicked (the handler validates every body itself; see docs/api.md).

    .venv/bin/python -m local.api_server      # after `make demo`: its model and aggregates, port 8000

It listens on 127.0.0.1:8000 (or any free port when 8000 is taken, saying so) and writes where to
`<work>/api.json` while it runs, which the `returnguard` CLI reads.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import importlib.util
import json
import os
import secrets
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any, TextIO
from urllib.parse import parse_qsl, urlsplit

from local.options import (
    API_FILE,
    Parser,
    api_port,
    policy_json,
    port_number,
    remove_api_file,
    write_api_file,
)
from local.stack import REGION, LocalStack
from returnguard.aws.batches import until_processed
from returnguard.aws.feature_store import encode_item
from returnguard.payment_scoring import PAYMENT_MODEL_DIR
from returnguard.returns_policy import RETURN_MODEL_DIR

ROOT = Path(__file__).resolve().parent.parent
HANDLER = ROOT / "lambdas" / "score" / "handler.py"
GATEWAY_MAX_BODY = 10 * 1024 * 1024  # API Gateway REST payload limit
STAGE = "local"
# The demo and the tests score orders dated inside synthetic histories (2023 to 2026), so the local API
# accepts order times this far back by default; a deployment's default is 7 days (docs/api.md).
LOCAL_ORDER_TIME_PAST_DAYS = 3660
# The key of decision ids (RG_DECISION_ID_SECRET): one per process, shared by every local function
# instance, as a deployment's Secrets Manager secret is by all of its instances.
LOCAL_DECISION_ID_SECRET = secrets.token_hex(32)
ROUTES = (  # resource templates as the CDK api stack declares them, and whether they take an API key
    ("POST", "/v1/risk-score", True),
    ("GET", "/v1/decisions/{decision_id}", True),
    ("GET", "/v1/health", False),
)


class TokenBucket:
    """API Gateway's throttle: `rate` requests/s refilled continuously, at most `burst` at once."""

    def __init__(self, rate: float, burst: int):
        self.rate, self.burst = rate, burst
        self._tokens = float(burst)
        self._updated = time.monotonic()
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            if self._tokens >= 1:
                self._tokens -= 1
                return True
            return False


def resource_for(method: str, path: str) -> str:
    """The declared resource template a path matches, as API Gateway puts it in `resource`."""
    parts = path.rstrip("/").split("/")
    for route_method, template, _ in ROUTES:
        pattern = template.split("/")
        if (
            route_method == method
            and len(pattern) == len(parts)
            and all(p == q or (p.startswith("{") and q) for p, q in zip(pattern, parts, strict=True))
        ):
            return template
    return path


def needs_api_key(method: str, path: str) -> bool:
    resource = resource_for(method, path)
    return any(m == method and t == resource and needed for m, t, needed in ROUTES)


def proxy_event(
    method: str,
    target: str,
    headers: Iterable[tuple[str, str]],
    body: bytes,
    source_ip: str = "127.0.0.1",
    api_key_id: str | None = None,
) -> dict[str, Any]:
    """An API Gateway REST (v1) proxy event, shaped as the deployed API hands it to the Lambda;
    `api_key_id` is the id of the API key the caller sent (`requestContext.identity.apiKeyId`)."""
    url = urlsplit(target)
    path = url.path or "/"
    resource = resource_for(method, path)
    multi_headers: dict[str, list[str]] = {}
    for name, value in headers:
        multi_headers.setdefault(name, []).append(value)
    query: dict[str, list[str]] = {}
    for name, value in parse_qsl(url.query, keep_blank_values=True):
        query.setdefault(name, []).append(value)
    path_parameters = None
    if "{" in resource:
        path_parameters = {
            p.strip("{}"): q
            for p, q in zip(resource.split("/"), path.split("/"), strict=True)
            if p.startswith("{")
        }
    now = datetime.now(timezone.utc)
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": {name: values[-1] for name, values in multi_headers.items()},
        "multiValueHeaders": multi_headers,
        "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": path_parameters,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource,
            "httpMethod": method,
            "path": f"/{STAGE}{path}",
            "stage": STAGE,
            "requestId": str(uuid.uuid4()),
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "requestTimeEpoch": int(now.timestamp() * 1000),
            "protocol": "HTTP/1.1",
            "identity": {
                "sourceIp": source_ip,
                "userAgent": dict(headers).get("User-Agent"),
                "apiKeyId": api_key_id,
            },
            "accountId": "000000000000",
            "apiId": "local",
        },
        **_proxy_body(body),
    }


def _proxy_body(body: bytes) -> dict[str, Any]:
    """Text as it is; bytes that are not UTF-8 base64-encoded, as API Gateway passes what it cannot
    pass as text (the function answers 400 for a JSON body that is not UTF-8)."""
    if not body:
        return {"body": None, "isBase64Encoded": False}
    try:
        return {"body": body.decode("utf-8"), "isBase64Encoded": False}
    except UnicodeDecodeError:
        return {"body": base64.b64encode(body).decode("ascii"), "isBase64Encoded": True}


@dataclass
class LambdaContext:
    function_name: str = "returnguard-local-score"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:000000000000:function:returnguard-local-score"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 10_000


@contextmanager
def patched_environ(values: Mapping[str, str]) -> Iterator[None]:
    """Set these environment variables for the block, then restore what was there."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def serving_model_config(model_config: Mapping[str, Any]) -> dict[str, Any]:
    """RG_MODEL_CONFIG from a model's config.json: version and thresholds, and the return model's
    under `return` when the archive carries one (as stacks.config.ModelBootstrap builds it)."""
    serving = {"model_version": model_config.get("model_version"), "thresholds": model_config["thresholds"]}
    for lane in (RETURN_MODEL_DIR, PAYMENT_MODEL_DIR):
        if isinstance(model_config.get(lane), Mapping):
            serving[lane] = model_config[lane]
    return serving


def with_return_model(model_config: Mapping[str, Any], model_dir: str | Path) -> dict[str, Any]:
    """The model's config.json with the return model's version and thresholds under `return` when the
    folder carries one (`return/config.json`): what RG_MODEL_CONFIG says in AWS."""
    found = dict(model_config)
    for name in (RETURN_MODEL_DIR, PAYMENT_MODEL_DIR):  # and the payment model's under `payment`
        path = Path(model_dir) / name / "config.json"
        if path.is_file():
            lane = json.loads(path.read_text())
            found[name] = {"model_version": lane["model_version"], "thresholds": lane["thresholds"]}
    return found


def handler_environment(
    stack: LocalStack,
    model_config: Mapping[str, Any],
    inference_url: str,
    policy: Mapping[str, Any] | None = None,
    fallback_model: str | Path | None = None,
    order_time_past_days: int = LOCAL_ORDER_TIME_PAST_DAYS,
    api_clients: Mapping[str, tuple[str, Iterable[str]]] | None = None,
    return_policy: Mapping[str, Any] | None = None,
    variants: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """The function's environment as the CDK api stack sets it, pointed at the local servers.
    `policy`: overrides of the model's policy, as the `policy` context gives them in AWS.
    `fallback_model`: the training run's fallback_model.json (in AWS it ships inside the function); the
    return lane's fallback beside its model (return/fallback_model.json next to it) comes with it.
    `order_time_past_days`: how old an order_time may be (the `order_time_past_days` context).
    `api_clients`: {key id: (client, scopes)} as the api stack maps its keys (RG_API_CLIENTS).
    `return_policy`: the refund ladder's overrides, as the `return_policy` context gives them.
    `variants`: {"mode": off|shadow|ab, "challenger_share", "salt"} as the `variants` context gives them;
    the challenger is the local model server's challenger variant (an experiment, `returnguard models
    experiment start --local`), reached as the endpoint's is by name."""
    env = stack.environment()
    env.update(
        {
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "RG_INFERENCE_URL": inference_url,
            "RG_MODEL_CONFIG": json.dumps(serving_model_config(model_config)),
            "RG_POLICY": json.dumps(dict(policy or {})),
            "RG_RETURN_POLICY": json.dumps(dict(return_policy or {})),
            "RG_STAGE": STAGE,
            "RG_ORDER_TIME_PAST_S": str(order_time_past_days * 86_400),
            "RG_DECISION_ID_SECRET": LOCAL_DECISION_ID_SECRET,
            "POWERTOOLS_SERVICE_NAME": "returnguard",
            "POWERTOOLS_METRICS_NAMESPACE": "ReturnGuard",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": "INFO",
        }
    )
    if fallback_model:
        env["RG_FALLBACK_MODEL"] = str(fallback_model)
        # the return lane's fallback sits in the same training run's return/ folder
        returns = Path(fallback_model).parent / RETURN_MODEL_DIR / Path(fallback_model).name
        if returns.is_file():
            env["RG_RETURN_FALLBACK_MODEL"] = str(returns)
    if variants and variants.get("mode", "off") != "off":
        from local.inference_server import CHALLENGER_PATH

        env["RG_VARIANT_MODE"] = str(variants["mode"])
        env["RG_CHALLENGER_SHARE"] = str(variants.get("challenger_share", 0.0))
        env["RG_VARIANT_SALT"] = str(variants.get("salt") or "returnguard")
        env["RG_CHALLENGER_URL"] = inference_url.rstrip("/") + CHALLENGER_PATH
    if api_clients:
        env["RG_API_CLIENTS"] = json.dumps(
            [
                {"key_id": key_id, "client": client, "scopes": list(scopes)}
                for key_id, (client, scopes) in api_clients.items()
            ]
        )
    return env


def load_handler(environment: Mapping[str, str], name: str) -> ModuleType:
    """Import the score handler as a fresh module (one Lambda execution environment) under `environment`.

    The handler reads its configuration and creates its clients at import, as in a cold start; the
    process environment is restored afterwards.
    """
    spec = importlib.util.spec_from_file_location(name, HANDLER)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    with patched_environ(environment):
        spec.loader.exec_module(module)
    return module


def seed_features(stack: LocalStack, items: Iterable[tuple[str, Mapping[str, Any]]]) -> int:
    """Write (pk, state) aggregates into the local features table: straight into moto's table when the
    local stack's moto server runs in this process (moto keeps its state per process, so its server
    serves them at once; about 3x faster than over HTTP, which the demo's 100,000 orders' items need),
    else 25 per BatchWriteItem."""
    client = stack.client("dynamodb")
    table = stack.table_names["features"]
    in_process = _moto_table(table, client.meta.region_name)
    if in_process is not None:
        written = 0
        for pk, state in items:
            in_process.put_item(encode_item(pk, state, 1))
            written += 1
        return written
    written, batch = 0, []

    def flush() -> None:
        request = {table: [{"PutRequest": {"Item": encode_item(pk, state, 1)}} for pk, state in batch]}
        for _ in until_processed(
            client.batch_write_item, request, what="the local features table", retries=7
        ):
            pass

    for pk, state in items:
        batch.append((pk, state))
        if len(batch) == 25:
            flush()
            written, batch = written + 25, []
    if batch:
        flush()
        written += len(batch)
    return written


def _moto_table(name: str, region: str) -> Any:
    """moto's in-process table of that name (its default account: the local stack's keys), or None."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.exceptions import ResourceNotFoundException
    from moto.dynamodb.models import dynamodb_backends

    try:
        return dynamodb_backends[DEFAULT_ACCOUNT_ID][region].get_table(name)
    except ResourceNotFoundException:
        return None


def latest_aggregates(processed: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """The Spark job's latest items under a lake's `processed/`, to seed the local features table: the
    orders' (`features/online/`, with the return lane's texts) and, when the lake has card payments,
    the payments' (`payments/features/online/`: payment_customer#, card#, terminal#, merchant#), so a
    payment scored locally has its history as the order does."""
    from glue_jobs.features import load_online

    yield from load_online(processed / "features" / "online")
    payments = processed / "payments" / "features" / "online"
    if payments.is_dir():
        yield from load_online(payments)


def _gateway_error(status: int, code: str, message: str) -> tuple[int, dict[str, str], bytes]:
    body = json.dumps({"error": {"code": code, "message": message, "field": None}}).encode()
    return status, {"Content-Type": "application/json"}, body


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes: no 40 ms delayed-ACK stall

    def log_message(self, format: str, *args: Any) -> None:  # the demo prints its own progress
        pass

    def _answer(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() not in ("content-length", "connection"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _dispatch(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            self._answer(*_gateway_error(400, "bad_request", "invalid Content-Length"))
            return
        if length > GATEWAY_MAX_BODY:
            self.close_connection = True
            self._answer(*_gateway_error(413, "body_too_large", "request body over 10 MB"))
            return
        body = self.rfile.read(length) if length else b""
        if self.server.throttle is not None and not self.server.throttle.take():
            self._answer(*_gateway_error(429, "throttled", "too many requests, retry with backoff"))
            return
        key_id = None
        if self.server.api_keys is not None and needs_api_key(self.command, urlsplit(self.path).path):
            key_id = self.server.api_keys.get(self.headers.get("x-api-key") or "")
            if key_id is None:  # API Gateway's own answer, before the function
                self._answer(*_gateway_error(403, "forbidden", "missing or unknown x-api-key"))
                return
        event = proxy_event(
            self.command, self.path, self.headers.items(), body, self.client_address[0], key_id
        )
        self._answer(*self.server.invoke(event))

    def __getattr__(self, name: str) -> Any:
        # every method (QUERY, TRACE, ...) reaches the function, which answers 404 for what it does not route
        if name.startswith("do_"):
            return self._dispatch
        raise AttributeError(name)


class _CurrentStdout:
    """A stream that writes to sys.stdout as it is at the time of the write (see `serve`)."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


_CURRENT_STDOUT = _CurrentStdout()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    throttle: TokenBucket | None
    api_keys: Mapping[str, str] | None  # key value -> key id; None: keys are not checked
    handler: ModuleType
    log: TextIO
    _busy: threading.Lock

    def invoke(self, event: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        """One execution environment, one event at a time, as Lambda runs a function instance.

        (Powertools keeps metrics and log keys in process-wide state, so two handler copies in one
        process would mix their requests' metrics: concurrency locally means more processes.)
        """
        with self._busy, contextlib.redirect_stdout(self.log):  # EMF metrics are print()ed per request
            result = self.handler.lambda_handler(event, LambdaContext())
        headers = {k: v[-1] for k, v in (result.get("multiValueHeaders") or {}).items()}
        headers.update(result.get("headers") or {})
        return int(result["statusCode"]), headers, (result.get("body") or "").encode()


@dataclass
class ApiServer:
    url: str
    handler: ModuleType
    _httpd: _Server = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
        if self._httpd.log is not sys.stdout:
            self._httpd.log.close()


def serve(
    stack: LocalStack,
    model_config: Mapping[str, Any],
    inference_url: str,
    *,
    port: int = 0,
    throttle: tuple[float, int] | None = None,
    log_path: str | Path | None = None,
    policy: Mapping[str, Any] | None = None,
    fallback_model: str | Path | None = None,
    order_time_past_days: int = LOCAL_ORDER_TIME_PAST_DAYS,
    api_keys: Mapping[str, tuple[str, Iterable[str]]] | None = None,
    return_policy: Mapping[str, Any] | None = None,
    variants: Mapping[str, Any] | None = None,
) -> ApiServer:
    """Start the API on 127.0.0.1 in front of one warm execution environment of the handler.

    `throttle` = (requests per second, burst) as the stage's usage plan; None leaves it off.
    `policy` overrides the model's thresholds and the velocity count (returnguard.policy.POLICY_SETTINGS).
    `fallback_model`: the fallback model's JSON (degraded decisions without it come from the rules).
    `order_time_past_days`: how far back an order_time may lie (order times more than 5 minutes ahead
    are refused whatever it says).
    `api_keys` ({key value: (client, scopes)}): one key per API client, as the api stack makes them. As
    API Gateway, a call to a keyed route without one of them is refused (403) and the key's id reaches
    the function, which maps it to its client's scopes. None: keys unchecked, one client with every
    scope.
    `variants`: shadow or A-B against the local model server's challenger (handler_environment).
    What the function writes to stdout (structured logs, EMF metrics: its CloudWatch Logs stream in
    AWS) goes to `log_path`, or to this process's stdout when None.
    """
    key_ids = {value: f"local-key-{client}" for value, (client, _) in (api_keys or {}).items()}
    environment = handler_environment(
        stack,
        model_config,
        inference_url,
        policy,
        fallback_model,
        order_time_past_days,
        {key_ids[value]: entry for value, entry in api_keys.items()} if api_keys else None,
        return_policy,
        variants,
    )
    log: TextIO = open(log_path, "a", buffering=1) if log_path else sys.stdout  # noqa: SIM115
    with contextlib.redirect_stdout(log):
        module = load_handler(environment, f"returnguard_local_score_{uuid.uuid4().hex[:8]}")
    # Every copy of the handler shares one stdlib logger per service name, whose stream was bound by
    # the first import in this process (possibly to an earlier server's, since closed, log file):
    # write to whatever stdout is when the record is emitted, which invoke() points at this server's log.
    # Not setStream: it flushes the old stream first, which raises when that file was closed.
    stream_handler = module.logger.registered_handler
    with stream_handler.lock:
        stream_handler.stream = _CURRENT_STDOUT
    httpd = _Server(("127.0.0.1", port), _Handler)
    httpd.handler = module
    httpd.log = log
    httpd._busy = threading.Lock()
    httpd.throttle = TokenBucket(*throttle) if throttle else None
    httpd.api_keys = key_ids if api_keys else None
    thread = threading.Thread(target=httpd.serve_forever, name="local-api", daemon=True)
    thread.start()
    return ApiServer(f"http://127.0.0.1:{httpd.server_address[1]}", module, httpd, thread)


def main(argv: list[str] | None = None) -> int:
    parser = Parser(
        prog="python -m local.api_server",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--work", default=str(ROOT / "build" / "demo"), help="the demo's work folder")
    parser.add_argument(
        "--port", type=port_number, help="default 8000, or any free port when 8000 is taken; 0: any free port"
    )
    parser.add_argument("--rate", type=float, default=0, help="throttle: requests/s (0: off)")
    parser.add_argument("--burst", type=int, default=100)
    parser.add_argument("--log", help="write the function's logs and metrics here instead of stdout")
    parser.add_argument(
        "--policy",
        type=policy_json,
        default={},
        help='policy overrides as in the `policy` context, e.g. \'{"high": 0.5, "velocity_orders": 3}\'',
    )
    parser.add_argument(
        "--return-policy",
        type=policy_json,
        default={},
        help='refund ladder overrides as in the `return_policy` context, e.g. \'{"ladder": {"high": "open_box_pickup"}}\'',
    )
    parser.add_argument(
        "--order-time-past-days",
        type=int,
        default=LOCAL_ORDER_TIME_PAST_DAYS,
        help="refuse order times more than this many days old (a deployment's default is 7)",
    )
    args = parser.parse_args(argv)
    port = api_port(parser, args.port)
    from local import stack as local_stack
    from local.inference_server import serve as serve_model
    from returnguard.fallback import FILE_NAME as FALLBACK_FILE
    from returnguard.policy import PolicyConfig
    from returnguard.returns_policy import return_policy
    from training.bootstrap import PipelinePaths

    paths = PipelinePaths(Path(args.work))
    config_file = paths.model / "config.json"
    if not config_file.exists():
        print(f"no model under {paths.model}: run `make demo` first", file=sys.stderr)
        return 2
    model_config = with_return_model(json.loads(config_file.read_text()), paths.model)
    try:
        PolicyConfig.from_model_config(model_config, args.policy)
    except (ValueError, TypeError, AttributeError) as error:
        parser.error(f"argument --policy: {error}")
    try:
        return_policy(serving_model_config(model_config), args.return_policy)
    except (ValueError, TypeError, AttributeError) as error:
        parser.error(f"argument --return-policy: {error}")
    stack = local_stack.start()
    model = serve_model(str(paths.model))
    seeded = seed_features(stack, latest_aggregates(paths.processed))
    api = serve(
        stack,
        model_config,
        model.url,
        port=port,
        throttle=(args.rate, args.burst) if args.rate > 0 else None,
        log_path=args.log,
        policy=args.policy,
        return_policy=args.return_policy,
        fallback_model=paths.model / FALLBACK_FILE,
        order_time_past_days=args.order_time_past_days,
    )
    write_api_file(paths.work, api.url)
    print(
        f"risk-score API on {api.url}/v1/risk-score ({seeded:,} aggregates loaded; address in "
        f"{paths.work / API_FILE}); Ctrl-C to stop",
        flush=True,
    )
    try:
        local_stack.run_until_interrupted(stack, model, api)
    finally:
        remove_api_file(paths.work)
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
