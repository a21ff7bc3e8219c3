"""A throwaway MariaDB server on 127.0.0.1 (temp datadir, free port) for tests and local runs.

`start()` installs the server binaries with apt-get when neither `mariadbd` nor `mysqld` is found
(Debian's `mariadb-server-core` + `mariadb-client-core`: the binaries without the system service, so
nothing starts on port 3306 behind our back), initialises a datadir with `mariadb-install-db`, starts
the server and waits until it accepts connections. `MariaDB.stop()` ends it and removes the datadir.
Failures raise `MariaDBUnavailable` with the reason and the tail of the server log.

    .venv/bin/python -m local.mariadb      # start one, print how to connect, stop on Ctrl-C
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local.stack import free_port
from local.tls import TlsFiles

APT_PACKAGES = ("mariadb-server-core", "mariadb-client-core")
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin", "/usr/bin"])


class MariaDBUnavailable(RuntimeError):
    """The local MariaDB server could not be installed or started; the message says why."""


@dataclass
class MariaDB:
    host: str
    port: int
    socket: str
    datadir: Path
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def connect(self, database: str | None = None, **kwargs: Any) -> Any:
        """An administrative (root, unix socket) pymysql connection."""
        import pymysql

        return pymysql.connect(
            unix_socket=self.socket, user="root", password="", database=database, autocommit=True, **kwargs
        )

    def create_database(self, name: str, user: str, password: str) -> None:
        """A database and a TCP user owning it (what an application gets from its secret)."""
        with self.connect() as connection, connection.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4")
            cursor.execute("CREATE USER IF NOT EXISTS %s@'127.0.0.1' IDENTIFIED BY %s", (user, password))
            cursor.execute(f"GRANT ALL PRIVILEGES ON `{name}`.* TO %s@'127.0.0.1'", (user,))

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        shutil.rmtree(self.datadir.parent, ignore_errors=True)


def find_binaries() -> tuple[str, str] | None:
    """(server, install-db) paths, or None when the server is not installed."""
    server = shutil.which("mariadbd", path=SEARCH_PATH) or shutil.which("mysqld", path=SEARCH_PATH)
    install_db = shutil.which("mariadb-install-db", path=SEARCH_PATH) or shutil.which(
        "mysql_install_db", path=SEARCH_PATH
    )
    return (server, install_db) if server and install_db else None


def can_install() -> bool:
    return shutil.which("apt-get") is not None and os.geteuid() == 0


def install_plan() -> str:
    """One line for the test suite's header: what it uses or will install, and how."""
    binaries = find_binaries()
    if binaries:
        return f"MariaDB for the blocklist tests: {binaries[0]}"
    if can_install():
        return (
            "MariaDB for the blocklist tests: not found, the suite installs it with "
            f"`apt-get install -y --no-install-recommends {' '.join(APT_PACKAGES)}`"
        )
    return (
        "MariaDB for the blocklist tests: not found and cannot be installed here (needs root and apt-get): "
        f"install {' '.join(APT_PACKAGES)}, or the blocklist tests fail"
    )


def ensure_installed() -> tuple[str, str]:
    binaries = find_binaries()
    if binaries:
        return binaries
    if not can_install():
        raise MariaDBUnavailable(
            "MariaDB is not installed (no mariadbd/mysqld) and cannot be installed here: "
            f"needs root and apt-get. Install it with: apt-get install -y {' '.join(APT_PACKAGES)}"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    command = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *APT_PACKAGES]
    print(f"installing MariaDB for the blocklist tests: {' '.join(command)}", file=sys.__stderr__, flush=True)
    result = _run(command, env)
    if result.returncode != 0:  # a fresh machine may have no package lists yet
        _run(["apt-get", "update", "-q"], env)
        result = _run(command, env)
    binaries = find_binaries()
    if result.returncode != 0 or binaries is None:
        raise MariaDBUnavailable(
            f"`{' '.join(command)}` failed (exit {result.returncode}): {result.stdout[-2000:]}"
        )
    return binaries


def start(timeout: float = 60.0, tls: TlsFiles | None = None) -> MariaDB:
    """Install if needed, initialise a temp datadir, start on a free 127.0.0.1 port, wait until ready.
    With `tls` the server offers TLS with that certificate (clients verify it against `tls.ca`)."""
    server, install_db = ensure_installed()
    root = Path(tempfile.mkdtemp(prefix="returnguard-mariadb-"))
    datadir = root / "data"
    user = ["--user=root"] if os.geteuid() == 0 else []
    init = _run(
        [
            install_db,
            "--no-defaults",
            f"--datadir={datadir}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            *user,
        ]
    )
    if init.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise MariaDBUnavailable(f"mariadb-install-db failed: {init.stdout[-2000:]}")
    port = free_port()
    socket = str(root / "mysqld.sock")
    log = root / "error.log"
    process = subprocess.Popen(
        [
            server,
            "--no-defaults",
            f"--datadir={datadir}",
            f"--socket={socket}",
            f"--port={port}",
            "--bind-address=127.0.0.1",
            f"--pid-file={root / 'mysqld.pid'}",
            f"--log-error={log}",
            "--skip-name-resolve",
            "--skip-log-bin",
            "--innodb-buffer-pool-size=32M",
            "--max-connections=50",
            *([f"--ssl-ca={tls.ca}", f"--ssl-cert={tls.cert}", f"--ssl-key={tls.key}"] if tls else []),
            *user,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    database = MariaDB(host="127.0.0.1", port=port, socket=socket, datadir=datadir, _process=process)
    atexit.register(database.stop)  # an interrupted run still leaves no server behind
    deadline = time.monotonic() + timeout
    while True:
        try:
            database.connect().close()
            return database
        except Exception as error:  # not listening yet
            if process.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                database.stop()
                raise MariaDBUnavailable(f"MariaDB did not start ({error}); server log: {tail}") from error
            time.sleep(0.2)


def _run(command: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


if __name__ == "__main__":
    local = start()
    print(f"MariaDB on {local.host}:{local.port} (socket {local.socket}); Ctrl-C stops it")
    from local.stack import run_until_interrupted

    run_until_interrupted(local)
