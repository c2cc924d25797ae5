import pytest

from annotation.models import Item
from annotation.selectors import project_counts
from tests.factories import annotation_project, items

pytestmark = pytest.mark.django_db


def test_project_counts_count_work_items_by_status_leaving_gold_out():
    project = annotation_project()
    made = items(project, 5, gold_every=5)  # item 0 is gold
    Item.objects.filter(pk=made[1].pk).update(status=Item.Status.IN_REVIEW)
    Item.objects.filter(pk=made[2].pk).update(status=Item.Status.DONE)
    assert project_counts(project=project) == {"total": 4, "open": 2, "in_review": 1, "done": 1}
