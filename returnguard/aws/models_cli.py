"""`returnguard models …`: the command line over returnguard.aws.models (argument parsing is in
returnguard/cli.py). Prints for people, or JSON with --json."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, TextIO

from returnguard.aws import stage_outputs
from returnguard.aws.models import ModelRegistry, ModelVersion, RegistryError, compare, find_group

LOCAL_AWS_FILE = Path("build") / "demo" / "local-aws.json"  # written by the local stack while it serves


def local_settings(roots: tuple[Path, ...] | None = None) -> dict[str, Any]:
    for root in roots or (Path.cwd(), Path(__file__).resolve().parents[2]):
        try:
            found = json.loads((root / LOCAL_AWS_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(found, dict) and found.get("endpoint_url"):
            return found
    raise RegistryError(
        "no_local_stack", f"no {LOCAL_AWS_FILE}: start the local stack first (make demo SERVE=1)"
    )


def registry(args: argparse.Namespace) -> tuple[ModelRegistry, dict[str, Any]]:
    import boto3

    local = local_settings() if args.local else {}
    options: dict[str, Any] = {"region_name": local.get("region") or args.region or "us-east-1"}
    endpoint_url = args.endpoint_url or local.get("endpoint_url")
    if endpoint_url:
        options["endpoint_url"] = endpoint_url
    if local:
        options.update(aws_access_key_id="local", aws_secret_access_key="local")
    sagemaker, s3 = boto3.client("sagemaker", **options), boto3.client("s3", **options)
    prefix = args.prefix or local.get("prefix") or f"returnguard-{args.stage}"
    group = args.group or local.get("group") or find_group(sagemaker, prefix)
    endpoint = args.endpoint or local.get("endpoint") or f"{prefix}-scoring"
    lake = args.lake or local.get("bucket") or ""
    publishes = args.action in ("promote", "rollback") or getattr(args, "experiment", "") == "start"
    if not lake and publishes:  # they publish the model's serving profile
        lake = lake_bucket(boto3.client("cloudformation", **options), args.stage)
    registry = ModelRegistry(sagemaker, s3, group=group, endpoint=endpoint, prefix=prefix, lake_bucket=lake)
    return registry, local


def lake_bucket(cloudformation: Any, stage: str) -> str:
    """The `LakeBucket` output of ReturnGuard-<stage>-Data."""
    found = stage_outputs.lake_bucket(cloudformation, stage)
    if found is None:
        raise RegistryError(
            "unknown_lake", f"{stage_outputs.data_stack(stage)} has no LakeBucket output: pass --lake"
        )
    return found


def _number(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _row(version: ModelVersion) -> str:
    m = version.metadata
    reasons = m.get("gate_reasons", "")
    return (
        f"{'*' if version.serving else '+' if version.challenger else ' '} v{version.version:<4} {version.status:<9} "
        f"ROC-AUC {_number(version.metric('roc_auc'))} (serving then {_number(_float(m.get('champion_roc_auc')))})  "
        f"PR-AUC {_number(version.metric('pr_auc'))}  alerts {_number(version.metric('alert_rate'), 3)}  "
        f"level PSI {_number(_float(m.get('level_psi')))}  {version.created}"
        + (f"  [{reasons}]" if reasons and reasons != "none" else "")
        # approved by the gate, not promoted by the pipeline (an experiment ran): `models promote N` may
        + (f"  (not promoted: {m['promotion_refused']})" if m.get("promotion_refused") else "")
    )


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def reload_model_server(local: dict[str, Any]) -> str | None:
    """Ask the local model server to load what the endpoint now serves (its challenger variant's model
    too, during an experiment); returns its model version."""
    url = local.get("model_server")
    if not url:
        return None
    request = urllib.request.Request(f"{url}/reload", data=b"{}", method="POST")
    with urllib.request.urlopen(request, timeout=120) as answer:  # noqa: S310 (127.0.0.1 only)
        return str(json.loads(answer.read()).get("model_version"))


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    try:
        models, local = registry(args)
        if args.action == "list":
            versions = models.versions()
            if args.json:
                print(json.dumps([v.as_dict() for v in versions], indent=2), file=out)
            else:
                serving = models.serving()
                print(
                    f"endpoint {models.endpoint} ({serving['endpoint_status']}) serves {serving['model_name']}; "
                    f"group {models.group}, {len(versions)} version(s) (* serving"
                    + (", + challenger" if serving["challenger_model_name"] else "")
                    + "):",
                    file=out,
                )
                for version in versions:
                    print(_row(version), file=out)
        elif args.action == "show":
            version = models.version(args.version)
            shown = {**version.as_dict(), "gate_record": models.gate_record(version)}
            print(json.dumps(shown, indent=2, default=str), file=out)
        elif args.action == "compare":
            result = compare(models.version(args.first), models.version(args.second))
            if args.json:
                print(json.dumps(result, indent=2), file=out)
            else:
                print(f"            v{args.first:<8} v{args.second:<8} change", file=out)
                for name, row in result["metrics"].items():
                    change = "—" if row["change"] is None else f"{row['change']:+.3f}"
                    print(
                        f"{name:<11} {_number(row['first']):<9} {_number(row['second']):<9} {change}",
                        file=out,
                    )
                if not result["same_window"]:
                    print(
                        "(each measured on its own run's window; the gate compared each with the model "
                        "serving at the time on that window)",
                        file=out,
                    )
        elif args.action == "experiment":
            if args.experiment == "start":
                result = models.start_experiment(args.version)
            else:
                result = models.stop_experiment()
            if args.wait or local:
                models.wait_in_service(result["EndpointConfigName"], poll_s=0 if local else 30)
            reload_model_server(local)  # locally the model server answers the challenger from now on
            what = (
                f"challenger v{args.version} beside the champion"
                if args.experiment == "start"
                else "challenger removed"
            )
            print(
                json.dumps(result)
                if args.json
                else f"endpoint {models.endpoint}: {result['PreviousEndpointConfigName']} → "
                f"{result['EndpointConfigName']}; {what}",
                file=out,
            )
        else:
            if args.action == "promote":
                who = getpass.getuser()
                result = models.promote(args.version, force=args.force, reason=args.reason, who=who)
            else:
                result = models.rollback()
            if args.wait or local:
                models.wait_in_service(result["EndpointConfigName"], poll_s=0 if local else 30)
            reloaded = reload_model_server(local) if local else None
            print(
                json.dumps(result)
                if args.json
                else f"endpoint {models.endpoint}: {result['PreviousEndpointConfigName']} → "
                f"{result['EndpointConfigName']}"
                + (f"; local model server now serves {reloaded}" if reloaded else ""),
                file=out,
            )
    except RegistryError as error:
        print(f"error: {error.code}: {error}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # botocore's: no credentials, unreachable endpoint, access denied, ...
        if type(error).__module__.startswith("botocore"):
            print(f"error: {error}", file=sys.stderr)
            return 2
        raise
    return 0
