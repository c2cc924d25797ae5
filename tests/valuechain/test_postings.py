"""The work of the previous issues lands in the ledger, once, in its own transaction."""

from decimal import Decimal

import pytest

from annotation import services as annotation_services
from compute.models import Backend
from tenants.models import Membership, Region
from tests.compute.fake_openai import FakeOpenAI
from tests.factories import annotation_project, items, worker
from valuechain.models import LedgerEntry, LedgerRollup
from valuechain.services import rollups_catch_up, rollups_reconcile

pytestmark = pytest.mark.django_db


def submit(project, annotator, answer):
    lease = annotation_services.assignment_lease(project=project, annotator=annotator)
    return annotation_services.annotation_submit(
        assignment_id=lease.pk, annotator=annotator, answer=answer
    )


def test_an_annotation_posts_revenue_at_the_project_price_and_cost_at_the_tier_pay():
    project = annotation_project(price_per_1k_tokens="2.00", review_rate="1")
    items(project, 1, data={"text": "很快，好吃"})  # 5 tokens
    annotator = worker(project, tier=2)
    annotation, _ = submit(project, annotator, {"label": "positive"})
    annotation_services.annotation_submit(
        assignment_id=annotation.assignment_id, annotator=annotator, answer={"label": "positive"}
    )

    entry = LedgerEntry.objects.get()  # the retried submit posted nothing more
    assert (entry.kind, entry.skill_tier, entry.tokens_input, entry.tokens_output) == (
        "annotation",
        2,
        5,
        0,
    )
    assert entry.revenue == Decimal("0.010000")  # 5 tokens x 2.00 / 1000
    assert entry.cost == Decimal("0.004500")  # 5 tokens x T2 pay 0.90 / 1000
    assert entry.region_id == project.workforce.region_id
    assert entry.client_id == project.organization_id and entry.worker_id == annotator.pk


def test_a_rejected_annotation_is_reversed_and_the_review_is_posted():
    project = annotation_project(price_per_1k_tokens="2.00", review_rate="1")
    (item,) = items(project, 1, data={"text": "很快，好吃"})
    submit(project, worker(project), {"label": "negative"})
    reviewer = worker(project, role=Membership.Role.REVIEWER)
    item.refresh_from_db()
    annotation_services.review_lease_take(project=project, reviewer=reviewer)
    annotation_services.review_submit(
        item_id=item.pk, reviewer=reviewer, verdict="reject", reason="错了"
    )
    kinds = sorted((e.kind, e.reverses_id is None) for e in LedgerEntry.objects.all())
    assert kinds == [("annotation", False), ("annotation", True), ("review", True)]
    rollups_catch_up()
    net = {r.kind: r for r in LedgerRollup.objects.all()}
    assert (net["annotation"].entries, net["annotation"].revenue) == (0, Decimal(0))
    assert net["review"].skill_tier == 3
    assert rollups_reconcile()["differences"] == []


def test_gold_items_pay_the_annotator_but_do_not_charge_the_client():
    project = annotation_project(price_per_1k_tokens="2.00", gold_ratio="1")
    items(project, 1, gold_every=1)
    submit(project, worker(project), {"label": "positive"})
    entry = LedgerEntry.objects.get()
    assert entry.revenue == 0 and entry.cost > 0


def test_inference_calls_post_once_each(django_capture_on_commit_callbacks):
    from compute import services as compute_services

    project = annotation_project()
    made = items(project, 3)
    with FakeOpenAI() as fake:
        Backend.objects.create(
            organization=project.workforce,
            name="b",
            base_url=fake.url,
            models_served=["fake-model"],
            region=Region.objects.get(code="520100"),
            price_input_per_million=Decimal("4"),
            price_output_per_million=Decimal("8"),
        )
        with django_capture_on_commit_callbacks(execute=True):
            run = compute_services.prelabel_run_start(
                project=project, created_by=project.created_by
            )
        # A redelivered chunk posts nothing twice.
        compute_services.prelabel_chunk_process(run_id=run.pk, item_ids=[i.pk for i in made])
    entries = LedgerEntry.objects.filter(kind="inference")
    assert entries.count() == 3
    run.refresh_from_db()
    assert sum(e.cost for e in entries) == run.cost
    assert sum(e.tokens_input for e in entries) == run.prompt_tokens
    assert set(entries.values_list("region__code", flat=True)) == {"520100"}
    assert rollups_reconcile()["differences"] == []


def test_a_backend_with_ledger_history_can_still_be_deleted(django_capture_on_commit_callbacks):
    from compute import services as compute_services
    from tests.factories import UserFactory

    project = annotation_project()
    items(project, 1)
    with FakeOpenAI() as fake:
        backend = Backend.objects.create(
            organization=project.workforce,
            name="b",
            base_url=fake.url,
            models_served=["fake-model"],
        )
        with django_capture_on_commit_callbacks(execute=True):
            compute_services.prelabel_run_start(project=project, created_by=project.created_by)
    entry = LedgerEntry.objects.get(kind="inference")
    backend_id = backend.pk
    compute_services.backend_delete(backend=backend, user=UserFactory(is_superuser=True))
    entry.refresh_from_db()
    assert entry.backend_id == backend_id  # history keeps the id
    assert not Backend.objects.filter(pk=backend_id).exists()
