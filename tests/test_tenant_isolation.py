"""Every API endpoint, walked as a member of another organization.

Endpoints are discovered from the URL conf, so a new endpoint is covered the
moment it is routed. Each one's model must declare `tenant_path` (the lookup
to its Organization, or None for shared reference data), and the world below
must hold at least one row of it for the victim organization: a new model
without a row here fails this test until it gets one.
"""

import re
from dataclasses import dataclass

import pytest
from django.core.files.base import ContentFile
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from annotation import imports
from tenants.models import ApiToken, Membership, Region
from tests.factories import (
    OrganizationFactory,
    annotation_project,
    api_token,
    items,
    member,
    worker,
)

pytestmark = pytest.mark.django_db

API_PREFIX = "api/v1/"
# Endpoints about the caller alone, with no queryset to scope.
CALLER_ONLY = {"v1:me", "v1:workspace-me", "v1:api-root"}


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
            is_detail=bool(set(pattern.pattern.regex.groupindex) - {"format"}),
        )
    return sorted(endpoints.values(), key=lambda e: e.name)


ENDPOINTS = api_endpoints()


@pytest.fixture
def world(django_capture_on_commit_callbacks):
    """A victim client and the centre it hires, with a row of every kind; an outsider."""
    from annotation import exports, services
    from annotation.models import ExportFormat
    from eventhooks.models import WebhookDelivery
    from eventhooks.services import webhook_endpoint_create
    from tenants.models import Organization

    victim = OrganizationFactory(name="Victim Co", kind=Organization.Kind.CLIENT)
    victim_centre = OrganizationFactory(name="Victim Centre", kind=Organization.Kind.WORKFORCE)
    owner = member(organization=victim, role=Membership.Role.CLIENT_DEVELOPER)
    # An admin too, so the owner reads the victim's audit trail (projects below add to it).
    Membership.objects.create(user=owner, organization=victim, role=Membership.Role.ADMIN)
    for role in (Membership.Role.ANNOTATOR, Membership.Role.REVIEWER):
        Membership.objects.create(user=owner, organization=victim_centre, role=role)
    api_token(organization=victim, user=owner)

    project = annotation_project(organization=victim, workforce=victim_centre, review_rate="1")
    items(project, 3)
    second_annotator = worker(project)
    # The owner's tier history at the victim centre (they annotate there too).
    from valuechain.models import TierChange

    TierChange.objects.create(user=owner, day="2026-01-05", from_level=1, to_level=2, reason="gold")
    # One item answered and waiting for review, one leased to the owner.
    lease = services.assignment_lease(project=project, annotator=second_annotator)
    services.annotation_submit(
        assignment_id=lease.pk, annotator=second_annotator, answer={"label": "positive"}
    )
    services.assignment_lease(project=project, annotator=owner)
    other = annotation_project(organization=victim, workforce=victim_centre)
    items(other, 1)
    helper = worker(other)
    lease = services.assignment_lease(project=other, annotator=helper)
    services.annotation_submit(
        assignment_id=lease.pk, annotator=helper, answer={"label": "negative"}
    )
    hook, _ = webhook_endpoint_create(
        organization=victim,
        created_by=owner,
        url="http://127.0.0.1:9/h",
        events=["project.completed"],
    )
    WebhookDelivery.objects.create(endpoint=hook, event="project.completed", payload={})
    with django_capture_on_commit_callbacks(execute=True):
        exports.export_job_create(project=other, created_by=owner, fmt=ExportFormat.RESULTS_JSONL)
        imports.import_job_create(
            project=other,
            created_by=owner,
            upload=ContentFile('{"text": "好"}\n'.encode(), name="a.jsonl"),
        )
    dataset = exports.dataset_version_create(project=other, created_by=owner, validation_ratio=0)
    _compute_rows(other, victim_centre, dataset)

    outsider_org = OrganizationFactory(name="Outsider Co", kind=Organization.Kind.CLIENT)
    outsider_centre = OrganizationFactory(name="Outsider Centre", kind=Organization.Kind.WORKFORCE)
    outsider = member(organization=outsider_org, role=Membership.Role.ADMIN)
    for role in (Membership.Role.CLIENT_DEVELOPER,):
        Membership.objects.create(user=outsider, organization=outsider_org, role=role)
    for role in (Membership.Role.ANNOTATOR, Membership.Role.REVIEWER):
        Membership.objects.create(user=outsider, organization=outsider_centre, role=role)
    _, outsider_secret = api_token(organization=outsider_org, user=outsider)
    # Regional offices: the victim's in Henan, the outsider's in Guizhou.
    victim_office = OrganizationFactory(
        name="Victim Office",
        kind=Organization.Kind.GOVERNMENT,
        region=Region.objects.get(code="410000"),
    )
    Membership.objects.create(user=owner, organization=victim_office, role=Membership.Role.OFFICIAL)
    outsider_office = OrganizationFactory(
        name="Outsider Office",
        kind=Organization.Kind.GOVERNMENT,
        region=Region.objects.get(code="520000"),
    )
    Membership.objects.create(
        user=outsider, organization=outsider_office, role=Membership.Role.OFFICIAL
    )
    # A platform superuser's token for the outsider: it acts as the outsider's
    # admin and developer, never with the superuser's powers over everyone.
    root = member(organization=outsider_org, role=Membership.Role.ADMIN, is_superuser=True)
    Membership.objects.create(
        user=root, organization=outsider_org, role=Membership.Role.CLIENT_DEVELOPER
    )
    _, superuser_secret = api_token(organization=outsider_org, user=root)
    return {
        "victim_ids": [victim.pk, victim_centre.pk, victim_office.pk],
        "victim_dev": owner,
        "outsider": outsider,
        "outsider_secret": outsider_secret,
        "superuser_secret": superuser_secret,
    }


def _compute_rows(project, centre, dataset):
    """A backend, prompt, run, prediction, metered call and fine-tune run of the victim."""
    from compute.models import Backend, FineTuneRun, InferenceCall, Prediction, PrelabelRun
    from compute.services import prompt_template_create

    backend = Backend.objects.create(
        organization=centre, name="Victim GPUs", base_url="http://127.0.0.1:9/v1"
    )
    prompt = prompt_template_create(project=project, created_by=project.created_by)
    run = PrelabelRun.objects.create(
        project=project, created_by=project.created_by, prompt=prompt, status="succeeded"
    )
    item = project.items.first()
    Prediction.objects.create(
        run=run,
        project=project,
        item=item,
        answer={"label": "positive"},
        confidence=0.9,
        model="m",
        backend=backend,
        prompt_version=1,
    )
    InferenceCall.objects.create(
        run=run, project=project, item=item, backend=backend, model="m", outcome="ok"
    )
    FineTuneRun.objects.create(
        project=project,
        dataset=dataset,
        backend=backend,
        base_model="m",
        created_by=project.created_by,
    )


def _rows(body):
    """List endpoints answer a page ({"results": [...]}) or, for reports, a plain list."""
    return body["results"] if isinstance(body, dict) else body


def _clients(world):
    session = APIClient()
    session.force_login(world["outsider"])
    token = APIClient()
    token.credentials(HTTP_AUTHORIZATION=f"Bearer {world['outsider_secret']}")
    superuser_token = APIClient()
    superuser_token.credentials(HTTP_AUTHORIZATION=f"Bearer {world['superuser_secret']}")
    return {"session": session, "token": token, "superuser_token": superuser_token}


def _victim_rows(endpoint, world):
    queryset = getattr(endpoint.view_class, "queryset", None)
    if queryset is None:
        assert endpoint.name in CALLER_ONLY, (
            f"{endpoint.name} has no queryset: scope it or add it to CALLER_ONLY with a reason"
        )
        return None
    if getattr(endpoint.view_class, "public_directory", False):
        return None  # a deliberate directory (e.g. annotation centres' names and cities)
    rows_of = getattr(endpoint.view_class, "isolation_rows", None)
    if rows_of is not None:
        # Scoped by something other than a tenant path (a jurisdiction).
        rows = list(rows_of(world["victim_ids"]))
        assert rows, f"the isolation world has no rows of the victim for {endpoint.name}"
        return rows
    model = queryset.model
    assert hasattr(model, "tenant_path"), f"{model.__name__} must declare tenant_path"
    path = getattr(endpoint.view_class, "tenant_path", None) or model.tenant_path
    if path is None:
        return None  # shared reference data
    rows = list(model._default_manager.filter(**{f"{path}__in": world["victim_ids"]}))
    assert rows, f"the isolation world has no {model.__name__} of the victim: add one"
    return rows


def test_endpoints_are_discovered():
    names = {e.name for e in ENDPOINTS}
    assert {"v1:organization-list", "v1:organization-detail", "v1:api-token-detail"} <= names


@pytest.mark.parametrize("endpoint", [e for e in ENDPOINTS if not e.is_detail], ids=str)
@pytest.mark.parametrize("auth", ["session", "token", "superuser_token"])
def test_lists_never_show_another_organizations_rows(world, endpoint, auth):
    rows = _victim_rows(endpoint, world)
    client = _clients(world)[auth]
    url = "/" + endpoint.route.replace("^", "").replace("$", "")
    response = client.get(url, {"page_size": 500})
    owner = APIClient()
    owner.force_login(world["victim_dev"])
    if response.status_code == 400:
        # A report that needs parameters (e.g. ?project=): it has its own
        # isolation test; without them it must refuse everyone alike.
        assert owner.get(url).status_code == 400
        assert "Victim" not in response.content.decode()
        return
    assert response.status_code in (200, 403), response.content
    if rows is None or response.status_code == 403:
        return
    own = {str(row["id"]) for row in _rows(owner.get(url, {"page_size": 500}).json())}
    victim_ids = {str(row.pk) for row in rows}
    assert own & victim_ids, "the owner should see its own rows at this URL"
    results = _rows(response.json())
    leaked = {str(row["id"]) for row in results} & victim_ids
    assert not leaked, f"{endpoint.name} leaked rows {leaked}"
    assert "Victim" not in response.content.decode()


@pytest.mark.parametrize("endpoint", [e for e in ENDPOINTS if e.is_detail], ids=str)
@pytest.mark.parametrize("auth", ["session", "token", "superuser_token"])
def test_details_of_another_organizations_rows_are_not_found(world, endpoint, auth):
    rows = _victim_rows(endpoint, world)
    if rows is None:
        return
    client = _clients(world)[auth]
    owner = APIClient()
    owner.force_login(world["victim_dev"])
    reachable = 0
    for row in rows:
        lookup = getattr(endpoint.view_class, "lookup_field", "pk")
        url = "/" + re.sub(r"\(\?P<\w+>[^)]*\)", str(getattr(row, lookup)), endpoint.route)
        url = url.replace("^", "").replace("$", "")
        # The same URL reaches the row for the owner (200; 400 for missing
        # parameters; 405 where it takes another method), so a 404 below means
        # isolation, not a malformed URL.
        owner_status = owner.get(url).status_code
        assert owner_status in (200, 400, 404, 405), (url, owner_status)
        reachable += owner_status != 404
        for method in ("get", "post", "put", "patch", "delete"):
            response = getattr(client, method)(url, {}, format="json")
            assert response.status_code in (403, 404, 405), (method, url, response.status_code)
            assert "Victim" not in response.content.decode()
    assert reachable, f"the owner reached none of the victim's rows at {endpoint.route}"
    # Nothing of the victim's changed: tokens still work, rows still there.
    assert ApiToken.objects.filter(
        organization_id__in=world["victim_ids"], revoked_at__isnull=True
    ).exists()
    assert len(_victim_rows(endpoint, world)) == len(rows)


def test_suggestion_acceptance_of_another_organizations_project_is_refused(world):
    from annotation.models import Project

    victim_project = Project.objects.filter(organization_id__in=world["victim_ids"]).first()
    outsider = _clients(world)["session"]
    response = outsider.get("/api/v1/predictions/acceptance/", {"project": victim_project.pk})
    # The project reported on is the resource: another organization's is not found.
    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == "not_found"
    owner = APIClient()
    owner.force_login(world["victim_dev"])
    assert (
        owner.get("/api/v1/predictions/acceptance/", {"project": victim_project.pk}).status_code
        == 200
    )
