"""Who may read regional KPI reports.

A caller's jurisdiction (`roots`) comes from selectors.jurisdiction_roots:
platform staff have the country, an official their offices' regions, an API
token its own office's region. Views compute it once per request and pass it
in; without it the rules look it up for the user (a session).
"""

from django.utils.translation import gettext as _

from tenants.models import Region, User
from tenants.permissions import require

from . import selectors


def _roots(user: User, roots: list[Region] | None) -> list[Region]:
    return selectors.jurisdiction_roots(user=user) if roots is None else roots


def can_read_reports(user: User, *, roots: list[Region] | None = None) -> bool:
    """Any report at all: the caller has a jurisdiction."""
    return bool(_roots(user, roots))


def can_read_region_report(
    user: User, region: Region, *, roots: list[Region] | None = None
) -> bool:
    return selectors.region_within_roots(region, _roots(user, roots))


def require_can_read_reports(user: User, *, roots: list[Region] | None = None) -> None:
    require(
        can_read_reports(user, roots=roots),
        _("Regional reports are for officials of a regional office."),
    )
