"""A machine that has no MariaDB and cannot install it sees one failure naming the packages, not one per test."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_one_failure_names_the_packages_when_mariadb_cannot_be_installed(tmp_path: Path) -> None:
    plugin = tmp_path / "no_mariadb_here.py"
    plugin.write_text(
        textwrap.dedent(
            """
            from local import mariadb

            mariadb.find_binaries = lambda: None  # no server on this machine
            mariadb.can_install = lambda: False  # and no root / apt-get to install one
            """
        )
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]), "PYTEST_ADDOPTS": ""}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no_mariadb_here",
            "-p",
            "no:cacheprovider",
            "-q",
            "-rfE",
            "tests/integration/blocklist/test_blocklist_sync.py",
            "tests/integration/blocklist/test_blocklist_tls.py",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 1, output
    summary = run.stdout.strip().splitlines()[-1]  # stderr may carry warnings after it
    assert "1 error" in summary and "deselected" in summary and "passed" not in summary, summary
    # one test reports it (the short summary repeats the message in full under CI=true, so count errors)
    assert output.count("ERROR at setup of") == 1, output
    assert "need a local MariaDB server" in output
    assert "apt-get install -y mariadb-server-core mariadb-client-core" in output
    assert "more tests need it and were not run" in output
