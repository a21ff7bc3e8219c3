"""`make demo` against its budget: wall time (< 5 min) and peak memory of the whole process tree,
Spark's JVM included (< 4 GB), run from a fresh work folder at the default scale.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUDGET_SECONDS = 300.0
BUDGET_BYTES = 4 * 1024**3


def _tree_rss(pid: int) -> int:
    """Resident memory of a process and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry))
            rss[int(entry)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        total += rss.get(current, 0)
        stack.extend(children.get(current, []))
    return total


def run(scale: str) -> list[dict]:
    orders = "20000" if scale == "quick" else "100000"
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "local.demo", "--work", tmp, "--orders", orders],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        peak = [0]

        def sample() -> None:
            while process.poll() is None:
                peak[0] = max(peak[0], _tree_rss(process.pid))
                time.sleep(0.25)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        code = process.wait()
        sampler.join()
        seconds = time.perf_counter() - started
    if code != 0:
        raise RuntimeError(f"demo exited with {code}")
    return [
        {
            "name": f"make demo wall time ({orders} orders)",
            "value": seconds,
            "unit": "s",
            "baseline": BUDGET_SECONDS,
            "ratio": seconds / BUDGET_SECONDS,
        },
        {
            "name": f"make demo peak memory, process tree ({orders} orders)",
            "value": peak[0] / 1024**2,
            "unit": "MiB",
            "baseline": BUDGET_BYTES / 1024**2,
            "ratio": peak[0] / BUDGET_BYTES,
        },
    ]
