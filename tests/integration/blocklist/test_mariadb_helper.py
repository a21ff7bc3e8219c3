"""The local MariaDB helper explains itself when it can't install the server."""

from __future__ import annotations

import pytest

from local import mariadb


def test_missing_server_without_root_raises_with_the_install_command(monkeypatch):
    monkeypatch.setattr(mariadb, "find_binaries", lambda: None)
    monkeypatch.setattr(mariadb.os, "geteuid", lambda: 1000)

    with pytest.raises(mariadb.MariaDBUnavailable) as raised:
        mariadb.ensure_installed()

    assert "apt-get install -y mariadb-server-core mariadb-client-core" in str(raised.value)


def test_failed_apt_install_raises_with_its_output(monkeypatch):
    monkeypatch.setattr(mariadb, "find_binaries", lambda: None)
    monkeypatch.setattr(mariadb.os, "geteuid", lambda: 0)
    monkeypatch.setattr(mariadb.shutil, "which", lambda name, path=None: "/usr/bin/apt-get")
    calls = []

    def fake_run(command, env=None):
        calls.append(command[:2])
        return mariadb.subprocess.CompletedProcess(command, 100, stdout="E: Unable to locate package")

    monkeypatch.setattr(mariadb, "_run", fake_run)
    with pytest.raises(mariadb.MariaDBUnavailable) as raised:
        mariadb.ensure_installed()

    assert "Unable to locate package" in str(raised.value)
    assert calls == [["apt-get", "install"], ["apt-get", "update"], ["apt-get", "install"]]
