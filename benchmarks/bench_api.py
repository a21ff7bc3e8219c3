"""Risk-score API benchmarks: the handler's own CPU per decision, its cold import, and POSTs end to end
through the local API (moto server + local inference server), with the inference server's share.

Baselines in the same run: `returnguard.scoring.decide` alone for the handler (so the ratio is what
Powertools, validation and JSON cost on top of the decision), `import boto3` for the cold import (a
floor every Python Lambda on boto3 pays), and a POST straight to the inference server for the API
(ratio: how much slower a whole decision is than the model call inside it). Degraded mode (the
endpoint down, the fallback model scoring inside the function) is measured against the same
decisions with the model up, and the fallback's ROC-AUC against the main model's on the same test
window of the same training run.
Targets (issue 4): handler p99 ≤ 2 ms, import ≤ 300 ms, local API p95 ≤ 25 ms and ≥ 200 req/s.
Return requests (issue 11) are measured the same two ways, handler CPU and POSTs through the local API
with the return model in the same archive, each against the order figures of the same run.
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
HANDLER_ENV = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "RG_FEATURES_TABLE": "features",
    "RG_DECISIONS_TABLE": "decisions",
    "RG_AUDIT_TABLE": "audit",
    "RG_ENDPOINT_NAME": "bench",
    "RG_ORDER_TIME_PAST_S": str(3660 * 86_400),  # the orders are dated inside a synthetic history
    "RG_DECISION_ID_SECRET": "test-only-decision-id-secret-32-chars-long",
    "POWERTOOLS_SERVICE_NAME": "returnguard-score",
    "POWERTOOLS_METRICS_NAMESPACE": "ReturnGuard",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
}


def _pct(samples: list[float], q: float) -> float:
    return float(np.percentile(samples, q))


class _Decisions:
    """DecisionStore's interface in memory: no I/O in the handler CPU benchmark."""

    def __init__(self) -> None:
        self.items: dict[str, dict] = {}

    def save(self, response: Any, **_: Any) -> tuple[dict, bool]:
        body = response.model_dump(mode="json")
        self.items[response.decision_id] = body
        return body, False

    def get_response(self, decision_id: str) -> dict | None:
        return self.items.get(decision_id)


class _FixedModel:
    def __init__(self, result: Any):
        self.result = result

    def score(self, vector: Mapping[str, float]) -> Any:
        return self.result


def _world(orders: int, root: Path) -> dict[str, Any]:
    """Synthetic history → aggregates (pk, state), a trained model, and new orders to score."""
    from returnguard import synth
    from returnguard.aggregates import replay
    from returnguard.events import order_payload
    from returnguard.tables import entity_key
    from training import train

    data = synth.generate(synth.SynthConfig(orders=orders, seed=5))
    profiles, contexts, returns = synth.to_contexts(data)
    store, walk = replay(profiles, contexts, returns)
    table = pd.DataFrame(
        [{"order_id": o.order_id, "order_time_ms": o.order_time_ms, **v} for o, v in walk]
    ).merge(synth.label_facts(data), on="order_id")
    trained = train.train_frame(table, root, "--num_round", "150", "--baselines", "0")
    items = [(entity_key("customer", cid), state) for cid, state in store.customers.items()]
    items += [(entity_key(group, eid), state) for (group, eid), state in store.entities.items()]
    end = max(o.order_time_ms for o in contexts)
    requests = []
    for i, o in enumerate(contexts[-2000:]):
        when = pd.Timestamp(end + 86_400_000 + i * 61_000, unit="ms", tz="UTC").isoformat()
        order = {**order_payload(o), "order_id": f"{o.order_id}-b", "order_time": when}
        requests.append({"event_type": "order", "order": order})
    from local.api_server import with_return_model
    from returnguard.synth_returns import generate_returns, replay_return_table

    returns_table = replay_return_table(data, generate_returns(data))
    lane = "--lane", "return", "--return_window_days", "0", "--controls", "0", "--baselines", "0"
    train.train_frame(returns_table, root / "return-train", "--num_round", "150", *lane)
    shutil.copytree(root / "return-train" / "model", root / "model" / "return")
    config = with_return_model(json.loads((root / "model" / "config.json").read_text()), root / "model")
    return {
        "items": items,
        "requests": requests,
        "return_requests": [_return_request(i, r["order"]) for i, r in enumerate(requests)],
        "model_dir": root / "model",
        "config": config,
        "metrics": trained["metrics"],
    }


_REASONS = (
    ("size_fit", "Too small, I need one size bigger"),
    ("damaged", "डिब्बा खोला तो सामान टूटा हुआ था"),
    ("changed_mind", "Mujhe ab iski zaroorat nahi hai"),
    ("defective", "Stopped working after two days"),
    ("empty_box", "The box was empty"),
)


def _return_request(i: int, order: dict) -> dict:
    """A return of one of the new orders: delivered 3 days after it, asked 5 days later, full refund."""
    placed = pd.Timestamp(order["order_time"])
    code, reason = _REASONS[i % len(_REASONS)]
    ret = {
        "return_id": f"{order['order_id']}-r",
        "order_id": order["order_id"],
        "customer_id": order["customer_id"],
        "product_id": order["product_id"],
        "seller_id": order["seller_id"],
        "category": order["category"],
        "region": order["region"],
        "return_date": (placed + pd.Timedelta(days=8)).isoformat(),
        "order_time": order["order_time"],
        "delivered_at": (placed + pd.Timedelta(days=3)).isoformat(),
        "order_amount": order["amount"],
        "refund_amount": order["amount"],
        "currency": order["currency"],
        "reason_code": code,
        "reason": reason,
        "return_method": "pickup",
        "delivery_address": order["delivery_address"],
    }
    return {"event_type": "return", "return": ret}


class _NoRecords:
    """OrderRecords' and RecentOrders' interfaces without I/O (the handler CPU benchmarks)."""

    def record(self, *_: Any, **__: Any) -> None:
        pass

    def record_order(self, **_: Any) -> None:
        pass

    def record_return(self, **_: Any) -> None:
        pass


class _DownModel:
    def score(self, vector: Mapping[str, float]) -> Any:
        from returnguard.ports import ModelUnavailable

        raise ModelUnavailable("the circuit is open", "circuit_open")


def bench_fallback_quality(world: dict[str, Any]) -> list[dict]:
    models = world["metrics"]["models"]
    fallback, main = models[world["metrics"]["fallback"]["model"]], models["xgboost"]
    return [
        {
            "name": f"fallback model (logistic regression) {label}, test window",
            "value": fallback[key],
            "unit": "",
            "baseline": main[key],
            "ratio": fallback[key] / main[key],
            "note": "baseline: the main model (XGBoost) of the same training run, same time split",
        }
        for key, label in (("roc_auc", "ROC-AUC"), ("pr_auc", "PR-AUC"))
    ]


def _event(request: dict) -> dict:
    from local.api_server import proxy_event

    return proxy_event(
        "POST", "/v1/risk-score", [("Content-Type", "application/json")], json.dumps(request).encode()
    )


def bench_handler_cpu(world: dict[str, Any], count: int) -> list[dict]:
    from local.api_server import LambdaContext, load_handler
    from returnguard.aws.feature_store import InMemoryFeatureStore
    from returnguard.aws.model_client import ModelScore
    from returnguard.fallback import FILE_NAME, FallbackModel
    from returnguard.features import FEATURE_NAMES
    from returnguard.policy import PolicyConfig
    from returnguard.schemas import RiskScoreRequest
    from returnguard.scoring import decide
    from training.inference import input_fn, model_fn, predict_fn

    env = {**HANDLER_ENV, "RG_MODEL_CONFIG": json.dumps(world["config"])}
    module = load_handler(env, "bench_score_handler")
    loaded = model_fn(str(world["model_dir"]))
    vector = dict.fromkeys(FEATURE_NAMES, 1.0)
    prediction = predict_fn(input_fn(json.dumps({"instances": [vector]}), "application/json"), loaded)[
        "predictions"
    ][0]
    fixed = _FixedModel(ModelScore(prediction["score"], prediction["contributions"], loaded.version))
    store = InMemoryFeatureStore(dict(world["items"]))
    module.features, module.model, module.decisions = store, fixed, _Decisions()
    module.recent_orders = module.order_records = _NoRecords()  # their writes are I/O
    requests = world["requests"][:count]
    events = [_event(r) for r in requests]
    context = LambdaContext()
    with open(os.devnull, "w") as sink:  # EMF metrics are printed per request
        real_stdout, sys.stdout = sys.stdout, sink
        try:
            for event in events[:50]:
                module.lambda_handler(event, context)
            module.decisions = _Decisions()
            handler_ms = []
            for event in events:
                started = time.perf_counter()
                result = module.lambda_handler(event, context)
                handler_ms.append((time.perf_counter() - started) * 1000)
                assert result["statusCode"] == 200, result["body"]
        finally:
            sys.stdout = real_stdout
        degraded_ms = []
        fallback = FallbackModel.load(world["model_dir"] / FILE_NAME)  # the serving model's, as deployed
        module.model = _DownModel()
        module.PROFILES.current = dataclasses.replace(module.PROFILES.current, fallback=fallback)
        module.decisions = _Decisions()
        real_stdout, sys.stdout = sys.stdout, sink
        try:
            for event in events:
                started = time.perf_counter()
                result = module.lambda_handler(event, context)
                degraded_ms.append((time.perf_counter() - started) * 1000)
                assert json.loads(result["body"])["degraded"], result["body"]
        finally:
            sys.stdout = real_stdout
    world["order_handler_ms"] = handler_ms
    policy = PolicyConfig.from_model_config(world["config"])
    parsed = [RiskScoreRequest.model_validate(r) for r in requests]
    decide_ms = []
    for request in parsed:
        started = time.perf_counter()
        decide(request, store, fixed, policy)
        decide_ms.append((time.perf_counter() - started) * 1000)
    rows = []
    for q in (50, 99):
        rows.append(
            {
                "name": f"handler CPU per decision p{q} (no I/O)",
                "value": _pct(handler_ms, q),
                "unit": "ms",
                "baseline": _pct(decide_ms, q),
                "ratio": _pct(handler_ms, q) / _pct(decide_ms, q),
                "note": "baseline: returnguard.scoring.decide alone; target p99 ≤ 2 ms",
            }
        )
        rows.append(
            {
                "name": f"handler CPU per degraded decision p{q} (fallback model, no I/O)",
                "value": _pct(degraded_ms, q),
                "unit": "ms",
                "baseline": _pct(handler_ms, q),
                "ratio": _pct(degraded_ms, q) / _pct(handler_ms, q),
                "note": "baseline: the same decisions scored by the main model's (fixed) answer",
            }
        )
    return rows


def bench_return_handler_cpu(world: dict[str, Any], count: int) -> list[dict]:
    """The handler's CPU per return decision (no I/O: the store in memory, the return model's answer
    fixed), next to the same run's order decisions."""
    from local.api_server import LambdaContext, load_handler
    from returnguard.aws.feature_store import InMemoryFeatureStore
    from returnguard.aws.model_client import ModelScore
    from returnguard.features import RETURN_FEATURE_NAMES
    from training.inference import input_fn, model_fn, predict_fn

    env = {**HANDLER_ENV, "RG_MODEL_CONFIG": json.dumps(world["config"])}
    module = load_handler(env, "bench_score_handler_returns")
    loaded = model_fn(str(world["model_dir"]))
    vector = dict.fromkeys(RETURN_FEATURE_NAMES, 1.0)
    body = json.dumps({"model": "return", "instances": [vector]})
    prediction = predict_fn(input_fn(body, "application/json"), loaded)
    answer = prediction["predictions"][0]
    fixed = _FixedModel(ModelScore(answer["score"], answer["contributions"], prediction["model_version"]))
    module.features, module.return_model = InMemoryFeatureStore(dict(world["items"])), fixed
    module.decisions, module.order_records = _Decisions(), _NoRecords()
    module.recent_orders = _NoRecords()
    events = [_event(r) for r in world["return_requests"][:count]]
    context = LambdaContext()
    handler_ms = []
    with open(os.devnull, "w") as sink:
        real_stdout, sys.stdout = sys.stdout, sink
        try:
            for event in events[:50]:
                module.lambda_handler(event, context)
            module.decisions = _Decisions()
            for event in events:
                started = time.perf_counter()
                result = module.lambda_handler(event, context)
                handler_ms.append((time.perf_counter() - started) * 1000)
                assert result["statusCode"] == 200, result["body"]
                assert "return_id" in json.loads(result["body"])
        finally:
            sys.stdout = real_stdout
    orders = world["order_handler_ms"]
    return [
        {
            "name": f"handler CPU per return decision p{q} (no I/O)",
            "value": _pct(handler_ms, q),
            "unit": "ms",
            "baseline": _pct(orders, q),
            "ratio": _pct(handler_ms, q) / _pct(orders, q),
            "note": "baseline: the handler's CPU per order decision in the same run",
        }
        for q in (50, 99)
    ]


OWN_CODE = ("lambdas", "returnguard")  # what the score function's asset ships


def _import_seconds(code: str, env: Mapping[str, str], pycache: Path, *, ours_cached: bool) -> float:
    """Seconds `code` prints, run in a fresh interpreter that keeps every module's .pyc under `pycache`.
    Unless `ours_cached`, the .pyc of our own code (OWN_CODE) are removed first and not written again, so our
    modules compile from source while the standard library and dependencies load their bytecode."""
    environment = {**os.environ, **env, "PYTHONPYCACHEPREFIX": str(pycache)}
    environment.pop("PYTHONDONTWRITEBYTECODE", None)  # `make` sets it
    if not ours_cached:
        for package in OWN_CODE:
            shutil.rmtree(pycache / ROOT.relative_to(ROOT.anchor) / package, ignore_errors=True)
        environment["PYTHONDONTWRITEBYTECODE"] = "1"
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environment, cwd=ROOT, check=True
    )
    return float(run.stdout.strip().splitlines()[-1])


def bench_cold_import(world: dict[str, Any], repeats: int) -> list[dict]:
    """Import the handler module in a fresh interpreter, as Lambda's init phase does.

    As Lambda runs it, the function's own code (`lambdas/score` + `returnguard/`, shipped as .py to a
    read-only /var/task) compiles on every cold start while the runtime's boto3 and the standard
    library load bytecode; with our bytecode cached too is what shipping .pyc would give (it needs a
    Python 3.12 to compile them, which `make` does not assume). Baseline: `import boto3` + one client.
    """
    env = {**HANDLER_ENV, "RG_MODEL_CONFIG": json.dumps(world["config"]), "PYTHONPATH": str(ROOT)}
    handler = (
        "import time, importlib.util; t = time.perf_counter(); "
        f"spec = importlib.util.spec_from_file_location('h', {str(ROOT / 'lambdas/score/handler.py')!r}); "
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); print(time.perf_counter() - t)"
    )
    floor = "import time; t = time.perf_counter(); import boto3; boto3.client('dynamodb'); print(time.perf_counter() - t)"
    traced = floor.replace("print(", "from aws_lambda_powertools import Tracer; Tracer(); print(")
    rows = []
    with tempfile.TemporaryDirectory() as pycache:
        _import_seconds(handler, env, Path(pycache), ours_cached=True)  # warm-up: writes every .pyc
        base = statistics.median(
            _import_seconds(floor, env, Path(pycache), ours_cached=True) for _ in range(repeats)
        )
        tracer = statistics.median(
            _import_seconds(traced, env, Path(pycache), ours_cached=True) for _ in range(repeats)
        )
        rows.append(
            {
                "name": "cold import of boto3 + one client + powertools Tracer() (median)",
                "value": tracer * 1000,
                "unit": "ms",
                "baseline": base * 1000,
                "ratio": tracer / base,
                "note": "what the handler cannot go below while it traces: the X-Ray SDK makes its own clients",
            }
        )
        for ours_cached, case in (
            (False, "as in Lambda: our code from source"),
            (True, "all bytecode cached"),
        ):
            if ours_cached:  # the from-source runs removed our .pyc: write them again first
                _import_seconds(handler, env, Path(pycache), ours_cached=True)
            ours = statistics.median(
                _import_seconds(handler, env, Path(pycache), ours_cached=ours_cached) for _ in range(repeats)
            )
            rows.append(
                {
                    "name": f"cold import of the score handler, {case} (median)",
                    "value": ours * 1000,
                    "unit": "ms",
                    "baseline": base * 1000,
                    "ratio": ours / base,
                    "note": "baseline: import boto3 + one client, bytecode cached; target ≤ 300 ms",
                }
            )
    return rows


def _post_all(url: str, path: str, bodies: list[bytes], latencies: list[float], errors: list[int]) -> None:
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    for body in bodies:
        started = time.perf_counter()
        connection.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        latencies.append((time.perf_counter() - started) * 1000)
        if response.status != 200:
            errors.append(response.status)
    connection.close()


def _post_pairs(
    urls: tuple[str, ...],
    path: str,
    pairs: list[list[bytes]],
    latencies: tuple[list[float], ...],
    errors: list[int],
) -> None:
    """Each pair's bodies to `urls` in turn (one kept-alive connection per URL), latencies per URL."""
    connections = []
    for url in urls:
        host, port = url.removeprefix("http://").split(":")
        connections.append(http.client.HTTPConnection(host, int(port), timeout=10))
    for bodies in pairs:
        for connection, body, samples in zip(connections, bodies, latencies, strict=True):
            started = time.perf_counter()
            connection.request("POST", path, body=body, headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            response.read()
            samples.append((time.perf_counter() - started) * 1000)
            if response.status != 200:
                errors.append(response.status)
    for connection in connections:
        connection.close()


def bench_local_api(world: dict[str, Any], count: int, root: Path) -> list[dict]:
    from local import stack as local_stack
    from local.api_server import seed_features, serve
    from local.inference_server import serve as serve_model
    from local.stack import free_port
    from returnguard.features import OrderContext, amount_to_minor, compute_features

    stack = local_stack.start(prefix="returnguard-bench")
    model = serve_model(str(world["model_dir"]))
    rows: list[dict] = []
    try:
        seed_features(stack, world["items"])
        api = serve(stack, world["config"], model.url, log_path=root / "api.log")
        try:
            bodies = [json.dumps(r).encode() for r in world["requests"]]
            first = world["requests"][0]
            warm = [
                json.dumps({**first, "order": {**first["order"], "order_id": f"warm-{i}"}}).encode()
                for i in range(20)
            ]
            _post_all(api.url, "/v1/risk-score", warm, [], [])
            sequential: list[float] = []
            errors: list[int] = []
            started = time.perf_counter()
            _post_all(api.url, "/v1/risk-score", bodies[:count], sequential, errors)
            sequential_rps = count / (time.perf_counter() - started)
            # returns of those orders (recorded as the API decided them), the return model scoring
            return_bodies = [json.dumps(r).encode() for r in world["return_requests"][:count]]
            returned: list[float] = []
            _post_all(api.url, "/v1/risk-score", return_bodies, returned, errors)
            concurrent: list[float] = []
            threads = [
                threading.Thread(
                    target=_post_all,
                    args=(
                        api.url,
                        "/v1/risk-score",
                        bodies[count + i :: 4][: count // 4],
                        concurrent,
                        errors,
                    ),
                )
                for i in range(4)
            ]
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            concurrent_rps = len(concurrent) / (time.perf_counter() - started)
            # the same orders with the model killed: the fallback answers inside the function. Each
            # degraded POST is paired with the same order to the API with the model up, one after the
            # other, so a busy machine slows both alike (measured one run after the other, a shared
            # machine's load drift read as 4.8x)
            degraded_api = serve(
                stack,
                world["config"],
                f"http://127.0.0.1:{free_port()}",  # nothing listens: connection refused, then circuit open
                log_path=root / "api-degraded.log",
                fallback_model=world["model_dir"] / "fallback_model.json",
            )
            try:
                pairs = [
                    [
                        json.dumps(
                            {**r, "order": {**r["order"], "order_id": r["order"]["order_id"] + tag}}
                        ).encode()
                        for tag in ("-u", "-d")
                    ]
                    for r in world["requests"][: count + 20]
                ]
                urls = (api.url, degraded_api.url)
                _post_pairs(urls, "/v1/risk-score", pairs[count:], ([], []), [])  # warm-up
                paired_up: list[float] = []
                degraded: list[float] = []
                _post_pairs(urls, "/v1/risk-score", pairs[:count], (paired_up, degraded), errors)
            finally:
                degraded_api.stop()
        finally:
            api.stop()
        # the inference server's share: the same orders' vectors, POSTed straight to /invocations
        vectors = []  # the model's cost does not depend on the values: the no-history vectors will do
        for r in world["requests"][:count]:
            o = r["order"]
            context = OrderContext(
                o["order_id"], o["customer_id"], o["product_id"], o["seller_id"], o["category"], o["region"],
                int(pd.Timestamp(o["order_time"]).timestamp() * 1000), amount_to_minor(o["amount"]),
                o["payment_method"], o["delivery_address"],
            )  # fmt: skip
            vectors.append(json.dumps({"instances": [compute_features(context, None, {})]}).encode())
        model_ms: list[float] = []
        _post_all(model.url, "/invocations", vectors[:20], [], [])
        _post_all(model.url, "/invocations", vectors, model_ms, [])
    finally:
        model.stop()
        stack.stop()
    for q in (50, 95, 99):
        rows.append(
            {
                "name": f"local API POST /v1/risk-score p{q} (1 client)",
                "value": _pct(sequential, q),
                "unit": "ms",
                "baseline": _pct(model_ms, q),
                "ratio": _pct(sequential, q) / _pct(model_ms, q),
                "note": "baseline: the inference server's own POST /invocations (its share)",
            }
        )
    for q in (50, 95):
        rows.append(
            {
                "name": f"local API POST of a return request p{q} (return model, 1 client)",
                "value": _pct(returned, q),
                "unit": "ms",
                "baseline": _pct(sequential, q),
                "ratio": _pct(returned, q) / _pct(sequential, q),
                "note": "baseline: the order POSTs of the same run",
            }
        )
    for q in (50, 95):
        rows.append(
            {
                "name": f"local API degraded POST p{q} (model killed, fallback scoring, 1 client)",
                "value": _pct(degraded, q),
                "unit": "ms",
                "baseline": _pct(paired_up, q),
                "ratio": _pct(degraded, q) / _pct(paired_up, q),
                "note": "baseline: the same orders with the model up, each POST paired with a degraded one",
            }
        )
    rows.append({"name": "local API throughput, 1 client", "value": sequential_rps, "unit": "req/s"})
    rows.append(
        {
            "name": "local API throughput, 4 clients",
            "value": concurrent_rps,
            "unit": "req/s",
            "note": f"p95 {_pct(concurrent, 95):.1f} ms; one function instance as in one Lambda environment",
        }
    )
    rows.append({"name": "local API errors (non-200)", "value": len(errors), "unit": "responses"})
    return rows


def run(scale: str) -> list[dict]:
    count = 300 if scale == "quick" else 1000
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        world = _world(10_000 if scale == "quick" else 20_000, root)
        rows = bench_fallback_quality(world)
        rows += bench_handler_cpu(world, count)
        rows += bench_return_handler_cpu(world, count)
        rows += bench_cold_import(world, 3 if scale == "quick" else 5)
        rows += bench_local_api(world, count, root)
    return rows
