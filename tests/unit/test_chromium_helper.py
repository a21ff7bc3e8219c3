"""local/chromium.py: says what it installs, and fails with what to install when it cannot."""

from __future__ import annotations

import pytest

from local import chromium


def test_no_root_means_a_clear_failure_naming_the_package(monkeypatch) -> None:
    monkeypatch.setattr(chromium, "find_binary", lambda: None)
    monkeypatch.setattr(chromium.os, "geteuid", lambda: 1000)
    assert "cannot be installed here" in chromium.install_plan()
    with pytest.raises(chromium.ChromiumUnavailable) as raised:
        chromium.ensure_installed()
    assert "apt-get install -y chromium" in str(raised.value)


def test_a_failed_install_says_what_apt_get_said(monkeypatch) -> None:
    monkeypatch.setattr(chromium, "find_binary", lambda: None)
    monkeypatch.setattr(chromium.os, "geteuid", lambda: 0)
    monkeypatch.setattr(chromium.shutil, "which", lambda name, path=None: "/usr/bin/apt-get")
    calls = []

    def fake_run(command, env=None):
        calls.append(command)
        return chromium.subprocess.CompletedProcess(
            command, 100, stdout="E: Unable to locate package chromium"
        )

    monkeypatch.setattr(chromium, "_run", fake_run)
    assert "the suite installs it with `apt-get install" in chromium.install_plan()
    with pytest.raises(chromium.ChromiumUnavailable) as raised:
        chromium.ensure_installed()
    assert "Unable to locate package chromium" in str(raised.value)
    assert calls[1] == ["apt-get", "update", "-q"]  # a fresh machine has no package lists yet
