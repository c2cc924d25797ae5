import csv
import io
import json

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
