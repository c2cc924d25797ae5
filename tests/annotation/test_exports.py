import csv
import io
import json
import re

import pytest
from django.core.exceptions import ValidationError

from annotation import exports, services
from annotation.models import DatasetVersion, ExportJob
from tests.factories import annotation_project, items, worker

pytestmark = pytest.mark.django_db


def answer_all(project, answers, *, data=None):
    made = items(project, len(answers), data=data)
    annotator = worker(project)
    for answer in answers:
        lease = services.assignment_lease(project=project, annotator=annotator)
        services.annotation_submit(assignment_id=lease.pk, annotator=annotator, answer=answer)
    return made


def lines(project, fmt, **kwargs):
    return [json.loads(line) for line in exports.export_lines(project, fmt, **kwargs)]


def test_results_jsonl_has_answers_with_confidence_and_provenance():
    project = annotation_project()
    answer_all(project, [{"label": "positive"}, {"label": "negative"}])
    rows = lines(project, "results_jsonl")
    assert [r["answer"] for r in rows] == [{"label": "positive"}, {"label": "negative"}]
    assert rows[0]["external_id"] == "item-0" and rows[0]["confidence"] == 1.0
    assert rows[0]["provenance"]["annotations"] and rows[0]["approved"] is True


def test_results_csv_has_a_header_and_one_row_per_result():
    project = annotation_project()
    answer_all(project, [{"label": "positive"}])
    text = "".join(exports.export_lines(project, "results_csv"))
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows == [
        {
            "external_id": "item-0",
            "answer": '{"label": "positive"}',
            "label": "positive",
            "confidence": "1.0000",
            "method": "single",
            "agreement": "",
            "approved": "1",
            "annotations": "1",
        }
    ]


def test_every_annotation_is_exported_with_a_pseudonymous_annotator():
    project = annotation_project()
    answer_all(project, [{"label": "positive"}, {"label": "negative"}])
    rows = lines(project, "annotations_jsonl")
    assert len(rows) == 2
    assert isinstance(rows[0]["annotator"], int)
    assert "username" not in json.dumps(rows)


def test_openai_chat_for_text_projects():
    project = annotation_project(task_type="text")
    answer_all(
        project,
        [{"text": "您好，请问有什么可以帮您？"}],
        data={"prompt": "你好", "system": "你是客服"},
    )
    assert lines(project, "openai_chat") == [
        {
            "messages": [
                {"role": "system", "content": "你是客服"},
                {"role": "user", "content": "你好"},
                {"role": "assistant", "content": "您好，请问有什么可以帮您？"},
            ]
        }
    ]


def test_openai_chat_for_classification_names_the_labels():
    project = annotation_project(instructions="判断情感")
    answer_all(project, [{"label": "negative"}])
    (record,) = lines(project, "openai_chat")
    system, _user, assistant = record["messages"]
    assert system["content"] == "判断情感\n\nAnswer with exactly one label: positive, negative."
    assert assistant == {"role": "assistant", "content": "negative"}


def test_preference_exports_for_dpo_skip_ties():
    project = annotation_project(task_type="preference")
    data = {"prompt": "写诗", "response_a": "甲", "response_b": "乙"}
    answer_all(project, [{"choice": "b"}, {"choice": "tie"}], data=data)
    assert lines(project, "dpo") == [{"prompt": "写诗", "chosen": "乙", "rejected": "甲"}]
    assert lines(project, "openai_preference") == [
        {
            "input": {"messages": [{"role": "user", "content": "写诗"}]},
            "preferred_output": [{"role": "assistant", "content": "乙"}],
            "non_preferred_output": [{"role": "assistant", "content": "甲"}],
        }
    ]


def test_training_formats_must_fit_the_task_type():
    project = annotation_project(task_type="rating")
    with pytest.raises(ValidationError, match="preference"):
        list(exports.export_lines(project, "dpo"))


def test_unapproved_results_stay_out_unless_asked_for():
    project = annotation_project(review_rate="1")
    answer_all(project, [{"label": "positive"}])
    assert lines(project, "results_jsonl") == []
    assert len(lines(project, "results_jsonl", approved_only=False)) == 1


def test_export_job_writes_the_file(django_capture_on_commit_callbacks):
    project = annotation_project()
    answer_all(project, [{"label": "positive"}, {"label": "negative"}])
    with django_capture_on_commit_callbacks(execute=True):
        job = exports.export_job_create(
            project=project, created_by=project.created_by, fmt="results_csv"
        )
    job = ExportJob.objects.get(pk=job.pk)
    assert job.status == ExportJob.Status.SUCCEEDED and job.row_count == 2
    content = job.file.read().decode()
    assert content.splitlines()[0].startswith("external_id,answer")
    assert len(content.splitlines()) == 3


def test_dataset_versions_are_numbered_hashed_and_reproducible():
    project = annotation_project(task_type="text")
    answer_all(project, [{"text": f"回答{n}"} for n in range(40)], data={"prompt": "问题"})
    first = exports.dataset_version_create(
        project=project, created_by=project.created_by, seed=7, validation_ratio="0.25"
    )
    second = exports.dataset_version_create(
        project=project, created_by=project.created_by, seed=7, validation_ratio="0.25"
    )
    other_seed = exports.dataset_version_create(
        project=project, created_by=project.created_by, seed=8, validation_ratio="0.25"
    )
    assert (first.version, second.version, other_seed.version) == (1, 2, 3)
    assert first.content_hash == second.content_hash != other_seed.content_hash
    assert first.train_count + first.validation_count == 40
    assert 2 <= first.validation_count <= 18
    train = [json.loads(line) for line in first.train_file.read().decode().splitlines()]
    assert len(train) == first.train_count and train[0]["messages"][0]["content"] == "问题"
    assert DatasetVersion.objects.count() == 3


def test_a_dataset_needs_approved_answers():
    project = annotation_project(task_type="text")
    with pytest.raises(ValidationError, match="no approved answers"):
        exports.dataset_version_create(project=project, created_by=project.created_by)


def test_an_unexpected_error_fails_the_export_job_with_an_error_id(
    monkeypatch, caplog, django_capture_on_commit_callbacks
):
    project = annotation_project()
    answer_all(project, [{"label": "positive"}])

    def breaking_lines(project, fmt, *, approved_only=True):
        yield "external_id,answer\n"
        raise RuntimeError("the database went away")

    monkeypatch.setattr(exports, "export_lines", breaking_lines)
    with (
        caplog.at_level("INFO", logger="annotation.exports"),
        django_capture_on_commit_callbacks(execute=True),
    ):
        job = exports.export_job_create(
            project=project, created_by=project.created_by, fmt="results_csv"
        )
    job = ExportJob.objects.get(pk=job.pk)
    assert job.status == ExportJob.Status.FAILED and job.finished_at is not None
    error_id = re.search(r"error id ([0-9a-f]{12})", job.error).group(1)
    (record,) = [
        r for r in caplog.records if r.name == "annotation.exports" and r.levelname == "ERROR"
    ]
    assert (record.error_id, record.job_id) == (error_id, str(job.pk))
    assert record.exc_info[0] is RuntimeError
    assert not job.file

    # A redelivered task leaves the failed job as it is.
    from annotation.tasks import export_job_run_task

    monkeypatch.undo()
    assert export_job_run_task(str(job.pk)) == ExportJob.Status.FAILED
    assert ExportJob.objects.get(pk=job.pk).error == job.error


def test_the_sweep_reruns_an_export_whose_worker_died_and_fails_a_spent_one(
    django_capture_on_commit_callbacks,
):
    from datetime import timedelta

    from django.utils import timezone

    project = annotation_project()
    answer_all(project, [{"label": "positive"}])
    now = timezone.now()
    dead, live, spent = (
        ExportJob.objects.create(
            project=project,
            created_by=project.created_by,
            format="results_jsonl",
            status=ExportJob.Status.RUNNING,
            claimed_by=f"w:{attempts}",
            attempts=attempts,
            lease_expires_at=now + timedelta(seconds=seconds),
        )
        for attempts, seconds in ((1, -1), (2, 30), (3, -1))
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert exports.export_jobs_recover() == 2
    for job in (dead, live, spent):
        job.refresh_from_db()
    assert dead.status == ExportJob.Status.SUCCEEDED and dead.row_count == 1
    assert dead.file.read().count(b"\n") == 1
    assert live.status == ExportJob.Status.RUNNING
    assert spent.status == ExportJob.Status.FAILED and not spent.file
    assert spent.error.startswith("The worker writing this export stopped 3 times")
    assert exports.export_jobs_recover() == 0


def test_a_long_export_writes_its_heartbeat(
    monkeypatch, settings, django_capture_on_commit_callbacks
):
    project = annotation_project()
    answer_all(project, [{"label": "positive"}])
    settings.JOB_HEARTBEAT_SECONDS = 0  # every read says it is alive
    beats = []
    real_heartbeat = exports._heartbeat
    monkeypatch.setattr(
        exports, "_heartbeat", lambda job, lease: beats.append(real_heartbeat(job, lease))
    )
    with django_capture_on_commit_callbacks(execute=True):
        job = exports.export_job_create(
            project=project, created_by=project.created_by, fmt="annotations_jsonl"
        )
    job = ExportJob.objects.get(pk=job.pk)
    assert job.status == ExportJob.Status.SUCCEEDED and job.heartbeat_at is not None
    assert beats, "the export never wrote its heartbeat while writing"
