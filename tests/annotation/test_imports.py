import json
import re
import time

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.base import ContentFile

from annotation.imports import import_job_create, import_job_run
from annotation.models import ImportJob, ImportStagingRow, Item
from tenants.models import Membership
from tests.factories import annotation_project, member

pytestmark = pytest.mark.django_db


def run_import(project, content: bytes, name="items.jsonl", **options):
    job = import_job_create(
        project=project,
        created_by=project.created_by,
        upload=ContentFile(content, name=name),
        enqueue=False,
        **options,
    )
    return import_job_run(job_id=job.pk)


def jsonl(*rows) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()


def test_jsonl_import_creates_items_with_tokens_gold_and_metadata():
    project = annotation_project()
    job = run_import(
        project,
        jsonl(
            {"external_id": "r1", "text": "很快，好吃", "metadata": {"shop": 7}},
            {"external_id": "r2", "text": "太慢了", "gold": "negative"},
            {"text": "没有编号"},
        ),
    )
    assert job.status == ImportJob.Status.SUCCEEDED, job.error
    assert (job.rows_read, job.created_count, job.updated_count) == (3, 3, 0)
    assert job.progress == 1.0
    r1 = Item.objects.get(external_id="r1")
    assert r1.data == {"text": "很快，好吃"} and r1.metadata == {"shop": 7}
    assert r1.token_count == 5 and r1.target_annotations == project.overlap
    r2 = Item.objects.get(external_id="r2")
    assert r2.is_gold and r2.gold_answer == {"label": "negative"}
    assert Item.objects.filter(external_id__startswith="auto:").count() == 1
    assert not ImportStagingRow.objects.exists()


def test_a_file_with_bad_rows_is_rejected_whole_with_a_report():
    project = annotation_project()
    job = run_import(
        project,
        jsonl(
            {"external_id": "ok", "text": "好"},
            {"external_id": "no-text"},
            {"external_id": "bad-gold", "text": "差", "gold": "neutral"},
        )
        + b"{not json\n",
    )
    assert job.status == ImportJob.Status.FAILED
    assert not Item.objects.exists()
    assert "3 of 4 rows are invalid" in job.error
    by_row = {e["row"]: e for e in job.errors}
    assert by_row[2]["field"] == "data.text" and "missing" in by_row[2]["message"]
    assert by_row[3]["field"] == "gold.label" and "'neutral'" in by_row[3]["message"]
    assert "not valid JSON" in by_row[4]["message"]


def test_skip_mode_imports_the_good_rows_and_reports_the_bad():
    project = annotation_project()
    job = run_import(project, jsonl({"text": "好"}, {"text": ""}, {"text": "差"}), on_error="skip")
    assert job.status == ImportJob.Status.SUCCEEDED
    assert (job.created_count, job.rows_invalid) == (2, 1)
    assert job.errors == [{"row": 2, "field": "data.text", "message": "must not be empty"}]


def test_reimport_updates_or_skips_by_external_id_and_never_duplicates():
    project = annotation_project()
    run_import(
        project, jsonl({"external_id": "a", "text": "旧"}, {"external_id": "b", "text": "b"})
    )
    updated = run_import(
        project, jsonl({"external_id": "a", "text": "新"}, {"external_id": "c", "text": "c"})
    )
    assert (updated.created_count, updated.updated_count) == (1, 1)
    assert Item.objects.get(external_id="a").data["text"] == "新"
    skipped = run_import(project, jsonl({"external_id": "a", "text": "再新"}), on_conflict="skip")
    assert (skipped.created_count, skipped.updated_count, skipped.skipped_count) == (0, 0, 1)
    assert Item.objects.get(external_id="a").data["text"] == "新"
    assert Item.objects.filter(project=project).count() == 3


def test_the_same_external_id_twice_in_one_file_keeps_the_last_row():
    project = annotation_project()
    job = run_import(
        project, jsonl({"external_id": "x", "text": "一"}, {"external_id": "x", "text": "二"})
    )
    assert (job.created_count, job.duplicate_count) == (1, 1)
    assert Item.objects.get().data["text"] == "二"


def test_a_rows_priority_is_stored_and_orders_the_annotators_work():
    from annotation.services import assignment_lease

    project = annotation_project()
    job = run_import(
        project,
        jsonl(
            {"external_id": "plain", "text": "一般"},
            {"external_id": "urgent", "text": "很急", "priority": 900},
            {"external_id": "later", "text": "不急", "priority": -5},
            {"external_id": "soon", "text": "较急", "priority": "7"},
        ),
    )
    assert job.status == ImportJob.Status.SUCCEEDED, job.error
    assert dict(Item.objects.values_list("external_id", "priority")) == {
        "plain": 0,
        "urgent": 900,
        "later": -5,
        "soon": 7,
    }
    annotator = member(organization=project.workforce, role=Membership.Role.ANNOTATOR)
    lease = assignment_lease(project=project, annotator=annotator)
    assert lease.item.external_id == "urgent"


def test_csv_priority_cells_and_an_updating_reimport_set_the_priority():
    project = annotation_project()
    content = "external_id,text,priority\nr1,好吃,3\nr2,难吃,\n"
    job = run_import(project, content.encode(), name="items.csv")
    assert job.status == ImportJob.Status.SUCCEEDED, job.error
    assert dict(Item.objects.values_list("external_id", "priority")) == {"r1": 3, "r2": 0}
    run_import(project, jsonl({"external_id": "r2", "text": "难吃", "priority": 12}))
    assert Item.objects.get(external_id="r2").priority == 12


@pytest.mark.parametrize(
    ("priority", "message"),
    [
        (2.5, "expected a whole number from -1000 to 1000"),
        ("high", "expected a whole number from -1000 to 1000"),
        (True, "expected a whole number from -1000 to 1000"),
        (5000, "5000 is outside -1000 to 1000"),
        (-1001, "-1001 is outside -1000 to 1000"),
    ],
)
def test_a_bad_priority_is_reported_for_its_row_and_field(priority, message):
    project = annotation_project()
    job = run_import(project, jsonl({"text": "好"}, {"text": "差", "priority": priority}))
    assert job.status == ImportJob.Status.FAILED
    assert job.errors == [{"row": 2, "field": "priority", "message": message}]
    assert not Item.objects.exists()


def test_gbk_csv_is_detected_and_imported():
    project = annotation_project()
    content = "external_id,text,gold\nr1,外卖很快，味道不错,positive\nr2,送错了,negative\n"
    job = run_import(project, content.encode("gbk"), name="reviews.csv")
    assert job.status == ImportJob.Status.SUCCEEDED, job.error
    assert (job.format, job.encoding) == ("csv", "gb18030")
    assert Item.objects.get(external_id="r1").data["text"] == "外卖很快，味道不错"


def test_undecodable_bytes_fail_clearly():
    project = annotation_project()
    job = run_import(project, b"text\n\xff\xfe\xfa\xfb\x81\n", name="x.csv", encoding="utf-8")
    assert job.status == ImportJob.Status.FAILED
    assert "row 2" in job.error
    assert not Item.objects.exists()


def test_label_studio_tasks_import_with_ground_truth_as_gold():
    project = annotation_project()
    tasks = [
        {
            "id": 11,
            "data": {"text": "好吃"},
            "annotations": [
                {
                    "ground_truth": True,
                    "result": [{"type": "choices", "value": {"choices": ["positive"]}}],
                }
            ],
        },
        {"id": 12, "data": {"text": "难吃"}, "annotations": []},
    ]
    job = run_import(project, json.dumps(tasks, ensure_ascii=False).encode(), name="ls.json")
    assert job.status == ImportJob.Status.SUCCEEDED, job.error
    assert job.format == "label_studio"
    assert Item.objects.get(external_id="11").gold_answer == {"label": "positive"}
    assert Item.objects.get(external_id="12").is_gold is False


def test_preference_rows_need_both_responses():
    project = annotation_project(task_type="preference")
    job = run_import(project, jsonl({"prompt": "写一首诗", "response_a": "床前明月光"}))
    assert job.status == ImportJob.Status.FAILED
    assert job.errors[0]["field"] == "data.response_b"


def test_empty_file_and_bad_options_are_refused_before_anything_is_stored():
    project = annotation_project()
    with pytest.raises(ValidationError) as excinfo:
        import_job_create(
            project=project,
            created_by=project.created_by,
            upload=ContentFile(b"", name="e.jsonl"),
            enqueue=False,
            on_conflict="merge",
            format="xml",
        )
    assert set(excinfo.value.message_dict) == {"file", "on_conflict", "format"}
    assert not ImportJob.objects.exists()


def test_only_project_editors_import():
    project = annotation_project()
    annotator = member(organization=project.organization, role=Membership.Role.ANNOTATOR)
    with pytest.raises(PermissionDenied):
        import_job_create(
            project=project,
            created_by=annotator,
            upload=ContentFile(b'{"text":"a"}\n', name="a.jsonl"),
            enqueue=False,
        )


def test_running_a_finished_job_again_changes_nothing():
    project = annotation_project()
    job = run_import(project, jsonl({"text": "一"}, {"text": "二"}))
    again = import_job_run(job_id=job.pk)
    assert again.created_count == 2
    assert Item.objects.count() == 2


def test_a_retried_run_starts_over_without_duplicating():
    project = annotation_project()
    job = import_job_create(
        project=project,
        created_by=project.created_by,
        upload=ContentFile(jsonl({"text": "一"}, {"text": "二"}), name="a.jsonl"),
        enqueue=False,
    )
    # A worker died mid-run: the job is RUNNING with rows already staged.
    ImportJob.objects.filter(pk=job.pk).update(status=ImportJob.Status.RUNNING)
    ImportStagingRow.objects.create(job=job, row=1, external_id="stale", data={"text": "x"})
    finished = import_job_run(job_id=job.pk)
    assert finished.status == ImportJob.Status.SUCCEEDED
    assert sorted(Item.objects.values_list("data__text", flat=True)) == ["一", "二"]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_rows_are_staged_on_a_second_connection(monkeypatch):
    """As in the worker: COPY runs on a thread of its own while the file is read."""
    import threading

    from annotation import imports

    monkeypatch.setattr(imports, "STAGE_BATCH_ROWS", 3)  # several batches in flight
    stagers = []
    original = imports._Stager.__init__

    def spy(self, job):
        original(self, job)
        stagers.append(self.thread is not None)

    monkeypatch.setattr(imports._Stager, "__init__", spy)
    project = annotation_project()
    tricky = "tab\there, newline\nthere, backslash \\ and \\N, \\.; 中文"
    rows = [{"external_id": f"r{n}", "text": f"{tricky} {n}"} for n in range(10)]
    rows.append({"external_id": "r3", "text": "the later row wins"})
    job = run_import(project, jsonl(*rows, {"external_id": "x\ty", "text": "好"}))
    assert stagers == [True], "the threaded path did not run"
    assert job.status == ImportJob.Status.SUCCEEDED, job.error
    assert Item.objects.get(external_id="r1").data == {"text": f"{tricky} 1"}
    assert Item.objects.get(external_id="r3").data == {"text": "the later row wins"}
    assert Item.objects.get(external_id="x\ty").token_count == 1
    assert job.created_count == 11 and not ImportStagingRow.objects.exists()

    # A bad row after staged batches: nothing is merged, nothing stays staged.
    bad = [{"external_id": f"b{n}", "text": "好"} for n in range(7)] + [{"external_id": "b7"}]
    job = run_import(project, jsonl(*bad))
    assert job.status == ImportJob.Status.FAILED
    assert not Item.objects.filter(external_id__startswith="b").exists()
    assert not ImportStagingRow.objects.exists()
    skipped = run_import(project, jsonl(*bad), on_error=ImportJob.OnError.SKIP)
    assert skipped.status == ImportJob.Status.SUCCEEDED and skipped.created_count == 7
    assert not [t for t in threading.enumerate() if t.name == "import-stage"]


def test_a_finished_import_is_logged_with_its_ids_and_counts(caplog):
    project = annotation_project()
    with caplog.at_level("INFO", logger="annotation.imports"):
        job = run_import(project, jsonl({"text": "好"}, {"text": "不好"}))
    finished = [r for r in caplog.records if r.getMessage() == "import finished"]
    assert len(finished) == 1
    record = finished[0]
    assert (record.import_job_id, record.project_id) == (str(job.pk), project.pk)
    assert (record.rows_read, record.created_count, record.rows_invalid) == (2, 2, 0)
    assert any(r.getMessage() == "import started" for r in caplog.records)


def test_a_failed_import_is_logged_as_a_warning(caplog):
    project = annotation_project()
    with caplog.at_level("INFO", logger="annotation.imports"):
        job = run_import(project, b"   ")
    (record,) = [r for r in caplog.records if r.getMessage() == "import failed"]
    assert record.levelname == "WARNING" and record.import_job_id == str(job.pk)


# --- jobs that never hang: bad text, crashes, dead workers ----------------------------

NUL = "contains a NUL character (\\u0000), which PostgreSQL cannot store"


def import_through_the_task(project, content: bytes, name: str, capture, **options):
    """The real path: the service stores the upload, the Celery task (eager) runs it."""
    with capture(execute=True):
        job = import_job_create(
            project=project,
            created_by=project.created_by,
            upload=ContentFile(content, name=name),
            **options,
        )
    return ImportJob.objects.get(pk=job.pk)


BAD_TEXT = {
    "a NUL in a text": (
        "classification",
        jsonl({"external_id": "a", "text": "好"}, {"external_id": "b", "text": "坏\u0000了"}),
        "items.jsonl",
        (2, "data.text", NUL),
    ),
    "a NUL in a metadata key": (
        "classification",
        jsonl({"text": "好", "metadata": {"shop\u0000": 7}}),
        "items.jsonl",
        (1, "metadata.shop\\u0000", f"the key {NUL}"),
    ),
    "a NUL deep in a metadata value": (
        "classification",
        jsonl({"text": "好"}, {"text": "好", "metadata": {"a": [{"b": "x\u0000"}]}}),
        "items.jsonl",
        (2, "metadata.a[0].b", NUL),
    ),
    "a NUL in an external id": (
        "classification",
        jsonl({"external_id": "id\u0000", "text": "好"}),
        "items.jsonl",
        (1, "external_id", NUL),
    ),
    "a raw NUL in a CSV cell": (
        "classification",
        b"external_id,text\nr1,ok\nr2,b\x00d\n",
        "items.csv",
        (3, "data.text", NUL),
    ),
    "a NUL in a gold answer": (
        "text",
        jsonl({"prompt": "问", "gold": {"text": "答\u0000"}}),
        "items.jsonl",
        (1, "gold.text", NUL),
    ),
    "a lone surrogate in a text": (
        "classification",
        b'{"text": "ok \\ud800"}\n',
        "items.jsonl",
        (1, "data.text", "contains a lone surrogate (\\ud800), which is not valid Unicode text"),
    ),
}


@pytest.mark.postgres
@pytest.mark.parametrize("case", BAD_TEXT.values(), ids=BAD_TEXT.keys())
def test_text_postgresql_cannot_store_fails_the_job_naming_the_row_and_field(
    case, django_capture_on_commit_callbacks
):
    task_type, content, name, (row, field, message) = case
    project = annotation_project(task_type=task_type)
    job = import_through_the_task(project, content, name, django_capture_on_commit_callbacks)
    assert job.status == ImportJob.Status.FAILED
    assert {"row": row, "field": field, "message": message} in job.errors
    assert f"row {row}, field {field}: {message}" in job.error
    assert job.progress == 1.0  # the whole file was read, and then rejected
    assert job.finished_at is not None
    assert not Item.objects.exists() and not ImportStagingRow.objects.exists()


@pytest.mark.postgres
def test_with_on_error_skip_the_rows_with_a_nul_are_left_out_and_reported(
    django_capture_on_commit_callbacks,
):
    project = annotation_project()
    content = jsonl(
        {"external_id": "a", "text": "好"},
        {"external_id": "b\u0000", "text": "坏"},
        {"external_id": "c", "text": "\\u0000 is how JSON writes a NUL"},
    )
    job = import_through_the_task(
        project, content, "a.jsonl", django_capture_on_commit_callbacks, on_error="skip"
    )
    assert job.status == ImportJob.Status.SUCCEEDED, job.error
    assert (job.rows_valid, job.rows_invalid, job.created_count) == (2, 1, 2)
    assert job.errors == [{"row": 2, "field": "external_id", "message": NUL}]
    assert Item.objects.get(external_id="c").data["text"] == "\\u0000 is how JSON writes a NUL"


@pytest.mark.parametrize(
    "content",
    [
        "text\n好\n".encode(),  # UTF-8 declared as UTF-16
        ("文本\n" + "你好世界" * 10 + "\n").encode("utf-16-le"),  # too few zero bytes
    ],
    ids=["utf-8 bytes", "only Chinese text"],
)
def test_utf16_without_a_byte_order_mark_fails_naming_the_encoding(
    content, django_capture_on_commit_callbacks
):
    project = annotation_project()
    job = import_through_the_task(
        project, content, "items.csv", django_capture_on_commit_callbacks, encoding="utf-16"
    )
    assert job.status == ImportJob.Status.FAILED
    assert "declared UTF-16 but has no UTF-16 byte order mark at byte 0" in job.error
    assert "utf-16-le or utf-16-be" in job.error
    assert not Item.objects.exists()


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_utf16_without_a_byte_order_mark_is_read_when_its_letters_show_the_order(
    codec, django_capture_on_commit_callbacks
):
    project = annotation_project()
    content = "external_id,text\nr1,外卖很快\nr2,送错了\n".encode(codec)
    job = import_through_the_task(
        project, content, "items.csv", django_capture_on_commit_callbacks, encoding="utf-16"
    )
    assert job.status == ImportJob.Status.SUCCEEDED, job.error
    assert Item.objects.get(external_id="r1").data["text"] == "外卖很快"


def test_a_decode_error_names_the_encoding_the_row_and_the_byte():
    project = annotation_project()
    job = run_import(project, b"text\nok\nb\xffd\n", name="x.csv", encoding="utf-8")
    assert job.status == ImportJob.Status.FAILED
    assert job.error.startswith("row 3: invalid UTF-8 byte sequence at byte 9")


@pytest.mark.parametrize(
    ("encoding", "message"),
    [
        ("klingon", "Unknown encoding 'klingon'"),
        ("rot13", "Unknown encoding 'rot13'"),  # a codec, but not of text
        ("x" * 40, "no more than 32 characters"),
    ],
)
def test_an_encoding_that_is_no_text_codec_or_too_long_is_a_400(encoding, message):
    from django.core.files.uploadedfile import SimpleUploadedFile
    from rest_framework.test import APIClient

    from tests.factories import api_token

    project = annotation_project()
    _, secret = api_token(organization=project.organization)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    response = api.post(
        f"/api/v1/projects/{project.pk}/import/",
        {"file": SimpleUploadedFile("a.jsonl", b'{"text": "a"}\n'), "encoding": encoding},
        format="multipart",
    )
    assert response.status_code == 400, response.content
    (error,) = response.json()["errors"]
    assert error["attr"] == "encoding" and message in error["detail"]
    assert not ImportJob.objects.exists()


def test_the_service_stores_the_codecs_own_name_and_refuses_unknown_ones():
    project = annotation_project()
    upload = ContentFile(b'{"text": "a"}\n', name="a.jsonl")
    job = import_job_create(
        project=project,
        created_by=project.created_by,
        upload=upload,
        encoding="UTF8",
        enqueue=False,
    )
    assert job.encoding == "utf-8"
    with pytest.raises(ValidationError) as excinfo:
        import_job_create(
            project=project,
            created_by=project.created_by,
            upload=upload,
            encoding="x" * 33,
            enqueue=False,
        )
    assert "at most 32 characters" in excinfo.value.message_dict["encoding"][0]


def test_an_unexpected_error_fails_the_job_with_an_error_id_in_the_log(
    monkeypatch, caplog, django_capture_on_commit_callbacks
):
    from annotation import imports
    from annotation.import_readers import RawRow

    def breaking_reader(stream, *, fmt, encoding):
        yield RawRow(1, {"text": "好"})
        yield RawRow(2, {"text": "好"})
        raise RuntimeError("the disk went away")

    monkeypatch.setattr(imports, "STAGE_BATCH_ROWS", 1)  # a batch is staged first
    monkeypatch.setattr(imports, "read_rows", breaking_reader)
    project = annotation_project()
    with caplog.at_level("INFO", logger="annotation.imports"):
        job = import_through_the_task(
            project, jsonl({"text": "好"}), "a.jsonl", django_capture_on_commit_callbacks
        )
    assert job.status == ImportJob.Status.FAILED
    error_id = re.search(r"error id ([0-9a-f]{12})", job.error).group(1)
    assert "nothing was imported" in job.error
    (record,) = [
        r for r in caplog.records if r.name == "annotation.imports" and r.levelname == "ERROR"
    ]
    assert (record.error_id, record.job_id) == (error_id, str(job.pk))
    assert record.exc_info[0] is RuntimeError
    assert job.finished_at is not None and job.progress != 0.99
    assert not Item.objects.exists() and not ImportStagingRow.objects.exists()

    # Run again (a redelivered task): a failed job stays as it is.
    from annotation.tasks import import_job_run_task

    monkeypatch.undo()
    assert import_job_run_task(str(job.pk)) == ImportJob.Status.FAILED
    assert ImportJob.objects.get(pk=job.pk).error == job.error
    assert not Item.objects.exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_database_error_in_the_staging_thread_fails_the_job_too(monkeypatch, caplog):
    """Without the NUL check, PostgreSQL refuses the COPY on the stager's own
    connection: the job still ends failed, with an error id."""
    from annotation import imports

    monkeypatch.setattr(
        imports, "_copy_payload", lambda job_id, rows: imports._copy_rows(job_id, rows).encode()
    )
    project = annotation_project()
    with caplog.at_level("ERROR", logger="annotation.imports"):
        job = run_import(project, jsonl({"text": "好"}, {"text": "坏\u0000"}))
    assert job.status == ImportJob.Status.FAILED
    assert "error id" in job.error
    (record,) = [r for r in caplog.records if r.getMessage().startswith("import stopped")]
    assert record.error_id in job.error
    assert not Item.objects.exists() and not ImportStagingRow.objects.exists()


def test_progress_is_defined_for_every_status():
    job = ImportJob(file_size=200, bytes_read=200, status=ImportJob.Status.RUNNING)
    assert job.progress == 0.99  # read, but not merged yet
    job.status = ImportJob.Status.FAILED
    assert job.progress == 1.0  # read whole, then rejected
    job.bytes_read = 50
    assert job.progress == 0.25  # where it stopped
    job.status = ImportJob.Status.SUCCEEDED
    assert job.progress == 1.0
    assert ImportJob(file_size=0).progress == 0.0


def test_the_sweep_reruns_imports_whose_worker_died_or_message_was_lost(
    django_capture_on_commit_callbacks,
):
    from datetime import timedelta

    from django.utils import timezone

    from annotation.tasks import jobs_sweep_task

    project = annotation_project()
    jobs = {}
    for name in ("dead", "live", "lost", "new", "spent"):
        jobs[name] = import_job_create(
            project=project,
            created_by=project.created_by,
            upload=ContentFile(jsonl({"external_id": name, "text": "好"}), name=f"{name}.jsonl"),
            enqueue=False,
        )
    now = timezone.now()
    running = ImportJob.Status.RUNNING
    lapsed = now - timedelta(seconds=1)

    def update(name, **fields):
        ImportJob.objects.filter(pk=jobs[name].pk).update(**fields)

    update("dead", status=running, claimed_by="w:1:a", lease_expires_at=lapsed, attempts=1)
    update("live", status=running, claimed_by="w:2:b", lease_expires_at=now + timedelta(seconds=30))
    update("lost", created_at=now - timedelta(hours=1))  # its message never came
    update("spent", status=running, claimed_by="w:3:c", lease_expires_at=lapsed, attempts=3)
    # The dead run's staged rows: the new run starts over without them.
    ImportStagingRow.objects.create(job=jobs["dead"], row=1, external_id="x", data={"text": "x"})

    with django_capture_on_commit_callbacks(execute=True) as sent:
        assert jobs_sweep_task() == 3
    assert len(sent) == 2  # dead and lost are queued again; spent is failed
    status = dict(ImportJob.objects.values_list("filename", "status"))
    assert status == {
        "dead.jsonl": "succeeded",
        "live.jsonl": "running",
        "lost.jsonl": "succeeded",
        "new.jsonl": "pending",
        "spent.jsonl": "failed",
    }
    assert sorted(Item.objects.values_list("external_id", flat=True)) == ["dead", "lost"]
    assert not ImportStagingRow.objects.exists()
    spent = ImportJob.objects.get(pk=jobs["spent"].pk)
    assert spent.error.startswith("The worker running this import stopped 3 times")
    assert spent.finished_at is not None
    # A run that ended on its own gives its claim back and is not counted as stopped.
    dead = ImportJob.objects.get(pk=jobs["dead"].pk)
    assert (dead.claimed_by, dead.attempts) == ("", 1)
    with django_capture_on_commit_callbacks(execute=True) as sent:
        assert jobs_sweep_task() == 0  # safe to run twice
    assert not sent

    # The broker re-delivering a swept job's message does nothing; nor does a
    # duplicate message for a job a live run holds.
    assert import_job_run(job_id=spent.pk).status == ImportJob.Status.FAILED
    assert import_job_run(job_id=jobs["live"].pk).status == ImportJob.Status.RUNNING
    assert ImportJob.objects.get(pk=jobs["live"].pk).claimed_by == "w:2:b"


def test_a_slow_run_whose_job_was_taken_over_writes_nothing(monkeypatch):
    from datetime import timedelta

    from django.utils import timezone

    from annotation import imports

    monkeypatch.setattr(imports, "STAGE_BATCH_ROWS", 1)
    project = annotation_project()
    job = import_job_create(
        project=project,
        created_by=project.created_by,
        upload=ContentFile(jsonl({"text": "一"}, {"text": "二"}), name="a.jsonl"),
        enqueue=False,
    )

    def stall(running):
        # The worker stalls past its lease, and beat re-dispatches the job meanwhile.
        ImportJob.objects.filter(pk=running.pk).update(
            lease_expires_at=timezone.now() - timedelta(seconds=1)
        )
        imports.import_jobs_recover()

    stalled = import_job_run(job_id=job.pk, on_progress=stall)
    assert stalled.status == ImportJob.Status.PENDING  # queued for the new run
    assert not Item.objects.exists()
    rerun = import_job_run(job_id=job.pk)
    assert rerun.status == ImportJob.Status.SUCCEEDED
    assert Item.objects.count() == 2


# --- the web process stopped during an upload ----------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_upload_cut_off_mid_body_leaves_no_job_and_no_file(live_server, settings, tmp_path):
    """The client (or the web process's connection) goes away halfway through the
    body: the view never runs, so there is no job and nothing under MEDIA_ROOT."""
    import socket
    from urllib.parse import urlparse

    from tests.factories import api_token

    settings.MEDIA_ROOT = str(tmp_path / "media")
    project = annotation_project()
    _, secret = api_token(organization=project.organization)
    url = urlparse(live_server.url)
    boundary = "tokenworksboundary"

    def post(content: bytes, *, cut: bool) -> bytes:
        body = (
            (
                f"--{boundary}\r\n"
                'Content-Disposition: form-data; name="file"; filename="big.jsonl"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n"
            ).encode()
            + content
            + f"\r\n--{boundary}--\r\n".encode()
        )
        with socket.create_connection((url.hostname, url.port), timeout=30) as conn:
            conn.sendall(
                (
                    f"POST /api/v1/projects/{project.pk}/import/ HTTP/1.1\r\n"
                    f"Host: {url.hostname}:{url.port}\r\n"
                    f"Authorization: Bearer {secret}\r\n"
                    f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
                    f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
                ).encode()
            )
            if cut:
                conn.sendall(body[: len(body) // 2])  # then the connection drops
                conn.shutdown(socket.SHUT_RDWR)
                return b""
            conn.sendall(body)
            return conn.recv(100)

    big = b"".join(b'{"text": "%d"}\n' % n for n in range(200_000))  # ~3 MB: spooled to disk
    post(big, cut=True)
    time.sleep(2)  # the server's thread notices when its read comes up short
    assert not ImportJob.objects.exists()
    media = tmp_path / "media"
    assert not media.exists() or not any(p.is_file() for p in media.rglob("*"))

    # The same request whole is accepted: the cut, not the request, made the difference.
    assert post(b'{"text": "a"}\n', cut=False).startswith(b"HTTP/1.1 202")
    assert ImportJob.objects.count() == 1


def test_an_import_created_but_never_dispatched_is_run_by_the_sweep(
    settings, django_capture_on_commit_callbacks
):
    """The web process died between saving the job and queueing it (or the message
    was lost): beat's sweep dispatches it JOB_PENDING_SECONDS later."""
    from datetime import timedelta

    from django.utils import timezone

    from annotation.imports import import_jobs_recover

    project = annotation_project()
    job = import_job_create(
        project=project,
        created_by=project.created_by,
        upload=ContentFile(b'{"text": "a"}\n{"text": "b"}\n', name="a.jsonl"),
        enqueue=False,
    )
    assert import_jobs_recover() == 0  # too early to tell
    later = timezone.now() + timedelta(seconds=settings.JOB_PENDING_SECONDS + 1)
    with django_capture_on_commit_callbacks(execute=True):
        assert import_jobs_recover(now=later) == 1
    job.refresh_from_db()
    assert job.status == ImportJob.Status.SUCCEEDED
    assert Item.objects.filter(project=project).count() == 2
