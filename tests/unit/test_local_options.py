"""The local commands' options and prerequisite checks: one line naming the problem, before slow work."""

from __future__ import annotations

import json
import os
from datetime import date

import pytest

from local import options, prerequisites
from returnguard import cli


def test_the_default_port_falls_back_to_a_free_one_and_says_so(monkeypatch, capsys) -> None:
    monkeypatch.setattr(options, "port_in_use", lambda port, host="127.0.0.1": port == 8000)
    assert options.api_port(options.Parser(), None) == 0
    assert "port 8000 is in use" in capsys.readouterr().out
    monkeypatch.setattr(options, "port_in_use", lambda port, host="127.0.0.1": False)
    assert options.api_port(options.Parser(), None) == 8000


def test_policy_must_be_a_json_object() -> None:
    assert options.policy_json('{"high": 0.5}') == {"high": 0.5}
    for bad in ("{high: 0.5}", "[1]", "0.5", ""):
        with pytest.raises(Exception, match="JSON object"):
            options.policy_json(bad)


def test_cli_reads_where_the_local_api_listens(tmp_path, monkeypatch) -> None:
    (tmp_path / "build" / "demo").mkdir(parents=True)
    monkeypatch.delenv("RETURNGUARD_URL", raising=False)
    assert cli.local_api_url((tmp_path,)) is None
    options.write_api_file(tmp_path / "build" / "demo", "http://127.0.0.1:41234")
    assert cli.local_api_url((tmp_path,)) == "http://127.0.0.1:41234"
    monkeypatch.chdir(tmp_path)
    assert cli.default_url() == "http://127.0.0.1:41234"
    monkeypatch.setenv("RETURNGUARD_URL", "http://example.test")
    assert cli.default_url() == "http://example.test"
    options.remove_api_file(tmp_path / "build" / "demo")
    assert not (tmp_path / "build" / "demo" / "api.json").exists()


def test_api_file_of_another_process_is_left_alone(tmp_path) -> None:
    (tmp_path / "api.json").write_text(json.dumps({"url": "http://127.0.0.1:1", "pid": os.getpid() + 1}))
    options.remove_api_file(tmp_path)
    assert (tmp_path / "api.json").exists()


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('java version "1.8.0_402"', 8),
        ('openjdk version "21" 2023-09-19', 21),
        ("nonsense", None),
    ],
)
def test_java_version_is_read(output, major) -> None:
    assert prerequisites.java_major(output) == major


def test_java_missing_or_wrong_is_one_line_each() -> None:
    assert prerequisites.check_java('openjdk version "17.0.15"').ok
    missing = prerequisites.check_java("")
    assert not missing.ok and missing.fatal and "Java 17 not found" in missing.line
    old = prerequisites.check_java('java version "1.7.0_80"')
    assert not old.ok and old.fatal and "needs Java 17" in old.line


def test_node_must_be_a_supported_lts() -> None:
    today = date(2026, 11, 30)
    assert prerequisites.check_node("v22.11.0", today).ok
    assert prerequisites.check_node("v24.1.0", today).ok
    eol = prerequisites.check_node("v20.20.2", today)
    assert not eol.ok and not eol.fatal  # the CDK still runs: a warning, not a stop
    assert "end of life on 2026-04-30" in eol.line and "Node 22 or 24" in eol.line
    assert not prerequisites.check_node("v18.0.0", today).ok
    assert prerequisites.check_node("v23.1.0", today).message.endswith("use Node 22 or 24")
    missing = prerequisites.check_node("", today)
    assert not missing.ok and missing.fatal and "Node not found" in missing.line


def test_python_version() -> None:
    assert prerequisites.check_python((3, 11, 7)).ok
    assert "needs Python 3.11+" in prerequisites.check_python((3, 10, 12)).line


def test_suite_header_says_what_it_installs(monkeypatch) -> None:
    from local import mariadb

    monkeypatch.setattr(mariadb, "find_binaries", lambda: None)
    monkeypatch.setattr(mariadb, "can_install", lambda: True)
    assert "installs it with `apt-get install -y --no-install-recommends mariadb-server-core" in (
        mariadb.install_plan()
    )
    monkeypatch.setattr(mariadb, "can_install", lambda: False)
    line = mariadb.install_plan()
    assert "cannot be installed here" in line and "mariadb-server-core mariadb-client-core" in line
    with pytest.raises(mariadb.MariaDBUnavailable, match="apt-get install -y mariadb-server-core"):
        mariadb.ensure_installed()
    monkeypatch.setattr(
        mariadb, "find_binaries", lambda: ("/usr/sbin/mariadbd", "/usr/bin/mariadb-install-db")
    )
    assert mariadb.install_plan() == "MariaDB for the blocklist tests: /usr/sbin/mariadbd"
