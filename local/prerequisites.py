"""What the local commands need from the machine, checked up front with one line each.

    .venv/bin/python -m local.prerequisites python java node     # what `make test` checks

python: 3.11+ (Glue 5.0's version; the `returnguard` package itself stays 3.10-compatible for the
SageMaker XGBoost container). java: 17, for Spark (the feature and rules jobs). node: a supported LTS
(22 or 24), for the CDK (jsii, `npx aws-cdk@2`); an end-of-life Node still runs the CDK here, so it
is a warning, a missing one an error.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import date

PYTHON_MIN = (3, 11)
JAVA_MAJOR = 17
# Node's release schedule (nodejs.org): even majors are LTS, each supported until its end of life.
NODE_END_OF_LIFE = {
    18: date(2025, 4, 30),
    20: date(2026, 4, 30),
    22: date(2027, 4, 30),
    24: date(2028, 4, 30),
    26: date(2029, 4, 30),
}
CHECKS = ("python", "java", "node")


@dataclass(frozen=True)
class Finding:
    check: str
    ok: bool
    message: str  # one line
    fatal: bool = True

    @property
    def line(self) -> str:
        return f"{'ok' if self.ok else 'error' if self.fatal else 'warning'}: {self.message}"


def check_python(version: tuple[int, ...] = tuple(sys.version_info[:3])) -> Finding:
    shown = ".".join(map(str, version))
    if version[:2] >= PYTHON_MIN:
        return Finding("python", True, f"Python {shown}")
    return Finding(
        "python",
        False,
        f"Python {shown} is too old: ReturnGuard needs Python {'.'.join(map(str, PYTHON_MIN))}+ "
        "(make PYTHON=python3.11 ...)",
    )


def _run(command: list[str]) -> str | None:
    if shutil.which(command[0]) is None:
        return None
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout + done.stderr


def java_major(output: str) -> int | None:
    """`java -version` prints e.g. 'openjdk version "17.0.15"' (or "1.8.0_402" for Java 8)."""
    found = re.search(r'version "(\d+)(?:\.(\d+))?', output)
    if not found:
        return None
    major = int(found.group(1))
    return int(found.group(2) or 0) if major == 1 else major


def check_java(output: str | None = None) -> Finding:
    output = _run(["java", "-version"]) if output is None else output
    if not output:
        return Finding(
            "java",
            False,
            f"Java {JAVA_MAJOR} not found (Spark needs it): install it, e.g. "
            f"apt-get install openjdk-{JAVA_MAJOR}-jre-headless, or put its bin/ on PATH",
        )
    major = java_major(output)
    if major == JAVA_MAJOR:
        return Finding("java", True, f"Java {major}")
    if major in (11, 21):
        return Finding(
            "java", False, f"Java {major} found; Spark here is tested with Java {JAVA_MAJOR}", fatal=False
        )
    return Finding(
        "java",
        False,
        f"Java {major or '?'} found; Spark 3.5 needs Java {JAVA_MAJOR} (8, 11 and 17 are supported)",
    )


def check_node(output: str | None = None, today: date | None = None) -> Finding:
    output = _run(["node", "--version"]) if output is None else output
    supported = sorted(major for major, end in NODE_END_OF_LIFE.items() if end > (today or date.today()))[:2]
    wanted = " or ".join(map(str, supported))
    if not output:
        return Finding(
            "node",
            False,
            f"Node not found (the CDK needs it): install a supported LTS, Node {wanted} (nodejs.org)",
        )
    found = re.search(r"v?(\d+)\.(\d+)\.(\d+)", output)
    if not found:
        return Finding("node", False, f"cannot read the Node version from {output.strip()[:60]!r}")
    major, shown = int(found.group(1)), found.group(0).lstrip("v")
    end = NODE_END_OF_LIFE.get(major)
    if end is None or major % 2:
        return Finding(
            "node",
            False,
            f"Node {shown} is not an LTS release: use Node {wanted}",
            fatal=major < min(supported),
        )
    if end <= (today or date.today()):
        return Finding(
            "node",
            False,
            f"Node {shown} reached end of life on {end.isoformat()}: the CDK still runs, but install a "
            f"supported LTS, Node {wanted} (nodejs.org)",
            fatal=False,
        )
    return Finding("node", True, f"Node {shown} (LTS until {end.isoformat()})")


def node_notice() -> str | None:
    """For `app.py` before it imports the CDK: the one-line Node finding (None when all is well), and
    jsii's own multi-line end-of-life banner silenced for the Node version that finding is about."""
    output = _run(["node", "--version"]) or ""
    finding = check_node(output)
    found = re.search(r"v?(\d+)\.", output)
    if found and not (not finding.ok and finding.fatal):
        os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", found.group(1))
    return None if finding.ok else finding.line


def check(names: list[str] | tuple[str, ...]) -> list[Finding]:
    checkers = {"python": check_python, "java": check_java, "node": check_node}
    return [checkers[name]() for name in names]


def require(names: list[str] | tuple[str, ...], verbose: bool = False) -> bool:
    """Print a line for each problem (and for each success when verbose); False if any is fatal."""
    findings = check(names)
    for finding in findings:
        if verbose or not finding.ok:
            print(finding.line, file=sys.stderr if not finding.ok else sys.stdout, flush=True)
    return not any(not f.ok and f.fatal for f in findings)


def main(argv: list[str] | None = None) -> int:
    names = list(argv if argv is not None else sys.argv[1:]) or list(CHECKS)
    unknown = [name for name in names if name not in CHECKS]
    if unknown:
        print(f"unknown check {', '.join(unknown)} (known: {', '.join(CHECKS)})", file=sys.stderr)
        return 2
    return 0 if require(names) else 1


if __name__ == "__main__":
    raise SystemExit(main())
