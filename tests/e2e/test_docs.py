"""Executable docs: every code block of README.md and docs/*.md is run or checked, so a doc cannot drift.

A block is classified by its language or by a marker on the line before its fence:

    <!-- docs-test: run -->             (default for bash/sh/python) run in a fresh copy of the repository,
                                        with a small `make demo` (4,000 orders) under build/demo and the
                                        local API up (its address in build/demo/api.json, as the demo
                                        writes it); exit 0, no traceback
    <!-- docs-test: server -->          a long-running command: started, must print its http://127.0.0.1
                                        address and answer there; Ctrl-C must end it with at most one line
    <!-- docs-test: aws -->             needs an AWS account: not run; every JSON body it sends (-d '...')
                                        must pass the request model, every `make` target, module, script and
                                        stack output it names must exist
    <!-- docs-test: json KIND -->       (request, response, return-request, return-response, payment-request,
                                        payment-response, error, events,
                                        inference) validated by the model
    <!-- docs-test: covered-by PATH::TEST -->  run by that test (which must exist), e.g. `make demo`
    <!-- docs-test: text -->            not a command: a diagram, a layout, sample output

An unmarked block the test cannot classify fails, and so do indented code blocks and a bare
`python -m` anywhere (item: one documented way to run things, in the project's environment).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import DEMO_ORDERS

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(
    r"(?:<!-- docs-test: (?P<marker>[^>]*?) -->\n)?^(?P<indent>[ ]*)```(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```",
    re.S | re.M,
)
KINDS = ("run", "server", "aws", "json", "covered-by", "text")
SHELL = {"bash", "sh", "shell", "console"}


@dataclass(frozen=True)
class Block:
    doc: str
    line: int
    lang: str
    kind: str
    argument: str
    body: str

    @property
    def id(self) -> str:
        return f"{self.doc}:{self.line}"


def blocks(path: Path) -> list[Block]:
    text = path.read_text(encoding="utf-8")
    found = []
    for match in FENCE.finditer(text):
        marker = (match.group("marker") or "").strip()
        kind, _, argument = marker.partition(" ")
        lang = match.group("lang").lower()
        if not kind:
            kind = "run" if lang in SHELL | {"python"} else ""
        body = "\n".join(
            line.removeprefix(match.group("indent")) for line in match.group("body").splitlines()
        )
        found.append(
            Block(
                doc=str(path.relative_to(ROOT)),
                line=text.count("\n", 0, match.start("indent")) + 1,
                lang=lang,
                kind=kind,
                argument=argument.strip(),
                body=body,
            )
        )
    return found


ALL = [block for doc in DOCS for block in blocks(doc)]


def by_kind(*kinds: str) -> list[Any]:
    return [pytest.param(b, id=b.id) for b in ALL if b.kind in kinds]


def distinct_commands() -> list[Any]:
    """The blocks to run, once per distinct command: a block the same as an earlier one (language and
    body; README's card-payment walkthrough is docs/payments.md's) would run the same commands in the
    same fresh copy, so it runs once, under both ids."""
    same: dict[tuple[str, str], list[Block]] = {}
    for block in ALL:
        if block.kind == "run":
            same.setdefault((block.lang, block.body), []).append(block)
    return [pytest.param(found[0], id="+".join(b.id for b in found)) for found in same.values()]


# ---------------------------------------------------------------- static checks, fast


def test_every_block_is_classified() -> None:
    unclassified = [f"{b.id} ({b.lang or 'no language'})" for b in ALL if b.kind not in KINDS]
    assert not unclassified, (
        "mark these blocks with <!-- docs-test: run|server|aws|json KIND|covered-by TEST|text -->: "
        + ", ".join(unclassified)
    )


def test_no_indented_code_blocks() -> None:
    """Indented code would escape this test: use fenced blocks."""
    offenders = []
    for doc in DOCS:
        lines, fenced, previous = doc.read_text(encoding="utf-8").splitlines(), False, ""
        for number, line in enumerate(lines, start=1):
            if line.lstrip().startswith("```"):
                fenced = not fenced
            elif (
                not fenced
                and line.startswith("    ")
                and line.strip()
                and previous == ""
                and not re.match(r"\s*([-*|]|\d+\.)", _last_text(lines, number - 1))
            ):
                offenders.append(f"{doc.relative_to(ROOT)}:{number}")
            previous = line.strip()
    assert not offenders, offenders


def _last_text(lines: list[str], before: int) -> str:
    for line in reversed(lines[: before - 1]):
        if line.strip():
            return line
    return ""


def test_commands_run_in_the_projects_environment() -> None:
    """A bare `python -m` fails with "No module named 'pandas'" outside .venv: never document one."""
    bare = []
    for doc in DOCS:
        for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), start=1):
            for found in re.finditer(r"(?<!-m )(?<![/\w.-])(python3?|pytest|pip) ", line):
                if "`" in line or line.startswith(("    ", "python", "pytest")):
                    bare.append(
                        f"{doc.relative_to(ROOT)}:{number}: {found.group(0)!r} in {line.strip()[:80]}"
                    )
    assert not bare, bare


def test_inline_commands_name_what_exists() -> None:
    """`.venv/bin/python -m X`, `make T` and scripts in running text: the module, target or file exists."""
    targets = set(re.findall(r"^([a-z][\w-]*):", (ROOT / "Makefile").read_text(), re.M))
    missing = []
    for doc in DOCS:
        for span in re.findall(r"`([^`\n]+)`", doc.read_text(encoding="utf-8")):
            missing += _missing_names(span, targets)
    for block in ALL:
        if block.lang in SHELL:
            missing += _missing_names(block.body, targets)
    assert not missing, sorted(set(missing))


def _missing_names(text: str, targets: set[str]) -> list[str]:
    missing = []
    for module in re.findall(r"\.venv/bin/python -m ([\w.]+)", text):
        if find_spec(module) is None:
            missing.append(f"module {module}")
    for target in re.findall(r"(?<![\w-])make ([a-z][\w-]*)", text):
        if target not in targets:
            missing.append(f"make target {target}")
    for script in re.findall(
        r"(?<![\w/.])((?:scripts|local|training|glue_jobs|benchmarks)/[\w/.-]+\.(?:py|sh))", text
    ):
        if not (ROOT / script).exists():
            missing.append(f"file {script}")
    return missing


def test_blocks_that_need_an_aws_account_are_marked() -> None:
    """An unmarked shell block is run here: one calling AWS would fail for want of an account."""
    needs_aws = re.compile(r"^\s*(aws |npx aws-cdk|cdk (deploy|destroy|bootstrap))", re.M)
    unmarked = [b.id for b in ALL if b.kind in ("run", "server") and needs_aws.search(b.body)]
    assert not unmarked, f"mark these <!-- docs-test: aws -->: {unmarked}"


def _request_bodies(block: Block) -> list[str]:
    """The JSON bodies a block POSTs with `curl -d '...'`."""
    return re.findall(r"-d '(.*?)'", block.body, re.S)


@pytest.mark.parametrize("block", by_kind("aws"))
def test_aws_examples_carry_valid_requests_and_real_names(block: Block) -> None:
    import jsonschema

    from returnguard.payment_scoring import PaymentRiskRequest
    from returnguard.schemas import ReturnScoreRequest, RiskScoreRequest
    from stacks.request_schema import RISK_SCORE_REQUEST

    for body in _request_bodies(block):
        document = json.loads(body)
        # the 422 a user would get, caught here: first API Gateway's request model, then the function's
        errors = [e.message for e in jsonschema.Draft4Validator(RISK_SCORE_REQUEST).iter_errors(document)]
        assert not errors, f"{block.id}: API Gateway would answer 422: {errors}"
        kinds = {"return": ReturnScoreRequest, "payment": PaymentRiskRequest}
        kinds.get(document.get("event_type"), RiskScoreRequest).model_validate(document)
    stacks = "\n".join(p.read_text() for p in (ROOT / "stacks").glob("*.py"))
    outputs = re.findall(r"OutputKey=='(\w+)'", block.body) + re.findall(r"\$\(output (\w+)\)", block.body)
    for output in outputs:
        assert re.search(rf'CfnOutput\(\s*self,\s*"{output}"', stacks), f"no stack output {output}"


@pytest.mark.parametrize("block", by_kind("json"))
def test_json_examples_match_the_models(block: Block) -> None:
    from returnguard import events
    from returnguard.schemas import (
        ReturnScoreRequest,
        ReturnScoreResponse,
        RiskScoreRequest,
        RiskScoreResponse,
    )

    documents = [json.loads(chunk) for chunk in re.split(r"\n\s*\n", block.body.strip())]
    for document in documents:
        if block.argument == "request":
            RiskScoreRequest.model_validate(document)
        elif block.argument == "response":
            RiskScoreResponse.model_validate(document)
        elif block.argument == "return-request":
            ReturnScoreRequest.model_validate(document)
        elif block.argument == "return-response":
            ReturnScoreResponse.model_validate(document)
        elif block.argument in ("payment-request", "payment-response"):
            from returnguard.payment_scoring import PaymentRiskRequest, PaymentRiskResponse

            model = PaymentRiskRequest if block.argument == "payment-request" else PaymentRiskResponse
            model.model_validate(document)
        elif block.argument == "error":
            error = document["error"]
            assert set(error) >= {"code", "message", "field"}, error
            assert all(set(d) == {"field", "message"} for d in error.get("details", []))
        elif block.argument == "events":
            events.parse(json.dumps(document))
        elif block.argument == "inference":
            from returnguard.features import FEATURE_NAMES

            assert set(document["instances"][0]) == set(FEATURE_NAMES)
        else:
            pytest.fail(f"{block.id}: unknown json kind {block.argument!r}")


@pytest.mark.parametrize("example", sorted((ROOT / "docs" / "examples").glob("*.json")), ids=lambda p: p.name)
def test_example_files_are_valid_requests(example: Path) -> None:
    from returnguard.schemas import RiskScoreRequest

    RiskScoreRequest.model_validate_json(example.read_text())


@pytest.mark.parametrize("block", by_kind("covered-by"))
def test_covered_blocks_name_a_real_test(block: Block) -> None:
    path, _, name = block.argument.partition("::")
    assert (ROOT / path).is_file(), block.argument
    assert not name or re.search(rf"^def {re.escape(name)}\(", (ROOT / path).read_text(), re.M), (
        block.argument
    )


# ---------------------------------------------------------------- running them, slow


@pytest.fixture(scope="session")
def small_demo(demo_run) -> Path:
    """The session's `make demo` at 4,000 orders (tests/e2e/conftest.py, test_demo checks its output)."""
    assert demo_run.process.returncode == 0, demo_run.process.stdout[-2000:] + demo_run.process.stderr[-2000:]
    return demo_run.work


@pytest.fixture(scope="session")
def local_api(small_demo: Path) -> Iterator[str]:
    from glue_jobs.features import load_online
    from local import stack as local_stack
    from local.api_server import seed_features, serve
    from local.inference_server import serve as serve_model
    from training.bootstrap import PipelinePaths

    paths = PipelinePaths(small_demo)
    aws = local_stack.start(prefix="returnguard-docs")
    model = serve_model(str(paths.model))
    seed_features(aws, load_online(paths.online))
    config = json.loads((paths.model / "config.json").read_text())
    api = serve(aws, config, model.url, log_path=small_demo.parent / "docs-api.log")
    try:
        yield api.url
    finally:
        api.stop()
        model.stop()
        aws.stop()


@pytest.fixture
def clone(tmp_path_factory, small_demo: Path, local_api: str) -> Path:
    """A fresh copy of the repository as a user has it after `make demo` (the API up)."""
    root = tmp_path_factory.mktemp("clone")
    files = (
        subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, files):
        source = ROOT / name
        if source.is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / name)  # mtimes kept: make sees .venv as up to date
    (root / ".venv").symlink_to(ROOT / ".venv")
    (root / "build").mkdir(exist_ok=True)
    for cache in ("uv", "uv-cache", "jsii-cache"):
        if (ROOT / "build" / cache).exists():
            (root / "build" / cache).symlink_to(ROOT / "build" / cache)
    shutil.copytree(small_demo, root / "build" / "demo", ignore=shutil.ignore_patterns("complete"))
    (root / "build" / "demo" / "api.json").write_text(json.dumps({"url": local_api, "pid": 0}))
    return root


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RETURNGUARD_", "PYTEST"))}
    env.update(PYTHONDONTWRITEBYTECODE="1", AWS_EC2_METADATA_DISABLED="true")
    return env


@pytest.mark.slow
@pytest.mark.parametrize("block", distinct_commands())
def test_documented_commands_run(block: Block, clone: Path) -> None:
    if block.lang == "python":
        command = [str(clone / ".venv" / "bin" / "python"), "-c", block.body]
    else:
        command = ["bash", "-euo", "pipefail", "-c", block.body]
    done = subprocess.run(command, cwd=clone, env=_environment(), capture_output=True, text=True, timeout=900)
    output = done.stdout + done.stderr
    assert done.returncode == 0, (
        f"{block.id} failed (exit {done.returncode}):\n{block.body}\n---\n{output[-4000:]}"
    )
    assert "Traceback" not in output, output[-4000:]
    if "training.evaluate" in block.body:  # the documented report has its SHAP summary
        report = re.search(r"--report-dir (\S+)", block.body)
        assert report and (clone / report.group(1) / "shap_summary.png").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("block", [b for b in by_kind("aws") if _request_bodies(b.values[0])])
def test_aws_request_examples_are_answered_by_the_local_api(block: Block, local_api: str) -> None:
    """What the deployed API would do with a documented body, short of AWS: the local API runs the same
    function, so a body it answers with 422 (an order_time out of range, ...) fails here."""
    import requests

    from returnguard.schemas import RiskScoreResponse

    for body in _request_bodies(block):
        answer = requests.post(
            f"{local_api}/v1/risk-score", data=body, headers={"content-type": "application/json"}, timeout=60
        )
        assert answer.status_code == 200, f"{block.id}: {answer.status_code} {answer.text[:500]}"
        if json.loads(body).get("event_type") == "order":
            RiskScoreResponse.model_validate(answer.json())


def _terminal_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
@pytest.mark.parametrize("block", by_kind("server"))
def test_documented_servers_start_answer_and_stop_on_ctrl_c(block: Block, clone: Path) -> None:
    import requests

    process = subprocess.Popen(
        ["bash", "-c", f"exec {block.body.strip()}"],
        cwd=clone,
        env=_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # Ctrl-C as in a user's terminal: a suite started in the background (nohup ... &) ignores SIGINT,
        # and a child inherits that, so Python would never raise KeyboardInterrupt in the server
        preexec_fn=_terminal_sigint,
    )
    try:
        assert process.stdout is not None
        url, deadline = None, time.monotonic() + 300
        while url is None and time.monotonic() < deadline:
            line = process.stdout.readline()
            assert line or process.poll() is None, f"{block.id} exited: {process.returncode}"
            found = re.search(r"http://127\.0\.0\.1:\d+", line)
            url = found.group(0) if found else None
        assert url, f"{block.id} never printed its address"
        health = "/ping" if "inference_server" in block.body else "/v1/health"
        assert requests.get(url + health, timeout=10).status_code == 200
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=60)
        assert process.returncode in (0, 130), rest
        assert "Traceback" not in rest and len(rest.strip().splitlines()) <= 1, rest
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.slow
def test_make_model_packages_what_deploy_ships(clone: Path) -> None:
    """`make model` is `python -m training.bootstrap`: here at the small demo's scale, in its folder."""
    done = subprocess.run(
        [".venv/bin/python", "-m", "training.bootstrap", "--orders", str(DEMO_ORDERS)],
        cwd=clone,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "reusing the synthetic lake" in done.stdout and "reusing features" in done.stdout
    assert re.search(r"^model:.*\n\t@\$\(PY\) -m training\.bootstrap$", (ROOT / "Makefile").read_text(), re.M)
    for name in ("model.tar.gz", "sourcedir.tar.gz", "config.json"):
        assert (clone / "build" / "model" / name).is_file()
    with tarfile.open(clone / "build" / "model" / "model.tar.gz") as archive:  # both lanes' models (issue 11)
        assert {"return/xgboost-model.ubj", "return/config.json"} <= set(archive.getnames())
