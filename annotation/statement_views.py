"""A client's projects in the browser: progress and the monthly statement.

The same reads as `GET /api/v1/projects/{id}/stats/` and `…/statement/`; the
CSV is the API's own, fetched with the session. Another organization's
project is a 404.
"""

import re
from datetime import date

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from tenants.permissions import PROJECT_EDITORS, principal_for
from valuechain.models import LedgerEntry
from valuechain.selectors import month_add, month_start, project_charges, project_statement

from .selectors import project_counts, projects_visible

MONTH = re.compile(r"^(\d{4})-(\d{2})$")


def _projects(user):
    ids = principal_for(user).organization_ids(roles=PROJECT_EDITORS)
    return projects_visible(organization_ids=ids).select_related("organization", "workforce")


@login_required
def statements(request):
    """Every project the caller's organizations own, with progress and charges so far."""
    projects = list(_projects(request.user).order_by("name"))
    if not projects and not principal_for(request.user).organization_ids(roles=PROJECT_EDITORS):
        raise PermissionDenied(
            _("Statements are for a client's developers, project managers and admins.")
        )
    rows = []
    for project in projects:
        counts = project_counts(project=project)
        charges = project_charges(project=project)
        rows.append(
            {
                "project": project,
                "counts": counts,
                "percent": round(100 * counts["done"] / counts["total"]) if counts["total"] else 0,
                "charged": sum(charges.values()),
            }
        )
    return render(request, "annotation/statements.html", {"rows": rows})


def _month(request) -> tuple[date, str | None]:
    today = month_start(timezone.localdate())
    raw = request.GET.get("month", "")
    if not raw:
        return today, None
    match = MONTH.match(raw)
    if not match or not (2000 <= int(match[1]) <= 2100 and 1 <= int(match[2]) <= 12):
        return today, _("Expected a month as YYYY-MM, e.g. 2026-05.")
    return date(int(match[1]), int(match[2]), 1), None


@login_required
def statement(request, pk: int):
    project = get_object_or_404(_projects(request.user), pk=pk)
    month, error = _month(request)
    data = project_statement(project=project, month=month)
    kinds = dict(LedgerEntry.Kind.choices)
    for line in data["lines"]:
        line["kind_label"] = kinds.get(line["kind"], line["kind"])
        line["tokens"] = (line["tokens_input"] or 0) + (line["tokens_output"] or 0)
    counts = project_counts(project=project)
    csv_url = reverse("v1:project-statement", args=[project.pk])
    return render(
        request,
        "annotation/statement.html",
        {
            "project": project,
            "statement": data,
            "month": month,
            "previous": month_add(month, -1),
            "following": month_add(month, 1),
            "error": error,
            "counts": counts,
            "percent": round(100 * counts["done"] / counts["total"]) if counts["total"] else 0,
            "csv_url": f"{csv_url}?month={month:%Y-%m}&format=csv",
        },
        status=400 if error else 200,
    )
