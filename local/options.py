"""Command-line options the local commands share, checked before any slow work starts.

Each bad value ends the command with one line naming the option and what is allowed (argparse's
`error: argument --port: ...`), never a traceback after minutes of training. Where the local API
listens is written to `<work>/api.json`, which the `returnguard` CLI reads.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import socket
from pathlib import Path
from typing import Any, NoReturn


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: `<command>: argument --port: ...` (the usage is in --help)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (--help lists the options)\n")


DEFAULT_API_PORT = 8000  # docs/openapi.yaml's local server and the CLI's last resort
API_FILE = "api.json"


def port_number(text: str) -> int:
    """argparse type: a TCP port, 0 (any free one) to 65535."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a port number (0-65535; 0 = any free port)"
        ) from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is out of range (0-65535; 0 = any free port)")
    return port


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True when something already listens on host:port (port 0 is never in use)."""
    if port == 0:
        return False
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError as error:
            if error.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise
    return False


def api_port(parser: argparse.ArgumentParser, requested: int | None) -> int:
    """The port to serve the local API on, decided up front.

    None (no --port): DEFAULT_API_PORT, or any free port with a line saying so when it is taken.
    An explicit port that is taken is an error naming --port, before anything slow runs.
    """
    if requested is None:
        if port_in_use(DEFAULT_API_PORT):
            print(
                f"note: port {DEFAULT_API_PORT} is in use, so the API will listen on a free port instead; "
                f"its address is printed below and written to build/demo/{API_FILE}, which `returnguard` reads",
                flush=True,
            )
            return 0
        return DEFAULT_API_PORT
    if port_in_use(requested):
        parser.error(
            f"argument --port: {requested} is already in use on 127.0.0.1 (choose another, or 0 for any free port)"
        )
    return requested


def policy_json(text: str) -> dict[str, Any]:
    """argparse type: the `policy` overrides as a JSON object, e.g. '{"high": 0.5}'."""
    from returnguard.policy import POLICY_SETTINGS

    example = 'e.g. \'{"high": 0.5, "velocity_orders": 3}\''
    try:
        value = json.loads(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(
            f"not JSON ({error.msg}); expected a JSON object, {example}"
        ) from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(
            f"expected a JSON object with any of {', '.join(POLICY_SETTINGS)}, {example}; got {type(value).__name__}"
        )
    return value


def write_api_file(work: Path, url: str) -> Path:
    """Tell the CLI (and people) where the local API listens while it runs."""
    work.mkdir(parents=True, exist_ok=True)
    path = work / API_FILE
    path.write_text(json.dumps({"url": url, "pid": os.getpid()}) + "\n")
    return path


def remove_api_file(work: Path) -> None:
    """Forget the address, but only if this process wrote it (another API may have started since)."""
    path = work / API_FILE
    try:
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError):
        pass
