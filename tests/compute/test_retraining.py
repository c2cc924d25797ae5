"""Automatic retraining against the real built-in model server, over real HTTP."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from annotation import services as annotation_services
from annotation.models import Item, ItemResult, Project
from compute import retraining
from compute.models import Backend, FineTuneRun, ModelRetrain, PrelabelRun
from compute.tasks import model_retrains_run_task
from tenants.models import AuditEvent
from tests.compute.builtin_live import BuiltinServer
from tests.factories import annotation_project, worker

pytestmark = pytest.mark.django_db

BASE = "tokenworks-base"


@pytest.fixture
def builtin(tmp_path):
    with BuiltinServer(tmp_path / "model") as url:
        yield url


def truth(n: int) -> str:
    return "positive" if n % 3 else "negative"


def text(n: int) -> str:
    if truth(n) == "positive":
        return f"第{n}条：很好吃，送餐很快，分量足，好评"
    return f"第{n}条：太难吃了，送餐慢，菜都凉了，差评"


def project_with_items(url, *, regular=40, gold=4, retrain_every=20):
    project = annotation_project(retrain_every=retrain_every)
    Item.objects.bulk_create(
        [
            Item(
                project=project,
                external_id=f"r{n}",
                data={"text": text(n)},
                target_annotations=project.overlap,
            )
            for n in range(regular)
        ]
        + [
            Item(
                project=project,
                external_id=f"g{n}",
                data={"text": text(n)},
                is_gold=True,
                gold_answer={"label": truth(n)},
                target_annotations=None,
            )
            for n in range(gold)
        ]
    )
    backend = Backend.objects.create(
        organization=project.workforce,
        name="built-in",
        kind=Backend.Kind.BUILTIN,
        base_url=url,
        models_served=[BASE],
    )
    return project, backend


def prelabel(project, capture, **kwargs):
    from compute import services

    with capture(execute=True):  # tests run Celery eagerly: dispatch and chunks run here
        run = services.prelabel_run_start(project=project, created_by=project.created_by, **kwargs)
    run.refresh_from_db()
    return run


def label(project, count, *, answer=None):
    annotator = worker(project)
    for _ in range(count):
        lease = annotation_services.assignment_lease(project=project, annotator=annotator)
        n = int(lease.item.external_id[1:])
        annotation_services.annotation_submit(
            assignment_id=lease.pk, annotator=annotator, answer={"label": answer or truth(n)}
        )


def poll_until_trained(run, capture, timeout=60):
    from compute.finetuning import finetune_run_poll

    deadline = time.monotonic() + timeout
    while True:
        with capture(execute=True):  # the evaluation is queued on commit
            run = finetune_run_poll(run_id=run.pk)
        run.refresh_from_db()
        if run.status not in (FineTuneRun.Status.QUEUED, FineTuneRun.Status.RUNNING):
            return run
        assert time.monotonic() < deadline, f"fine-tuning still {run.status}"
        time.sleep(0.2)


def test_retrains_when_due_and_predicts_every_open_item_with_the_new_model(
    builtin, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    project, backend = project_with_items(builtin)
    first = prelabel(project, capture, item_filter=retraining.OPEN_ITEMS)
    assert first.status == PrelabelRun.Status.SUCCEEDED
    assert first.total_items == 44  # gold included
    label(project, 19)
    assert retraining.project_model_retrain_if_due(project=project) is None  # 19 < 20
    label(project, 11)
    approved = ItemResult.objects.filter(project=project, approved=True).count()
    assert approved == 30

    with capture(execute=True):
        retrain = retraining.project_model_retrain_if_due(project=project)
    assert retrain.status == ModelRetrain.Status.TRAINING, retrain.error
    assert (retrain.approved_results, retrain.backend, retrain.base_model) == (30, backend, BASE)
    assert retrain.dataset.train_count + retrain.dataset.validation_count == 30
    # Twice: nothing new starts while one is in flight, nor once it is done.
    assert retraining.project_model_retrain_if_due(project=project) is None

    run = retrain.finetune_run
    run.refresh_from_db()
    assert run.status == FineTuneRun.Status.QUEUED and not run.review_disagreements
    run = poll_until_trained(run, capture)
    assert run.status == FineTuneRun.Status.SUCCEEDED, run.error
    assert run.evaluation["items"] == retrain.dataset.validation_count
    # The automatic run leaves the humans' results alone.
    assert not Item.objects.filter(project=project, status=Item.Status.IN_REVIEW).exists()

    # A gold item that annotators have answered is re-predicted all the same.
    gold = Item.objects.filter(project=project, is_gold=True).first()
    Item.objects.filter(pk=gold.pk).update(reserved_count=3, annotation_count=3)
    with capture(execute=True):
        outcome = model_retrains_run_task()
    assert outcome == {"advanced": 1, "started": 0}
    retrain.refresh_from_db()
    assert retrain.status == ModelRetrain.Status.PRELABELING
    again = retrain.prelabel_run
    assert (again.model, again.backend_id) == (run.fine_tuned_model, backend.pk)
    again.refresh_from_db()
    assert again.status == PrelabelRun.Status.SUCCEEDED
    open_items = Item.objects.filter(project=project, status=Item.Status.OPEN)
    assert again.total_items == open_items.count() == 14  # 10 regular + 4 gold
    for item in open_items:
        suggestion = item.metadata["suggestion"]
        assert suggestion["model"] == run.fine_tuned_model, item.external_id
        assert suggestion["answer"] == {"label": truth(int(item.external_id[1:]))}
    # Done items keep the suggestion their annotators saw.
    done = Item.objects.filter(project=project, status=Item.Status.DONE)
    assert {i.metadata["suggestion"]["model"] for i in done} == {BASE}

    model_retrains_run_task()
    retrain.refresh_from_db()
    assert retrain.status == ModelRetrain.Status.SUCCEEDED and retrain.finished_at
    events = AuditEvent.objects.filter(
        target_id=str(retrain.pk), target_type="compute.modelretrain"
    )
    assert sorted(events.values_list("event_type", flat=True)) == [
        "model_retrain.finished",
        "model_retrain.started",
    ]
    assert events.get(event_type="model_retrain.finished").extra["status"] == "succeeded"
    # The next one counts from 30.
    assert retraining.project_model_retrain_due(project=project) == (False, 30, 30)


def test_nothing_starts_while_a_run_is_in_flight_or_when_the_project_is_not_active(
    builtin, django_capture_on_commit_callbacks
):
    project, _ = project_with_items(builtin, retrain_every=5)
    prelabel(project, django_capture_on_commit_callbacks)
    label(project, 6)
    busy = PrelabelRun.objects.filter(project=project).first()
    PrelabelRun.objects.filter(pk=busy.pk).update(status=PrelabelRun.Status.RUNNING)
    assert retraining.project_model_retrain_if_due(project=project) is None
    PrelabelRun.objects.filter(pk=busy.pk).update(status=PrelabelRun.Status.SUCCEEDED)
    Project.objects.filter(pk=project.pk).update(status=Project.Status.PAUSED)
    assert retraining.project_model_retrain_if_due(project=project) is None
    Project.objects.filter(pk=project.pk).update(status=Project.Status.ACTIVE, retrain_every=0)
    assert retraining.project_model_retrain_if_due(project=project) is None
    assert not ModelRetrain.objects.exists()


def test_a_project_never_pre_labeled_records_a_failure_once():
    project = annotation_project(retrain_every=3)
    Item.objects.bulk_create(
        [Item(project=project, external_id=f"r{n}", data={"text": text(n)}) for n in range(4)]
    )
    label(project, 4)
    retrain = retraining.project_model_retrain_if_due(project=project)
    assert retrain.status == ModelRetrain.Status.FAILED
    assert "pre-label it once first" in retrain.error
    assert retrain.finished_at and retrain.finetune_run is None
    # Not again until another retrain_every approvals: no loop of failures.
    assert retraining.project_model_retrain_if_due(project=project) is None
    assert ModelRetrain.objects.filter(project=project).count() == 1
    assert AuditEvent.objects.filter(
        target_id=str(retrain.pk), event_type="model_retrain.finished"
    ).exists()


def test_a_failed_fine_tuning_fails_the_retrain(builtin, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    project, _ = project_with_items(builtin, retrain_every=6)
    prelabel(project, capture)
    label(project, 6, answer="positive")  # one label only: the built-in model refuses
    with capture(execute=True):
        retrain = retraining.project_model_retrain_if_due(project=project)
    run = poll_until_trained(retrain.finetune_run, capture)
    assert run.status == FineTuneRun.Status.FAILED
    retrain = retraining.model_retrain_advance(retrain_id=retrain.pk)
    assert retrain.status == ModelRetrain.Status.FAILED
    assert f"Fine-tuning run {run.pk} failed" in retrain.error
    assert "two different labels" in retrain.error
    assert retrain.prelabel_run is None
    # Advancing a finished retrain changes nothing.
    assert retraining.model_retrain_advance(retrain_id=retrain.pk).status == "failed"


def test_a_retrain_stuck_at_the_backend_times_out(builtin, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    project, _ = project_with_items(builtin, retrain_every=5)
    prelabel(project, capture)
    label(project, 6)
    with capture(execute=True):
        retrain = retraining.project_model_retrain_if_due(project=project)
    later = timezone.now() + retraining.RETRAIN_TIMEOUT + timedelta(minutes=1)
    FineTuneRun.objects.filter(pk=retrain.finetune_run_id).update(status=FineTuneRun.Status.RUNNING)
    retrain = retraining.model_retrain_advance(retrain_id=retrain.pk, now=later)
    assert retrain.status == ModelRetrain.Status.FAILED and "given up" in retrain.error


def test_a_finished_retrain_has_the_engine_measure_the_new_model_on_gold(
    django_capture_on_commit_callbacks,
):
    from annotation.models import ProjectQuality

    project = annotation_project(retrain_every=5, decision="adaptive", gold_ratio="0.1")
    Item.objects.bulk_create(
        [
            Item(
                project=project,
                external_id=f"g{n}",
                data={"text": text(n)},
                is_gold=True,
                gold_answer={"label": truth(n)},
                target_annotations=None,
                metadata={
                    "suggestion": {
                        "answer": {"label": truth(n)},
                        "confidence": 0.9,
                        "model": "ft:tokenworks-base:new",
                    }
                },
            )
            for n in range(6)
        ]
    )
    run = PrelabelRun.objects.create(
        project=project,
        created_by=project.created_by,
        prompt=project.prompts.create(version=1, created_by=project.created_by),
        model="ft:tokenworks-base:new",
        status=PrelabelRun.Status.SUCCEEDED,
    )
    retrain = ModelRetrain.objects.create(
        project=project,
        approved_results=5,
        status=ModelRetrain.Status.PRELABELING,
        prelabel_run=run,
    )
    with django_capture_on_commit_callbacks(execute=True):
        retrain = retraining.model_retrain_advance(retrain_id=retrain.pk)
    assert retrain.status == ModelRetrain.Status.SUCCEEDED
    quality = ProjectQuality.objects.get(project=project)
    assert quality.model_name == "ft:tokenworks-base:new"
    assert quality.model_checked == 6


def test_a_retrained_model_scoring_under_the_current_one_is_kept_out(
    builtin, django_capture_on_commit_callbacks
):
    from annotation.models import ProjectQuality

    capture = django_capture_on_commit_callbacks
    project, _ = project_with_items(builtin)
    prelabel(project, capture, item_filter=retraining.OPEN_ITEMS)
    label(project, 30)
    # The engine measured the current model right on every gold item it checked.
    ProjectQuality.objects.create(project=project, model_accuracy=1.0, model_checked=40)
    with capture(execute=True):
        retrain = retraining.project_model_retrain_if_due(project=project)
    run = poll_until_trained(retrain.finetune_run, capture)
    assert run.status == FineTuneRun.Status.SUCCEEDED
    # Held out, the new model scored 0.9: under the current model's 1.0 on gold.
    FineTuneRun.objects.filter(pk=run.pk).update(evaluation={**run.evaluation, "accuracy": 0.9})
    with capture(execute=True):
        model_retrains_run_task()
    retrain.refresh_from_db()
    assert retrain.status == ModelRetrain.Status.SUCCEEDED and retrain.prelabel_run is None
    # The open items keep the current model's suggestions.
    open_models = {
        i.metadata["suggestion"]["model"]
        for i in Item.objects.filter(project=project, status=Item.Status.OPEN)
    }
    assert open_models == {BASE}


@pytest.mark.parametrize(
    ("every", "baseline", "step"),
    [
        (100, 0, 30),  # the first model comes early
        (100, 30, 30),
        (100, 60, 60),  # then each retrain waits for the labels to double
        (100, 120, 100),  # until the step reaches the project's setting
        (100, 5_000, 100),
        (10, 0, 10),  # a smaller setting is never waited beyond
        (1, 0, 1),
    ],
)
def test_the_retrain_step_grows_geometrically_up_to_retrain_every(every, baseline, step):
    assert retraining.retrain_step(every=every, baseline=baseline) == step
