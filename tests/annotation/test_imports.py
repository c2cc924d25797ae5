import json

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
