"""Lambda SnapStart runtime hooks: nothing a restored copy must not share goes into the snapshot.

With SnapStart, Lambda runs the function's init once per published version, snapshots the memory and
starts every later execution environment from that snapshot. So, before the snapshot, every botocore
client's connection pool is closed (a restored copy would otherwise reuse a socket to a peer that
forgot it; urllib3 reconnects on first use), and after each restore Python's `random` is reseeded from
the OS (botocore's retry jitter uses it: restored copies would otherwise back off in lockstep).
`uuid4`, `secrets` and `os.urandom` read the OS each call and need nothing. Credentials are not cached
across the snapshot by us: boto3 refreshes Lambda's container credentials when they expire.

`snapshot_restore_py` ships with Lambda's Python 3.12+ runtimes (with or without SnapStart on); where it
does not exist (tests, the local API) `register` does nothing and says so.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from typing import Any


def close_connections(clients: Iterable[Any]) -> int:
    """Close each botocore client's pooled HTTP connections; returns how many clients it closed."""
    closed = 0
    for client in clients:
        client._endpoint.http_session.close()  # botocore's URLLib3Session: clears its pool managers
        closed += 1
    return closed


def reseed() -> None:
    random.seed()  # from os.urandom: each restored copy gets its own sequence


def register(clients: Callable[[], Iterable[Any]], hooks: Any = None) -> bool:
    """Register the before-snapshot and after-restore hooks with the runtime (`hooks`: the
    `snapshot_restore_py` module, found by import when not given). False where there is no such runtime."""
    if hooks is None:
        try:
            import snapshot_restore_py as hooks  # type: ignore[import-not-found,no-redef]
        except ImportError:
            return False
    hooks.register_before_snapshot(lambda: close_connections(clients()))
    hooks.register_after_restore(reseed)
    return True
