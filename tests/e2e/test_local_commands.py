"""The local commands as a person runs them: a bad option or a missing prerequisite ends with one line
naming it, before anything slow starts; `make demo SERVE=0` does not serve."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # each starts a Python process that imports Spark and pandas


ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, cwd=ROOT, timeout=120, env=env
    )


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["-m", "local.api_server", "--port", "99999"], "argument --port: 99999 is out of range"),
        (["-m", "local.api_server", "--port", "eighty"], "argument --port: 'eighty' is not a port number"),
        (["-m", "local.api_server", "--policy", "{high: 0.5}"], "argument --policy: not JSON"),
        (["-m", "local.api_server", "--policy", "[1]"], "argument --policy: expected a JSON object"),
        (["-m", "local.demo", "--port", "-1"], "argument --port: -1 is out of range"),
        (["-m", "local.inference_server", "--port", "70000"], "argument --port: 70000 is out of range"),
    ],
)
def test_bad_options_end_with_one_line_naming_the_option(argv, named) -> None:
    done = run(*argv)
    assert done.returncode == 2
    assert done.stdout == "" and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert named in done.stderr


def test_a_port_in_use_is_refused_before_any_work() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        for module in ("local.demo", "local.api_server", "local.inference_server"):
            done = run("-m", module, "--port", str(port))
            assert done.returncode == 2 and done.stdout == "", (module, done.stdout)
            assert f"argument --port: {port} is already in use" in done.stderr
            assert len(done.stderr.strip().splitlines()) == 1


def test_demo_without_java_stops_at_once_with_one_line(tmp_path) -> None:
    env = {"PATH": str(tmp_path), "HOME": os.environ.get("HOME", "/root")}  # no java on PATH
    done = run("-m", "local.demo", "--work", str(tmp_path / "work"), "--port", "0", env=env)
    assert done.returncode == 1
    assert (
        done.stderr.strip().splitlines()
        == [line for line in done.stderr.strip().splitlines() if line.startswith("error: Java 17 not found")]
        and done.stderr.strip()
    )
    assert not (tmp_path / "work").exists()  # nothing started


def test_make_demo_serves_only_when_asked() -> None:
    def demo_command(*variables: str) -> str:
        done = subprocess.run(
            ["make", "-n", "demo", *variables], capture_output=True, text=True, cwd=ROOT, timeout=60
        )
        assert done.returncode == 0, done.stderr
        return next(line for line in done.stdout.splitlines() if "local.demo" in line)

    assert "--serve" not in demo_command()
    assert "--serve" not in demo_command("SERVE=0")
    assert "--serve" in demo_command("SERVE=1")


def test_ctrl_c_during_the_spark_step_ends_with_one_line(tmp_path) -> None:
    # Given the demo inside its Spark feature job (the JVM running)
    process = subprocess.Popen(
        [sys.executable, "-m", "local.demo", "--work", str(tmp_path), "--orders", "4000", "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    assert process.stdout is not None
    try:
        for line in process.stdout:
            if line.startswith("[2/"):  # the Spark step, whatever the demo's step count
                break
        import time

        time.sleep(15)
        # When Ctrl-C reaches the whole group (Python and the JVM)
        os.killpg(process.pid, signal.SIGINT)
        rest, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    # Then one line says so: no Py4J tracebacks
    assert process.returncode == 130, rest
    said = [
        line for line in rest.splitlines() if line.strip() and "WARN" not in line and "log level" not in line
    ]
    assert said[-1] == "interrupted: the demo stopped (finished steps are reused next time)", rest
    assert "Traceback" not in rest and "py4j" not in rest.lower(), rest
    assert len(said) <= 3, rest
