"""Every API endpoint, walked as a member of another organization.

Endpoints are discovered from the URL conf, so a new endpoint is covered the
moment it is routed. Each one's model must declare `tenant_path` (the lookup
to its Organization, or None for shared reference data), and the world below
must hold at least one row of it for the victim organization: a new model
without a row here fails this test until it gets one.
"""

from dataclasses import dataclass

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from tenants.models import ApiToken, Membership
from tests.factories import OrganizationFactory, api_token, member

pytestmark = pytest.mark.django_db

API_PREFIX = "api/v1/"
# Endpoints about the caller alone, with no queryset to scope.
CALLER_ONLY = {"v1:me", "v1:api-root"}


@dataclass(frozen=True)
class Endpoint:
    name: str
    route: str
    view_class: type
    is_detail: bool

    def __str__(self):
        return self.name


def _walk(patterns, prefix="", namespace=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            ns = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern), ns)
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), namespace + (pattern.name or ""), pattern


def api_endpoints() -> list[Endpoint]:
    endpoints = {}
    for route, name, pattern in _walk(get_resolver().url_patterns):
        if not route.startswith(API_PREFIX) or "format" in pattern.pattern.regex.groupindex:
            continue
        view_class = getattr(pattern.callback, "cls", None)
        if view_class is None:
            continue
        endpoints[name] = Endpoint(
            name=name,
            route=route,
            view_class=view_class,
            is_detail="pk" in pattern.pattern.regex.groupindex,
        )
    return sorted(endpoints.values(), key=lambda e: e.name)


ENDPOINTS = api_endpoints()


@pytest.fixture
def world():
    """A victim organization with a row of every kind, and an outsider."""
    victim = OrganizationFactory(name="Victim Co")
    victim_dev = member(organization=victim, role=Membership.Role.CLIENT_DEVELOPER)
    member(organization=victim, role=Membership.Role.ANNOTATOR)
    api_token(organization=victim, user=victim_dev)

    outsider_org = OrganizationFactory(name="Outsider Co")
    outsider = member(organization=outsider_org, role=Membership.Role.ADMIN)
    _, outsider_secret = api_token(organization=outsider_org, user=outsider)
    return {
        "victim": victim,
        "victim_dev": victim_dev,
        "outsider": outsider,
        "outsider_secret": outsider_secret,
    }


def _clients(world):
    session = APIClient()
    session.force_login(world["outsider"])
    token = APIClient()
    token.credentials(HTTP_AUTHORIZATION=f"Bearer {world['outsider_secret']}")
    return {"session": session, "token": token}


def _victim_rows(endpoint, victim):
    queryset = getattr(endpoint.view_class, "queryset", None)
    if queryset is None:
        assert endpoint.name in CALLER_ONLY, (
            f"{endpoint.name} has no queryset: scope it or add it to CALLER_ONLY with a reason"
        )
        return None
    model = queryset.model
    assert hasattr(model, "tenant_path"), f"{model.__name__} must declare tenant_path"
    if model.tenant_path is None:
        return None  # shared reference data
    rows = list(model._default_manager.filter(**{f"{model.tenant_path}__in": [victim.pk]}))
    assert rows, f"the isolation world has no {model.__name__} of the victim: add one"
    return rows


def test_endpoints_are_discovered():
    names = {e.name for e in ENDPOINTS}
    assert {"v1:organization-list", "v1:organization-detail", "v1:api-token-detail"} <= names


@pytest.mark.parametrize("endpoint", [e for e in ENDPOINTS if not e.is_detail], ids=str)
@pytest.mark.parametrize("auth", ["session", "token"])
def test_lists_never_show_another_organizations_rows(world, endpoint, auth):
    rows = _victim_rows(endpoint, world["victim"])
    client = _clients(world)[auth]
    url = "/" + endpoint.route.replace("^", "").replace("$", "")
    response = client.get(url, {"page_size": 500})
    assert response.status_code in (200, 403), response.content
    if rows is None or response.status_code == 403:
        return
    owner = APIClient()
    owner.force_login(world["victim_dev"])
    own = {row["id"] for row in owner.get(url, {"page_size": 500}).json()["results"]}
    assert own & {row.pk for row in rows}, "the owner should see its own rows at this URL"
    results = response.json()["results"]
    leaked = {row["id"] for row in results} & {row.pk for row in rows}
    assert not leaked, f"{endpoint.name} leaked rows {leaked}"
    assert "Victim Co" not in response.content.decode()


@pytest.mark.parametrize("endpoint", [e for e in ENDPOINTS if e.is_detail], ids=str)
@pytest.mark.parametrize("auth", ["session", "token"])
def test_details_of_another_organizations_rows_are_not_found(world, endpoint, auth):
    rows = _victim_rows(endpoint, world["victim"])
    if rows is None:
        return
    client = _clients(world)[auth]
    owner = APIClient()
    owner.force_login(world["victim_dev"])
    for row in rows:
        url = "/" + endpoint.route.replace("(?P<pk>[^/.]+)", str(row.pk)).replace("^", "").replace(
            "$", ""
        )
        # The same URL works for the owner, so a 404 below means isolation,
        # not a malformed URL.
        assert owner.get(url).status_code == 200, url
        for method in ("get", "put", "patch", "delete"):
            response = getattr(client, method)(url, {})
            assert response.status_code in (403, 404, 405), (method, url, response.status_code)
            assert "Victim Co" not in response.content.decode()
    # Nothing of the victim's changed: tokens still work, rows still there.
    assert ApiToken.objects.filter(organization=world["victim"], revoked_at__isnull=True).exists()
    assert len(_victim_rows(endpoint, world["victim"])) == len(rows)
