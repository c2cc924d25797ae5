"""Parquet, Hugging Face datasets folders, Label Studio JSON and CoNLL/BIO: out and back in."""

import io
import json
import os
import zipfile

# datasets reads these when it is first imported: nothing may be downloaded.
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.core.files.base import ContentFile

from annotation import export_formats, exports, services
from annotation.imports import import_job_create, import_job_run
from annotation.models import ExportFormat, ExportJob, ImportJob, Item
from tests.factories import annotation_project, items, worker

pytestmark = pytest.mark.django_db

NER_SCHEMA = {"labels": [{"value": "PER"}, {"value": "LOC"}, {"value": "ORG"}]}


def answer_all(project, answers, *, data=None):
    made = items(project, len(answers), data=data)
    annotator = worker(project)
    for answer in answers:
        lease = services.assignment_lease(project=project, annotator=annotator)
        services.annotation_submit(assignment_id=lease.pk, annotator=annotator, answer=answer)
    return made


def run_import(project, content: bytes, name: str, **options) -> ImportJob:
    job = import_job_create(
        project=project,
        created_by=project.created_by,
        upload=ContentFile(content, name=name),
        enqueue=False,
        **options,
    )
    return import_job_run(job_id=job.pk)


def written(project, fmt) -> bytes:
    out = io.BytesIO()
    exports.export_write(project, fmt, out)
    return out.getvalue()


# --- dataset versions -------------------------------------------------------------


@pytest.fixture
def chat_dataset():
    project = annotation_project(task_type="text")
    answer_all(
        project,
        [{"text": f"回答 {n}"} for n in range(12)],
        data={"prompt": "你好", "system": "你是客服"},
    )
    dataset = exports.dataset_version_create(
        project=project, created_by=project.created_by, seed=3, validation_ratio="0.25"
    )
    assert dataset.train_count and dataset.validation_count
    return dataset


def jsonl_split(field) -> list[dict]:
    with field.open("rb") as stream:
        return [json.loads(line) for line in stream if line.strip()]


def test_a_dataset_version_as_a_hugging_face_folder_loads_with_load_from_disk(
    chat_dataset, tmp_path
):
    datasets = pytest.importorskip("datasets")
    out = io.BytesIO()
    rows = exports.dataset_version_write(chat_dataset, "hf", out)
    assert rows == chat_dataset.train_count + chat_dataset.validation_count
    zipfile.ZipFile(io.BytesIO(out.getvalue())).extractall(tmp_path)
    folder = tmp_path / f"project-{chat_dataset.project_id}-v{chat_dataset.version}"

    loaded = datasets.load_from_disk(str(folder))

    assert isinstance(loaded, datasets.DatasetDict)
    assert set(loaded) == {"train", "validation"}
    assert loaded["train"].num_rows == chat_dataset.train_count
    assert loaded["validation"].num_rows == chat_dataset.validation_count
    assert list(loaded["train"]) == jsonl_split(chat_dataset.train_file)
    assert list(loaded["validation"]) == jsonl_split(chat_dataset.validation_file)
    assert loaded["train"][0]["messages"][1] == {"role": "user", "content": "你好"}


def test_a_dataset_version_split_as_parquet_reads_with_pyarrow(chat_dataset):
    for split, field in (
        ("train", chat_dataset.train_file),
        ("validation", chat_dataset.validation_file),
    ):
        out = io.BytesIO()
        exports.dataset_version_write(chat_dataset, "parquet", out, split=split)
        table = pq.read_table(io.BytesIO(out.getvalue()))
        assert table.to_pylist() == jsonl_split(field)
        assert table.schema.field("messages").type == pa.list_(export_formats._MESSAGE)


def test_a_version_without_validation_rows_still_has_both_splits(tmp_path):
    datasets = pytest.importorskip("datasets")
    project = annotation_project()
    answer_all(project, [{"label": "positive"}, {"label": "negative"}])
    dataset = exports.dataset_version_create(
        project=project, created_by=project.created_by, validation_ratio=0
    )
    out = io.BytesIO()
    exports.dataset_version_write(dataset, "hf", out)
    zipfile.ZipFile(out).extractall(tmp_path)
    loaded = datasets.load_from_disk(str(tmp_path / f"project-{project.pk}-v1"))
    assert loaded["train"].num_rows == 2 and loaded["validation"].num_rows == 0


def test_the_download_endpoint_serves_parquet_and_the_hugging_face_zip(chat_dataset, client):
    client.force_login(chat_dataset.created_by)
    url = f"/api/v1/dataset-versions/{chat_dataset.pk}/download/"
    parquet = client.get(url, {"format": "parquet", "split": "validation"})
    assert parquet.status_code == 200
    table = pq.read_table(io.BytesIO(b"".join(parquet.streaming_content)))
    assert table.num_rows == chat_dataset.validation_count
    hf = client.get(url, {"format": "hf"})
    assert hf.status_code == 200
    names = zipfile.ZipFile(io.BytesIO(b"".join(hf.streaming_content))).namelist()
    stem = f"project-{chat_dataset.project_id}-v{chat_dataset.version}"
    assert f"{stem}/dataset_dict.json" in names
    assert f"{stem}/train/data-00000-of-00001.arrow" in names
    bad = client.get(url, {"format": "xlsx"})
    assert bad.status_code == 400 and "format" in bad.content.decode()


# --- results and annotations ------------------------------------------------------


def test_results_and_annotations_as_parquet():
    project = annotation_project()
    answer_all(project, [{"label": "positive"}, {"label": "negative"}])
    results = pq.read_table(io.BytesIO(written(project, "results_parquet"))).to_pylist()
    assert [r["label"] for r in results] == ["positive", "negative"]
    assert json.loads(results[0]["answer"]) == {"label": "positive"}
    assert results[0]["external_id"] == "item-0" and results[0]["approved"] is True
    annotations = pq.read_table(io.BytesIO(written(project, "annotations_parquet")))
    assert annotations.num_rows == 2
    assert annotations.schema.field("created_at").type == pa.timestamp("us", tz="UTC")


def test_an_export_job_writes_parquet_with_its_row_count(django_capture_on_commit_callbacks):
    project = annotation_project()
    answer_all(project, [{"label": "positive"}] * 3)
    with django_capture_on_commit_callbacks(execute=True):
        job = exports.export_job_create(
            project=project, created_by=project.created_by, fmt="results_parquet"
        )
    job.refresh_from_db()
    assert job.status == ExportJob.Status.SUCCEEDED and job.row_count == 3
    assert job.file.name.endswith(".parquet")
    with job.file.open("rb") as stored:
        assert pq.read_table(io.BytesIO(stored.read())).num_rows == 3


def test_results_parquet_imports_back_with_its_data():
    project = annotation_project()
    answer_all(project, [{"label": "positive"}, {"label": "negative"}])
    target = annotation_project()
    job = run_import(target, written(project, "results_parquet"), "results.parquet")
    assert job.status == ImportJob.Status.SUCCEEDED, job.error
    assert job.format == "parquet" and job.created_count == 2
    source_items = {i.external_id: i.data for i in Item.objects.filter(project=project)}
    assert {i.external_id: i.data for i in Item.objects.filter(project=target)} == source_items


def test_a_hugging_face_results_folder_imports_back(tmp_path):
    project = annotation_project()
    answer_all(project, [{"label": "positive"}, {"label": "negative"}])
    target = annotation_project()
    job = run_import(target, written(project, "results_hf"), "results.zip")
    assert job.status == ImportJob.Status.SUCCEEDED, job.error
    assert job.format == "hf_dataset" and job.created_count == 2
    assert Item.objects.get(project=target, external_id="item-1").metadata == {"split": "train"}


def test_a_folder_saved_by_datasets_itself_imports(tmp_path):
    datasets = pytest.importorskip("datasets")
    folder = tmp_path / "reviews"
    datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_list(
                [{"external_id": "a", "text": "送餐很快"}, {"external_id": "b", "text": "太慢了"}]
            ),
            "test": datasets.Dataset.from_list([{"external_id": "c", "text": "还行"}]),
        }
    ).save_to_disk(str(folder))
    archive = io.BytesIO()
    export_formats.folder_zip(folder, archive, "reviews")
    project = annotation_project()
    job = run_import(project, archive.getvalue(), "reviews.zip")
    assert job.status == ImportJob.Status.SUCCEEDED, job.error
    assert sorted(Item.objects.filter(project=project).values_list("external_id", flat=True)) == [
        "a",
        "b",
        "c",
    ]
    assert Item.objects.get(project=project, external_id="c").data == {"text": "还行"}


def test_bad_parquet_rows_fail_the_job_naming_row_and_field():
    table = pa.table(
        {
            "external_id": ["a", "b", "c"],
            "data": ['{"text": "好"}', "{not json", '{"text": "坏"}'],
        }
    )
    out = io.BytesIO()
    pq.write_table(table, out)
    job = run_import(annotation_project(), out.getvalue(), "rows.parquet")
    assert job.status == ImportJob.Status.FAILED
    assert job.errors[0]["row"] == 2 and job.errors[0]["field"] == "data"
    assert "row 2" in job.error


def test_a_file_that_is_not_parquet_or_an_archive_fails_clearly():
    job = run_import(annotation_project(), b"PAR1 not really", "rows.parquet")
    assert job.status == ImportJob.Status.FAILED and "Parquet" in job.error
    job = run_import(annotation_project(), b"PK\x03\x04broken", "folder.zip")
    assert job.status == ImportJob.Status.FAILED and "zip" in job.error


def test_an_archive_member_outside_the_folder_is_refused():
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("../evil/state.json", "{}")
    job = run_import(annotation_project(), archive.getvalue(), "evil.zip")
    assert job.status == ImportJob.Status.FAILED and "outside" in job.error


# --- Label Studio and CoNLL ------------------------------------------------------


def test_label_studio_export_imports_back_with_answers_as_gold():
    project = annotation_project()
    answer_all(project, [{"label": "positive"}, {"label": "negative"}])
    text = "".join(exports.export_lines(project, "label_studio"))
    tasks = json.loads(text)
    assert tasks[0]["annotations"][0]["result"][0]["value"] == {"choices": ["positive"]}
    target = annotation_project()
    job = run_import(target, text.encode(), "export.json")
    assert job.status == ImportJob.Status.SUCCEEDED, job.error
    assert job.format == "label_studio"
    gold = dict(Item.objects.filter(project=target).values_list("external_id", "gold_answer"))
    assert gold == {"item-0": {"label": "positive"}, "item-1": {"label": "negative"}}


SENTENCES = [
    (
        "张三在北京工作。",
        [{"start": 0, "end": 2, "label": "PER"}, {"start": 3, "end": 5, "label": "LOC"}],
    ),
    (
        "Alice joined Acme Corp in Paris",
        [
            {"start": 0, "end": 5, "label": "PER"},
            {"start": 13, "end": 22, "label": "ORG"},
            {"start": 26, "end": 31, "label": "LOC"},
        ],
    ),
    ("没有实体\n第二行", []),
]


def test_a_span_project_exported_as_conll_round_trips_through_import():
    project = annotation_project(task_type="spans", label_schema=NER_SCHEMA)
    made = items(project, len(SENTENCES))
    for item, (text, _) in zip(made, SENTENCES, strict=True):
        item.data = {"text": text}
        item.save(update_fields=["data"])
    annotator = worker(project)
    for _ in SENTENCES:
        lease = services.assignment_lease(project=project, annotator=annotator)
        spans = dict(SENTENCES)[lease.item.data["text"]]
        services.annotation_submit(
            assignment_id=lease.pk, annotator=annotator, answer={"spans": spans}
        )
    conll = "".join(exports.export_lines(project, ExportFormat.CONLL))
    assert "张\tB-PER\n三\tI-PER\n在\tO\n北\tB-LOC\n京\tI-LOC\n" in conll
    assert "Acme\tB-ORG\nCorp\tI-ORG\n" in conll

    target = annotation_project(task_type="spans", label_schema=NER_SCHEMA)
    job = run_import(target, conll.encode(), "ner.conll")

    assert job.status == ImportJob.Status.SUCCEEDED, (job.error, job.errors)
    assert job.format == "conll" and job.created_count == len(SENTENCES)
    back = {
        item.external_id: (item.data["text"], item.gold_answer["spans"])
        for item in Item.objects.filter(project=target)
    }
    assert back == {
        item.external_id: (text, spans) for item, (text, spans) in zip(made, SENTENCES, strict=True)
    }


def test_conll_needs_a_span_project():
    with pytest.raises(Exception, match="spans"):
        exports.export_format_check(annotation_project(), ExportFormat.CONLL)


def test_a_bad_bio_tag_fails_the_import_naming_row_line_and_field():
    conll = "张\tB-PER\n三\tI-PER\n\n北\tO\n京\tI-LOC\n\n".encode()
    job = run_import(
        annotation_project(task_type="spans", label_schema=NER_SCHEMA), conll, "x.conll"
    )
    assert job.status == ImportJob.Status.FAILED
    assert job.errors == [
        {"row": 2, "field": "gold", "message": "line 5: I-LOC does not continue a LOC span"}
    ]


def test_a_gzipped_tar_of_a_dataset_folder_imports(tmp_path):
    import tarfile

    project = annotation_project()
    answer_all(project, [{"label": "positive"}, {"label": "negative"}])
    zipfile.ZipFile(io.BytesIO(written(project, "results_hf"))).extractall(tmp_path)  # noqa: S202 (our own archive)
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tarred:
        tarred.add(tmp_path / f"project-{project.pk}-results", arcname="results")
    target = annotation_project()
    job = run_import(target, archive.getvalue(), "results.tar.gz")
    assert job.status == ImportJob.Status.SUCCEEDED, job.error
    assert job.format == "hf_dataset" and job.created_count == 2


def test_an_archive_without_a_dataset_says_what_it_expected():
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("notes/readme.txt", "hello")
    job = run_import(annotation_project(), archive.getvalue(), "notes.zip")
    assert job.status == ImportJob.Status.FAILED
    assert "dataset_dict.json or state.json" in job.error
