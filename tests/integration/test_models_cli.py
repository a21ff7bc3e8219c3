"""`returnguard models` against the local stack's AWS (a real moto server over HTTP): list, show, promote,
roll back, compare, the gate's refusal and its recorded override, and the local model server reloading
on promotion. Also one retrain-and-gate cycle (local.lifecycle, what `make demo` runs)."""

from __future__ import annotations

import io
import json
import shutil
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from local import stack as local_stack
from local.api_server import handler_environment, load_handler
from local.inference_server import serve
from local.lifecycle import EndpointFollower, LocalRegistry, pack, register, retrain_and_gate
from returnguard import cli
from returnguard.ports import ModelUnavailable
from returnguard.variants import VariantConfig, assign
from tests.integration.api.test_score_handler import call, event, order

pytestmark = pytest.mark.slow
V2_THRESHOLDS = {"medium": 1e-9, "high": 2e-9, "critical": 3e-9}


@pytest.fixture(scope="module")
def local(trained_model, tmp_path_factory) -> Iterator[dict[str, Any]]:
    """Local AWS with the trained model serving as version 1, an approved version 2 (the same model under
    another version name) and a rejected version 3; the model server follows the endpoint."""
    root = tmp_path_factory.mktemp("models-cli")
    work = root / "build" / "demo"
    work.mkdir(parents=True)
    stack = local_stack.start(prefix="returnguard-models")  # moto's state is per process: own names
    model_dir = trained_model[0]
    registry = LocalRegistry(stack, work)
    registry.create(model_dir)
    s3, sagemaker = stack.client("s3"), stack.client("sagemaker")
    for number, status, reasons in ((2, "Approved", "none"), (3, "Rejected", "roc_auc_worse,pr_auc_worse")):
        copy = root / f"v{number}"
        shutil.copytree(model_dir, copy)
        config = json.loads((copy / "config.json").read_text())
        config = {**config, "model_version": f"v-number-{number}"}
        fallback = json.loads((copy / "fallback_model.json").read_text())
        fallback["model_version"] = f"v-number-{number}-fallback"
        if number == 2:  # its own thresholds, and its fallback's: every score it gives is critical
            config["thresholds"] = {**config["thresholds"], **V2_THRESHOLDS}
            fallback["thresholds"] = {**fallback["thresholds"], **V2_THRESHOLDS}
        (copy / "config.json").write_text(json.dumps(config))
        (copy / "fallback_model.json").write_text(json.dumps(fallback))
        key = f"models/artifacts/run-{number}/output/model.tar.gz"
        s3.upload_file(str(pack(copy, root / f"v{number}.tar.gz")), stack.bucket, key)
        record = f"models/metadata/gate-decisions/date=2026-11-30/run-{number}.json"
        s3.put_object(
            Bucket=stack.bucket, Key=record, Body=json.dumps({"reasons": reasons.split(",")}).encode()
        )
        register(
            sagemaker,
            group=registry.group,
            model_data_url=f"s3://{stack.bucket}/{key}",
            status=status,
            metadata={
                "gate_decision": status,
                "gate_reasons": reasons,
                "candidate_roc_auc": str(0.9 + number / 100),
                "candidate_pr_auc": "0.5",
                "candidate_alert_rate": "0.05",
                "champion_roc_auc": "0.9",
                "window_from": "2026-01-01T00:00:00Z",
            },
            record_url=f"s3://{stack.bucket}/{record}",
        )
    server = serve(str(model_dir), follow=EndpointFollower(stack, root / "cache"))
    registry.write_settings(server.url)
    try:
        yield {"root": root, "stack": stack, "registry": registry, "server": server, "model_dir": model_dir}
    finally:
        server.stop()
        stack.stop()


def models(local: dict[str, Any], monkeypatch, *argv: str) -> tuple[int, str, str]:
    monkeypatch.chdir(local["root"])  # where build/demo/local-aws.json is
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    flags = [a for a in argv if a == "--json"]  # the command line's own flag, before the command
    code = cli.main([*flags, "models", "--local", *[a for a in argv if a != "--json"]], out=out)
    return code, out.getvalue(), err.getvalue()


def ping(local: dict[str, Any]) -> str:
    with urllib.request.urlopen(f"{local['server'].url}/ping", timeout=10) as answer:  # noqa: S310
        return str(json.loads(answer.read())["model_version"])


def serving_version(local: dict[str, Any], monkeypatch) -> int:
    code, out, _ = models(local, monkeypatch, "list")
    assert code == 0
    (serving,) = [line.split()[1] for line in out.splitlines()[1:] if line.startswith("*")]
    return int(serving.removeprefix("v"))


def test_list_shows_every_version_its_gate_numbers_and_what_serves(local, monkeypatch):
    code, out, _ = models(local, monkeypatch, "list")

    assert code == 0
    lines = out.splitlines()
    assert "returnguard-models-scoring" in lines[0] and "3 version(s)" in lines[0]
    assert lines[1].startswith("* v1") and "Approved" in lines[1]
    assert lines[2].startswith("  v2") and "ROC-AUC 0.920" in lines[2]
    assert (
        lines[3].startswith("  v3") and "Rejected" in lines[3] and "[roc_auc_worse,pr_auc_worse]" in lines[3]
    )


def test_show_includes_the_gate_record_from_the_lake(local, monkeypatch):
    code, out, _ = models(local, monkeypatch, "show", "3")

    shown = json.loads(out)
    assert code == 0 and shown["status"] == "Rejected"
    assert shown["gate_record"] == {"reasons": ["roc_auc_worse", "pr_auc_worse"]}
    assert shown["metrics"]["roc_auc"] == pytest.approx(0.93)


def test_a_rejected_version_is_not_promoted_without_force_and_a_reason(local, monkeypatch):
    code, _, err = models(local, monkeypatch, "promote", "3")
    assert code == 1 and "not_approved" in err and "roc_auc_worse" in err
    code, _, err = models(local, monkeypatch, "promote", "3", "--force")
    assert code == 1 and "reason_required" in err
    assert serving_version(local, monkeypatch) == 1
    assert ping(local) == json.loads((local["model_dir"] / "config.json").read_text())["model_version"]


def test_promote_serves_the_version_and_the_local_model_server_reloads_then_rollback_restores(
    local, monkeypatch
):
    first = ping(local)

    code, out, err = models(local, monkeypatch, "promote", "2")

    assert code == 0, err
    assert "local model server now serves v-number-2" in out
    assert serving_version(local, monkeypatch) == 2
    assert ping(local) == "v-number-2"
    sagemaker = local["stack"].client("sagemaker")
    config = sagemaker.describe_endpoint(EndpointName="returnguard-models-scoring")["EndpointConfigName"]
    # The new config is a copy of the bootstrap one with the new model (the pipeline's promotion).
    variant = sagemaker.describe_endpoint_config(EndpointConfigName=config)["ProductionVariants"][0]
    assert variant["ServerlessConfig"] == {"MemorySizeInMB": 2048, "MaxConcurrency": 5}

    code, out, err = models(local, monkeypatch, "rollback")

    assert code == 0, err
    assert f"{config} → returnguard-models-bootstrap" in out
    assert serving_version(local, monkeypatch) == 1
    assert ping(local) == first
    code, _, err = models(local, monkeypatch, "rollback")  # the bootstrap config replaced nothing
    assert code == 1 and "nothing_to_roll_back" in err


def test_a_forced_promotion_is_recorded_in_the_registry(local, monkeypatch):
    code, _, err = models(
        local, monkeypatch, "promote", "3", "--force", "--reason", "incident 42: v1 mis-scores"
    )
    assert code == 0, err
    version = local["registry"].registry().version(3)
    assert version.status == "Approved" and version.serving
    assert version.metadata["manual_promotion_reason"] == "incident 42: v1 mis-scores"
    assert version.metadata["gate_reasons"] == "roc_auc_worse,pr_auc_worse"  # the gate's verdict is kept
    assert ping(local) == "v-number-3"
    assert models(local, monkeypatch, "rollback")[0] == 0


def test_compare_prints_both_versions_and_the_change(local, monkeypatch):
    code, out, _ = models(local, monkeypatch, "compare", "2", "3")
    assert code == 0
    assert "roc_auc     0.920     0.930     +0.010" in out
    code, out, _ = models(local, monkeypatch, "--json", "compare", "2", "3")
    assert json.loads(out)["metrics"]["pr_auc"]["change"] == 0


def test_an_unknown_version_is_a_clear_refusal(local, monkeypatch):
    code, _, err = models(local, monkeypatch, "show", "99")
    assert code == 1 and "unknown_version" in err


def test_the_same_commands_reach_aws_by_endpoint_url_and_stage_prefix(local, monkeypatch):
    # Not --local: the group is found by the stage prefix, as in an account
    out = io.StringIO()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "local")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "local")
    argv = [
        "--json",
        "models",
        "--prefix",
        "returnguard-models",
        "--endpoint-url",
        local["stack"].endpoint_url,
    ]
    code = cli.main([*argv, "--region", "us-east-1", "list"], out=out)
    assert code == 0
    assert [v["version"] for v in json.loads(out.getvalue())] == [1, 2, 3]


def test_without_a_local_stack_the_command_says_how_to_start_one(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("returnguard.aws.models_cli.local_settings.__defaults__", ((tmp_path,),))

    code = cli.main(["models", "--local", "list"], out=io.StringIO())

    assert code == 1
    assert "no_local_stack" in capsys.readouterr().err


def test_an_experiment_runs_a_version_as_the_challenger_beside_the_champion_until_stopped(local, monkeypatch):
    sagemaker = local["stack"].client("sagemaker")
    before = sagemaker.describe_endpoint(EndpointName="returnguard-models-scoring")["EndpointConfigName"]

    code, out, err = models(local, monkeypatch, "experiment", "start", "3")

    # The champion keeps serving, with the same model; version 3 runs as the weight-0 challenger variant
    assert code == 0, err
    assert "challenger v3 beside the champion" in out
    config = sagemaker.describe_endpoint_config(
        EndpointConfigName=sagemaker.describe_endpoint(EndpointName="returnguard-models-scoring")[
            "EndpointConfigName"
        ]
    )
    champion, challenger = config["ProductionVariants"]
    assert (
        champion["ModelName"]
        == sagemaker.describe_endpoint_config(EndpointConfigName=before)["ProductionVariants"][0]["ModelName"]
    )
    assert challenger["VariantName"] == "challenger" and challenger["InitialVariantWeight"] == 0
    model = sagemaker.describe_model(ModelName=challenger["ModelName"])
    assert model["PrimaryContainer"]["ModelDataUrl"] == local["registry"].registry().version(3).model_data_url
    code, out, _ = models(local, monkeypatch, "list")
    assert "+ challenger" in out.splitlines()[0]
    assert [line[:4] for line in out.splitlines()[1:]] == ["* v1", "  v2", "+ v3"]
    assert ping(local) == json.loads((local["model_dir"] / "config.json").read_text())["model_version"]
    # No promotion and no second challenger while it runs
    code, _, err = models(local, monkeypatch, "promote", "2")
    assert code == 1 and "experiment_running" in err
    code, _, err = models(local, monkeypatch, "experiment", "start", "2")
    assert code == 1 and "experiment_running" in err

    code, out, err = models(local, monkeypatch, "experiment", "stop")

    assert code == 0, err
    assert "challenger removed" in out
    variants = sagemaker.describe_endpoint_config(
        EndpointConfigName=sagemaker.describe_endpoint(EndpointName="returnguard-models-scoring")[
            "EndpointConfigName"
        ]
    )["ProductionVariants"]
    assert [v["ModelName"] for v in variants] == [champion["ModelName"]]
    assert serving_version(local, monkeypatch) == 1
    code, _, err = models(local, monkeypatch, "experiment", "stop")
    assert code == 1 and "no_experiment" in err
    code, _, err = models(local, monkeypatch, "experiment", "start", "1")
    assert code == 1 and "already_serving" in err


class _Down:
    def score(self, vector: Any) -> Any:
        raise ModelUnavailable("endpoint down")


def test_the_score_function_follows_promotion_and_rollback_with_the_models_thresholds_and_fallback(
    local, monkeypatch
):
    model_dir = local["model_dir"]
    v1 = json.loads((model_dir / "config.json").read_text())
    v1_fallback = json.loads((model_dir / "fallback_model.json").read_text())["model_version"]
    environment = handler_environment(
        local["stack"],
        v1,
        local["server"].url,
        fallback_model=model_dir / "fallback_model.json",
        order_time_past_days=3660,
    )
    handler = load_handler(environment, "score_handler_follows_promotions")  # one execution environment
    endpoint = handler.model

    def decide(order_id: str) -> dict[str, Any]:
        status, body = call(handler, event("POST", "/v1/risk-score", order(order_id, customer_id="C-PROMO")))
        assert status == 200, body
        return body

    before = decide("PROMO-1")
    assert before["model_version"] == v1["model_version"] and before["risk_level"] != "critical"
    assert before["risk_score"] < v1["thresholds"]["critical"]

    assert models(local, monkeypatch, "promote", "2")[0] == 0
    promoted = decide("PROMO-2")

    # the same order, now scored by v2 and mapped with v2's thresholds
    assert promoted["model_version"] == "v-number-2"
    assert promoted["risk_score"] == pytest.approx(before["risk_score"], abs=1e-4)  # same weights
    assert promoted["risk_level"] == "critical"
    assert call(handler, event("GET", "/v1/health"))[1]["model_version"] == "v-number-2"
    monkeypatch.setattr(handler, "model", _Down())
    degraded = decide("PROMO-3")
    assert degraded["degraded"] and degraded["model_version"] == "v-number-2-fallback"
    assert degraded["risk_score"] is not None and degraded["risk_score"] >= V2_THRESHOLDS["critical"]
    monkeypatch.setattr(handler, "model", endpoint)

    assert models(local, monkeypatch, "rollback")[0] == 0
    back = decide("PROMO-4")

    assert back["model_version"] == v1["model_version"]
    assert back["risk_level"] == before["risk_level"]
    monkeypatch.setattr(handler, "model", _Down())
    assert decide("PROMO-5")["model_version"] == v1_fallback


def test_locally_an_experiments_challenger_shadows_or_decides_its_ab_share_through_the_model_server(
    local, monkeypatch
):
    stack, model_dir = local["stack"], local["model_dir"]
    v1 = json.loads((model_dir / "config.json").read_text())
    handlers = {
        mode: load_handler(
            handler_environment(
                stack,
                v1,
                local["server"].url,
                order_time_past_days=3660,
                variants={"mode": mode, "challenger_share": 0.5, "salt": "local-exp"},
            ),
            f"score_handler_local_{mode}",
        )
        for mode in ("shadow", "ab")
    }
    table = stack.table_names["decisions"]
    dynamodb = stack.client("dynamodb")
    config = VariantConfig("ab", 0.5, "local-exp")
    member = next(c for c in (f"LX{i}" for i in range(100)) if assign(c, config) == "challenger")

    def decide(mode: str, order_id: str, customer: str) -> tuple[dict[str, Any], dict[str, Any]]:
        status, body = call(
            handlers[mode], event("POST", "/v1/risk-score", order(order_id, customer_id=customer))
        )
        assert status == 200, body
        item = dynamodb.get_item(TableName=table, Key={"decision_id": {"S": body["decision_id"]}})["Item"]
        return body, item

    code, _, err = models(local, monkeypatch, "experiment", "start", "2")
    assert code == 0, err
    assert json.loads(urllib.request.urlopen(f"{local['server'].url}/ping", timeout=10).read())[
        "challenger"
    ] == (  # noqa: S310
        "v-number-2"
    )
    try:
        shadowed, item = decide("shadow", "LX-S1", "LX-A")
        # shadow: the champion decides; the challenger's score is stored beside it
        assert shadowed["model_version"] == v1["model_version"] and item["variant"] == {"S": "champion"}
        assert item["shadow"]["M"]["model_version"] == {"S": "v-number-2"}
        # A-B: the customer's sticky group decides, with the challenger's own thresholds (v2: critical)
        decided, item = decide("ab", "LX-B1", member)
        assert decided["model_version"] == "v-number-2" and item["variant"] == {"S": "challenger"}
        assert decided["risk_level"] == "critical"
    finally:
        assert models(local, monkeypatch, "experiment", "stop")[0] == 0

    # no experiment: the model server has no challenger, and the champion decides for everyone
    after, item = decide("ab", "LX-B2", member)
    assert after["model_version"] == v1["model_version"] and item["variant"] == {"S": "champion"}
    _, item = decide("shadow", "LX-S2", "LX-A")
    assert "error" in item["shadow"]["M"]


# Last: when the gate approves the candidate it is promoted, and the tests above expect version 1 serving.
def test_one_retrain_and_gate_cycle_judges_a_candidate_trained_on_newer_orders(local, small_table, tmp_path):
    table = tmp_path / "table.parquet"
    small_table.to_parquet(table, index=False)
    registry = local["registry"]
    before = {v.version for v in registry.registry().versions()}
    serving = json.loads((local["model_dir"] / "config.json").read_text())["data_window"]

    answer = retrain_and_gate(registry, table=table, champion_dir=local["model_dir"], run="cycle-1")

    # The candidate learned from orders the serving model never saw (its test window's first half) ...
    learned = answer["learned_until"]
    assert learned["serving"] == serving["validation"]["to"] < serving["test"]["from"] < learned["candidate"]
    version = registry.registry().version(answer["version"])
    assert answer["version"] not in before and version.record_url == answer["record_url"]
    record = registry.registry().gate_record(version)
    numbers = record["numbers"]
    # ... and both are judged on the rest of it, which neither trained on
    assert learned["candidate"] < numbers["window"]["from"] and numbers["window"]["rows"] > 500
    # so the gate has two different models to judge (an identical candidate had PSI 0 and equal metrics)
    assert numbers["score_psi"] > 0 and numbers["candidate"] != numbers["champion"]
    assert numbers["level_shares"]["candidate"] != numbers["level_shares"]["champion"]
    assert version.metadata["champion_roc_auc"] and record["approved"] is answer["approved"]
    assert version.status == ("Approved" if answer["approved"] else "Rejected")
    assert version.serving is answer["approved"]  # promoted exactly when approved
