"""The client's whole loop against a live server (PostgreSQL, a real worker, real HTTP):
a client developer creates a project, imports a file and waits, pre-labels it on an
OpenAI-compatible backend, an annotator labels it through the API, the client reads
the results, an export and the month's statement, and an official reads the report."""

import asyncio
import csv
import io
import json

import pytest
from django.utils import timezone
from tokenworks_client import (
    AsyncClient,
    AuthenticationError,
    Client,
    JobFailed,
    NotFound,
    PermissionDenied,
    ValidationError,
)


def beat():
    from compute import finetuning

    finetuning.finetune_runs_poll_all()


pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

SCHEMA = {
    "labels": [{"value": "positive", "title": "正面"}, {"value": "negative", "title": "负面"}]
}
REVIEWS = ["送餐很快，味道不错", "菜都凉了，很失望", "包装完好，还会再点"]


def _jsonl(rows):
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()


def _project(client, loop, **fields):
    return client.projects.create(
        name="外卖评论情感",
        task_type="classification",
        label_schema=SCHEMA,
        workforce=loop.workforce.pk,
        instructions="Label the sentiment.",
        **fields,
    )


def test_the_loop_end_to_end(live_loop, tmp_path):
    loop = live_loop
    client = Client(loop.url, loop.client_token)
    me = client.me()
    assert me["principal"] == "api_token" and me["token"]["roles"] == ["client_developer"]

    # A project, made active.
    project = _project(client, loop)
    assert project["status"] == "draft"
    assert client.projects.activate(project["id"])["status"] == "active"
    assert [p["id"] for p in client.projects.list(status="active")] == [project["id"]]

    # An import, streamed with progress, then waited for (the worker runs it).
    path = tmp_path / "reviews.jsonl"
    path.write_bytes(
        _jsonl({"external_id": f"r{n}", "text": text} for n, text in enumerate(REVIEWS))
    )
    progress = []
    job = client.imports.upload(project["id"], path, on_progress=lambda d, t: progress.append(t))
    assert job["status"] in ("pending", "running", "succeeded")
    assert progress and progress[-1] == path.stat().st_size
    seen = []
    job = client.imports.wait(job["id"], timeout=60, poll_interval=0.2, on_progress=seen.append)
    assert job["status"] == "succeeded" and job["created_count"] == 3, loop.worker_log
    assert seen[-1]["progress"] == 1.0
    # Lists follow their pages: two a page, three items.
    items = list(client.items.list(project=project["id"], page_size=2))
    assert sorted(i["external_id"] for i in items) == ["r0", "r1", "r2"]

    # Pre-labeling on the backend, watched to the end.
    run = client.prelabel.start(project["id"], model="fake-model")
    run = client.prelabel.wait(run["id"], timeout=90, poll_interval=0.3)
    assert run["status"] == "succeeded" and run["done_items"] == 3, loop.worker_log
    assert len(list(client.prelabel.predictions(run=run["id"]))) == 3

    # The annotator labels every item through the API with their own token.
    annotator = Client(loop.url, loop.annotator_token)
    assert [p["id"] for p in annotator.workspace.projects()] == [project["id"]]
    labelled = 0
    while (lease := annotator.workspace.next(project["id"])) is not None:
        label = "negative" if "失望" in lease["item"]["data"]["text"] else "positive"
        annotator.workspace.submit(lease["id"], {"label": label}, time_spent_ms=3000)
        labelled += 1
    assert labelled == 3

    # Results as an iterator, the export streamed, and a background export downloaded.
    results = list(client.results.list(project=project["id"], approved=True))
    assert sorted(r["answer"]["label"] for r in results) == ["negative", "positive", "positive"]
    lines = list(client.projects.export(project["id"], "results_jsonl"))
    assert len(lines) == 3 and all(json.loads(line)["answer"] for line in lines)
    written = client.projects.export_to(project["id"], tmp_path / "r.jsonl", "openai_chat")
    assert written == (tmp_path / "r.jsonl").stat().st_size > 0
    export = client.exports.create(project["id"], "results_jsonl")
    export = client.exports.wait(export["id"], timeout=60, poll_interval=0.2)
    client.exports.download(export["id"], tmp_path / "export.jsonl")
    assert len((tmp_path / "export.jsonl").read_text(encoding="utf-8").splitlines()) == 3

    # A dataset version, downloaded, and a model fine-tuned on it.
    dataset = client.datasets.create(project["id"], validation_ratio="0.34", seed=1)
    assert dataset["train_count"] + dataset["validation_count"] == 3
    client.datasets.download(dataset["id"], tmp_path / "train.jsonl")
    assert len((tmp_path / "train.jsonl").read_bytes().splitlines()) == dataset["train_count"]
    tuning = client.finetune.start(dataset["id"], loop.backend_id)
    # Beat follows the backend's training job; here the wait's poll does it.
    tuning = client.finetune.wait(
        tuning["id"], timeout=90, poll_interval=0.3, on_progress=lambda _run: beat()
    )
    assert tuning["status"] == "succeeded" and tuning["fine_tuned_model"], loop.worker_log
    assert [r["id"] for r in client.finetune.list(project=project["id"])] == [tuning["id"]]

    # The month's statement: three annotations and the model's calls, charged.
    month = timezone.localdate().strftime("%Y-%m")
    statement = client.projects.statement(project["id"], month)
    kinds = {line["kind"] for line in statement["lines"]}
    assert {"annotation", "inference"} <= kinds
    rows = list(csv.reader(io.StringIO(client.projects.statement_csv(project["id"], month))))
    assert rows[0][0] == "kind" and rows[-1][0] == "total"

    # The official reads Guizhou's report for the month, as JSON and as CSV.
    official = Client(loop.url, loop.official_token)
    assert "520000" in {r["code"] for r in official.reports.regions()}
    report = official.reports.get("520000", start=month, end=month)
    assert report["region"]["code"] == "520000"
    official.reports.download("520000", tmp_path / "report.csv", start=month, end=month)
    assert "Guizhou" in (tmp_path / "report.csv").read_text(encoding="utf-8-sig")

    # Webhooks and tokens.
    hook = client.webhooks.create(loop.client_org.pk, "http://127.0.0.1:9/hook")
    assert hook["secret"].startswith("whsec_")
    assert client.webhooks.update(hook["id"], is_active=False)["is_active"] is False
    assert [h["id"] for h in client.webhooks.list()] == [hook["id"]]
    client.webhooks.delete(hook["id"])
    with pytest.raises(PermissionDenied):
        client.tokens.create("from a token", ["client_developer"])
    client.close()


def test_errors_are_typed_and_name_the_field(live_loop):
    loop = live_loop
    with Client(loop.url, loop.client_token) as client:
        with pytest.raises(ValidationError) as caught:
            client.projects.create(name="", task_type="no-such-type")
        assert caught.value.status_code == 400
        assert {"name", "task_type"} <= set(caught.value.fields)
        assert "task_type" in str(caught.value)
        with pytest.raises(NotFound):
            client.projects.get(987654)
        with pytest.raises(TypeError, match="colour"):
            client.projects.create(name="x", colour="red")
        project = _project(client, loop, status="active")
        path_rows = _jsonl([{"external_id": "a", "text": ""}, {"text": "ok"}]) + b"{not json\n"
        job = client.imports.upload(project["id"], io.BytesIO(path_rows), format="jsonl")
        with pytest.raises(JobFailed) as failed:
            client.imports.wait(job["id"], timeout=60, poll_interval=0.2)
        assert failed.value.job["status"] == "failed" and failed.value.job["errors"]
    with pytest.raises(AuthenticationError):
        Client(loop.url, "tw_" + "0" * 43).me()


def test_the_async_client_runs_the_same_loop(live_loop, tmp_path):
    loop = live_loop

    async def main():
        async with AsyncClient(loop.url, loop.client_token) as client:
            project = await _async_project(client, loop)
            rows = _jsonl({"text": f"第{n}条评论"} for n in range(5))
            job = await client.imports.upload(project["id"], io.BytesIO(rows), format="jsonl")
            job = await client.imports.wait(job["id"], timeout=60, poll_interval=0.2)
            assert job["created_count"] == 5
            items = [i async for i in client.items.list(project=project["id"], page_size=2)]
            assert len(items) == 5
            with pytest.raises(ValidationError) as caught:
                await client.projects.update(project["id"], overlap=0)
            assert "overlap" in caught.value.fields

    asyncio.run(main())


async def _async_project(client, loop):
    return await client.projects.create(
        name="async",
        task_type="classification",
        label_schema=SCHEMA,
        workforce=loop.workforce.pk,
        status="active",
    )
