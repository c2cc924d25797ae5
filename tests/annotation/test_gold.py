"""Gold items: served at the project's gold ratio, never beyond it, never as
filler once an annotator's regular work is exhausted."""

import json
from decimal import Decimal

import pytest
from django.core.files.base import ContentFile

from annotation import services
from annotation.imports import import_job_create, import_job_run
from annotation.models import AnnotatorTally, Assignment, ImportJob, Item
from tests.annotation.leasing import LEASE_WAYS, careful_lease
from tests.factories import annotation_project, worker

pytestmark = pytest.mark.django_db


def make_items(project, *, regular: int, gold: int) -> None:
    Item.objects.bulk_create(
        [
            Item(
                project=project,
                external_id=f"r-{n}",
                data={"text": f"第{n}条"},
                target_annotations=project.overlap,
            )
            for n in range(regular)
        ]
        + [
            Item(
                project=project,
                external_id=f"g-{n}",
                data={"text": f"金{n}"},
                gold_answer={"label": "positive"},
                is_gold=True,
                target_annotations=None,
            )
            for n in range(gold)
        ]
    )


def regular_left_for(project, annotator) -> bool:
    return (
        Item.objects.filter(project=project, is_gold=False, status=Item.Status.OPEN)
        .exclude(assignments__annotator=annotator)
        .exists()
    )


def work_to_the_end(project, annotators, *, gold_leases=None, lease_one=careful_lease) -> dict:
    """Annotators take turns until each is told there is nothing left; what each
    was served (is_gold per task). gold_leases, a list, gets for every gold task
    whether the annotator still had regular work when it was leased."""
    served = {a.pk: [] for a in annotators}
    working = list(annotators)
    while working:
        for annotator in list(working):
            lease = lease_one(project, annotator)
            if lease is None:
                working.remove(annotator)
                continue
            served[annotator.pk].append(lease.item.is_gold)
            if lease.item.is_gold and gold_leases is not None:
                gold_leases.append(regular_left_for(project, annotator))
            services.annotation_submit(
                assignment_id=lease.pk, annotator=annotator, answer={"label": "positive"}
            )
    return served


@pytest.mark.parametrize("lease_one", LEASE_WAYS)
def test_no_gold_once_the_regular_work_is_exhausted(lease_one):
    project = annotation_project(gold_ratio="0.5")
    make_items(project, regular=2, gold=5)
    (annotator,) = annotators = [worker(project)]
    served = work_to_the_end(project, annotators, lease_one=lease_one)
    # Gold every other task, and when the regular items run out, nothing:
    # three gold items are left that this annotator never gets as filler.
    assert served[annotator.pk] == [True, False, True, False]
    assert services.assignment_lease(project=project, annotator=annotator) is None


@pytest.mark.parametrize("lease_one", LEASE_WAYS)
def test_an_all_gold_project_serves_gold(lease_one):
    # gold_ratio 1 is a qualification set: there is no regular work to wait for.
    project = annotation_project(gold_ratio="1")
    make_items(project, regular=0, gold=3)
    annotator = worker(project)
    served = work_to_the_end(project, [annotator], lease_one=lease_one)
    assert served[annotator.pk] == [True, True, True]


def test_gold_items_have_no_target():
    project = annotation_project(gold_ratio="0.1")
    make_items(project, regular=1, gold=1)
    assert Item.objects.get(is_gold=True).target_annotations is None
    assert Item.objects.get(is_gold=False).target_annotations == project.overlap


@pytest.mark.postgres
@pytest.mark.parametrize("lease_one", LEASE_WAYS)
@pytest.mark.parametrize(
    ("ratio", "annotators", "regular", "gold"), [("0.02", 4, 1000, 50), ("0.1", 3, 300, 40)]
)
def test_gold_follows_the_ratio_to_the_end_of_the_project(
    ratio, annotators, regular, gold, lease_one
):
    project = annotation_project(gold_ratio=ratio)
    make_items(project, regular=regular, gold=gold)
    people = [worker(project) for _ in range(annotators)]

    gold_leases = []
    served = work_to_the_end(project, people, gold_leases=gold_leases, lease_one=lease_one)

    gold_served = sum(s.count(True) for s in served.values())
    regular_served = sum(s.count(False) for s in served.values())
    assert regular_served == regular  # the work is done
    share = gold_served / (gold_served + regular_served)
    assert abs(share - float(ratio)) <= 0.1 * float(ratio), (gold_served, regular_served)
    # Nobody got gold once their regular work was exhausted, though gold they
    # never saw is left for every one of them.
    assert len(gold_leases) == gold_served and all(gold_leases)
    for annotator in people:
        sequence = served[annotator.pk]
        assert (
            Item.objects.filter(project=project, is_gold=True)
            .exclude(assignments__annotator=annotator)
            .exists()
        )
        # At every step within half a task of the ratio (rounded, never beyond).
        for n in range(1, len(sequence) + 1):
            assert sequence[:n].count(True) <= Decimal(ratio) * n + Decimal("0.5")
        tally = AnnotatorTally.objects.get(project=project, annotator=annotator)
        assignments = Assignment.objects.filter(project=project, annotator=annotator)
        assert (tally.tasks, tally.gold) == (
            assignments.count(),
            assignments.filter(item__is_gold=True).count(),
        )


def test_imports_give_gold_items_no_target_and_regular_ones_the_overlap():
    project = annotation_project(overlap=3, gold_ratio="0.1")

    def run(*rows):
        content = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()
        job = import_job_create(
            project=project,
            created_by=project.created_by,
            upload=ContentFile(content, name="items.jsonl"),
            enqueue=False,
        )
        job = import_job_run(job_id=job.pk)
        assert job.status == ImportJob.Status.SUCCEEDED, job.error
        return {i.external_id: i.target_annotations for i in Item.objects.filter(project=project)}

    plain, gold = {"external_id": "a", "text": "好"}, {"external_id": "b", "text": "差"}
    assert run(plain, {**gold, "gold": "negative"}) == {"a": 3, "b": None}
    # Re-imported the other way round: the gold item becomes regular and back.
    assert run({**plain, "gold": "positive"}, gold) == {"a": None, "b": 3}
