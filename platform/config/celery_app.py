import os

from celery import Celery
from celery.signals import worker_process_init

from . import metrics

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.development")

app = Celery("tokenworks")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
metrics.celery_signals_connect()


@worker_process_init.connect
def _forget_inherited_connections(**kwargs):
    """A forked pool process must not share its parent's database sockets.

    Drop (without closing: closing would end the parent's sessions) any
    connection or psycopg pool the parent had opened; the child opens its own.
    """
    from django.db import connections
    from django.db.backends.postgresql.base import DatabaseWrapper

    for conn in connections.all(initialized_only=True):
        conn.connection = None
    DatabaseWrapper._connection_pools.clear()
