"""`returnguard`: a small client for the risk-score API, for people who would rather not write curl.

    returnguard score --order-id O1 --customer-id C1 --product-id P1 --region KA --amount 2499 \\
        --currency INR --payment cod --address "12 MG Road, Bengaluru"
    returnguard score --file order.json           # a whole request body ("-" reads stdin)
    returnguard decision dec_0123...              # a stored decision
    returnguard health
    returnguard batch score transactions.csv      # the batch pipeline on one file, against local AWS
    returnguard invoke --file features.json --model payment     # the model endpoint itself (seed 001)
    returnguard models list                       # registered versions, their gate numbers, which one serves
    returnguard models show 3 | promote 3 | rollback | compare 2 3

The API's address comes from --url or RETURNGUARD_URL; without them, from build/demo/api.json,
which the local API (`make demo SERVE=1`, `python -m local.api_server`) writes while it runs; else
http://127.0.0.1:8000. For the deployed API pass the stack output ApiBaseUrl. The key comes from --api-key or RETURNGUARD_API_KEY (sent as x-api-key, as the deployed API expects). Exit
status: 0 answered, 1 the API refused (its error code is printed), 2 bad usage or API unreachable.

`invoke` calls the model endpoint the way seed 001's invoke script does: a JSON object of features
in, `{"fraud_probability": p}` out (`{"instances": [...]}` gets the full answer with contributions).
Locally it posts to the inference server's /invocations (--inference-url, RETURNGUARD_INFERENCE_URL);
with --endpoint-name it calls the SageMaker endpoint (the `returnguard` command passes the AWS caller
in from returnguard/aws/cli.py, so this module stays free of boto3).

`models` talks to the model registry and the scoring endpoint instead of the API: in AWS with the
usual credentials (--stage picks returnguard-<stage>; --prefix, --group, --endpoint name them), or
with --local to the local stack's AWS (moto server) while `make demo SERVE=1` runs, whose address is
in build/demo/local-aws.json; there the local model server reloads on promote and roll back. Exit
status: 0 done, 1 refused (the reason's code is printed), 2 bad usage or AWS unreachable.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_INFERENCE_URL = "http://127.0.0.1:8080"
# (endpoint name, region or None, JSON body) -> (HTTP status, answer body): the SageMaker runtime call
EndpointInvoker = Callable[[str, "str | None", bytes], tuple[int, bytes]]
LOCAL_API_FILE = Path("build") / "demo" / "api.json"  # written by the local API while it serves


class ApiError(Exception):
    def __init__(self, status: int, body: dict[str, Any]):
        found = body.get("error")
        error: dict[str, Any] = found if isinstance(found, dict) else {}
        self.status = status
        self.code = str(error.get("code") or body.get("message") or "error")
        self.message = str(error.get("message") or body.get("message") or "")
        self.field = error.get("field")
        self.details = error.get("details") or []
        super().__init__(f"HTTP {status} {self.code}: {self.message}")


class Unreachable(Exception):
    pass


class Client:
    """The API over HTTP (stdlib only). `url` is the API's base, without /v1."""

    def __init__(self, url: str = DEFAULT_URL, api_key: str | None = None, timeout_s: float = 10.0):
        self.url = url.rstrip("/")
        self.api_key = api_key
        self.timeout_s = timeout_s

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        if self.api_key:
            headers["x-api-key"] = self.api_key
        request = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310
                return dict(json.loads(response.read()))
        except urllib.error.HTTPError as error:
            raw = error.read()
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = {"message": raw.decode("utf-8", "replace")[:200]}
            raise ApiError(error.code, parsed if isinstance(parsed, dict) else {}) from None
        except (urllib.error.URLError, OSError) as error:
            raise Unreachable(f"{self.url} unreachable: {getattr(error, 'reason', error)}") from None

    def score(self, request: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", "/v1/risk-score", request)

    def decision(self, decision_id: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/decisions/{decision_id}")

    def health(self) -> dict[str, Any]:
        return self._call("GET", "/v1/health")


def local_api_url(roots: tuple[Path, ...] | None = None) -> str | None:
    """Where the local API said it listens: build/demo/api.json under the current folder, then under
    the source checkout this package runs from."""
    for root in roots or (Path.cwd(), Path(__file__).resolve().parent.parent):
        try:
            url = json.loads((root / LOCAL_API_FILE).read_text(encoding="utf-8")).get("url")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(url, str) and url:
            return url
    return None


def default_url() -> str:
    return os.environ.get("RETURNGUARD_URL") or local_api_url() or DEFAULT_URL


def order_request(args: argparse.Namespace) -> dict[str, Any]:
    order: dict[str, Any] = {
        "order_id": args.order_id,
        "customer_id": args.customer_id,
        "product_id": args.product_id,
        "region": args.region,
        "amount": args.amount,
        "currency": args.currency,
        "payment_method": args.payment,
        "delivery_address": args.address,
    }
    for name in ("seller_id", "category", "card_fingerprint", "order_time"):
        if getattr(args, name) is not None:
            order[name] = getattr(args, name)
    return {"event_type": "order", "order": order, "locale": args.locale, "explain": args.explain}


def describe(decision: dict[str, Any]) -> str:
    """A decision as a person reads it."""
    score = decision.get("risk_score")
    lines = [
        f"{decision['risk_level'].upper()} risk"
        + (f" ({score:.2f})" if isinstance(score, (int, float)) else " (model unavailable: rules only)")
        + f" → {decision['recommended_action']}",
        f"  {decision['explanation']['summary']}",
    ]
    lines += [f"  - {factor}" for factor in decision["explanation"]["key_factors"]]
    lines.append(f"  recommendation: {decision['explanation']['recommendation']}")
    if decision.get("rules_triggered"):
        lines.append(f"  rules: {', '.join(decision['rules_triggered'])}")
    lines.append(
        f"  decision {decision['decision_id']} · confidence {decision['confidence']:.2f} · "
        f"model {decision['model_version']} · {decision['processing_time_ms']:.1f} ms"
    )
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="returnguard", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--url",
        help="the API's base URL, without /v1 (default: RETURNGUARD_URL, else build/demo/api.json, "
        f"else {DEFAULT_URL})",
    )
    parser.add_argument("--api-key", default=os.environ.get("RETURNGUARD_API_KEY"))
    parser.add_argument("--json", action="store_true", help="print the API's JSON answer as it is")
    commands = parser.add_subparsers(dest="command", required=True)

    score = commands.add_parser("score", help="score one order")
    score.add_argument("--file", help="a request body as JSON ('-': stdin); the order flags are then ignored")
    for flag in ("order-id", "customer-id", "product-id", "region", "address"):
        score.add_argument(f"--{flag}")
    score.add_argument("--amount", type=float)
    score.add_argument("--currency", default="INR")
    score.add_argument("--payment", default="card", choices=["card", "upi", "netbanking", "wallet", "cod"])
    score.add_argument("--seller-id")
    score.add_argument("--category")
    score.add_argument("--card-fingerprint")
    score.add_argument("--order-time", help="ISO 8601; default now")
    score.add_argument("--locale", default="en", choices=["en", "hi"])
    score.add_argument("--explain", default="template", choices=["template", "narrative"])

    invoke = commands.add_parser("invoke", help="call the model endpoint: features in, fraud probability out")
    invoke.add_argument("--file", required=True, help="a JSON object of features ('-': stdin)")
    invoke.add_argument("--model", choices=["order", "return", "payment"], help="the archive's lane")
    invoke.add_argument(
        "--inference-url",
        default=os.environ.get("RETURNGUARD_INFERENCE_URL", DEFAULT_INFERENCE_URL),
        help="the local inference server (python -m local.inference_server prints it)",
    )
    invoke.add_argument(
        "--endpoint-name", help="a SageMaker endpoint instead (AWS credentials from the environment)"
    )
    invoke.add_argument("--region")

    decision = commands.add_parser("decision", help="show a stored decision")
    decision.add_argument("decision_id")
    commands.add_parser("health", help="is the API up, which model does it serve")
    batch = commands.add_parser("batch", help="batch-score a transactions file (seed 003's pipeline)")
    batch_commands = batch.add_subparsers(dest="batch_command", required=True)
    batch_score = batch_commands.add_parser(
        "score",
        help="run the batch pipeline's steps on FILE against local AWS and print the alert "
        "(exit 0 scored or seen before, 1 the file was quarantined)",
    )
    batch_score.add_argument("file", type=Path, help="CSV, JSON Lines or Parquet with the model's features")
    batch_score.add_argument("--model-dir", type=Path, default=Path("build/payments/model"))
    batch_score.add_argument(
        "--endpoint-url", help="a running local AWS (moto server); default: start one for this run"
    )
    batch_score.add_argument(
        "--prefix", default="returnguard-local", help="the local stack's name prefix (with --endpoint-url)"
    )
    batch_score.add_argument("--explain", choices=["flagged", "all"], default="flagged")
    publish = batch_commands.add_parser(
        "publish-model",
        help="check a trained labelled-CSV model and put it where the batch pipeline in AWS reads it "
        "(the lake's models/payments/current/)",
    )
    publish.add_argument("--model-dir", type=Path, default=Path("build/payments/model"))
    lake = publish.add_mutually_exclusive_group()
    lake.add_argument(
        "--bucket", help="the lake bucket (default: the stage's Data stack's LakeBucket output)"
    )
    lake.add_argument("--stage", default=os.environ.get("RETURNGUARD_STAGE", "dev"), help="default dev")
    publish.add_argument(
        "--region", default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    )
    publish.add_argument("--endpoint-url", help="an AWS endpoint URL (e.g. a moto server)")

    models = commands.add_parser(
        "models",
        help="model versions: list, show, promote, roll back, compare, experiment (registry + endpoint)",
    )
    where = models.add_mutually_exclusive_group()
    where.add_argument(
        "--local", action="store_true", help="the local stack's AWS (build/demo/local-aws.json)"
    )
    where.add_argument("--stage", default=os.environ.get("RETURNGUARD_STAGE", "dev"), help="default dev")
    models.add_argument("--prefix", help="resource name prefix (default returnguard-<stage>)")
    models.add_argument("--group", help="model package group (default: the one named <prefix>-return-abuse*)")
    models.add_argument("--endpoint", help="scoring endpoint (default <prefix>-scoring)")
    models.add_argument(
        "--lake", help="the lake bucket promote and rollback publish to (default: the Data stack's output)"
    )
    models.add_argument("--endpoint-url", help="an AWS endpoint URL (e.g. a moto server)")
    models.add_argument(
        "--region", default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    )
    actions = models.add_subparsers(dest="action", required=True)
    actions.add_parser(
        "list", help="every registered version, its gate decision and numbers, and what serves"
    )
    show = actions.add_parser("show", help="one version: its registry entry and its gate record")
    show.add_argument("version", type=int)
    promote = actions.add_parser(
        "promote", help="serve a version (Approved ones; --force overrides the gate)"
    )
    promote.add_argument("version", type=int)
    promote.add_argument("--force", action="store_true", help="promote a version the gate rejected")
    promote.add_argument("--reason", default="", help="why (required with --force; recorded in the registry)")
    promote.add_argument("--wait", action="store_true", help="wait until the endpoint is InService on it")
    rollback = actions.add_parser("rollback", help="serve the endpoint config the current one replaced")
    rollback.add_argument("--wait", action="store_true", help="wait until the endpoint is InService on it")
    compare = actions.add_parser("compare", help="two versions' recorded numbers side by side")
    compare.add_argument("first", type=int)
    compare.add_argument("second", type=int)
    trial = actions.add_parser(
        "experiment", help="run a version as the endpoint's challenger (shadow / A-B), or stop that"
    )
    steps = trial.add_subparsers(dest="experiment", required=True)
    start = steps.add_parser("start", help="add version N as the challenger variant beside the champion")
    start.add_argument("version", type=int)
    start.add_argument("--wait", action="store_true", help="wait until the endpoint is InService on it")
    stop = steps.add_parser("stop", help="remove the challenger variant; the champion serves on")
    stop.add_argument("--wait", action="store_true", help="wait until the endpoint is InService on it")
    return parser


REQUIRED = ("order_id", "customer_id", "product_id", "region", "amount", "address")


def invoke_local(url: str, body: bytes, timeout_s: float = 10.0) -> tuple[int, bytes]:
    """POST the body to the inference server's /invocations: (status, answer)."""
    request = urllib.request.Request(
        url.rstrip("/") + "/invocations",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
        raise Unreachable(f"cannot reach the inference server at {url}: {error}") from None


def invoke_body(features: Any, model: str | None) -> bytes:
    if not isinstance(features, dict) or not features:
        raise ValueError("the features must be a JSON object (feature: value), or {'instances': [...]}")
    return json.dumps({**features, "model": model} if model else features).encode("utf-8")


def main(
    argv: list[str] | None = None, out: TextIO | None = None, endpoint_invoker: EndpointInvoker | None = None
) -> int:
    out = out or sys.stdout
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "batch" and args.batch_command == "publish-model":
        from batch.publish import publish_model

        return publish_model(args, out)
    if args.command == "batch":
        from batch.cli import batch_score

        return batch_score(args, out)
    if args.command == "models":
        # The registry commands need the AWS SDK; the API commands do not load it. This module is the
        # command line's composition root, so it is where an adapter is picked.
        from returnguard.aws.models_cli import run as run_models

        return run_models(args, out)
    client = Client(args.url or default_url(), args.api_key)
    try:
        if args.command == "invoke":
            text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text(encoding="utf-8")
            body = invoke_body(json.loads(text), args.model)
            if args.endpoint_name:
                if endpoint_invoker is None:
                    parser.error("--endpoint-name needs the AWS caller: run the `returnguard` command")
                status, raw = endpoint_invoker(args.endpoint_name, args.region, body)
            else:
                status, raw = invoke_local(args.inference_url, body)
            answer = json.loads(raw.decode("utf-8") or "{}")
            if status >= 400:
                raise ApiError(status, answer if isinstance(answer, dict) else {})
            print(json.dumps(answer, ensure_ascii=False), file=out)
        elif args.command == "score":
            if args.file:
                text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text(encoding="utf-8")
                request = json.loads(text)
            else:
                missing = [f"--{name.replace('_', '-')}" for name in REQUIRED if getattr(args, name) is None]
                if missing:
                    parser.error(f"score needs {', '.join(missing)} (or --file)")
                request = order_request(args)
            answer = client.score(request)
            print(
                json.dumps(answer, indent=2, ensure_ascii=False) if args.json else describe(answer), file=out
            )
        elif args.command == "decision":
            answer = client.decision(args.decision_id)
            print(
                json.dumps(answer, indent=2, ensure_ascii=False) if args.json else describe(answer), file=out
            )
        else:
            print(json.dumps(client.health()), file=out)
    except ApiError as error:
        print(f"error: HTTP {error.status} {error.code}: {error.message}", file=sys.stderr)
        for detail in error.details:
            print(f"  {detail.get('field')}: {detail.get('message')}", file=sys.stderr)
        return 1
    except (Unreachable, OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
