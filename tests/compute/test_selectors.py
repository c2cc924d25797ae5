from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from compute import selectors
from compute.models import Backend, InferenceCall, Prediction, PrelabelRun, PromptTemplate
from tests.factories import annotation_project, items

pytestmark = pytest.mark.django_db


def test_backends_due_for_a_health_check_skip_inactive_and_freshly_checked_ones():
    now = timezone.now()
    never = Backend.objects.create(name="never", base_url="http://127.0.0.1:9/v1")
    stale = Backend.objects.create(
        name="stale", base_url="http://127.0.0.1:9/v1", last_checked_at=now - timedelta(seconds=30)
    )
    Backend.objects.create(
        name="fresh", base_url="http://127.0.0.1:9/v1", last_checked_at=now - timedelta(seconds=5)
    )
    Backend.objects.create(name="off", base_url="http://127.0.0.1:9/v1", is_active=False)
    due = selectors.backends_due_for_health_check(now=now)
    assert set(due) == {never, stale}


def _run(project, **fields) -> PrelabelRun:
    prompt, _ = PromptTemplate.objects.get_or_create(
        project=project, version=1, defaults={"created_by": project.created_by}
    )
    return PrelabelRun.objects.create(
        project=project, created_by=project.created_by, prompt=prompt, **fields
    )


def test_a_runs_items_follow_its_filter():
    project = annotation_project()
    made = items(project, 4)
    made[0].annotation_count, made[0].reserved_count = 1, 1
    made[0].save()
    default = _run(project)
    assert set(selectors.prelabel_run_items(run=default)) == set(made[1:])
    chosen = _run(project, item_filter={"external_ids": ["item-1", "item-2"]})
    assert set(selectors.prelabel_run_items(run=chosen)) == {made[1], made[2]}


def test_run_totals_count_predictions_failed_items_tokens_and_cost():
    project = annotation_project()
    done, failed = items(project, 2)
    run = _run(project)
    backend = Backend.objects.create(name="b", base_url="http://127.0.0.1:9/v1")
    common = {"run": run, "project": project, "backend": backend, "backend_name": "b"}
    InferenceCall.objects.create(
        **common,
        item=done,
        outcome=InferenceCall.Outcome.OK,
        prompt_tokens=10,
        completion_tokens=2,
        cost=Decimal("0.000125"),
    )
    InferenceCall.objects.create(
        **common, item=failed, outcome=InferenceCall.Outcome.SERVER_ERROR, final=True
    )
    Prediction.objects.create(
        run=run,
        project=project,
        item=done,
        answer={"label": "positive"},
        confidence=0.9,
        model="m",
        prompt_version=1,
        backend=backend,
    )
    totals = selectors.run_totals(run=run)
    assert totals == {
        "done_items": 1,
        "failed_items": 1,
        "prompt_tokens": 10,
        "completion_tokens": 2,
        "cost": Decimal("0.000125"),
        "calls": 2,
        "failed_calls": 1,
    }
