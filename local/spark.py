"""The one set of local Spark settings every local Spark job uses (the feature and the rules job).

Two cores' worth of shuffle partitions instead of Spark's default 200 (which writes up to 200 files per
date partition and spends most of a small job scheduling empty tasks), no progress bars, no UI, UTC.
Under AWS Glue the jobs take Glue's session instead; this module is not shipped there.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any

SHUFFLE_PARTITIONS = 8
# The driver is the whole local cluster. 2g ran the feature job at 1M orders out of memory once issue 14's
# pair items and windows came (SparkOutOfMemoryError in make bench's 1M run); 3g runs it in 223 s. The
# default demo's 100k orders stay far under it (its peak is measured by bench_demo).
DRIVER_MEMORY = "3g"


def local_session(app_name: str, cores: str = "local[*]") -> Any:
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master(cores)
        .appName(app_name)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", str(SHUFFLE_PARTITIONS))
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.memory", DRIVER_MEMORY)
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("WARN")
    quiet_status_listener(session)
    if threading.current_thread() is threading.main_thread():
        # PySpark's own Ctrl-C handler asks the JVM to cancel its jobs, but a terminal's Ctrl-C has
        # already ended the JVM (same process group): the handler then fails with Py4J tracebacks
        # instead of raising KeyboardInterrupt. A plain KeyboardInterrupt lets callers end in one line.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    return session


# Spark 3.5's status listener (which feeds the UI's store; the UI is off here) can read a stage's
# accumulators while a task thread updates them, and its queue then logs an ERROR with a 40-line Java
# stack (ArrayIndexOutOfBoundsException in LiveEntityHelpers.newAccumulatorInfos) in the middle of the
# demo's output. It changes no result: the job goes on. Seen once in a clean-clone `make test` (the
# Ctrl-C test of the demo's Spark step). That queue's logger is silenced; every other stays at WARN.
LISTENER_QUEUE_LOGGER = "org.apache.spark.scheduler.AsyncEventQueue"


def quiet_status_listener(session: Any) -> None:
    jvm = session.sparkContext._jvm
    jvm.org.apache.logging.log4j.core.config.Configurator.setLevel(
        LISTENER_QUEUE_LOGGER, jvm.org.apache.logging.log4j.Level.OFF
    )


def stop(session: Any) -> None:
    """Stop the session; after Ctrl-C the JVM may be gone already, which is no error worth a traceback."""
    import logging

    logging.getLogger("py4j").setLevel(logging.CRITICAL)
    with contextlib.suppress(Exception):  # the JVM went away with the interrupt, or is going
        session.sparkContext.setLogLevel("OFF")  # its cancelled tasks' errors are no news after Ctrl-C
    with contextlib.suppress(Exception):
        session.stop()
