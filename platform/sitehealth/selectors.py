"""Liveness of the services Tokenworks depends on, for /healthz."""

import logging
import time

from django.db import connection
from django.utils import timezone

from .models import Heartbeat

# Beat sends a heartbeat every 30 s; three missed ones means trouble.
HEARTBEAT_STALE_AFTER_SECONDS = 90

logger = logging.getLogger(__name__)


def _timed(name: str, check) -> dict:
    started = time.perf_counter()
    try:
        detail = check() or {}
        status = "ok"
    except Exception as exc:
        # /healthz answers anyone: the kind of failure only. Its message names
        # hosts, ports and users inside the cluster, so it goes to the log.
        logger.warning("health check failed", extra={"check": name, "error": str(exc)[:300]})
        detail, status = {"error": type(exc).__name__}, "error"
    return {
        "status": status,
        "latency_ms": round((time.perf_counter() - started) * 1000, 1),
        **detail,
    }


def database_health() -> dict:
    def check():
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return {"vendor": connection.vendor}

    return _timed("database", check)


def broker_health() -> dict:
    from config.celery_app import app

    def check():
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
            return {
                "transport": conn.transport_cls
                if isinstance(conn.transport_cls, str)
                else conn.transport.driver_type
            }

    return _timed("broker", check)


def heartbeat_health() -> dict:
    """Informational: a stale beat heartbeat does not fail the probe.

    The web process must stay in rotation while workers restart; alerting on
    the worker belongs to the worker's own probe.
    """
    rows = {h.source: h for h in Heartbeat.objects.all()}
    now = timezone.now()
    result = {}
    for source, row in rows.items():
        age = (now - row.seen_at).total_seconds()
        result[source] = {
            "seen_at": row.seen_at.isoformat(),
            "age_seconds": round(age, 1),
            "fresh": age <= HEARTBEAT_STALE_AFTER_SECONDS,
        }
    return result
