"""Leases on background jobs, and the sweep that recovers them, the same way for
every job kind (imports, exports, fine-tuning runs: models.LeasedJob).

A run first claims its job: in one transaction, with SELECT … FOR UPDATE SKIP
LOCKED, it writes its token in `claimed_by` and `lease_expires_at` =
now + JOB_LEASE_SECONDS. While it works a thread renews the lease every
JOB_HEARTBEAT_SECONDS, so a live run's job is never claimed by a second one
(a duplicate message, or the broker re-delivering it) and a slow step without
progress of its own (a merge, an upload) still keeps it.

When a worker dies its lease lapses within JOB_LEASE_SECONDS; beat's sweep then
re-dispatches the job (each kind says how its work is redone safely), or fails
it with the reason once JOB_MAX_ATTEMPTS runs have stopped. A job queued
JOB_PENDING_SECONDS ago that no run has claimed lost its message and is
dispatched again. None of this waits for the broker's visibility timeout.
"""

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterable
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import F, Model, Q
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

logger = logging.getLogger(__name__)


class JobStateConflict(ValidationError):
    """Cancel, resume (or another action) asked of a job in a state where it makes no
    sense, e.g. cancelling a finished run; the API answers 409 with the message."""

    conflict = True

    def __init__(self, message: str, *, field: str = "status"):
        super().__init__({field: [ValidationError(message, code="conflict")]})


class LeaseLost(Exception):
    """This run's lease lapsed and the job was taken over or ended: stop, write nothing."""


def _lease_until(now):
    return now + timedelta(seconds=settings.JOB_LEASE_SECONDS)


def _label(model: type[Model]) -> str:
    return model._meta.label_lower


def job_claim(
    *,
    model: type[Model],
    job_id,
    statuses: Iterable[str],
    fail: Callable[[Model, str], object],
    stopped_message: str,
) -> "JobLease | None":
    """Take job_id for this run, or None: it is not in `statuses` (ended, or another
    step's), or a live run holds it (its row locked or its lease current). A job
    that has been started JOB_MAX_ATTEMPTS times already is failed with
    stopped_message ({attempts} is filled in) instead."""
    now = timezone.now()
    token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    with transaction.atomic():
        job = (
            model.objects.select_for_update(skip_locked=True)
            .filter(pk=job_id, status__in=list(statuses))
            .first()
        )
        if job is None:
            return None
        if job.claimed_by and job.lease_expires_at and job.lease_expires_at > now:
            return None  # a live run has it
        if job.attempts >= settings.JOB_MAX_ATTEMPTS:
            fail(job, stopped_message.format(attempts=job.attempts))
            return None
        job.claimed_by, job.lease_expires_at = token, _lease_until(now)
        job.attempts += 1
        job.save(update_fields=["claimed_by", "lease_expires_at", "attempts"])
    logger.info(
        "job claimed",
        extra={"job": _label(model), "job_id": str(job_id), "attempt": job.attempts},
    )
    return JobLease(model=model, job_id=job.pk, token=token)


class JobLease:
    """A run's claim on a job; `with lease:` renews it from a thread until the block
    ends, then releases it.

    Inside a caller's transaction (tests) no other connection could see the job
    row, and SQLite (make run) takes one writer at a time, so there the run
    renews it itself as it makes progress (check()).
    """

    def __init__(self, *, model: type[Model], job_id, token: str):
        self.model, self.job_id, self.token = model, job_id, token
        self.lost = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "JobLease":
        if connection.vendor == "postgresql" and not connection.in_atomic_block:
            self._thread = threading.Thread(target=self._renew_loop, name="job-lease", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.release()

    def release(self) -> None:
        """The run ended on its own (it did not die): give the job back. attempts
        counts only runs that stopped, so this one is taken off again; a job left
        unended (a Celery retry is due) counts as queued from now."""
        self.model.objects.filter(pk=self.job_id, claimed_by=self.token).update(
            claimed_by="",
            lease_expires_at=None,
            attempts=Greatest(F("attempts") - 1, 0),
            dispatched_at=timezone.now(),
        )

    def _renew_loop(self) -> None:
        try:
            while not self._stop.wait(settings.JOB_HEARTBEAT_SECONDS):
                try:
                    self.renew()
                except Exception:
                    # The database away for a moment: the next beat may get through;
                    # if none does before the lease lapses, the sweep takes over.
                    logger.warning(
                        "job lease not renewed",
                        exc_info=True,
                        extra={"job": _label(self.model), "job_id": str(self.job_id)},
                    )
                if self.lost:
                    return
        finally:
            connection.close()  # this thread's own connection

    def renew(self) -> None:
        now = timezone.now()
        renewed = self.model.objects.filter(pk=self.job_id, claimed_by=self.token).update(
            lease_expires_at=_lease_until(now)
        )
        if not renewed:
            self.lost = True
            logger.warning(
                "job lease lost to another run",
                extra={"job": _label(self.model), "job_id": str(self.job_id)},
            )

    def check(self) -> None:
        """Raise LeaseLost if the job was taken over. Called as the run makes
        progress; without a renewing thread (SQLite, a caller's transaction) the
        lease is renewed here instead."""
        if self._thread is None and not self.lost:
            self.renew()
        if self.lost:
            raise LeaseLost(f"{_label(self.model)} {self.job_id}")

    def holds(self, job: Model) -> bool:
        """Whether job (read under a lock) is still this run's."""
        return job.claimed_by == self.token


def jobs_recover(
    *,
    model: type[Model],
    statuses: Iterable[str],
    redispatch: Callable[[Model], Callable[[], None]],
    fail: Callable[[Model, str], object],
    stopped_message: str,
    now=None,
    limit: int = 100,
    scope: Q | None = None,
) -> int:
    """Re-dispatch up to `limit` jobs in `statuses` whose run died (lease lapsed) or
    whose message was lost (unclaimed, dispatched JOB_PENDING_SECONDS ago); fail
    those already started JOB_MAX_ATTEMPTS times with stopped_message
    ({attempts} filled in); `scope` narrows the jobs looked at. redispatch(job)
    resets the locked job for a new run (the caller saves it) and returns what
    queues that run after commit. Run from beat; safe to run twice, and a job
    whose row a live run holds is skipped."""
    now = now or timezone.now()
    lapsed = Q(lease_expires_at__lt=now) & ~Q(claimed_by="")
    queued_before = now - timedelta(seconds=settings.JOB_PENDING_SECONDS)
    never_taken = Q(claimed_by="", queued_at__lt=queued_before)
    due = (lapsed | never_taken) & (scope or Q())
    candidates = model.objects.annotate(queued_at=Coalesce("dispatched_at", "created_at")).filter(
        due, status__in=list(statuses)
    )
    job_ids = list(candidates.values_list("pk", flat=True)[:limit])
    recovered = 0
    for job_id in job_ids:
        with transaction.atomic():
            job = (
                model.objects.annotate(queued_at=Coalesce("dispatched_at", "created_at"))
                .select_for_update(skip_locked=True, of=("self",))
                .filter(due, pk=job_id, status__in=list(statuses))
                .first()
            )
            if job is None:  # it moved on, or its run holds the row: alive
                continue
            extra = {"job": _label(model), "job_id": str(job_id), "attempts": job.attempts}
            reason = "worker stopped" if job.claimed_by else "not started"
            if job.claimed_by and job.attempts >= settings.JOB_MAX_ATTEMPTS:
                fail(job, stopped_message.format(attempts=job.attempts))
                logger.warning("job failed after its runs stopped", extra=extra)
            else:
                send = redispatch(job)
                job.claimed_by, job.lease_expires_at, job.dispatched_at = "", None, now
                job.save()
                transaction.on_commit(send)
                logger.warning(
                    "job re-dispatched",
                    extra={**extra, "reason": reason},
                )
            recovered += 1
    return recovered
