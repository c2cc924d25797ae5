"""Importing items from client files: validate every row, stage, then merge atomically.

A run has two phases:
1. Stream the file, validate each row against the project's task type and
   label schema, and stage the good rows (COPY on PostgreSQL, from a second
   connection so that it overlaps the reading). Progress is committed as it
   goes, so the status endpoint can show it.
2. If the file is acceptable (no bad rows, or the client asked to skip them),
   merge the staged rows into items in one transaction: ON CONFLICT on
   (project, external_id) updates or skips existing items, never duplicates.
Until phase 2 commits, no item exists; a failed or interrupted run leaves
nothing behind but its report. A retried run starts again from the file.

A row's own keys (everything else is the item's data, or give it as "data"):
- external_id: a string or whole number, at most 255 characters; generated when
  absent. Re-imports match items on it.
- gold (or gold_answer): makes the item a gold item with that answer.
- metadata: an object, kept for the client and never shown to annotators.
- priority: a whole number from -1000 to 1000 (CSV: a cell like "5"), 0 when
  absent. Annotators are served open items highest priority first. A
  pre-labeling run later replaces it with the model's uncertainty (0 to 1), and
  an updating re-import sets it again from the row.
A bad value is reported for its row and field, like any other invalid row,
and so is text PostgreSQL cannot store (a NUL character, or a lone surrogate
that a JSON "\\ud800" escape can make) anywhere in a row.

Nothing leaves a job running: a problem with the file fails it naming the row;
anything unexpected fails it with an error id that is logged with the
traceback; and a job whose worker died (its lease lapsed, job_sweep.py) is run
again from the file by beat (import_jobs_recover), which is safe: items are
only written by the merge, which matches them on external_id.
"""

import codecs
import io
import json
import logging
import queue
import re
import threading
import uuid
from collections.abc import Callable
from pathlib import PurePath

from celery.exceptions import SoftTimeLimitExceeded
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from eventhooks.models import Event
from eventhooks.services import webhook_event_emit
from tenants.models import User

from .import_readers import FORMATS, ImportFileError, RowProblem, detect_encoding, detect_format
from .import_readers import iter_rows as read_rows
from .job_sweep import JobLease, LeaseLost, job_claim, jobs_recover
from .models import (
    ImportJob,
    ImportStagingRow,
    Item,
    Project,
)
from .permissions import require_can_manage_project
from .schemas import SchemaError, answer_validate, item_data_validate, item_text
from .task_types import task_type_spec
from .token_estimate import estimate_tokens

logger = logging.getLogger(__name__)

MAX_STORED_ERRORS = 1000
STAGE_BATCH_ROWS = 5000
HEAD_BYTES = 64 * 1024
# Keys of a row that are about the item, not part of its data.
ROW_KEYS = {"external_id", "gold", "gold_answer", "metadata", "priority"}
# A client's own ordering of its items; whole numbers so that CSV and JSON agree.
PRIORITY_MIN, PRIORITY_MAX = -1000, 1000

# One encoder for every row: json.dumps with options builds a new one per call. Rows
# come from a JSON or CSV parser, so they cannot be circular.
_to_json = json.JSONEncoder(ensure_ascii=False, check_circular=False, separators=(",", ":")).encode
# COPY's text format: only backslash, tab and line ends need escaping.
_COPY_SPECIAL = re.compile(r"[\\\t\n\r]")
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(value: str) -> str:
    return value.translate(_COPY_ESCAPES) if _COPY_SPECIAL.search(value) else value


def _copy_json(value) -> str:
    # JSON text escapes every control character itself; only its backslashes remain.
    return _to_json(value).replace("\\", "\\\\")


# --- text PostgreSQL cannot store -------------------------------------------------

NUL_MESSAGE = "contains a NUL character (\\u0000), which PostgreSQL cannot store"


def _string_problem(value: str) -> str | None:
    if "\x00" in value:
        return NUL_MESSAGE
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as error:
            code = ord(value[error.start])
            return f"contains a lone surrogate (\\u{code:04x}), which is not valid Unicode text"
    return None


def _shown(text: str) -> str:
    """text with NULs and lone surrogates as escapes, safe to store in a message."""
    text = text.replace("\x00", "\\u0000")
    return text if text.isascii() else text.encode("utf-8", "backslashreplace").decode("utf-8")


def _unstorable(value, field: str) -> tuple[str, str] | None:
    """The first string in value, keys included, that the database cannot store:
    (its field, why). Only for rows the cheap check in _copy_payload flagged."""
    if isinstance(value, str):
        problem = _string_problem(value)
        return (field, problem) if problem else None
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{field}.{_shown(str(key))}"
            if isinstance(key, str) and (problem := _string_problem(key)):
                return path, f"the key {problem}"
            if found := _unstorable(item, path):
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if found := _unstorable(item, f"{field}[{index}]"):
                return found
    return None


def _row_unstorable(staged: dict) -> tuple[str, str] | None:
    return (
        _unstorable(staged["external_id"], "external_id")
        or _unstorable(staged["data"], "data")
        or _unstorable(staged["gold_answer"], "gold")
        or _unstorable(staged["metadata"], "metadata")
    )


class _CountingReader(io.RawIOBase):
    """Reads through to a file and counts bytes, for progress."""

    def __init__(self, raw):
        self.raw, self.count = raw, 0

    def readable(self):
        return True

    def readinto(self, buffer):
        data = self.raw.read(len(buffer))
        buffer[: len(data)] = data
        self.count += len(data)
        return len(data)


def _gold_from_shorthand(task_type: str, value):
    """CSV cells and simple files give gold as a bare value: accept the obvious forms."""
    if value is None or value == "" or isinstance(value, dict):
        return value or None
    return task_type_spec(task_type).gold_from_shorthand(value)


def _priority(value) -> int:
    """A row's priority: a whole number in [PRIORITY_MIN, PRIORITY_MAX], 0 when absent."""
    if value is None or value == "":
        return 0
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            value = None
    elif isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise SchemaError(
            "priority", f"expected a whole number from {PRIORITY_MIN} to {PRIORITY_MAX}"
        )
    if not PRIORITY_MIN <= value <= PRIORITY_MAX:
        raise SchemaError("priority", f"{value} is outside {PRIORITY_MIN} to {PRIORITY_MAX}")
    return value


def row_normalize(
    project: Project, raw: dict, *, row: int, job_key: str, columns: dict | None = None
) -> dict:
    """A staged row's fields from a raw file row (its columns renamed by columns
    first), or SchemaError."""
    if columns:
        raw = {columns.get(name, name): value for name, value in raw.items()}
    if isinstance(raw.get("data"), dict):
        data = raw["data"]
    else:
        data = {k: v for k, v in raw.items() if k not in ROW_KEYS and k != "data"}
    data = item_data_validate(project.task_type, data)
    external_id = raw.get("external_id")
    if external_id is None or external_id == "":
        external_id = f"auto:{job_key}:{row}"
    elif isinstance(external_id, bool) or not isinstance(external_id, str | int):
        raise SchemaError("external_id", "expected a string or a whole number")
    external_id = str(external_id).strip()
    if len(external_id) > 255:
        raise SchemaError("external_id", "at most 255 characters")
    gold = _gold_from_shorthand(project.task_type, raw.get("gold", raw.get("gold_answer")))
    if gold is not None:
        gold = answer_validate(
            project.task_type, project.label_schema, gold, item_data=data, field="gold"
        )
    metadata = raw.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise SchemaError("metadata", "expected an object")
    return {
        "row": row,
        "external_id": external_id,
        "data": data,
        "gold_answer": gold,
        "metadata": metadata,
        "priority": _priority(raw.get("priority")),
        "token_count": estimate_tokens(item_text(project.task_type, data)),
    }


@transaction.atomic
def _columns_problem(project: Project, columns: dict) -> str | None:
    """Why a column mapping cannot be used, or None: names map to the task type's
    item fields or the row keys (external_id, gold, …), each at most once."""
    if not isinstance(columns, dict) or len(columns) > 50:
        return "Expected at most 50 pairs of file column and field name."
    allowed = set(task_type_spec(project.task_type).text_fields) | ROW_KEYS
    for source, target in columns.items():
        if not isinstance(source, str) or not source.strip() or len(source) > 200:
            return "A file column name must be 1 to 200 characters."
        if target not in allowed:
            return (
                f"{_shown(str(target))!r} is not a field of a {project.task_type} item; expected "
                f"one of {', '.join(sorted(allowed))}."
            )
    if len(set(columns.values())) != len(columns):
        return "Two file columns are read as the same field."
    return None


def import_job_create(
    *,
    project: Project,
    created_by: User,
    upload,
    filename: str = "",
    format: str = "",
    encoding: str = "",
    on_conflict: str = ImportJob.OnConflict.UPDATE,
    on_error: str = ImportJob.OnError.REJECT,
    columns: dict | None = None,
    enqueue: bool = True,
) -> ImportJob:
    """Store the upload and queue its import; the job reports how it went."""
    require_can_manage_project(created_by, project, "import items")
    if project.status in (Project.Status.ARCHIVED, Project.Status.COMPLETED):
        raise ValidationError({"project": [f"The project is {project.status}."]})
    errors = {}
    if format and format not in FORMATS:
        errors["format"] = [f"Expected one of {', '.join(FORMATS)}, or leave it out to detect."]
    if on_conflict not in ImportJob.OnConflict.values:
        errors["on_conflict"] = [f"Expected one of {', '.join(ImportJob.OnConflict.values)}."]
    if on_error not in ImportJob.OnError.values:
        errors["on_error"] = [f"Expected one of {', '.join(ImportJob.OnError.values)}."]
    if encoding:
        max_length = ImportJob._meta.get_field("encoding").max_length
        if len(encoding) > max_length:
            errors["encoding"] = [
                f"Expected a text encoding name of at most {max_length} characters."
            ]
        else:
            try:
                "".encode(encoding)  # LookupError for names that are no text encoding
                encoding = codecs.lookup(encoding).name  # "UTF8" and "utf_8" are "utf-8"
            except (LookupError, ValueError):
                errors["encoding"] = [
                    f"Unknown encoding {_shown(encoding)!r}; for example utf-8, gbk or utf-16."
                ]
    problem = _columns_problem(project, columns or {})
    if problem:
        errors["columns"] = [problem]
    size = getattr(upload, "size", None)
    if size == 0:
        errors["file"] = ["The file is empty."]
    if errors:
        raise ValidationError(errors)
    filename = PurePath(filename or getattr(upload, "name", "") or "upload").name
    filename = filename.replace("\x00", "") or "upload"  # no file system takes a NUL
    job = ImportJob(
        project=project,
        created_by=created_by,
        filename=filename[:255],
        format=format,
        encoding=encoding,
        on_conflict=on_conflict,
        on_error=on_error,
        columns=columns or {},
        file_size=size or 0,
    )
    job.file.save(filename, upload, save=False)
    job.file_size = job.file.size
    job.save()
    if enqueue:
        from .tasks import import_job_run_task

        import_job_run_task.delay_on_commit(str(job.pk))
    return job


_ENDED = (ImportJob.Status.SUCCEEDED, ImportJob.Status.FAILED)
_ACTIVE = (ImportJob.Status.PENDING, ImportJob.Status.RUNNING)


def _fail(job: ImportJob, message: str, *, lease: JobLease | None = None) -> ImportJob:
    """End the job failed with message, unless it has ended already (another run
    finished it, or beat failed it) or, for a run's own failure, another run has
    taken it over since this one's lease lapsed."""
    with transaction.atomic():
        current = ImportJob.objects.select_for_update().filter(pk=job.pk).first()
        if current is not None and lease is not None and not lease.holds(current):
            return current
        ImportStagingRow.objects.filter(job=job).delete()
        if current is None or current.status in _ENDED:
            return current or job
        job.status = ImportJob.Status.FAILED
        job.error = message
        job.errors.sort(key=lambda error: error["row"])  # rows screened per batch come late
        job.finished_at = timezone.now()
        job.save()
        _announce(job)
    logger.warning(
        "import failed",
        extra={
            "import_job_id": str(job.pk),
            "project_id": job.project_id,
            "rows_read": job.rows_read,
            "rows_invalid": job.rows_invalid,
            "error": message,
        },
    )
    return job


def _fail_unexpected(job: ImportJob, error: Exception, lease: JobLease) -> ImportJob:
    """Fail the job on an exception nobody expected: the client gets a message and an
    error id, the log gets the traceback under the same id."""
    error_id = uuid.uuid4().hex[:12]
    ids = {"job_id": str(job.pk), "import_job_id": str(job.pk), "error_id": error_id}
    logger.error(
        "import stopped on an unexpected error",
        exc_info=error,
        extra={**ids, "project_id": job.project_id},
    )
    if isinstance(error, SoftTimeLimitExceeded):
        message = (
            f"The import took longer than the time limit and was stopped (error id "
            f"{error_id}), so nothing was imported. Split the file and import the parts."
        )
    else:
        message = (
            f"The import stopped on an unexpected error (error id {error_id}), so nothing "
            f"was imported. Try again; if it fails again, tell support the error id."
        )
    if not connection.in_atomic_block:
        # A database error may have broken the connection: record on a fresh one.
        connection.close_if_unusable_or_obsolete()
    try:
        return _fail(job, message, lease=lease)
    except Exception:
        # Recording it in full failed too (the database, or the webhook): at least
        # never leave the job running.
        logger.exception("import failure recorded without its report", extra=ids)
        ImportJob.objects.filter(pk=job.pk, claimed_by=lease.token).exclude(
            status__in=_ENDED
        ).update(status=ImportJob.Status.FAILED, error=message, finished_at=timezone.now())
        return ImportJob.objects.get(pk=job.pk)


def _redispatch(job: ImportJob):
    """Reset a job whose run died for a new run, which starts again from the file."""
    job.status = ImportJob.Status.PENDING
    from .tasks import import_job_run_task

    job_id = str(job.pk)
    return lambda: import_job_run_task.delay(job_id)


STOPPED_MESSAGE = (
    "The worker running this import stopped {attempts} times, so nothing was "
    "imported. Split the file and import the parts, or tell support."
)


def import_jobs_recover(*, now=None, limit: int = 100) -> int:
    """Run imports again whose worker died or whose message was lost; fail those
    that stopped JOB_MAX_ATTEMPTS times. Run from beat; safe to run twice."""
    return jobs_recover(
        model=ImportJob,
        statuses=_ACTIVE,
        redispatch=_redispatch,
        fail=_fail,
        stopped_message=STOPPED_MESSAGE,
        now=now,
        limit=limit,
    )


def _announce(job: ImportJob) -> None:
    webhook_event_emit(
        organization_id=job.project.organization_id,
        event=Event.IMPORT_FINISHED,
        payload={
            "import_job": str(job.pk),
            "project": job.project_id,
            "status": job.status,
            "rows_read": job.rows_read,
            "rows_invalid": job.rows_invalid,
            "created": job.created_count,
            "updated": job.updated_count,
            "skipped": job.skipped_count,
            "error": job.error,
        },
    )


def _copy_rows(job_id: str, rows: list[dict]) -> str:
    """Rows as COPY text: pre-built in one string, since psycopg's write_row cost more
    per row than the rest of staging together."""
    null = "\\N"
    lines = []
    for r in rows:
        gold = r["gold_answer"]
        metadata = r["metadata"]
        lines.append(
            f"{job_id}\t{r['row']}\t{_copy_text(r['external_id'])}\t{_copy_json(r['data'])}\t"
            f"{null if gold is None else _copy_json(gold)}\t"
            f"{_copy_json(metadata) if metadata else '{}'}\t{r['priority']}\t"
            f"{r['token_count']}\n"
        )
    return "".join(lines)


def _copy_in(text: str | bytes) -> None:
    """COPY rows built by _copy_rows into the staging table, on this thread's connection."""
    table = ImportStagingRow._meta.db_table
    with (
        connection.cursor() as cursor,
        cursor.copy(
            f"COPY {table} (job_id, row, external_id, data, gold_answer, metadata, priority,"
            " token_count) FROM STDIN"
        ) as copy,
    ):
        copy.write(text)


def _copy_payload(job_id: str, rows: list[dict]) -> bytes | None:
    """The rows as COPY text in UTF-8, or None when a row may hold text PostgreSQL
    cannot store. One search of the whole batch is the cheap check: JSON writes a
    NUL as \\u0000 (COPY doubles its backslash), an external id carries it raw, and
    a lone surrogate cannot be encoded. None may be a false alarm (a literal
    backslash-u0000); _screen decides."""
    try:
        payload = _copy_rows(job_id, rows).encode()
    except UnicodeEncodeError:
        return None
    if b"\x00" in payload or b"\\u0000" in payload:
        return None
    return payload


def _screen(job: ImportJob, rows: list[dict]) -> list[dict]:
    """rows without those holding text the database cannot store; each of those
    is an invalid row, named with its field."""
    kept = []
    for staged in rows:
        found = _row_unstorable(staged)
        if found is None:
            kept.append(staged)
        else:
            job.rows_valid -= 1
            _note_error(job, staged["row"], *found)
    return kept


def _stage(job: ImportJob, rows: list[dict], payload: bytes | None) -> None:
    # A savepoint inside a caller's transaction: a failed batch must not leave
    # the transaction unusable for recording the failure.
    with transaction.atomic():
        if payload is not None:
            _copy_in(payload)
        else:
            ImportStagingRow.objects.bulk_create(ImportStagingRow(job=job, **r) for r in rows)


class _Stager:
    """Stages batches, on a second connection while the caller reads on when it can.

    COPY keeps PostgreSQL busy for about as long as reading and validating keeps
    Python busy, so on a thread of its own it overlaps with them. The thread only
    waits on the server: the COPY text is built by the caller, as the thread would
    hold the GIL for it. At most two batches wait, which keeps memory flat. Inside
    a transaction (tests, or a caller's atomic block) another connection could not
    see the job row, so staging stays on the caller's connection there.
    """

    def __init__(self, job: ImportJob):
        self.job = job
        self.job_id = str(job.pk)
        self.error: BaseException | None = None
        self.thread = None
        if connection.vendor == "postgresql" and not connection.in_atomic_block:
            self.queue: queue.Queue = queue.Queue(maxsize=2)
            self.thread = threading.Thread(target=self._run, name="import-stage", daemon=True)
            self.thread.start()

    def _run(self) -> None:
        try:
            while (text := self.queue.get()) is not None:
                if self.error is None:  # after a failure, only drain until close()
                    try:
                        _copy_in(text)
                    except BaseException as error:
                        self.error = error
        finally:
            connection.close()  # this thread's own connection, back to the pool

    def put(self, batch: list[dict]) -> None:
        """Stage batch; rows holding text the database cannot store are noted as
        invalid rows of the job instead."""
        payload = None
        if connection.vendor == "postgresql":
            payload = _copy_payload(self.job_id, batch)
        if payload is None:
            batch = _screen(self.job, batch)
            if not batch:
                return
            if connection.vendor == "postgresql":
                payload = _copy_rows(self.job_id, batch).encode()
        if self.thread is None:
            _stage(self.job, batch, payload)
            return
        if self.error is not None:
            raise self.error
        self.queue.put(payload)

    def close(self) -> None:
        """Wait until every batch is staged (or given up on); raise the staging error."""
        if self.thread is not None:
            self.queue.put(None)
            self.thread.join()
            self.thread = None
        if self.error is not None:
            raise self.error


_MERGE_SQL = """
WITH latest AS (
    SELECT DISTINCT ON (external_id) external_id, data, gold_answer, metadata, priority,
           token_count
    FROM {staging} WHERE job_id = %(job)s
    ORDER BY external_id, row DESC
), upserted AS (
    INSERT INTO {item} AS i (project_id, external_id, data, gold_answer, is_gold, metadata,
                             priority, target_annotations, reserved_count, annotation_count,
                             status, token_count, created_at, updated_at)
    SELECT %(project)s, external_id, data, gold_answer, gold_answer IS NOT NULL, metadata,
           priority, CASE WHEN gold_answer IS NULL THEN %(overlap)s END, 0, 0,
           'open', token_count, %(now)s, %(now)s
    FROM latest
    ON CONFLICT (project_id, external_id) DO {on_conflict}
    RETURNING (xmax = 0) AS inserted
)
SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted), {distinct}
FROM upserted
"""

_UPDATE_CLAUSE = """UPDATE SET
        data = EXCLUDED.data, gold_answer = EXCLUDED.gold_answer, is_gold = EXCLUDED.is_gold,
        metadata = EXCLUDED.metadata, priority = EXCLUDED.priority,
        token_count = EXCLUDED.token_count,
        target_annotations = CASE WHEN NOT EXCLUDED.is_gold
            THEN GREATEST(i.reserved_count, EXCLUDED.target_annotations) END,
        updated_at = EXCLUDED.updated_at"""


def _merge_postgresql(job: ImportJob, project: Project, now) -> tuple[int, int, int]:
    update = job.on_conflict == ImportJob.OnConflict.UPDATE
    sql = _MERGE_SQL.format(
        staging=ImportStagingRow._meta.db_table,
        item=Item._meta.db_table,
        on_conflict=_UPDATE_CLAUSE if update else "NOTHING",
        # On update every distinct row comes back, inserted or updated. Counting
        # `latest` again would make PostgreSQL keep all of it in a tuplestore
        # (about 0.5 s a million rows), so only skipping pays for that.
        distinct="count(*)" if update else "(SELECT count(*) FROM latest)",
    )
    with connection.cursor() as cursor:
        # The DISTINCT ON sort of a million staged rows fits in memory this way
        # (the default 4 MB spills it to disk); LOCAL ends with the transaction.
        cursor.execute("SET LOCAL work_mem = '256MB'")
        cursor.execute(
            sql,
            {
                "job": job.pk,
                "project": project.pk,
                "overlap": project.initial_target,
                "now": now,
            },
        )
        created, updated, distinct = cursor.fetchone()
    return created, updated, distinct


def _merge_portable(job: ImportJob, project: Project, now) -> tuple[int, int, int]:
    # SQLite (make run): the same semantics through the ORM, in batches.
    latest: dict[str, ImportStagingRow] = {}
    for staged in ImportStagingRow.objects.filter(job=job).order_by("row").iterator(2000):
        latest[staged.external_id] = staged
    existing = dict(
        Item.objects.filter(project=project, external_id__in=list(latest)).values_list(
            "external_id", "reserved_count"
        )
    )
    created = updated = 0
    new_items = []
    for external_id, staged in latest.items():
        # Gold items have no target: the project's gold ratio decides how often.
        target = project.initial_target if staged.gold_answer is None else None
        if external_id in existing:
            if job.on_conflict == ImportJob.OnConflict.UPDATE:
                Item.objects.filter(project=project, external_id=external_id).update(
                    data=staged.data,
                    gold_answer=staged.gold_answer,
                    is_gold=staged.gold_answer is not None,
                    metadata=staged.metadata,
                    priority=staged.priority,
                    token_count=staged.token_count,
                    target_annotations=target and max(existing[external_id], target),
                    updated_at=now,
                )
                updated += 1
            continue
        new_items.append(
            Item(
                project=project,
                external_id=external_id,
                data=staged.data,
                gold_answer=staged.gold_answer,
                is_gold=staged.gold_answer is not None,
                metadata=staged.metadata,
                priority=staged.priority,
                target_annotations=target,
                token_count=staged.token_count,
            )
        )
        created += 1
    Item.objects.bulk_create(new_items, batch_size=1000)
    return created, updated, len(latest)


def import_job_run(*, job_id, on_progress: Callable[[ImportJob], None] | None = None) -> ImportJob:
    """Run an import job to its end, succeeded or failed, never left running.

    Safe to run twice: a job that has ended, or that a live run holds, is left
    as it is; one whose run died starts over from the file.
    """
    lease = job_claim(
        model=ImportJob,
        job_id=job_id,
        statuses=_ACTIVE,
        fail=_fail,
        stopped_message=STOPPED_MESSAGE,
    )
    job = ImportJob.objects.select_related("project").get(pk=job_id)
    if lease is None:
        return job
    with lease:
        try:
            return _import(job, on_progress, lease)
        except LeaseLost:
            logger.warning(
                "import run stopped: another run took the job over",
                extra={"import_job_id": str(job.pk), "project_id": job.project_id},
            )
            return ImportJob.objects.get(pk=job.pk)
        except Exception as error:
            return _fail_unexpected(job, error, lease)


def _import(
    job: ImportJob, on_progress: Callable[[ImportJob], None] | None, lease: JobLease
) -> ImportJob:
    project = job.project
    # A retried run (the worker died) starts over from the file.
    ImportStagingRow.objects.filter(job=job).delete()
    job.status = ImportJob.Status.RUNNING
    job.started_at = job.heartbeat_at = timezone.now()
    job.errors, job.error = [], ""
    for counter in (
        "rows_read",
        "rows_valid",
        "rows_invalid",
        "created_count",
        "updated_count",
        "skipped_count",
        "duplicate_count",
        "bytes_read",
    ):
        setattr(job, counter, 0)
    job.save()
    logger.info(
        "import started",
        extra={"import_job_id": str(job.pk), "project_id": project.pk, "file_name": job.filename},
    )

    job_key = job.pk.hex[:12]
    batch: list[dict] = []
    counting = None
    stager = _Stager(job)
    try:
        with job.file.open("rb") as stored:
            head = stored.read(HEAD_BYTES)
            stored.seek(0)
            if not head.strip():
                raise ImportFileError("the file is empty")
            job.format = job.format or detect_format(job.filename, head)
            job.encoding = job.encoding or detect_encoding(head)
            counting = _CountingReader(stored)
            stream = io.BufferedReader(counting, buffer_size=256 * 1024)
            for entry in read_rows(stream, fmt=job.format, encoding=job.encoding):
                job.rows_read += 1
                if isinstance(entry, RowProblem):
                    _note_error(job, entry.row, entry.field, entry.message)
                    continue
                try:
                    batch.append(
                        row_normalize(
                            project,
                            entry.data,
                            row=entry.row,
                            job_key=job_key,
                            columns=job.columns,
                        )
                    )
                    job.rows_valid += 1
                except SchemaError as error:
                    _note_error(job, entry.row, error.field, error.message)
                if len(batch) >= STAGE_BATCH_ROWS:
                    stager.put(batch)
                    batch = []
                    job.bytes_read = counting.count
                    _save_progress(job, lease)
                    if on_progress:
                        on_progress(job)
            if batch:
                stager.put(batch)
            job.bytes_read = counting.count
    except (ImportFileError, UnicodeError) as error:
        stager.close()  # before _fail clears the staged rows
        if counting is not None:
            job.bytes_read = counting.count
        if isinstance(error, ImportFileError):
            return _fail(job, str(error), lease=lease)
        return _fail(
            job, f"the file is not valid {job.encoding}: {_shown(str(error))}", lease=lease
        )
    finally:
        stager.close()  # every staged row is committed before the merge reads them

    if job.rows_invalid and job.on_error == ImportJob.OnError.REJECT:
        first = min(job.errors, key=lambda error: error["row"]) if job.errors else None
        return _fail(
            job,
            lease=lease,
            message=f"{job.rows_invalid} of {job.rows_read} rows are invalid, so nothing "
            f"was imported{f' ({_error_text(first)})' if first else ''}; fix them (see "
            f"errors) or import with on_error=skip.",
        )
    if job.rows_valid == 0:
        return _fail(job, "the file has no valid rows", lease=lease)

    _save_progress(job, lease)  # the merge takes a while: a fresh heartbeat before it
    with transaction.atomic():
        # Holding this row lock through the merge keeps the sweep off the job.
        locked = ImportJob.objects.select_for_update().get(pk=job.pk)
        if locked.status != ImportJob.Status.RUNNING or not lease.holds(locked):
            # Another run took it over (this one's lease lapsed) or it ended: theirs.
            raise LeaseLost(str(job.pk))
        now = timezone.now()
        merge = _merge_postgresql if connection.vendor == "postgresql" else _merge_portable
        created, updated, distinct = merge(job, project, now)
        job.created_count, job.updated_count = created, updated
        job.skipped_count = distinct - created - updated
        job.duplicate_count = job.rows_valid - distinct
        ImportStagingRow.objects.filter(job=job).delete()
        job.status = ImportJob.Status.SUCCEEDED
        job.finished_at = now
        job.save()
        if created:
            # New work: the project is not complete any more.
            Project.objects.filter(pk=project.pk).update(completed_at=None)
        _announce(job)
    logger.info(
        "import finished",
        extra={
            "import_job_id": str(job.pk),
            "project_id": project.pk,
            "rows_read": job.rows_read,
            "rows_valid": job.rows_valid,
            "rows_invalid": job.rows_invalid,
            "created_count": job.created_count,
            "updated_count": job.updated_count,
            "skipped_count": job.skipped_count,
            "duplicate_count": job.duplicate_count,
        },
    )
    if on_progress:
        on_progress(job)
    return job


def _note_error(job: ImportJob, row: int, field: str | None, message: str) -> None:
    job.rows_invalid += 1
    if len(job.errors) < MAX_STORED_ERRORS:
        # A message may quote the row's own text, NULs included; errors is jsonb.
        job.errors.append(
            {"row": row, "field": field and _shown(field), "message": _shown(message)}
        )


def _error_text(error: dict) -> str:
    """An error of job.errors as one phrase: "row 3, field data.text: ..."."""
    where = f"row {error['row']}" + (f", field {error['field']}" if error["field"] else "")
    return f"{where}: {error['message']}"


def _save_progress(job: ImportJob, lease: JobLease) -> None:
    lease.check()
    job.heartbeat_at = timezone.now()
    ImportJob.objects.filter(pk=job.pk).update(
        heartbeat_at=job.heartbeat_at,
        rows_read=job.rows_read,
        rows_valid=job.rows_valid,
        rows_invalid=job.rows_invalid,
        bytes_read=job.bytes_read,
        format=job.format,
        encoding=job.encoding,
    )
