"""Both ways an annotator is leased a task, for tests that must hold for each.

The API's `next` asks services.assignment_lease_quick first (one statement,
PostgreSQL only) and falls back to services.assignment_lease. Both are built
from the same pick rules (services._pick_rules_sql); tests parametrized with
LEASE_WAYS check that each way serves what the rules say.
"""

import pytest

from annotation import services
from annotation.models import Assignment


def careful_lease(project, annotator):
    return services.assignment_lease(project=project, annotator=annotator)


def quick_lease(project, annotator):
    """The one-statement lease as an Assignment, or None when nothing is left.

    With no other session at work the quick statement must lease whenever the
    careful path would: a None here is checked against the careful path, so a
    rule the quick statement applies differently fails the test.
    """
    lease = services.assignment_lease_quick(
        project_id=project.pk, annotator=annotator, centre_ids=[project.workforce_id]
    )
    if lease is None:
        fallback = services.assignment_lease(project=project, annotator=annotator)
        assert fallback is None, f"the quick lease missed item {fallback.item_id}"
        return None
    return Assignment.objects.select_related("item").get(pk=lease["id"])


LEASE_WAYS = [
    pytest.param(careful_lease, id="careful"),
    pytest.param(quick_lease, id="quick", marks=pytest.mark.postgres),
]
