"""Many annotators leasing at once on real PostgreSQL: no double assignment, no overflow."""

import threading
from collections import Counter

import pytest
from django.db import connection, connections

from annotation import services
from annotation.models import Annotation, Assignment, Item
from tests.factories import annotation_project, items, worker

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ANNOTATORS = 12
ITEMS = 150
OVERLAP = 3


def test_concurrent_annotators_never_double_book_or_overflow():
    project = annotation_project(overlap=OVERLAP)
    items(project, ITEMS)
    annotators = [worker(project) for _ in range(ANNOTATORS)]
    barrier = threading.Barrier(ANNOTATORS)
    errors: list[BaseException] = []

    def work(annotator):
        try:
            barrier.wait()
            while True:
                lease = services.assignment_lease(project=project, annotator=annotator)
                if lease is None:
                    return
                services.annotation_submit(
                    assignment_id=lease.pk, annotator=annotator, answer={"label": "positive"}
                )
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(a,)) for a in annotators]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert not errors, errors[:3]
    assert connection.vendor == "postgresql"
    per_item = Counter(Annotation.objects.values_list("item_id", flat=True))
    assert len(per_item) == ITEMS
    assert set(per_item.values()) == {OVERLAP}
    pairs = Counter(Assignment.objects.values_list("item_id", "annotator_id"))
    assert max(pairs.values()) == 1
    assert not Item.objects.filter(project=project, reserved_count__gt=OVERLAP).exists()
