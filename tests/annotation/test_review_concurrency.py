"""Many reviewers leasing and reviewing at once on real PostgreSQL.

Before review leases, every reviewer got the same queue page and raced the
others to each item ("already reviewed"). Now each item is served to one
reviewer, reviewed once, and nobody meets an "already reviewed" refusal.
"""

import threading
from collections import Counter
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, connections

from annotation import services, tasks
from annotation.models import Annotation, Item, Review, ReviewLease
from tenants.models import Membership
from tests.factories import annotation_project, items, worker

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

REVIEWERS = 8
ITEMS = 120


def _in_review(project, annotators):
    """Every item answered once, round robin over annotators, and sent to review."""
    for n in range(ITEMS):
        annotator = annotators[n % len(annotators)]
        lease = services.assignment_lease(project=project, annotator=annotator)
        services.annotation_submit(
            assignment_id=lease.pk, annotator=annotator, answer={"label": "positive"}
        )
    assert Item.objects.filter(project=project, status=Item.Status.IN_REVIEW).count() == ITEMS


def test_concurrent_reviewers_never_share_an_item_and_review_each_once():
    project = annotation_project(review_rate="1")
    items(project, ITEMS)
    reviewers = [worker(project, role=Membership.Role.REVIEWER) for _ in range(REVIEWERS)]
    # Two reviewers also annotate: their own items must go to the others.
    for reviewer in reviewers[:2]:
        Membership.objects.create(
            user=reviewer, organization=project.workforce, role=Membership.Role.ANNOTATOR
        )
    _in_review(project, [worker(project), reviewers[0], reviewers[1]])

    barrier = threading.Barrier(REVIEWERS)
    served: list[tuple[int, int]] = []  # (reviewer, item) per lease taken
    already_reviewed: list[str] = []
    errors: list[BaseException] = []

    def work(reviewer):
        try:
            barrier.wait()
            while True:
                lease = services.review_lease_take(project=project, reviewer=reviewer)
                if lease is None:
                    return
                served.append((reviewer.pk, lease.item_id))
                try:
                    services.review_submit(
                        item_id=lease.item_id, reviewer=reviewer, verdict="accept"
                    )
                except ValidationError as error:
                    already_reviewed.append(str(error))
                    raise
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(r,)) for r in reviewers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)

    assert connection.vendor == "postgresql"
    assert not errors, errors[:3]
    assert already_reviewed == []
    per_item = Counter(item_id for _, item_id in served)
    assert len(per_item) == ITEMS and set(per_item.values()) == {1}  # never the same item twice
    reviews = Counter(Review.objects.filter(project=project).values_list("item_id", flat=True))
    assert len(reviews) == ITEMS and set(reviews.values()) == {1}  # each reviewed exactly once
    assert not Item.objects.filter(project=project).exclude(status=Item.Status.DONE).exists()
    own = set(Annotation.objects.values_list("item_id", "annotator_id"))
    assert not own & set(Review.objects.values_list("item_id", "reviewer_id"))
    assert not ReviewLease.objects.filter(status=ReviewLease.Status.LEASED).exists()
    # The work was shared: more than one reviewer reviewed.
    assert len({reviewer for reviewer, _ in served}) > 1


def test_an_expired_review_lease_returns_the_item_to_the_pool():
    project = annotation_project(review_rate="1", lease_seconds=30)
    (item,) = items(project, 1)
    lease = services.assignment_lease(project=project, annotator=worker(project))
    services.annotation_submit(
        assignment_id=lease.pk, annotator=lease.annotator, answer={"label": "negative"}
    )
    holder = worker(project, role=Membership.Role.REVIEWER)
    other = worker(project, role=Membership.Role.REVIEWER)
    held = services.review_lease_take(project=project, reviewer=holder)
    assert held.item_id == item.pk
    assert services.review_lease_take(project=project, reviewer=other) is None  # held

    ReviewLease.objects.filter(pk=held.pk).update(expires_at=held.leased_at)
    assert tasks.assignment_expire_stale_task() == 1  # the beat task frees review leases too
    assert ReviewLease.objects.get(pk=held.pk).status == ReviewLease.Status.EXPIRED
    taken = services.review_lease_take(project=project, reviewer=other)
    assert taken.item_id == item.pk
    with pytest.raises(services.ReviewLeaseError, match="Another reviewer"):
        services.review_submit(item_id=item.pk, reviewer=holder, verdict="accept")
    services.review_submit(item_id=item.pk, reviewer=other, verdict="accept")
    assert Review.objects.get().reviewer == other


def test_a_reviewers_own_annotations_are_never_served():
    project = annotation_project(review_rate="1", overlap=2)
    items(project, 3)
    reviewer = worker(project, role=Membership.Role.REVIEWER)
    Membership.objects.create(
        user=reviewer, organization=project.workforce, role=Membership.Role.ANNOTATOR
    )
    others = [worker(project), worker(project)]
    # The reviewer answers two of the three items; the third only the others.
    for annotator in [reviewer, reviewer, *others, *others]:
        lease = services.assignment_lease(project=project, annotator=annotator)
        if lease is not None:
            services.annotation_submit(
                assignment_id=lease.pk, annotator=annotator, answer={"label": "positive"}
            )
    Item.objects.filter(project=project).update(status=Item.Status.IN_REVIEW)
    own = set(Annotation.objects.filter(annotator=reviewer).values_list("item_id", flat=True))
    assert len(own) == 2
    lease = services.review_lease_take(project=project, reviewer=reviewer)
    assert lease.item_id not in own
    services.review_submit(item_id=lease.item_id, reviewer=reviewer, verdict="accept")
    assert services.review_lease_take(project=project, reviewer=reviewer) is None
    assert ReviewLease.objects.filter(reviewer=reviewer).count() == 1
    # Waiting a lease length changes nothing: own work is never served.
    later = lease.expires_at + timedelta(hours=1)
    assert services.review_lease_take(project=project, reviewer=reviewer, now=later) is None
