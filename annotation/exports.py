"""Exports and dataset versions, streamed row by row with constant memory.

Rows come from `QuerySet.iterator()`, which on PostgreSQL reads through a
server-side cursor, so a million-row export never holds more than one chunk.
The same line generators feed the HTTP download, the Celery export job and
dataset versions.
"""

import csv
import hashlib
import io
import itertools
import json
import logging
import tempfile
import time
from collections.abc import Callable, Iterator
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import File
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from eventhooks.models import Event
from eventhooks.services import webhook_event_emit
from tenants.models import User

from . import export_formats
from .job_sweep import JobKind, JobLease, LeaseLost, job_redispatcher
from .models import (
    Annotation,
    DatasetVersion,
    ExportFormat,
    ExportJob,
    ItemResult,
    Project,
)
from .permissions import require_can_manage_project
from .task_types import task_type_spec, task_types_where
from .token_estimate import estimate_tokens

logger = logging.getLogger(__name__)

CHUNK = 2000

# Which formats make sense for which task types: each type names the formats it fills.
TRAINING_FORMATS = {
    fmt: task_types_where(lambda spec, fmt=fmt: fmt in spec.training_formats)
    for fmt in (ExportFormat.OPENAI_CHAT, ExportFormat.DPO, ExportFormat.OPENAI_PREFERENCE)
}
# Formats only some task types fill, beside the training formats.
FORMAT_TASK_TYPES = {
    fmt: task_types_where(lambda spec, fmt=fmt: fmt in spec.export_formats)
    for fmt in (ExportFormat.CONLL,)
}
CONTENT_TYPES = {
    ExportFormat.RESULTS_CSV: "text/csv; charset=utf-8",
    ExportFormat.LABEL_STUDIO: "application/json; charset=utf-8",
    ExportFormat.CONLL: "text/plain; charset=utf-8",
    ExportFormat.RESULTS_PARQUET: "application/vnd.apache.parquet",
    ExportFormat.ANNOTATIONS_PARQUET: "application/vnd.apache.parquet",
    ExportFormat.RESULTS_HF: "application/zip",
}
EXTENSIONS = {
    ExportFormat.RESULTS_CSV: "csv",
    ExportFormat.LABEL_STUDIO: "json",
    ExportFormat.CONLL: "conll",
    ExportFormat.RESULTS_PARQUET: "parquet",
    ExportFormat.ANNOTATIONS_PARQUET: "parquet",
    ExportFormat.RESULTS_HF: "zip",
}
# Written to a file (binary), not as text lines: export_write.
FILE_FORMATS = frozenset(
    {ExportFormat.RESULTS_PARQUET, ExportFormat.ANNOTATIONS_PARQUET, ExportFormat.RESULTS_HF}
)


def export_format_check(project: Project, fmt: str) -> None:
    if fmt not in ExportFormat.values:
        raise ValidationError({"format": [f"Expected one of {', '.join(ExportFormat.values)}."]})
    allowed = TRAINING_FORMATS.get(fmt) or FORMAT_TASK_TYPES.get(fmt)
    if allowed is not None and project.task_type not in allowed:
        raise ValidationError(
            {
                "format": [
                    f"{fmt} needs a {' or '.join(sorted(allowed))} project; this one is "
                    f"{project.task_type}."
                ]
            }
        )


def _dumps(obj) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n"


def _results(project: Project, approved_only: bool):
    """Result rows as light named tuples: building two model objects per row
    (result and item) costs more than the whole JSON encoding."""
    results = ItemResult.objects.filter(project=project).order_by("item_id")
    if approved_only:
        results = results.filter(approved=True)
    return results.values_list(
        "item_id",
        "item__external_id",
        "item__data",
        "answer",
        "confidence",
        "method",
        "agreement",
        "approved",
        "provenance",
        "reviewed_by_id",
        named=True,
    ).iterator(chunk_size=CHUNK)


def training_record(project: Project, fmt: str, data: dict, answer: dict) -> dict | None:
    """One fine-tuning example in fmt, as the project's task type writes it."""
    return task_type_spec(project.task_type).training_record(project, fmt, data, answer)


def _annotations(project: Project):
    return (
        Annotation.objects.filter(project=project)
        .order_by("pk")
        .values_list(
            "pk",
            "item_id",
            "item__external_id",
            "annotator_id",
            "answer",
            "status",
            "gold_correct",
            "time_spent_ms",
            "created_at",
        )
        .iterator(chunk_size=CHUNK)
    )


def export_lines(project: Project, fmt: str, *, approved_only: bool = True) -> Iterator[str]:
    """The export as text lines (CSV includes its header); not for FILE_FORMATS."""
    export_format_check(project, fmt)
    if fmt in FILE_FORMATS:
        raise ValueError(f"{fmt} is written to a file: use export_write")
    if fmt == ExportFormat.LABEL_STUDIO:
        yield from export_formats.label_studio_lines(project, _results(project, approved_only))
        return
    if fmt == ExportFormat.CONLL:
        yield from export_formats.conll_lines(project, _results(project, approved_only))
        return
    if fmt == ExportFormat.ANNOTATIONS_JSONL:
        rows = _annotations(project)
        for pk, item_id, external_id, annotator_id, answer, status, gold, spent, created in rows:
            yield _dumps(
                {
                    "annotation_id": pk,
                    "item_id": item_id,
                    "external_id": external_id,
                    # Pseudonymous: clients see a stable number, never a person.
                    "annotator": annotator_id,
                    "answer": answer,
                    "status": status,
                    "gold_correct": gold,
                    "time_spent_ms": spent,
                    "created_at": created.isoformat(),
                }
            )
        return
    if fmt == ExportFormat.RESULTS_CSV:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(
            [
                "external_id",
                "answer",
                "label",
                "confidence",
                "method",
                "agreement",
                "approved",
                "annotations",
            ]
        )
        yield buffer.getvalue()
        spec = task_type_spec(project.task_type)
        for result in _results(project, approved_only):
            buffer.seek(0)
            buffer.truncate()
            label = spec.results_label(result.answer)
            writer.writerow(
                [
                    result.item__external_id,
                    json.dumps(result.answer, ensure_ascii=False),
                    label,
                    f"{result.confidence:.4f}",
                    result.method,
                    "" if result.agreement is None else f"{result.agreement:.4f}",
                    int(result.approved),
                    len(result.provenance.get("annotations", [])),
                ]
            )
            yield buffer.getvalue()
        return
    for result in _results(project, approved_only):
        if fmt == ExportFormat.RESULTS_JSONL:
            yield _dumps(
                {
                    "item_id": result.item_id,
                    "external_id": result.item__external_id,
                    "data": result.item__data,
                    "answer": result.answer,
                    "confidence": result.confidence,
                    "method": result.method,
                    "agreement": result.agreement,
                    "approved": result.approved,
                    "provenance": {
                        "annotations": result.provenance.get("annotations", []),
                        "annotators": result.provenance.get("annotators", []),
                        "reviewed": result.reviewed_by_id is not None,
                    },
                }
            )
        else:
            record = training_record(project, fmt, result.item__data, result.answer)
            if record is not None:
                yield _dumps(record)


def export_write(
    project: Project,
    fmt: str,
    out,
    *,
    approved_only: bool = True,
    on_alive: Callable[[], None] | None = None,
) -> int:
    """Write the export to the binary file out; the number of rows (records).

    on_alive is called at most every JOB_HEARTBEAT_SECONDS while it writes.
    """
    export_format_check(project, fmt)
    if fmt not in FILE_FORMATS:
        source = _LineFile(export_lines(project, fmt, approved_only=approved_only), on_alive)
        while chunk := source.read(1 << 20):
            out.write(chunk)
        if fmt == ExportFormat.RESULTS_CSV:
            return source.lines - 1  # the header
        if fmt == ExportFormat.LABEL_STUDIO:
            return source.lines - 2  # the brackets
        if fmt == ExportFormat.CONLL:
            return source.blank_lines
        return source.lines
    beat = _Beat(on_alive)
    if fmt == ExportFormat.ANNOTATIONS_PARQUET:
        records = export_formats.annotations_records(_annotations(project))
        schema = export_formats.ANNOTATIONS_SCHEMA
    else:
        records = export_formats.results_records(project, _results(project, approved_only))
        schema = export_formats.RESULTS_SCHEMA
    batches = export_formats.record_batches(records, schema, on_batch=beat)
    if fmt == ExportFormat.RESULTS_HF:
        return export_formats.hf_zip_write(
            {"train": batches},
            schema,
            out,
            name=f"project-{project.pk}-results",
            info={"description": f"Final answers of project {project.pk} ({project.name})"},
        )
    return export_formats.parquet_write(batches, schema, out)


class _Beat:
    """Calls on_alive at most every JOB_HEARTBEAT_SECONDS."""

    def __init__(self, on_alive: Callable[[], None] | None):
        self._on_alive, self._at = on_alive, time.monotonic()

    def __call__(self):
        beat = settings.JOB_HEARTBEAT_SECONDS
        if self._on_alive is not None and time.monotonic() - self._at >= beat:
            self._at = time.monotonic()
            self._on_alive()


def export_filename(project: Project, fmt: str) -> str:
    extension = EXTENSIONS.get(fmt, "jsonl")
    return f"project-{project.pk}-{fmt}-{timezone.now():%Y%m%d-%H%M%S}.{extension}"


# --- export jobs ------------------------------------------------------------------


@transaction.atomic
def export_job_create(
    *, project: Project, created_by: User, fmt: str, approved_only: bool = True
) -> ExportJob:
    require_can_manage_project(created_by, project, "export data")
    export_format_check(project, fmt)
    job = ExportJob.objects.create(
        project=project, created_by=created_by, format=fmt, approved_only=approved_only
    )
    from .tasks import export_job_run_task

    export_job_run_task.delay_on_commit(str(job.pk))
    return job


class _LineFile(io.RawIOBase):
    """A readable file over an iterator of text lines, so storage streams it.

    on_alive is called at most every JOB_HEARTBEAT_SECONDS while lines are read.
    """

    def __init__(self, lines: Iterator[str], on_alive: Callable[[], None] | None = None):
        self._lines, self._pending, self.lines, self.blank_lines = lines, b"", 0, 0
        self._on_alive, self._alive_at = on_alive, time.monotonic()

    def readable(self):
        return True

    def readinto(self, buffer):
        while len(self._pending) < len(buffer):
            line = next(self._lines, None)
            if line is None:
                break
            self._pending += line.encode()
            self.lines += 1
            if line == "\n":
                self.blank_lines += 1
        size = min(len(buffer), len(self._pending))
        buffer[:size], self._pending = self._pending[:size], self._pending[size:]
        beat = settings.JOB_HEARTBEAT_SECONDS
        if self._on_alive is not None and time.monotonic() - self._alive_at >= beat:
            self._alive_at = time.monotonic()
            self._on_alive()
        return size


_ENDED = (ExportJob.Status.SUCCEEDED, ExportJob.Status.FAILED)
_ACTIVE = (ExportJob.Status.PENDING, ExportJob.Status.RUNNING)
STOPPED_MESSAGE = (
    "The worker writing this export stopped {attempts} times. Start a new export; "
    "if it stops again, tell support."
)


EXPORTS = JobKind(
    model=ExportJob,
    what="export",
    active=_ACTIVE,
    ended=_ENDED,
    # _fail and _unexpected_message are defined below.
    fail=lambda job, message, lease=None: _fail(job, message, lease=lease),
    redispatch=job_redispatcher(
        "annotation.tasks.export_job_run_task", status=ExportJob.Status.PENDING
    ),
    stopped_message=STOPPED_MESSAGE,
    log=logger,
    unexpected_message=lambda error_id, timed_out: _unexpected_message(error_id, timed_out),
)


def export_job_run(*, job_id) -> ExportJob:
    """Write the export file; the job ends succeeded or failed, never left running.

    Safe to run twice: a job that has ended, or that a live run holds, is left
    alone; one whose run died starts over.
    """
    lease = EXPORTS.claim(job_id)
    job = ExportJob.objects.select_related("project").get(pk=job_id)
    if lease is None:
        return job
    with lease:
        try:
            return _export(job, lease)
        except LeaseLost:
            logger.warning(
                "export run stopped: another run took the job over",
                extra={"export_job_id": str(job.pk), "project_id": job.project_id},
            )
            return ExportJob.objects.get(pk=job.pk)
        except Exception as error:
            return EXPORTS.fail_unexpected(
                job, error, lease, export_job_id=str(job.pk), project_id=job.project_id
            )


def _heartbeat(job: ExportJob, lease: JobLease) -> None:
    lease.check()
    job.heartbeat_at = timezone.now()
    ExportJob.objects.filter(pk=job.pk).update(heartbeat_at=job.heartbeat_at)


def _export(job: ExportJob, lease: JobLease) -> ExportJob:
    job.status, job.heartbeat_at = ExportJob.Status.RUNNING, timezone.now()
    ExportJob.objects.filter(pk=job.pk).update(status=job.status, heartbeat_at=job.heartbeat_at)
    # Written to a local temporary file first and stored whole at the end: a run
    # killed part-way leaves no half file in storage, only a temporary file the
    # system removes, and a re-dispatched run simply starts again.
    with tempfile.TemporaryFile() as spool:
        job.row_count = export_write(
            job.project,
            job.format,
            spool,
            approved_only=job.approved_only,
            on_alive=lambda: _heartbeat(job, lease),
        )
        lease.check()
        spool.seek(0)
        job.file.save(export_filename(job.project, job.format), File(spool), save=False)
    job.status = ExportJob.Status.SUCCEEDED
    job.finished_at = timezone.now()
    with transaction.atomic():
        current = ExportJob.objects.select_for_update().filter(pk=job.pk).first()
        if current is None or current.status in _ENDED or not lease.holds(current):
            # It ended, or another run took it over after this one's lease lapsed.
            job.file.delete(save=False)
            return current or job
        job.save()
        webhook_event_emit(
            organization_id=job.project.organization_id,
            event=Event.EXPORT_READY,
            payload={
                "export_job": str(job.pk),
                "project": job.project_id,
                "format": job.format,
                "rows": job.row_count,
                "download_url": f"/api/v1/export-jobs/{job.pk}/download/",
            },
        )
    logger.info(
        "export finished",
        extra={
            "export_job_id": str(job.pk),
            "project_id": job.project_id,
            "format": job.format,
            "rows": job.row_count,
        },
    )
    return job


def _fail(job: ExportJob, message: str, *, lease: JobLease | None = None) -> ExportJob:
    """End the job failed, unless it has ended already or (a run's own failure)
    another run has taken it over; a file it had goes."""
    with transaction.atomic():
        current = ExportJob.objects.select_for_update().filter(pk=job.pk).first()
        if current is not None and lease is not None and not lease.holds(current):
            return current
        if current is None or current.status in _ENDED:
            return current or job
        if current.file:
            current.file.delete(save=False)
        current.status = ExportJob.Status.FAILED
        current.error = message
        current.finished_at = timezone.now()
        current.save(update_fields=["status", "error", "file", "finished_at"])
    logger.warning(
        "export failed",
        extra={"export_job_id": str(job.pk), "project_id": job.project_id, "error": message},
    )
    return current


def _unexpected_message(error_id: str, timed_out: bool) -> str:
    reason = (
        "took longer than the time limit and was stopped"
        if timed_out
        else "stopped on an unexpected error"
    )
    return (
        f"The export {reason} (error id {error_id}). Start a new export; if it fails "
        f"again, tell support the error id."
    )


def export_jobs_recover(*, now=None, limit: int = 100) -> int:
    """Run exports again whose worker died or whose message was lost; fail those
    that stopped JOB_MAX_ATTEMPTS times. Run from beat; safe to run twice."""
    return EXPORTS.recover(now=now, limit=limit)


# --- dataset versions -------------------------------------------------------------


def split_is_validation(seed: int, item_id: int, ratio: Decimal) -> bool:
    digest = hashlib.sha256(f"split:{seed}:{item_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < float(ratio)


@transaction.atomic
def dataset_version_create(
    *,
    project: Project,
    created_by: User,
    fmt: str | None = None,
    seed: int = 0,
    validation_ratio: Decimal = Decimal("0.1"),
) -> DatasetVersion:
    """Freeze the project's approved answers into a new, immutable dataset version."""
    require_can_manage_project(created_by, project, "create datasets")
    if fmt is None:
        fmt = task_type_spec(project.task_type).default_dataset_format or ExportFormat.OPENAI_CHAT
    if fmt not in TRAINING_FORMATS:
        raise ValidationError({"format": [f"Expected one of {', '.join(TRAINING_FORMATS)}."]})
    export_format_check(project, fmt)
    validation_ratio = Decimal(str(validation_ratio))
    if not Decimal(0) <= validation_ratio <= Decimal("0.5"):
        raise ValidationError({"validation_ratio": ["Expected a share from 0 to 0.5."]})
    # Lock the project row: two concurrent creates must not take one number.
    Project.objects.select_for_update().get(pk=project.pk)
    # Spooled to disk past a few MiB: memory stays flat however big the project.
    with (
        tempfile.SpooledTemporaryFile(8 << 20) as train_file,
        tempfile.SpooledTemporaryFile(8 << 20) as validation_file,
    ):
        files = {"train": train_file, "validation": validation_file}
        hashes = {"train": hashlib.sha256(), "validation": hashlib.sha256()}
        counts = {"train": 0, "validation": 0}
        train_tokens = 0
        for result in _results(project, approved_only=True):
            record = training_record(project, fmt, result.item__data, result.answer)
            if record is None:
                continue
            line = _dumps(record)
            split = (
                "validation"
                if split_is_validation(seed, result.item_id, validation_ratio)
                else "train"
            )
            encoded = line.encode()
            files[split].write(encoded)
            hashes[split].update(encoded)
            counts[split] += 1
            if split == "train":
                train_tokens += estimate_tokens(line)
        if counts["train"] == 0:
            raise ValidationError({"project": ["The project has no approved answers to train on."]})
        # The version's identity: both splits' digests, in order.
        content_hash = hashlib.sha256(
            hashes["train"].digest() + hashes["validation"].digest()
        ).hexdigest()
        number = (
            DatasetVersion.objects.filter(project=project).aggregate(n=Max("version"))["n"] or 0
        ) + 1
        dataset = DatasetVersion(
            project=project,
            version=number,
            format=fmt,
            seed=seed,
            validation_ratio=validation_ratio,
            train_count=counts["train"],
            validation_count=counts["validation"],
            train_tokens=train_tokens,
            content_hash=content_hash,
            created_by=created_by,
        )
        stem = f"project-{project.pk}-v{number}"
        for split, field in (
            ("train", dataset.train_file),
            ("validation", dataset.validation_file),
        ):
            if counts[split]:
                files[split].seek(0)
                field.save(f"{stem}-{split}.jsonl", File(files[split]), save=False)
        dataset.save()
    return dataset


DATASET_FORMATS = ("jsonl", "parquet", "hf")


def dataset_version_write(dataset: DatasetVersion, fmt: str, out, *, split: str = "train") -> int:
    """A dataset version converted from its JSONL splits, streamed by record batch:
    ``parquet`` writes one split as a Parquet file, ``hf`` both splits as a zipped
    Hugging Face DatasetDict folder (train and validation) for load_from_disk.
    The number of rows written."""
    if fmt not in ("parquet", "hf"):
        raise ValidationError({"format": [f"Expected one of {', '.join(DATASET_FORMATS)}."]})
    fields = {"train": dataset.train_file, "validation": dataset.validation_file}
    with dataset.train_file.open("rb") as sample:
        schema = export_formats.training_schema(
            dataset.format,
            itertools.islice(export_formats.jsonl_records(sample), export_formats.BATCH_ROWS),
        )

    def batches(name):
        if not fields[name]:
            return  # a version with no validation rows: the split is there, empty
        with fields[name].open("rb") as stream:
            yield from export_formats.record_batches(export_formats.jsonl_records(stream), schema)

    if fmt == "parquet":
        return export_formats.parquet_write(batches(split), schema, out)
    return export_formats.hf_zip_write(
        {"train": batches("train"), "validation": batches("validation")},
        schema,
        out,
        name=f"project-{dataset.project_id}-v{dataset.version}",
        info={
            "description": f"Project {dataset.project_id}, dataset version {dataset.version} "
            f"({dataset.format}, seed {dataset.seed})",
            "fingerprint": dataset.content_hash,
        },
    )
