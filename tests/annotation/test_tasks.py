import pytest

from annotation import services, tasks
from annotation.models import Assignment, ItemResult
from tests.factories import annotation_project, items, worker

pytestmark = pytest.mark.django_db


def test_periodic_inference_covers_active_overlapping_projects():
    project = annotation_project(overlap=2)
    annotation_project(overlap=1)  # nothing to infer with one answer per item
    (item,) = items(project, 1)
    for _ in range(2):
        annotator = worker(project)
        lease = services.assignment_lease(project=project, annotator=annotator)
        services.annotation_submit(
            assignment_id=lease.pk, annotator=annotator, answer={"label": "positive"}
        )
    assert tasks.results_infer_active_task() == 1
    assert ItemResult.objects.get(item=item).method == ItemResult.Method.DAWID_SKENE


def test_one_failing_project_does_not_stop_the_periodic_inference(monkeypatch, caplog):
    broken, healthy = annotation_project(overlap=2), annotation_project(overlap=2)
    inferred = []

    def infer(*, project):
        if project.pk == broken.pk:
            raise KeyError("boom")
        inferred.append(project.pk)
        return {}

    monkeypatch.setattr(services, "project_results_infer", infer)
    with caplog.at_level("ERROR", logger="annotation.tasks"):
        assert tasks.results_infer_active_task() == 1
    assert inferred == [healthy.pk]
    assert {r.project_id for r in caplog.records} == {broken.pk}


def test_the_expiry_task_returns_stale_leases(monkeypatch):
    project = annotation_project(lease_seconds=30)
    items(project, 1)
    lease = services.assignment_lease(project=project, annotator=worker(project))
    Assignment.objects.filter(pk=lease.pk).update(expires_at=lease.leased_at)
    assert tasks.assignment_expire_stale_task() == 1
    assert Assignment.objects.get(pk=lease.pk).status == Assignment.Status.EXPIRED
