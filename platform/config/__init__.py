import os


def _metrics_dir_default() -> None:
    """With METRICS_DIR set, this process counts its metrics in files under it.

    prometheus_client picks memory or files when it is first imported, so this
    runs first. gunicorn's config (config/gunicorn_conf.py) points the web
    workers at METRICS_DIR/web; every other process (Celery workers, beat,
    management commands) counts under METRICS_DIR/worker.
    """
    root = os.environ.get("METRICS_DIR")
    if root and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = os.path.join(root, "worker")
        os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)


_metrics_dir_default()

from .celery_app import app as celery_app  # noqa: E402

__all__ = ("celery_app",)
