"""The quality engine through the services, on the database: adaptive decisions,
the model's vote, quarantine, refreshes and the figures."""

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from rest_framework.test import APIClient

from annotation import quality, selectors, services
from annotation.models import (
    AnnotatorTally,
    Item,
    ItemResult,
    Project,
    ProjectQuality,
)
from tenants.models import AuditEvent, Membership
from tests.annotation.leasing import LEASE_WAYS
from tests.factories import annotation_project, items, worker

pytestmark = pytest.mark.django_db

TOPICS = {
    "labels": [
        {"value": "sports", "title": "体育"},
        {"value": "finance", "title": "财经"},
        {"value": "tech", "title": "科技"},
        {"value": "food", "title": "美食"},
    ]
}


@pytest.fixture(autouse=True)
def no_audit_items(monkeypatch):
    """Audit items (a hashed 3 % of item ids) are decided without the model's
    vote; the tests below choose which items are audit items themselves."""
    monkeypatch.setattr(selectors, "MODEL_AUDIT_RATE", 0.0)


def adaptive_project(**fields):
    fields.setdefault("decision", "adaptive")
    fields.setdefault("target_confidence", Decimal("0.95"))
    fields.setdefault("max_annotations", 3)
    return annotation_project(**fields)


def answer(project, annotator, label, *, expect_item=None):
    lease = services.assignment_lease(project=project, annotator=annotator)
    assert lease is not None, "expected a task"
    if expect_item is not None:
        assert lease.item_id == expect_item.pk
    services.annotation_submit(assignment_id=lease.pk, annotator=annotator, answer={"label": label})
    return Item.objects.get(pk=lease.item_id)


def trusted(project, annotator, accuracy):
    """What a refresh would have estimated for this annotator."""
    AnnotatorTally.objects.update_or_create(
        project=project, annotator=annotator, defaults={"accuracy": accuracy}
    )


def calibrated_model(project, name="ft:m1", accuracy=0.95, checked=40):
    """A ProjectQuality whose model was measured at `accuracy` in its top band."""
    right = round(accuracy * checked)
    bins = [[upper, 0, 0] for upper in quality.MODEL_BANDS]
    bins[-1] = [1.0, right, checked]
    keys = services.task_type_spec(project.task_type).answer_keys(project.label_schema)
    ProjectQuality.objects.update_or_create(
        project=project,
        defaults={
            "classes": keys,
            "model_name": name,
            "model_bins": bins,
            "model_checked": checked,
        },
    )


def suggest(item, label, *, model="ft:m1", confidence=0.99):
    item.metadata = {
        "suggestion": {"answer": {"label": label}, "confidence": confidence, "model": model}
    }
    item.save(update_fields=["metadata"])


def test_an_adaptive_item_asks_for_one_answer_at_a_time_until_it_is_sure():
    project = adaptive_project()
    (item,) = items(project, 1)
    assert item.target_annotations == 1
    first, second = worker(project), worker(project)
    trusted(project, first, 0.95)
    trusted(project, second, 0.95)

    item = answer(project, first, "positive")
    assert (item.status, item.target_annotations) == (Item.Status.OPEN, 2)
    assert not ItemResult.objects.filter(item=item).exists()
    item = answer(project, second, "positive")
    assert item.status == Item.Status.DONE
    result = item.result
    assert result.method == ItemResult.Method.POSTERIOR
    assert result.approved and result.confidence >= 0.95
    assert result.answer == {"label": "positive"}
    assert result.provenance["annotators"] == [first.pk, second.pk]


def test_an_item_whose_annotators_all_disagree_goes_to_review_at_the_cap():
    project = adaptive_project(label_schema=TOPICS, max_annotations=3)
    (item,) = items(project, 1)
    people = [worker(project) for _ in range(4)]
    for person, label in zip(people[:3], ["sports", "finance", "tech"], strict=True):
        answer(project, person, label)
    item.refresh_from_db()
    assert item.status == Item.Status.IN_REVIEW
    assert item.annotation_count == 3 and item.target_annotations == 3
    assert not item.result.approved
    # Never loops: nobody else is asked.
    assert services.assignment_lease(project=project, annotator=people[3]) is None


def test_a_calibrated_model_and_one_agreeing_annotator_decide_an_item():
    project = adaptive_project()
    (item,) = items(project, 1)
    calibrated_model(project, accuracy=0.95)
    suggest(item, "positive")
    person = worker(project)
    trusted(project, person, 0.85)
    item = answer(project, person, "positive")
    assert item.status == Item.Status.DONE
    assert item.annotation_count == 1
    assert item.result.provenance["model"]["class"] == "positive"


def test_the_model_does_not_vote_on_audit_items(monkeypatch):
    monkeypatch.setattr(selectors, "MODEL_AUDIT_RATE", 1.0)
    project = adaptive_project()
    (item,) = items(project, 1)
    calibrated_model(project, accuracy=0.95)
    suggest(item, "positive")
    person = worker(project)
    trusted(project, person, 0.85)
    assert answer(project, person, "positive").status == Item.Status.OPEN


def test_the_model_alone_never_decides_and_a_disagreement_asks_for_more():
    project = adaptive_project()
    (item,) = items(project, 1)
    calibrated_model(project, accuracy=0.95)
    suggest(item, "positive")
    person = worker(project)
    trusted(project, person, 0.85)
    item = answer(project, person, "negative")
    assert (item.status, item.target_annotations) == (Item.Status.OPEN, 2)


@pytest.mark.parametrize("votes", [True, False])
def test_a_model_worse_than_chance_or_not_allowed_to_vote_has_no_weight(votes):
    project = adaptive_project(model_votes=votes)
    (item,) = items(project, 1)
    calibrated_model(project, accuracy=0.3 if votes else 0.99)
    suggest(item, "positive")
    person = worker(project)
    trusted(project, person, 0.85)
    item = answer(project, person, "positive")
    assert item.status == Item.Status.OPEN  # the annotator alone is not enough


def test_a_model_without_enough_checked_predictions_does_not_vote():
    project = adaptive_project()
    (item,) = items(project, 1)
    calibrated_model(project, accuracy=1.0, checked=quality.MODEL_MIN_CHECKED - 1)
    suggest(item, "positive")
    person = worker(project)
    trusted(project, person, 0.85)
    assert answer(project, person, "positive").status == Item.Status.OPEN


def test_predictions_of_another_model_than_the_calibrated_one_do_not_vote():
    project = adaptive_project()
    (item,) = items(project, 1)
    calibrated_model(project, name="ft:m1")
    suggest(item, "positive", model="ft:m2")
    person = worker(project)
    trusted(project, person, 0.85)
    assert answer(project, person, "positive").status == Item.Status.OPEN


def test_gold_answers_count_on_the_annotators_tally():
    project = adaptive_project(gold_ratio=Decimal("1"))
    items(project, 3, gold_every=1)  # all gold: positive
    person = worker(project)
    answer(project, person, "positive")
    answer(project, person, "negative")
    tally = AnnotatorTally.objects.get(project=project, annotator=person)
    assert (tally.gold, tally.gold_correct) == (2, 1)


def make_gold(project, count, label="positive"):
    return Item.objects.bulk_create(
        [
            Item(
                project=project,
                external_id=f"gold-{n}",
                data={"text": f"金{n}"},
                gold_answer={"label": label},
                is_gold=True,
                target_annotations=None,
            )
            for n in range(count)
        ]
    )


@pytest.mark.parametrize("lease_one", LEASE_WAYS)
def test_a_careless_annotator_is_quarantined_gets_only_probation_gold_then_nothing(lease_one):
    project = adaptive_project(gold_ratio=Decimal("0.5"), quarantine_below=Decimal("0.6"))
    items(project, 40)
    make_gold(project, services.PROBATION_GOLD + 12)
    careless, careful = worker(project), worker(project)
    # The careless one answers gold wrongly, so the refresh has evidence.
    for _ in range(20):
        lease = services.assignment_lease(project=project, annotator=careless)
        label = "negative" if lease.item.is_gold else "positive"
        services.annotation_submit(
            assignment_id=lease.pk, annotator=careless, answer={"label": label}
        )
    summary = services.project_quality_refresh(project=project)
    assert summary["quarantined"] == [careless.pk]
    tally = AnnotatorTally.objects.get(project=project, annotator=careless)
    assert tally.quarantined and tally.accuracy_high < 0.6
    assert "under the project's bar of 60%" in tally.quarantine_reason
    event = AuditEvent.objects.get(event_type=AuditEvent.EventType.ANNOTATOR_QUARANTINED)
    assert event.extra["project"] == project.pk and event.organization == project.workforce

    # From now on: gold only, PROBATION_GOLD of them at most, then nothing.
    served = []
    while (lease := lease_one(project, careless)) is not None:
        served.append(lease.item.is_gold)
        services.annotation_submit(
            assignment_id=lease.pk, annotator=careless, answer={"label": "negative"}
        )
    assert served == [True] * services.PROBATION_GOLD
    # The careful annotator still gets regular work.
    assert lease_one(project, careful) is not None


def test_a_quarantined_annotator_who_proves_themselves_on_gold_is_released():
    project = adaptive_project(gold_ratio=Decimal("0.5"), quarantine_below=Decimal("0.6"))
    items(project, 40)
    make_gold(project, 30)
    person = worker(project)
    for _ in range(20):
        lease = services.assignment_lease(project=project, annotator=person)
        label = "negative" if lease.item.is_gold else "positive"
        services.annotation_submit(
            assignment_id=lease.pk, annotator=person, answer={"label": label}
        )
    assert services.project_quality_refresh(project=project)["quarantined"] == [person.pk]
    for _ in range(services.PROBATION_GOLD):
        lease = services.assignment_lease(project=project, annotator=person)
        services.annotation_submit(
            assignment_id=lease.pk, annotator=person, answer={"label": "positive"}
        )
    assert services.project_quality_refresh(project=project)["released"] == [person.pk]
    lease = services.assignment_lease(project=project, annotator=person)
    assert lease is not None
    assert AuditEvent.objects.filter(event_type=AuditEvent.EventType.ANNOTATOR_RELEASED).exists()


@pytest.mark.parametrize("lease_one", LEASE_WAYS)
def test_when_everyone_is_quarantined_the_project_says_so_and_hands_out_no_regular_work(
    lease_one,
):
    project = adaptive_project(gold_ratio=Decimal("0.5"), quarantine_below=Decimal("0.9"))
    items(project, 20)
    make_gold(project, 40)
    people = [worker(project) for _ in range(2)]
    for person in people:
        for _ in range(20):
            lease = services.assignment_lease(project=project, annotator=person)
            label = "negative" if lease.item.is_gold else "positive"
            services.annotation_submit(
                assignment_id=lease.pk, annotator=person, answer={"label": label}
            )
    services.project_quality_refresh(project=project)
    figures = selectors.project_quality_figures(project=project)
    assert figures["annotators"]["all_quarantined"] is True
    for person in people:
        lease = lease_one(project, person)
        assert lease is None or lease.item.is_gold


def test_a_refresh_reopens_an_item_decided_on_the_word_of_someone_now_known_careless():
    project = adaptive_project(quarantine_below=Decimal("0"))
    item, _ = items(project, 2)
    make_gold(project, 20)
    person = worker(project)
    trusted(project, person, 0.99)  # believed careful: one answer decides
    answer(project, person, "positive", expect_item=item)
    item.refresh_from_db()
    assert item.status == Item.Status.DONE and item.annotation_count == 1
    project = services.project_update(
        project=project, updated_by=project.created_by, gold_ratio=Decimal("1")
    )
    for _ in range(10):  # gold says otherwise: they get gold wrong
        lease = services.assignment_lease(project=project, annotator=person)
        if lease is None:
            break
        services.annotation_submit(
            assignment_id=lease.pk, annotator=person, answer={"label": "negative"}
        )
    summary = services.project_quality_refresh(project=project)
    assert summary["reopened"] == 1
    item.refresh_from_db()
    assert (item.status, item.target_annotations) == (Item.Status.OPEN, 2)
    assert not ItemResult.objects.filter(item=item).exists()
    # A second refresh with nothing new changes nothing.
    again = services.project_quality_refresh(project=project)
    assert (again["decided"], again["reopened"], again["to_review"]) == (0, 0, 0)


def test_a_refresh_decides_open_items_once_the_model_is_calibrated_on_gold():
    project = adaptive_project(gold_ratio=Decimal("0"))
    regular = items(project, 3)
    gold = make_gold(project, quality.MODEL_MIN_CHECKED)
    for item in [*regular, *gold]:
        suggest(Item.objects.get(pk=item.pk), "positive", confidence=0.99)
    person = worker(project)
    trusted(project, person, 0.9)
    for _ in regular:
        answer(project, person, "positive")
    assert Item.objects.filter(project=project, is_gold=False, status="open").count() == 3
    summary = services.project_quality_refresh(project=project)
    assert summary["model"] == "ft:m1"
    state = ProjectQuality.objects.get(project=project)
    assert state.model_checked == quality.MODEL_MIN_CHECKED and state.model_accuracy == 1.0
    assert summary["decided"] + summary["to_review"] == 3
    assert Item.objects.filter(project=project, is_gold=False, status="open").count() == 0


def test_an_item_a_model_helped_decide_keeps_that_vote_after_the_next_model():
    # Retraining re-predicts only open items: the decided one keeps ft:m1's suggestion.
    project = adaptive_project(gold_ratio=Decimal("0"))
    (item,) = items(project, 1)
    gold = make_gold(project, quality.MODEL_MIN_CHECKED)
    for each in [item, *gold]:
        suggest(Item.objects.get(pk=each.pk), "positive", model="ft:m1", confidence=0.99)
    person = worker(project)
    trusted(project, person, 0.85)
    services.project_quality_refresh(project=project)
    item = answer(project, person, "positive")
    assert item.status == Item.Status.DONE and item.annotation_count == 1
    assert item.result.provenance["model"]["class"] == "positive"

    for each in gold:  # ft:m2 now predicts the open items (gold), ft:m1 nothing
        suggest(Item.objects.get(pk=each.pk), "positive", model="ft:m2", confidence=0.99)
    summary = services.project_quality_refresh(project=project)

    assert summary["model"] == "ft:m2" and summary["reopened"] == 0
    item.refresh_from_db()
    assert item.status == Item.Status.DONE
    # Without the vote it was decided with, one answer of 0.85 is far under the target.
    context = selectors.QualityContext(project)
    assert context.model_vote(item) is None
    assert context.model_vote(item, kept=item.result.provenance["model"])[0] == (
        context.classes.index("positive")
    )


def test_dawid_skene_leaves_adaptive_projects_to_the_engine():
    project = adaptive_project()
    items(project, 2)
    assert services.project_results_infer(project=project)["changed"] == 0


def test_adaptive_decisions_need_a_closed_answer_set():
    with pytest.raises(ValidationError) as caught:
        annotation_project(task_type="spans", decision="adaptive")
    assert "decision" in caught.value.message_dict


def test_switching_a_project_to_adaptive_resets_open_items_to_one_answer():
    project = annotation_project(overlap=3)
    made = items(project, 2)
    assert made[0].target_annotations == 3
    services.project_update(project=project, updated_by=project.created_by, decision="adaptive")
    assert set(
        Item.objects.filter(project=project).values_list("target_annotations", flat=True)
    ) == {1}


def test_a_label_added_mid_project_falls_back_to_even_odds_until_the_next_refresh():
    project = adaptive_project()
    items(project, 2)
    person = worker(project)
    trusted(project, person, 0.99)
    services.project_quality_refresh(project=project)
    schema = {"labels": [*project.label_schema["labels"], {"value": "neutral", "title": "中性"}]}
    project = services.project_update(
        project=project, updated_by=project.created_by, label_schema=schema
    )
    answer(project, person, "neutral")
    state = ProjectQuality.objects.get(project=project)
    assert len(state.classes) == 2  # the refresh re-learns it with three classes
    services.project_quality_refresh(project=project)
    assert ProjectQuality.objects.get(project=project).classes == [
        "positive",
        "negative",
        "neutral",
    ]


# --- the figures in the API ---------------------------------------------------------


def test_quality_figures_for_the_client_count_people_and_for_the_centre_name_them():
    project = adaptive_project(gold_ratio=Decimal("0.5"))
    items(project, 4)
    make_gold(project, 4)
    people = [worker(project) for _ in range(2)]
    for person in people:
        for _ in range(3):
            lease = services.assignment_lease(project=project, annotator=person)
            if lease is None:
                break
            services.annotation_submit(
                assignment_id=lease.pk, annotator=person, answer={"label": "positive"}
            )
    services.project_quality_refresh(project=project)

    client = APIClient()
    client.force_login(project.created_by)
    body = client.get(f"/api/v1/projects/{project.pk}/quality/").json()
    assert body["decision"] == "adaptive"
    assert body["items"]["total"] == 4
    actions = body["human_actions"]
    assert actions["annotations"] + actions["gold_annotations"] == 6
    assert actions["per_item"] == pytest.approx(6 / 4)
    assert body["annotators"]["estimated"] == 2
    assert "people" not in body["annotators"]
    assert body["accuracy"]["gold_check"]["items"] >= 1

    manager = worker(project, role=Membership.Role.PROJECT_MANAGER)
    centre = APIClient()
    centre.force_login(manager)
    body = centre.get(f"/api/v1/projects/{project.pk}/quality/").json()
    assert {p["id"] for p in body["annotators"]["people"]} == {p.pk for p in people}

    outsider = APIClient()
    outsider.force_login(worker(annotation_project()))
    assert outsider.get(f"/api/v1/projects/{project.pk}/quality/").status_code == 404


def test_the_centre_manager_releases_an_annotator_and_the_client_may_not():
    project = adaptive_project()
    items(project, 2)
    person = worker(project)
    AnnotatorTally.objects.create(
        project=project, annotator=person, quarantined=True, quarantine_reason="x"
    )
    url = f"/api/v1/projects/{project.pk}/quality/release/"
    client = APIClient()
    client.force_login(project.created_by)
    assert client.post(url, {"annotator": person.pk, "reason": "retrained"}).status_code == 403
    manager = worker(project, role=Membership.Role.PROJECT_MANAGER)
    centre = APIClient()
    centre.force_login(manager)
    response = centre.post(url, {"annotator": person.pk, "reason": ""}, format="json")
    assert response.status_code == 400 and "reason" in response.content.decode()
    response = centre.post(url, {"annotator": person.pk, "reason": "retrained"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["quarantined"] is False
    assert not AnnotatorTally.objects.get(project=project, annotator=person).quarantined
    assert Project.objects.get(pk=project.pk).status == "active"
