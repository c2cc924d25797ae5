"""Start a real Celery worker process on Redis, against the test database."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.db import connection

REPO = Path(__file__).resolve().parents[1]


def test_database_url() -> str:
    db = connection.settings_dict
    user = f"{db['USER']}@" if db["USER"] else ""
    return f"postgres://{user}{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def start_worker(*, var_dir: Path, queue: str, log_path: Path, **env) -> subprocess.Popen:
    """A worker consuming only `queue`, so tests never race a developer's worker."""
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.development",
        "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "platform")]),
        "VAR_DIR": str(var_dir),
        "SECRET_KEY": "worker-test-" + "k" * 50,
        "ENCRYPTION_KEYS": ",".join(settings.ENCRYPTION_KEYS),
        "DEBUG": "false",
        "DATABASE_URL": test_database_url(),  # the throw-away test database
        "CELERY_BROKER_URL": settings.TEST_REDIS_URL,
        "CELERY_RESULT_BACKEND": settings.TEST_REDIS_URL,
        **env,
    }
    log = open(log_path, "a")  # noqa: SIM115 - the child owns it
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool",
            "solo",
            "--queues",
            queue,
            "--without-mingle",
            "--without-gossip",
            "--loglevel",
            "INFO",
        ],
        cwd=REPO,
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def stop_worker(process: subprocess.Popen, *, kill: bool = False) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def wait_for(predicate, timeout, what, *, every=0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


# The promise: a job whose worker died has ended within two minutes of a
# worker being available again.
BOUND_SECONDS = 120


def sweep_until_ended(model, job_id, sweep, log, ended=("succeeded", "failed")):
    """Run sweep() every half second, as beat would, until the job's status is one
    of ended; return the seconds that took."""
    started = time.monotonic()

    def done():
        sweep()
        return model.objects.get(pk=job_id).status in ended

    wait_for(done, BOUND_SECONDS, f"the job to end (see {log})", every=0.5)
    return time.monotonic() - started
