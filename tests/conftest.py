"""Fixtures shared by every test folder. Keep expensive things session-scoped and cached under build/."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from _pytest.nodeid import NodeId
from hypothesis import settings

pytest_plugins = ["tests.cdk_synth"]  # the dev and prod synths, shared by tests/infra and tests/integration

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build" / "test-cache"

# The driver JVM of every Spark session the suite starts compiles with C1 only: the tests' Spark work is
# many small queries on a few thousand rows, where C2's compiler threads cost more CPU than their
# faster code gives back. The session of the spark fixture below sets it itself; the sessions the demo
# and the documented commands start in their own processes read Spark's defaults file, from the
# SPARK_CONF_DIR they inherit (Spark's own variable: the commands stay as a user types them). A JIT
# setting: no result depends on it.
C1_ONLY = "-XX:TieredStopAtLevel=1"


def _spark_defaults() -> Path:
    folder = BUILD / "spark-conf"
    folder.mkdir(parents=True, exist_ok=True)
    staged = folder / f".spark-defaults.conf.{os.getpid()}"
    staged.write_text(f"spark.driver.extraJavaOptions {C1_ONLY}\n")
    os.replace(staged, folder / "spark-defaults.conf")  # two workers write the same bytes, whole
    return folder


if "SPARK_CONF_DIR" not in os.environ:
    os.environ["SPARK_CONF_DIR"] = str(_spark_defaults())

# Tests never reach real AWS: fake credentials and a fixed region for every boto3 client.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_SESSION_TOKEN", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")

# Property tests check behaviour, not speed: no per-example deadline (hypothesis' 200 ms default fails
# a correct property on a loaded 2-core machine), and in CI the same examples every run, so a red run
# can be replayed (a developer's run keeps exploring new ones).
settings.register_profile("returnguard", deadline=None, derandomize=bool(os.environ.get("CI")))
settings.load_profile("returnguard")


def pytest_report_header(config: pytest.Config) -> list[str]:
    """What the suite installs on the machine (apt-get), said before it starts."""
    from local import chromium, mariadb

    return [mariadb.install_plan(), chromium.install_plan()]


# `make test` runs the suite on two pytest-xdist workers (--dist loadgroup). Each test file stays on one
# worker (its module fixtures start once), and the tests of a costly session fixture share a worker,
# so it is built once: one Spark session, one CDK synth of each stage, and one worker for the fixtures
# that may apt-get install a server (two dpkg runs at once would fight over dpkg's lock).
SHARED_WORKER = {
    "spark": "spark",
    "fake_model_dir": "cdk",
    "dev": "cdk",
    "prod": "cdk",
    "demo_run": "demo",  # test_demo and the docs tests: one small `make demo`
    "mariadb_server": "apt",
    "browser": "apt",
}
# The scheduler hands the groups out in the order of their first test (the Makefile passes
# --no-loadscope-reorder; xdist would otherwise order them by their number of tests) and gives a worker
# the next group when it has two tests left. So the longest groups go first, one to each worker, and
# the many short files fill in after them: a long group started last would run on alone.
LONGEST_FIRST = ("spark", "demo", "cdk", "apt")


def xdist_group(item: pytest.Item) -> str:
    fixtures = set(getattr(item, "fixturenames", ()))
    group = next((name for fixture, name in SHARED_WORKER.items() if fixture in fixtures), None)
    return group or item.nodeid.split("::", 1)[0]


# xdist's worker reads the xdist_group marks in its own pytest_collection_modifyitems and appends
# "@group" to each test's id, which is what loadgroup schedules by: the marks go on before it (this hook
# wraps it). pytest 9.2 keeps a node's id in `_id`, while pytest-xdist 3.8 still writes the old `_nodeid`
# (pytest-dev/pytest-xdist#1386), so the id is set again after it. Without both, every test was a group of
# its own: both workers built the demo, the Spark session, both synths and the module fixtures of the
# files whose tests they shared.
@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> Iterator[None]:
    rank = {group: position for position, group in enumerate(LONGEST_FIRST)}
    grouped = [(item, xdist_group(item)) for item in items]
    for item, group in grouped:
        item.add_marker(pytest.mark.xdist_group(group))
    grouped.sort(key=lambda pair: rank.get(pair[1], len(rank)))  # stable: file order within a group
    items[:] = [item for item, _ in grouped]
    yield
    for item in items:
        written = getattr(item, "_nodeid", None)
        if written and written != item.nodeid:
            item._id = NodeId.parse(written)  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def build_cache() -> Path:
    """A folder that survives between runs (under build/, ignored by git) for cached artifacts."""
    BUILD.mkdir(parents=True, exist_ok=True)
    return BUILD


@pytest.fixture(scope="session")
def spark():
    """One local Spark session for the whole run: two cores, few shuffle partitions, UTC, the driver
    JVM compiling with C1 only (C1_ONLY above; the feature job on 1,000 orders: 28-38 s against 55-56 s,
    runs interleaved on a loaded 2-core machine)."""
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("returnguard-tests")
        .config("spark.driver.extraJavaOptions", C1_ONLY)
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.memory", "2g")
        .config("spark.sql.warehouse.dir", str(BUILD / "spark-warehouse"))
        .getOrCreate()
    )
    yield session
    session.stop()


@pytest.fixture(scope="session")
def small_table():
    """A point-in-time training table for 20k synthetic orders (the replay reference, no Spark)."""
    from returnguard import synth

    return synth.replay_table(synth.generate(synth.SynthConfig(orders=20_000, seed=11)))


@pytest.fixture(scope="session")
def trained_model(small_table, tmp_path_factory):
    """A real model trained by training/train.py on the small table: (model_dir, output_dir, result)."""
    from training import train

    root = tmp_path_factory.mktemp("model")
    result = train.train_frame(small_table, root, "--num_round", "150")
    return root / "model", root / "output", result


@pytest.fixture(scope="session")
def return_table():
    """Point-in-time return requests (about 760) with labels, from the return lane's reference replay."""
    from tests.return_model import return_table

    return return_table()


@pytest.fixture(scope="session")
def two_lane_model(trained_model, return_table, tmp_path_factory):
    """One model folder carrying both lanes: the order model at its root, a small return model under
    return/ (trained here on the declared return features)."""
    from tests.return_model import add_return_model

    return add_return_model(trained_model[0], tmp_path_factory.mktemp("two-lane") / "model", return_table)


@pytest.fixture(scope="session")
def payment_lane_model(trained_model, tmp_path_factory):
    """The order model with a small card-payment model under payment/ (trained here on the payment
    features of a synthetic history: ~7,000 payments, 40 rounds)."""
    from tests.payment_model import add_payment_model, payment_table

    return add_payment_model(
        trained_model[0], tmp_path_factory.mktemp("payment-lane") / "model", payment_table()
    )
