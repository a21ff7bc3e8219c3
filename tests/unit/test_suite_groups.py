"""How `make test` shares its workers (tests/conftest.py): the tests of a costly session fixture run on one
worker, so it is built once, and the longest groups are handed out first."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Stand-ins named as the suite's costly session fixtures (tests/conftest.py SHARED_WORKER): each build
# leaves a file, and each test leaves the worker it ran on, in the order it ran there.
FIXTURES = """
import os
from pathlib import Path

import pytest

OUT = Path(os.environ["GROUPS_OUT"])


def built(name):
    (OUT / f"built-{name}-{os.getpid()}").touch()
    return name


@pytest.fixture(scope="session")
def spark():
    return built("spark")


@pytest.fixture(scope="session")
def demo_run():
    return built("demo")


@pytest.fixture(autouse=True)
def record(request):
    with (OUT / os.environ["PYTEST_XDIST_WORKER"]).open("a") as ran:
        ran.write(request.node.name + "\\n")
"""


def test_a_costly_fixture_is_built_once_and_the_longest_groups_start_first(tmp_path: Path) -> None:
    suite, out = tmp_path / "suite", tmp_path / "out"
    suite.mkdir()
    out.mkdir()
    (suite / "conftest.py").write_text(FIXTURES)
    # short files first in collection order: unsorted, the long groups would be handed out last
    for name in ("a", "b", "c"):
        (suite / f"test_short_{name}.py").write_text(
            "".join(f"def test_{name}{i}():\n    pass\n\n\n" for i in range(3))
        )
    (suite / "test_zz_long.py").write_text(
        "".join(
            f"def test_spark{i}(spark):\n    pass\n\n\ndef test_demo{i}(demo_run):\n    pass\n\n\n"
            for i in range(4)
        )
    )
    env = {**os.environ, "GROUPS_OUT": str(out), "PYTHONPATH": str(ROOT)}
    for name in ("PYTEST_XDIST_WORKER", "PYTEST_ADDOPTS"):  # the outer run's, not this suite's
        env.pop(name, None)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-n", "2", "--dist", "loadgroup"]
        + ["--no-loadscope-reorder", "-q", "-p", "no:cacheprovider", "--rootdir", str(suite), str(suite)],
        cwd=suite,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert sorted(p.name.rsplit("-", 1)[0] for p in out.glob("built-*")) == ["built-demo", "built-spark"]
    ran = {worker.name: worker.read_text().split() for worker in out.glob("gw*")}
    assert sorted(ran) == ["gw0", "gw1"] and sum(map(len, ran.values())) == 17
    # each long group on one worker, each worker beginning with one
    firsts = sorted(tests[0].rstrip("0123") for tests in ran.values())
    assert firsts == ["test_demo", "test_spark"], ran
    for tests in ran.values():
        long = [t for t in tests if t.startswith(("test_spark", "test_demo"))]
        assert long == tests[: len(long)] and len({t.rstrip("0123") for t in long}) == 1, ran
