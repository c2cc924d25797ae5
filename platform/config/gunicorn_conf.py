"""gunicorn settings the Procfile passes with -c: metrics that add up over workers.

Each worker counts in its own files under METRICS_DIR/web (prometheus_client's
multiprocess mode), so a scrape answered by any one worker reports them all.
The folder is emptied when the server starts, and an exited worker's live
gauges are dropped (its counters stay in the totals, as Prometheus expects).
"""

import os
import shutil

_root = os.environ.get("METRICS_DIR")
if _root:
    # Before any worker imports prometheus_client, which reads it once.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = os.path.join(_root, "web")


def on_starting(server):
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        shutil.rmtree(directory, ignore_errors=True)
        os.makedirs(directory, exist_ok=True)


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
