"""A worker killed in the middle of an import or an export: beat's sweep re-dispatches
the job once its lease lapses, a second worker finishes it, and nothing half-written
is ever visible. The broker's visibility timeout is an hour here, so recovery owes
nothing to the broker re-delivering the message."""

import pytest
from django.core.files.base import ContentFile
from django.db import connection

from annotation.exports import export_job_create
from annotation.imports import import_job_create
from annotation.models import ExportJob, ImportJob, ImportStagingRow, Item, ItemResult
from annotation.tasks import jobs_sweep_task
from tests.celery_worker import BOUND_SECONDS, stop_worker, sweep_until_ended, wait_for
from tests.factories import annotation_project, items

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]


def test_an_import_whose_worker_was_killed_is_run_again_and_imports_everything(
    celery_workers,
):
    project = annotation_project()
    rows = 50_000
    body = "".join(f'{{"external_id": "e{n}", "text": "第{n}条"}}\n' for n in range(rows))
    first = celery_workers()
    job = import_job_create(
        project=project,
        created_by=project.created_by,
        upload=ContentFile(body.encode(), name="big.jsonl"),
    )
    # Killed once it has staged rows and written its progress, before the merge.
    wait_for(
        lambda: (
            ImportJob.objects.get(pk=job.pk).rows_read >= 5000
            or ImportJob.objects.get(pk=job.pk).status == ImportJob.Status.FAILED
        ),
        60,
        f"the first worker's progress (see {celery_workers.log})",
        every=0.05,
    )
    stop_worker(first, kill=True)
    killed = ImportJob.objects.get(pk=job.pk)
    assert killed.status == ImportJob.Status.RUNNING, killed.error  # really mid-import
    assert killed.rows_read < rows
    assert not Item.objects.filter(project=project).exists()  # no partial items

    celery_workers()
    took = sweep_until_ended(ImportJob, job.pk, jobs_sweep_task, celery_workers.log)

    job.refresh_from_db()
    assert job.status == ImportJob.Status.SUCCEEDED, job.error
    assert took < BOUND_SECONDS
    assert (job.rows_read, job.created_count, job.duplicate_count) == (rows, rows, 0)
    assert Item.objects.filter(project=project).count() == rows
    assert not ImportStagingRow.objects.filter(job=job).exists()
    assert job.attempts == 1 and job.claimed_by == ""  # one run stopped, none holds it


def _results(project, count):
    """count items with approved results, written by SQL: the ORM would take minutes."""
    item = items(project, 1)[0]
    item_table, result_table = Item._meta.db_table, ItemResult._meta.db_table
    item_columns = [
        f.column for f in Item._meta.concrete_fields if f.column not in ("id", "external_id")
    ]
    with connection.cursor() as cursor:
        # Table and column names come from the models.
        cursor.execute(
            f"INSERT INTO {item_table} (external_id, {', '.join(item_columns)}) "  # noqa: S608
            f"SELECT 'bulk-' || g, {', '.join(item_columns)} FROM {item_table}, "
            f"generate_series(1, %s) g WHERE id = %s",
            [count - 1, item.pk],
        )
        cursor.execute(
            f"INSERT INTO {result_table} (item_id, project_id, answer, confidence, method, "  # noqa: S608
            f"approved, provenance, updated_at) SELECT id, project_id, "
            f"""'{{"label": "positive"}}', 0.9, 'majority', true, '{{}}', now() """
            f"FROM {item_table} WHERE project_id = %s",
            [project.pk],
        )


def test_an_export_whose_worker_was_killed_is_written_again_from_scratch(celery_workers):
    project = annotation_project()
    rows = 100_000
    _results(project, rows)
    first = celery_workers()
    job = export_job_create(project=project, created_by=project.created_by, fmt="results_jsonl")
    wait_for(
        lambda: ExportJob.objects.get(pk=job.pk).status == ExportJob.Status.RUNNING,
        60,
        f"the first worker to start (see {celery_workers.log})",
        every=0.05,
    )
    # Killed once it has written for a heartbeat's time (a second).
    started = ExportJob.objects.get(pk=job.pk).heartbeat_at
    wait_for(
        lambda: ExportJob.objects.get(pk=job.pk).heartbeat_at != started,
        60,
        f"the first worker's heartbeat (see {celery_workers.log})",
        every=0.05,
    )
    stop_worker(first, kill=True)
    killed = ExportJob.objects.get(pk=job.pk)
    assert killed.status == ExportJob.Status.RUNNING  # really mid-export
    assert not killed.file  # no half file, and nothing marked succeeded

    celery_workers()
    took = sweep_until_ended(ExportJob, job.pk, jobs_sweep_task, celery_workers.log)

    job.refresh_from_db()
    assert job.status == ExportJob.Status.SUCCEEDED, job.error
    assert took < BOUND_SECONDS
    assert job.row_count == rows
    with job.file.open("rb") as written:
        lines = written.read().splitlines()
    assert len(lines) == rows  # whole, not the dead run's part
    assert len({line.split(b'"external_id":', 1)[1].split(b",", 1)[0] for line in lines}) == rows
