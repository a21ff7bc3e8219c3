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


def local_session(app_name: str, cores: str = "local[*]") -> Any:
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master(cores)
        .appName(app_name)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", str(SHUFFLE_PARTITIONS))
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.memory", "2g")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("WARN")
    if threading.current_thread() is threading.main_thread():
        # PySpark's own Ctrl-C handler asks the JVM to cancel its jobs, but a terminal's Ctrl-C has
        # already ended the JVM (same process group): the handler then fails with Py4J tracebacks
        # instead of raising KeyboardInterrupt. A plain KeyboardInterrupt lets callers end in one line.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    return session


def stop(session: Any) -> None:
    """Stop the session; after Ctrl-C the JVM may be gone already, which is no error worth a traceback."""
    import logging

    logging.getLogger("py4j").setLevel(logging.CRITICAL)
    with contextlib.suppress(Exception):  # the JVM went away with the interrupt, or is going
        session.sparkContext.setLogLevel("OFF")  # its cancelled tasks' errors are no news after Ctrl-C
    with contextlib.suppress(Exception):
        session.stop()
