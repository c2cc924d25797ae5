"""Leases on background jobs: one run at a time, renewed from a thread, given back."""

import time
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone

from annotation.imports import STOPPED_MESSAGE, _fail, import_job_create
from annotation.job_sweep import LeaseLost, job_claim
from annotation.models import ImportJob
from tests.factories import annotation_project

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ACTIVE = (ImportJob.Status.PENDING, ImportJob.Status.RUNNING)


def new_job():
    project = annotation_project()
    return import_job_create(
        project=project,
        created_by=project.created_by,
        upload=ContentFile(b'{"text": "x"}\n', name="a.jsonl"),
        enqueue=False,
    )


def claim(job):
    return job_claim(
        model=ImportJob, job_id=job.pk, statuses=ACTIVE, fail=_fail, stopped_message=STOPPED_MESSAGE
    )


def test_a_run_whose_lapsed_lease_was_taken_over_finds_out_and_gives_nothing_back():
    job = new_job()
    first = claim(job)
    assert first is not None
    assert claim(job) is None  # a live lease: no second run
    ImportJob.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now() - timedelta(1))
    second = claim(job)
    assert second is not None

    first.renew()
    assert first.lost
    with pytest.raises(LeaseLost):
        first.check()
    first.release()  # not its job any more: nothing changes
    job.refresh_from_db()
    assert (job.claimed_by, job.attempts) == (second.token, 2)

    second.renew()
    assert not second.lost
    second.release()
    job.refresh_from_db()
    assert (job.claimed_by, job.lease_expires_at, job.attempts) == ("", None, 1)


def test_the_lease_is_renewed_while_the_run_works(settings):
    settings.JOB_HEARTBEAT_SECONDS = 0.1
    job = new_job()
    lease = claim(job)
    claimed_until = ImportJob.objects.get(pk=job.pk).lease_expires_at
    with lease:
        time.sleep(0.5)
        renewed_until = ImportJob.objects.get(pk=job.pk).lease_expires_at
    assert renewed_until > claimed_until
    assert not lease.lost
    assert ImportJob.objects.get(pk=job.pk).claimed_by == ""  # given back at the end


def test_a_job_started_too_often_is_failed_when_claimed_again():
    job = new_job()
    ImportJob.objects.filter(pk=job.pk).update(attempts=3)
    assert claim(job) is None
    job.refresh_from_db()
    assert job.status == ImportJob.Status.FAILED
    assert job.error.startswith("The worker running this import stopped 3 times")


def test_the_default_settings_recover_a_killed_workers_job_within_two_minutes():
    """The bound with the README's defaults: the lease lapses at most JOB_LEASE_SECONDS
    after the worker died, the next sweep comes within its interval, and a waiting
    worker takes the message at once; a minute is left for the job's own start."""
    from config.settings import base

    beat = {entry["task"]: entry["schedule"] for entry in base.CELERY_BEAT_SCHEDULE.values()}
    for sweep in (
        "annotation.jobs_sweep",
        "compute.finetune_runs_sweep",
        "compute.prelabel_runs_sweep",
    ):
        assert base.JOB_LEASE_SECONDS + beat[sweep] <= 90, sweep
    # A few heartbeats fit in a lease, so one slow renewal does not lose it.
    assert base.JOB_HEARTBEAT_SECONDS * 3 <= base.JOB_LEASE_SECONDS
