"""The lifecycle of background jobs, the same for every kind (imports, exports,
pre-labeling chunks, fine-tuning runs: models.LeasedJob): claim under a lease,
heartbeat, fail with an error id, re-dispatch by beat's sweep, conflict on an
action the job's state refuses. Each kind declares itself once as a JobKind.

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
from dataclasses import dataclass
from datetime import timedelta

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import F, Model, Q
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone
from django.utils.module_loading import import_string

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


def job_redispatcher(task_path: str, *, status: str | None = None):
    """The `redispatch` for jobs_recover of a job that is redone from the start by one
    task: the job goes back to `status` (when given) and the task (dotted path,
    imported late: tasks import the services) is queued with its id."""

    def redispatch(job: Model) -> Callable[[], None]:
        if status is not None:
            job.status = status
        task = import_string(task_path)
        job_id = job.pk if isinstance(job.pk, int) else str(job.pk)
        return lambda: task.delay(job_id)

    return redispatch


def job_fail_unexpected(
    *,
    job: Model,
    error: BaseException,
    lease: JobLease,
    fail: Callable[..., Model],
    message: Callable[[str, bool], str],
    ended: Iterable[str],
    log: logging.Logger,
    what: str,
    extra: dict | None = None,
) -> Model:
    """End a job failed on an exception nobody expected: the client gets
    message(error_id, timed_out) to act on, the log (`log`, the job's own module)
    gets the traceback under the same error id. When recording the failure in full
    (fail(job, text, lease=lease)) fails too, the job is still never left running."""
    error_id = uuid.uuid4().hex[:12]
    ids = {"job_id": str(job.pk), "error_id": error_id, **(extra or {})}
    log.error(f"{what} stopped on an unexpected error", exc_info=error, extra=ids)
    text = message(error_id, isinstance(error, SoftTimeLimitExceeded))
    if not connection.in_atomic_block:
        # A database error may have broken the connection: record on a fresh one.
        connection.close_if_unusable_or_obsolete()
    try:
        return fail(job, text, lease=lease)
    except Exception:
        log.exception(f"{what} failure recorded in part", extra=ids)
        model = type(job)
        model.objects.filter(pk=job.pk, claimed_by=lease.token).exclude(
            status__in=list(ended)
        ).update(status="failed", error=text, finished_at=timezone.now())
        return model.objects.get(pk=job.pk)


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


@dataclass(frozen=True)
class JobKind:
    """One kind of background job and how its lifecycle goes: what a run may claim
    (`active`), how it fails (`fail(job, message, lease=None)`, ending it in one of
    `ended`), how a dead run's job is queued again (`redispatch`, see
    job_redispatcher) and what a client reads when its runs keep stopping or an
    unexpected error ends it."""

    model: type[Model]
    what: str  # "import", "export": the start of log lines and messages
    active: tuple
    ended: tuple
    fail: Callable[..., object]
    redispatch: Callable[[Model], Callable[[], None]]
    stopped_message: str
    log: logging.Logger
    unexpected_message: Callable[[str, bool], str] | None = None
    scope: Q | None = None  # narrows the jobs the sweep looks at

    def claim(self, job_id, *, statuses: Iterable[str] | None = None) -> "JobLease | None":
        return job_claim(
            model=self.model,
            job_id=job_id,
            statuses=self.active if statuses is None else statuses,
            fail=self.fail,
            stopped_message=self.stopped_message,
        )

    def recover(self, *, now=None, limit: int = 100) -> int:
        return jobs_recover(
            model=self.model,
            statuses=self.active,
            redispatch=self.redispatch,
            fail=self.fail,
            stopped_message=self.stopped_message,
            now=now,
            limit=limit,
            scope=self.scope,
        )

    def fail_unexpected(self, job: Model, error: BaseException, lease: JobLease, **extra):
        return job_fail_unexpected(
            job=job,
            error=error,
            lease=lease,
            fail=self.fail,
            message=self.unexpected_message,
            ended=self.ended,
            log=self.log,
            what=self.what,
            extra=extra,
        )
