from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from annotation import services
from annotation.models import (
    Annotation,
    Assignment,
    Item,
    ItemResult,
    Project,
    Review,
    ReviewLease,
)
from tenants.models import Membership
from tests.factories import annotation_project, items, member, worker

pytestmark = pytest.mark.django_db


def lease_and_submit(project, annotator, answer, **kwargs):
    assignment = services.assignment_lease(project=project, annotator=annotator)
    annotation, _ = services.annotation_submit(
        assignment_id=assignment.pk, annotator=annotator, answer=answer, **kwargs
    )
    return assignment, annotation


# --- projects ---------------------------------------------------------------------


def test_project_create_normalizes_the_label_schema():
    project = annotation_project(label_schema=["pos", "neg"])
    assert project.label_schema == {
        "labels": [
            {"value": "pos", "title": "pos", "hotkey": "1"},
            {"value": "neg", "title": "neg", "hotkey": "2"},
        ]
    }


@pytest.mark.parametrize(
    ("task_type", "schema", "field"),
    [
        ("classification", {"labels": ["only-one"]}, "label_schema.labels"),
        ("classification", {"labels": ["a", "a"]}, "label_schema.labels[1].value"),
        ("rating", {"min": 5, "max": 1}, "label_schema.max"),
        ("preference", {"rationale": "sometimes"}, "label_schema.rationale"),
    ],
)
def test_project_create_rejects_bad_schemas_naming_the_field(task_type, schema, field):
    with pytest.raises(ValidationError) as excinfo:
        annotation_project(task_type=task_type, label_schema=schema)
    assert field in excinfo.value.message_dict
    assert not Project.objects.exists()


def test_only_client_editors_create_projects():
    project = annotation_project()
    annotator = member(organization=project.organization, role=Membership.Role.ANNOTATOR)
    with pytest.raises(PermissionDenied):
        services.project_create(
            organization=project.organization, created_by=annotator, name="x", task_type="text"
        )


def test_labels_in_use_cannot_be_removed():
    project = annotation_project()
    items(project, 1)
    lease_and_submit(project, worker(project), {"label": "positive"})
    with pytest.raises(ValidationError, match="positive"):
        services.project_update(
            project=project,
            updated_by=project.created_by,
            label_schema={"labels": ["negative", "neutral"]},
        )


# --- distribution -------------------------------------------------------------------


def test_next_task_prefers_uncertain_items_then_older_ones():
    project = annotation_project()
    first, _second, third = items(project, 3)
    Item.objects.filter(pk=third.pk).update(priority=0.9)
    annotator = worker(project)
    a = services.assignment_lease(project=project, annotator=annotator)
    b = services.assignment_lease(project=project, annotator=annotator, holding=[a.pk])
    assert [a.item_id, b.item_id] == [third.pk, first.pk]


def test_an_annotator_holds_at_most_two_leases_and_gets_the_oldest_back():
    project = annotation_project()
    items(project, 5)
    annotator = worker(project)
    a = services.assignment_lease(project=project, annotator=annotator)
    # A reload (nothing held on the page) gets the same lease back, not a new one.
    assert services.assignment_lease(project=project, annotator=annotator).pk == a.pk
    b = services.assignment_lease(project=project, annotator=annotator, holding=[a.pk])
    again = services.assignment_lease(project=project, annotator=annotator, holding=[a.pk, b.pk])
    assert a.pk != b.pk and again.pk == a.pk
    assert (
        services.assignment_lease(project=project, annotator=annotator, holding=[a.pk]).pk == b.pk
    )
    assert Assignment.objects.count() == 2


def test_an_item_gets_at_most_overlap_annotators_and_never_one_twice():
    project = annotation_project(overlap=2)
    (item,) = items(project, 1)
    annotators = [worker(project) for _ in range(3)]
    first = services.assignment_lease(project=project, annotator=annotators[0])
    second = services.assignment_lease(project=project, annotator=annotators[1])
    third = services.assignment_lease(project=project, annotator=annotators[2])
    assert first.item_id == second.item_id == item.pk
    assert third is None
    item.refresh_from_db()
    assert item.reserved_count == 2


def test_the_database_refuses_overflowing_an_item():
    project = annotation_project(overlap=1)
    (item,) = items(project, 1)
    Item.objects.filter(pk=item.pk).update(reserved_count=1)
    with pytest.raises(IntegrityError), transaction.atomic():
        Item.objects.filter(pk=item.pk).update(reserved_count=2)


def test_the_database_refuses_a_second_assignment_for_the_same_annotator():
    project = annotation_project(overlap=3)
    (item,) = items(project, 1)
    annotator = worker(project)
    now = timezone.now()
    Assignment.objects.create(
        project=project, item=item, annotator=annotator, leased_at=now, expires_at=now
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        Assignment.objects.create(
            project=project, item=item, annotator=annotator, leased_at=now, expires_at=now
        )


def test_tier_and_membership_are_required():
    project = annotation_project(required_tier=3)
    items(project, 1)
    with pytest.raises(PermissionDenied, match="T3"):
        services.assignment_lease(project=project, annotator=worker(project, tier=2))
    with pytest.raises(PermissionDenied, match="not an annotator"):
        services.assignment_lease(project=project, annotator=member(role="annotator"))
    assert services.assignment_lease(project=project, annotator=worker(project, tier=3))


def test_paused_projects_hand_out_nothing():
    project = annotation_project(status=Project.Status.PAUSED)
    items(project, 1)
    with pytest.raises(ValidationError, match="paused"):
        services.assignment_lease(project=project, annotator=worker(project))


def test_gold_items_are_mixed_in_at_the_ratio():
    project = annotation_project(gold_ratio="0.25")
    items(project, 40, gold_every=4)  # 10 gold, 30 regular
    annotator = worker(project)
    served = []
    for _ in range(12):
        assignment = services.assignment_lease(project=project, annotator=annotator)
        served.append(assignment.item.is_gold)
        services.annotation_submit(
            assignment_id=assignment.pk, annotator=annotator, answer={"label": "positive"}
        )
    assert served.count(True) == 3


def test_expired_leases_return_to_the_pool_and_late_submits_are_refused():
    project = annotation_project(lease_seconds=60)
    (item,) = items(project, 1)
    slow, fast = worker(project), worker(project)
    lease = services.assignment_lease(project=project, annotator=slow)
    later = timezone.now() + timedelta(seconds=61)

    with pytest.raises(ValidationError, match="expired"):
        services.annotation_submit(
            assignment_id=lease.pk, annotator=slow, answer={"label": "positive"}, now=later
        )
    assert services.assignment_expire_stale(now=later) == 1
    assert services.assignment_expire_stale(now=later) == 0  # safe to run twice
    item.refresh_from_db()
    assert item.reserved_count == 0
    assert services.assignment_lease(project=project, annotator=fast).item_id == item.pk


def test_skipped_items_go_to_others_but_not_back_to_the_skipper():
    project = annotation_project()
    (item,) = items(project, 1)
    skipper, other = worker(project), worker(project)
    lease = services.assignment_lease(project=project, annotator=skipper)
    services.assignment_skip(assignment_id=lease.pk, annotator=skipper)
    assert services.assignment_lease(project=project, annotator=skipper) is None
    assert services.assignment_lease(project=project, annotator=other).item_id == item.pk


# --- submit -------------------------------------------------------------------------


def test_submit_is_idempotent_and_records_time_and_tokens():
    project = annotation_project()
    items(project, 1, data={"text": "很快，好吃"})
    annotator = worker(project)
    lease = services.assignment_lease(project=project, annotator=annotator)
    first, created = services.annotation_submit(
        assignment_id=lease.pk,
        annotator=annotator,
        answer={"label": "positive"},
        time_spent_ms=4200,
    )
    again, created_again = services.annotation_submit(
        assignment_id=lease.pk, annotator=annotator, answer={"label": "negative"}
    )
    assert (created, created_again) == (True, False)
    assert again.pk == first.pk and Annotation.objects.count() == 1
    assert (first.time_spent_ms, first.item_tokens) == (4200, 5)


def test_a_label_outside_the_schema_is_refused_naming_the_field():
    project = annotation_project()
    items(project, 1)
    annotator = worker(project)
    lease = services.assignment_lease(project=project, annotator=annotator)
    with pytest.raises(ValidationError) as excinfo:
        services.annotation_submit(
            assignment_id=lease.pk, annotator=annotator, answer={"label": "neutral"}
        )
    assert "answer.label" in excinfo.value.message_dict
    assert "positive, negative" in excinfo.value.message_dict["answer.label"][0]
    assert not Annotation.objects.exists()


def test_span_offsets_outside_the_text_are_refused():
    project = annotation_project(task_type="spans", label_schema={"labels": ["PER", "LOC"]})
    items(project, 1, data={"text": "王小丽在贵阳"})
    annotator = worker(project)
    lease = services.assignment_lease(project=project, annotator=annotator)
    with pytest.raises(ValidationError) as excinfo:
        services.annotation_submit(
            assignment_id=lease.pk,
            annotator=annotator,
            answer={"spans": [{"start": 4, "end": 9, "label": "LOC"}]},
        )
    assert "past the end of the text (6 characters)" in str(excinfo.value)
    annotation, _ = services.annotation_submit(
        assignment_id=lease.pk,
        annotator=annotator,
        answer={
            "spans": [
                {"start": 4, "end": 6, "label": "LOC"},
                {"start": 0, "end": 3, "label": "PER"},
            ]
        },
    )
    assert annotation.answer["spans"][0] == {"start": 0, "end": 3, "label": "PER"}


def test_nobody_submits_on_someone_elses_lease():
    project = annotation_project()
    items(project, 1)
    owner, intruder = worker(project), worker(project)
    lease = services.assignment_lease(project=project, annotator=owner)
    with pytest.raises(PermissionDenied):
        services.annotation_submit(
            assignment_id=lease.pk, annotator=intruder, answer={"label": "positive"}
        )


def test_gold_answers_are_checked():
    project = annotation_project(gold_ratio="1")
    items(project, 2, gold_every=1)
    annotator = worker(project)
    _, right = lease_and_submit(project, annotator, {"label": "positive"})
    _, wrong = lease_and_submit(project, annotator, {"label": "negative"})
    assert (right.gold_correct, wrong.gold_correct) == (True, False)


# --- results and review -------------------------------------------------------------


def test_a_complete_item_gets_a_majority_result():
    project = annotation_project(overlap=3, agreement_threshold="0.6")
    (item,) = items(project, 1)
    for answer in ("positive", "positive", "negative"):
        lease_and_submit(project, worker(project), {"label": answer})
    item.refresh_from_db()
    result = item.result
    assert result.answer == {"label": "positive"}
    assert result.confidence == pytest.approx(2 / 3)
    assert result.method == ItemResult.Method.MAJORITY
    assert result.approved and item.status == Item.Status.DONE


def test_low_agreement_goes_to_review():
    project = annotation_project(overlap=2, agreement_threshold="0.9")
    (item,) = items(project, 1)
    lease_and_submit(project, worker(project), {"label": "positive"})
    lease_and_submit(project, worker(project), {"label": "negative"})
    item.refresh_from_db()
    assert item.status == Item.Status.IN_REVIEW
    assert not item.result.approved


def test_review_sampling_follows_the_rate():
    project = annotation_project(review_rate="0.3")
    made = items(project, 200)
    annotator = worker(project)
    for _ in made:
        lease_and_submit(project, annotator, {"label": "positive"})
    in_review = Item.objects.filter(project=project, status=Item.Status.IN_REVIEW).count()
    assert 40 <= in_review <= 80  # 30% of 200, deterministic per item


def _item_in_review(project):
    (item,) = items(project, 1)
    annotator = worker(project)
    lease_and_submit(project, annotator, {"label": "negative"})
    item.refresh_from_db()
    assert item.status == Item.Status.IN_REVIEW
    return item, annotator


def take_and_review(project, reviewer, **kwargs):
    lease = services.review_lease_take(project=project, reviewer=reviewer)
    return services.review_submit(item_id=lease.item_id, reviewer=reviewer, **kwargs)


def test_an_item_is_reviewed_once():
    project = annotation_project(review_rate="1")
    item, _ = _item_in_review(project)
    first = worker(project, role=Membership.Role.REVIEWER)
    second = worker(project, role=Membership.Role.REVIEWER)
    take_and_review(project, first, verdict="accept")
    assert services.review_lease_take(project=project, reviewer=second) is None
    with pytest.raises(ValidationError, match="already been reviewed"):
        services.review_submit(
            item_id=item.pk, reviewer=second, verdict="reject", reason="stale queue"
        )
    item.refresh_from_db()
    assert item.status == Item.Status.DONE and item.result.approved


def test_reviewers_never_review_their_own_work():
    project = annotation_project(review_rate="1")
    item, annotator = _item_in_review(project)
    member_ = Membership.objects.create(
        user=annotator, organization=project.workforce, role=Membership.Role.REVIEWER
    )
    assert member_.pk
    with pytest.raises(PermissionDenied, match="another reviewer"):
        services.review_submit(item_id=item.pk, reviewer=annotator, verdict="accept")
    assert services.review_lease_take(project=project, reviewer=annotator) is None


def test_accept_approves_the_result():
    project = annotation_project(review_rate="1")
    item, _ = _item_in_review(project)
    reviewer = worker(project, role=Membership.Role.REVIEWER)
    take_and_review(project, reviewer, verdict="accept")
    item.refresh_from_db()
    assert item.status == Item.Status.DONE
    assert item.result.approved and item.result.reviewed_by == reviewer
    assert item.annotations.get().status == Annotation.Status.ACCEPTED


def test_reject_needs_a_reason_and_sends_the_item_back_to_the_pool():
    project = annotation_project(review_rate="1")
    item, annotator = _item_in_review(project)
    reviewer = worker(project, role=Membership.Role.REVIEWER)
    services.review_lease_take(project=project, reviewer=reviewer)
    with pytest.raises(ValidationError, match="why"):
        services.review_submit(item_id=item.pk, reviewer=reviewer, verdict="reject")
    services.review_submit(
        item_id=item.pk, reviewer=reviewer, verdict="reject", reason="商家回复不是评论"
    )
    item.refresh_from_db()
    assert (item.status, item.reserved_count, item.annotation_count) == ("open", 0, 0)
    assert not ItemResult.objects.filter(item=item).exists()
    assert Review.objects.get().annotation.annotator == annotator
    # Someone else gets it next; the rejected annotator does not.
    assert services.assignment_lease(project=project, annotator=annotator) is None
    assert services.assignment_lease(project=project, annotator=worker(project)).item_id == item.pk


def test_correct_makes_the_reviewers_answer_authoritative():
    project = annotation_project(review_rate="1")
    item, _ = _item_in_review(project)
    reviewer = worker(project, role=Membership.Role.REVIEWER)
    services.review_lease_take(project=project, reviewer=reviewer)
    with pytest.raises(ValidationError) as excinfo:
        services.review_submit(
            item_id=item.pk, reviewer=reviewer, verdict="correct", corrected_answer={"label": "meh"}
        )
    assert "corrected_answer.label" in excinfo.value.message_dict
    services.review_submit(
        item_id=item.pk,
        reviewer=reviewer,
        verdict="correct",
        corrected_answer={"label": "positive"},
    )
    item.refresh_from_db()
    assert item.result.answer == {"label": "positive"}
    assert item.result.method == ItemResult.Method.REVIEW and item.result.confidence == 1.0


# --- review leases --------------------------------------------------------------------


def _items_in_review(project, count, annotator=None):
    made = items(project, count)
    annotator = annotator or worker(project)
    for _ in made:
        lease_and_submit(project, annotator, {"label": "positive"})
    assert not Item.objects.filter(project=project).exclude(status=Item.Status.IN_REVIEW).exists()
    return made


def test_review_lease_serves_the_least_confident_item_and_the_held_one_again():
    project = annotation_project(review_rate="1")
    first, _second, third = _items_in_review(project, 3)
    ItemResult.objects.filter(item=third).update(confidence=0.2)
    reviewer = worker(project, role=Membership.Role.REVIEWER)
    lease = services.review_lease_take(project=project, reviewer=reviewer)
    assert (lease.item_id, lease.status) == (third.pk, ReviewLease.Status.LEASED)
    assert lease.expires_at - lease.leased_at == timedelta(seconds=project.lease_seconds)
    # A reload gets the held item back, not a second one.
    assert services.review_lease_take(project=project, reviewer=reviewer).pk == lease.pk
    other = worker(project, role=Membership.Role.REVIEWER)
    assert services.review_lease_take(project=project, reviewer=other).item_id == first.pk
    assert ReviewLease.objects.filter(status=ReviewLease.Status.LEASED).count() == 2


def test_the_review_ends_the_lease_and_is_linked_to_it():
    project = annotation_project(review_rate="1")
    _items_in_review(project, 2)
    reviewer = worker(project, role=Membership.Role.REVIEWER)
    review = take_and_review(project, reviewer, verdict="accept")
    lease = ReviewLease.objects.get(review=review)
    assert lease.status == ReviewLease.Status.REVIEWED and lease.finished_at is not None
    assert services.review_lease_take(project=project, reviewer=reviewer).item_id != review.item_id


def test_a_review_needs_the_reviewers_own_live_lease():
    project = annotation_project(review_rate="1", lease_seconds=60)
    (item,) = _items_in_review(project, 1)
    holder = worker(project, role=Membership.Role.REVIEWER)
    other = worker(project, role=Membership.Role.REVIEWER)
    with pytest.raises(services.ReviewLeaseError, match="review-next") as excinfo:
        services.review_submit(item_id=item.pk, reviewer=holder, verdict="accept")
    assert excinfo.value.code == "review_lease_not_held"
    lease = services.review_lease_take(project=project, reviewer=holder)
    with pytest.raises(services.ReviewLeaseError, match="Another reviewer") as excinfo:
        services.review_submit(item_id=item.pk, reviewer=other, verdict="accept")
    assert excinfo.value.code == "review_lease_held_by_another"
    later = lease.expires_at + timedelta(seconds=1)
    with pytest.raises(services.ReviewLeaseError, match="expired") as excinfo:
        services.review_submit(item_id=item.pk, reviewer=holder, verdict="accept", now=later)
    assert excinfo.value.code == "review_lease_expired"
    assert not Review.objects.exists()
    item.refresh_from_db()
    assert item.status == Item.Status.IN_REVIEW


def test_a_released_item_goes_to_others_and_comes_back_last():
    project = annotation_project(review_rate="1")
    first, second = _items_in_review(project, 2)
    reviewer = worker(project, role=Membership.Role.REVIEWER)
    assert services.review_lease_take(project=project, reviewer=reviewer).item_id == first.pk
    released = services.review_lease_release(item_id=first.pk, reviewer=reviewer)
    assert released.status == ReviewLease.Status.RELEASED
    with pytest.raises(services.ReviewLeaseError):
        services.review_lease_release(item_id=first.pk, reviewer=reviewer)
    assert services.review_lease_take(project=project, reviewer=reviewer).item_id == second.pk
    other = worker(project, role=Membership.Role.REVIEWER)
    assert services.review_lease_take(project=project, reviewer=other).item_id == first.pk


def test_lapsed_review_leases_return_to_the_pool():
    project = annotation_project(review_rate="1", lease_seconds=60)
    (item,) = _items_in_review(project, 1)
    holder = worker(project, role=Membership.Role.REVIEWER)
    other = worker(project, role=Membership.Role.REVIEWER)
    lease = services.review_lease_take(project=project, reviewer=holder)
    assert services.review_lease_take(project=project, reviewer=other) is None
    assert services.review_lease_expire_stale(now=lease.expires_at - timedelta(seconds=1)) == 0
    assert services.review_lease_expire_stale(now=lease.expires_at) == 1
    lease.refresh_from_db()
    assert lease.status == ReviewLease.Status.EXPIRED
    assert services.review_lease_expire_stale(now=lease.expires_at) == 0  # safe to run twice
    assert services.review_lease_take(project=project, reviewer=other).item_id == item.pk


def test_a_lease_whose_item_left_review_is_withdrawn():
    project = annotation_project(review_rate="1")
    _first, second = _items_in_review(project, 2)
    reviewer = worker(project, role=Membership.Role.REVIEWER)
    lease = services.review_lease_take(project=project, reviewer=reviewer)
    Item.objects.filter(pk=lease.item_id).update(status=Item.Status.DONE)  # e.g. re-inferred
    assert services.review_lease_take(project=project, reviewer=reviewer).item_id == second.pk
    lease.refresh_from_db()
    assert lease.status == ReviewLease.Status.WITHDRAWN


def test_at_most_one_live_review_lease_per_item():
    project = annotation_project(review_rate="1")
    (item,) = _items_in_review(project, 1)
    holder = worker(project, role=Membership.Role.REVIEWER)
    lease = services.review_lease_take(project=project, reviewer=holder)
    with pytest.raises(IntegrityError), transaction.atomic():
        ReviewLease.objects.create(
            project=project,
            item=item,
            reviewer=worker(project, role=Membership.Role.REVIEWER),
            leased_at=lease.leased_at,
            expires_at=lease.expires_at,
        )


def test_dawid_skene_outvotes_a_careless_annotator():
    project = annotation_project(overlap=3, agreement_threshold="0.5")
    made = items(project, 30)
    careful = [worker(project), worker(project)]
    careless = worker(project)
    truth = {}
    for n, item in enumerate(made):
        truth[item.pk] = "positive" if n % 3 else "negative"
    for annotator in careful:
        for _ in made:
            lease = services.assignment_lease(project=project, annotator=annotator)
            services.annotation_submit(
                assignment_id=lease.pk, annotator=annotator, answer={"label": truth[lease.item_id]}
            )
    for _ in made:
        lease = services.assignment_lease(project=project, annotator=careless)
        services.annotation_submit(
            assignment_id=lease.pk, annotator=careless, answer={"label": "positive"}
        )
    summary = services.project_results_infer(project=project)
    assert summary["changed"] == 30
    results = {r.item_id: r for r in ItemResult.objects.filter(project=project)}
    assert all(results[pk].answer["label"] == label for pk, label in truth.items())
    assert all(r.method == ItemResult.Method.DAWID_SKENE for r in results.values())
    assert services.project_results_infer(project=project)["changed"] == 0


def swapping_crowd_project(*, last_answers, answer, x, y, **project_fields):
    """A and B swap x and y, which C, D and E outvote, so Dawid–Skene learns to
    read A's and B's x as y. The last item (first in the queue) is answered
    only as last_answers says: {annotator name: label}."""
    data = project_fields.pop("data", None)
    project = annotation_project(overlap=5, agreement_threshold="0.5", **project_fields)
    made = items(project, 13, data=data)
    last = made[0]
    Item.objects.filter(pk=last.pk).update(target_annotations=len(last_answers), priority=1)
    truth = {item.pk: y if n % 2 else x for n, item in enumerate(made[1:])}
    swap = {x: y, y: x}
    for name in "ABCDE":
        annotator = worker(project, username=f"swap-{name}-{project.pk}")
        while lease := services.assignment_lease(project=project, annotator=annotator):
            if lease.item_id == last.pk:
                label = last_answers[name]
            else:
                label = swap[truth[lease.item_id]] if name in "AB" else truth[lease.item_id]
            services.annotation_submit(
                assignment_id=lease.pk, annotator=annotator, answer=answer(name, label)
            )
    return project, last


def test_dawid_skene_stores_a_label_nobody_gave_and_sends_it_to_review():
    project, last = swapping_crowd_project(
        label_schema={"labels": ["positive", "negative", "neutral"]},
        x="negative",
        y="neutral",
        last_answers={"A": "negative", "B": "negative"},
        answer=lambda name, label: {"label": label},
    )
    assert ItemResult.objects.get(item=last).answer == {"label": "negative"}  # the majority

    summary = services.project_results_infer(project=project)

    result = ItemResult.objects.get(item=last)
    assert result.answer == {"label": "neutral"}
    assert result.method == ItemResult.Method.DAWID_SKENE
    assert result.confidence > 0.99 and result.approved is False
    assert Item.objects.get(pk=last.pk).status == Item.Status.IN_REVIEW
    assert summary["unseen"] == 1
    # The rest is decoded to the truth the careful three gave, and approved.
    others = ItemResult.objects.filter(project=project).exclude(item=last)
    assert len(others) == 12 and all(r.approved for r in others)
    assert services.project_results_infer(project=project)["changed"] == 0
    assert ItemResult.objects.get(item=last).answer == {"label": "neutral"}


def test_dawid_skene_takes_a_given_answer_whole_when_it_outvotes_the_majority():
    # A and B say "b" on the last item, C says "a": the majority is "b", Dawid–Skene
    # reads A's and B's "b" as "a" and takes C's answer, rationale and all.
    project, last = swapping_crowd_project(
        task_type="preference",
        data={"prompt": "p", "response_a": "A", "response_b": "B"},
        x="a",
        y="b",
        last_answers={"A": "b", "B": "b", "C": "a"},
        answer=lambda name, choice: {"choice": choice, "rationale": f"{name} chose {choice}"},
    )
    assert ItemResult.objects.get(item=last).answer["choice"] == "b"

    summary = services.project_results_infer(project=project)

    result = ItemResult.objects.get(item=last)
    assert result.answer == {"choice": "a", "rationale": "C chose a"}
    assert summary["unseen"] == 0
    assert services.project_results_infer(project=project)["changed"] == 0


# --- audit trail -----------------------------------------------------------------------


def test_creating_a_project_is_audited_with_its_creator():
    from tenants.models import AuditEvent

    project = annotation_project()
    event = AuditEvent.objects.get(event_type="project.created")
    assert (event.organization, event.actor_user) == (project.organization, project.created_by)
    assert (event.target_type, event.target_id, event.target_repr) == (
        "annotation.project",
        str(project.pk),
        str(project),
    )


def test_a_project_update_records_what_changed_and_a_status_change_apart():
    from tenants.models import AuditEvent

    project = annotation_project(status="draft")
    services.project_update(
        project=project,
        updated_by=project.created_by,
        name="renamed",
        overlap=project.overlap,
        status="active",
    )
    updated = AuditEvent.objects.get(event_type="project.updated")
    assert updated.changes == {"name": [project.name, "renamed"]}  # overlap did not change
    status = AuditEvent.objects.get(event_type="project.status_changed")
    assert status.changes == {"status": ["draft", "active"]}
    assert status.actor_user == project.created_by and status.organization == project.organization
    # Saving the same values again records nothing.
    services.project_update(project=project, updated_by=project.created_by, name="renamed")
    assert AuditEvent.objects.filter(target_id=str(project.pk)).count() == 3


def test_a_refused_or_invalid_project_update_is_not_audited():
    from tenants.models import AuditEvent

    project = annotation_project()
    annotator = worker(project)
    with pytest.raises(PermissionDenied):
        services.project_update(project=project, updated_by=annotator, status="paused")
    with pytest.raises(ValidationError):
        services.project_update(project=project, updated_by=project.created_by, overlap=-1)
    assert not AuditEvent.objects.exclude(event_type="project.created").exists()


def test_archiving_through_the_api_with_a_token_records_the_token():
    from rest_framework.test import APIClient

    from tenants.models import AuditEvent
    from tests.factories import api_token

    project = annotation_project()
    token, secret = api_token(organization=project.organization, user=project.created_by)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert client.delete(f"/api/v1/projects/{project.pk}/").status_code == 204
    event = AuditEvent.objects.get(event_type="project.status_changed")
    assert event.changes == {"status": ["active", "archived"]}
    assert (event.actor_user, event.actor_token) == (project.created_by, token)


@pytest.mark.parametrize("vendor_sql", [True, False], ids=["update-from-values", "bulk-update"])
def test_suggestions_merge_into_metadata_and_set_the_lease_priority(vendor_sql, monkeypatch):
    from django.db import connection

    if not vendor_sql:
        # The portable path (SQLite in `make run`) must give the same rows.
        monkeypatch.setattr(connection, "vendor", "sqlite")
    elif connection.vendor != "postgresql":
        pytest.skip("the raw SQL path is PostgreSQL's")
    project = annotation_project()
    first, second = items(project, 2)
    Item.objects.filter(pk=first.pk).update(metadata={"shop": 7})
    suggestion = {"answer": {"label": "positive"}, "confidence": 0.8}
    services.item_suggestions_apply(
        suggestions={first.pk: (suggestion, 0.2), second.pk: (suggestion, 0.6)}
    )
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.metadata == {"shop": 7, "suggestion": suggestion} and first.priority == 0.2
    assert second.metadata == {"suggestion": suggestion} and second.priority == 0.6


def test_the_suggestion_priority_is_least_certain_first_where_the_model_only_pre_fills():
    project = annotation_project()
    sure = services.suggestion_priority(project=project, item_id=1, confidence=0.97)
    unsure = services.suggestion_priority(project=project, item_id=2, confidence=0.41)
    assert unsure > sure


@pytest.mark.parametrize("model_votes", [True, False])
def test_where_the_model_votes_items_are_served_in_an_order_its_confidence_does_not_skew(
    model_votes,
):
    project = annotation_project(decision="adaptive", model_votes=model_votes)
    order = {
        item_id: services.suggestion_priority(project=project, item_id=item_id, confidence=c)
        for item_id, c in enumerate([0.99, 0.2, 0.95, 0.3] * 250)
    }
    if not model_votes:
        assert order[1] > order[0]
        return
    # The same item keeps its place whatever the model says of it next time...
    assert order[7] == services.suggestion_priority(project=project, item_id=7, confidence=0.5)
    # ...and the first half served holds about as many sure items as unsure ones.
    first_half = sorted(order, key=order.get, reverse=True)[:500]
    sure = sum(1 for item_id in first_half if item_id % 2 == 0)
    assert 200 < sure < 300


def test_sending_results_to_review_leaves_reviewed_ones_alone():
    project = annotation_project(overlap=1)
    annotator = worker(project)
    reviewer = worker(project, role=Membership.Role.REVIEWER)
    first, second = items(project, 2)
    for _ in range(2):
        lease_and_submit(project, annotator, {"label": "positive"})
    ItemResult.objects.filter(item=second).update(reviewed_by=reviewer)
    moved = services.item_results_send_to_review(item_ids=[first.pk, second.pk])
    assert moved == 1
    assert Item.objects.get(pk=first.pk).status == Item.Status.IN_REVIEW
    assert ItemResult.objects.get(item=first).approved is False
    assert Item.objects.get(pk=second.pk).status == Item.Status.DONE
    assert ItemResult.objects.get(item=second).approved is True
