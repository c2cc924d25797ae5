"""Failing background jobs whose worker stopped, the same way for every job kind.

A job writes `heartbeat_at` as it goes; one left `running` with no heartbeat
for JOB_STALE_MINUTES lost its worker (killed, or its message lost), so it is
failed with a reason the client can act on instead of hanging forever.
"""

from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Model, Q
from django.utils import timezone


def jobs_fail_stale(
    *,
    model: type[Model],
    fail: Callable[[Model, str], None],
    message: str,
    now=None,
    limit: int = 100,
) -> int:
    """Fail up to `limit` stale running jobs of `model` with `message`
    ({minutes} is filled in). Run from beat; safe to run twice."""
    now = now or timezone.now()
    minutes = settings.JOB_STALE_MINUTES
    cutoff = now - timedelta(minutes=minutes)
    stale = Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, created_at__lt=cutoff)
    running = model.Status.RUNNING
    job_ids = list(model.objects.filter(stale, status=running).values_list("pk", flat=True)[:limit])
    failed = 0
    for job_id in job_ids:
        with transaction.atomic():
            job = (
                model.objects.select_for_update(skip_locked=True)
                .filter(stale, pk=job_id, status=running)
                .first()
            )
            if job is None:  # it moved on, or its run holds the lock: alive
                continue
            fail(job, message.format(minutes=minutes))
            failed += 1
    return failed
