"""Headless Chromium for the console's browser tests: Debian's `chromium`, installed like MariaDB's server.

`ensure_installed()` returns the browser's path, installing Debian's `chromium` with apt-get when it is
missing (Playwright drives it through `executable_path`; its own browser download is not reachable
offline and is never used). Failures raise `ChromiumUnavailable` saying why and what to install.
`LAUNCH_ARGS` are the flags it needs here: no sandbox (the suite runs as root), no GPU, and none of the
background connections a closed network refuses (updates, sync, field trials, QUIC).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

APT_PACKAGES = ("chromium",)
CANDIDATES = ("chromium", "chromium-browser")
LAUNCH_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)


class ChromiumUnavailable(RuntimeError):
    """Chromium is not installed and could not be; the message says why and what to install."""


def find_binary() -> str | None:
    for name in CANDIDATES:
        found = shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/bin"]))
        if found:
            return found
    return None


def can_install() -> bool:
    return shutil.which("apt-get") is not None and os.geteuid() == 0


def install_plan() -> str:
    """One line for the test suite's header: what it uses or will install, and how."""
    binary = find_binary()
    if binary:
        return f"Chromium for the console's browser tests: {binary}"
    if can_install():
        return (
            "Chromium for the console's browser tests: not found, the suite installs it with "
            f"`apt-get install -y --no-install-recommends {' '.join(APT_PACKAGES)}`"
        )
    return (
        "Chromium for the console's browser tests: not found and cannot be installed here (needs root and "
        f"apt-get): install {' '.join(APT_PACKAGES)}, or the browser tests fail"
    )


def ensure_installed() -> str:
    binary = find_binary()
    if binary:
        return binary
    if not can_install():
        raise ChromiumUnavailable(
            "Chromium is not installed and cannot be installed here: needs root and apt-get. "
            f"Install it with: apt-get install -y {' '.join(APT_PACKAGES)}"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    command = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *APT_PACKAGES]
    print(f"installing Chromium for the browser tests: {' '.join(command)}", file=sys.__stderr__, flush=True)
    result = _run(command, env)
    if result.returncode != 0:  # a fresh machine may have no package lists yet
        _run(["apt-get", "update", "-q"], env)
        result = _run(command, env)
    binary = find_binary()
    if result.returncode != 0 or binary is None:
        raise ChromiumUnavailable(
            f"`{' '.join(command)}` failed (exit {result.returncode}): {result.stdout[-2000:]}"
        )
    return binary


def _run(command: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
