"""schemathesis against the app, in-process, on the real database.

Every operation of the published schema is called with generated requests,
valid and invalid, by three callers: a client organization's API token, a
regional office's API token and an annotator's browser session (cookie and
CSRF token). Every default check applies: no 5xx, every status, content type,
body and header as the schema says, invalid input refused, valid input
accepted.
"""

from contextlib import contextmanager

import pytest
import schemathesis
from django.test import Client
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from config.wsgi import application
from tenants.models import Membership, Organization, Region
from tests.factories import (
    OrganizationFactory,
    annotation_project,
    api_token,
    items,
    member,
    worker,
)

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def _load(phases):
    loaded = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)
    # A NUL anywhere in an address or a body is refused by the request guard
    # with the documented 400 (tests/config/test_request_guards.py covers each
    # place); generating it here would only test that one guard over again.
    loaded.config.generation.update(allow_x00=False)
    loaded.config.phases.update(phases=phases)
    # Coverage: every kind of invalid value of every parameter and field (the
    # valid side is drawn by the fuzzing phase), which halves its cost.
    loaded.config.phases.coverage.generation.update(modes=["negative"])
    return loaded


# The coverage phase (every boundary and every kind of invalid value of every
# parameter: some 150 requests for a body with many fields) runs as the client
# token, the caller that may write the most; the other two callers get the
# schema's examples and random valid and invalid requests, which keeps the
# whole module within minutes on two cores.
schema = _load(["examples", "coverage", "fuzzing"])
light_schema = _load(["examples", "fuzzing"])

# Operations whose body names other objects or rules the schema cannot state:
# a well-formed body can still be refused with a 400 naming the field, because
# what it names is not one of yours (a backend, dataset, prompt, user) or a
# prompt template names no field of the item. Everything else is checked here.
REFERS_TO_STATE = {
    "POST /api/v1/api-tokens/",  # the creator's role in the organization
    "POST /api/v1/backends/",
    "PATCH /api/v1/backends/{id}/",
    "POST /api/v1/dataset-versions/",
    "POST /api/v1/export-jobs/",
    "POST /api/v1/finetune-runs/",
    "POST /api/v1/prelabel-runs/",
    "POST /api/v1/prompts/",
    "POST /api/v1/projects/",
    "PUT /api/v1/projects/{id}/",
    "PATCH /api/v1/projects/{id}/",
    "POST /api/v1/projects/{id}/import/",
    "POST /api/v1/webhooks/",
    "PATCH /api/v1/webhooks/{id}/",
    "POST /api/v1/workspace/assignments/{id}/submit/",
    "POST /api/v1/workspace/items/{id}/review/",
}


@contextmanager
def _in_the_test_transaction():
    """The app runs in-process inside the test's transaction: Django's request
    signals would close that connection, as its own test client prevents."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def _caller(kind):
    """The caller's headers and the ids its generated bodies should name."""
    project = annotation_project()
    items(project, 3)
    refs = {
        "project": project.pk,
        "organization": project.organization_id,
        "workforce": project.workforce_id,
        "region": "520100",
    }
    if kind == "client_token":
        _, secret = api_token(organization=project.organization)
        return {"Authorization": f"Bearer {secret}"}, refs
    if kind == "official_token":
        office = OrganizationFactory(
            kind=Organization.Kind.GOVERNMENT, region=Region.objects.get(code="520000")
        )
        _, secret = api_token(
            organization=office,
            user=member(organization=office, role=Membership.Role.ADMIN),
            roles=[Membership.Role.OFFICIAL],
        )
        return {"Authorization": f"Bearer {secret}"}, {**refs, "organization": office.pk}
    annotator = worker(project)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(annotator)
    browser.get("/workspace/")
    cookies = "; ".join(f"{name}={c.value}" for name, c in browser.cookies.items())
    headers = {"Cookie": cookies, "X-CSRFToken": browser.cookies["csrftoken"].value}
    return headers, {**refs, "organization": project.workforce_id}


def _name_real_objects(case, refs):
    """A valid body naming organization 0 is refused however right its shape:
    valid bodies name the caller's own objects instead."""
    mode = case.meta.generation.mode if case.meta else None
    if mode is None or not mode.is_positive or not isinstance(case.body, dict):
        return
    for field, value in refs.items():
        if field in case.body and isinstance(case.body[field], type(value)):
            case.body[field] = value


def _check(case, caller):
    headers, refs = caller
    _name_real_objects(case, refs)
    excluded = []
    if f"{case.method} {case.operation.path}" in REFERS_TO_STATE:
        excluded.append(positive_data_acceptance)
    with _in_the_test_transaction():
        case.call_and_validate(headers=headers, excluded_checks=excluded)


@pytest.fixture
def client_token():
    return _caller("client_token")


@pytest.fixture(params=["official_token", "annotator_session"])
def other_caller(request):
    return _caller(request.param)


@schema.parametrize()
@settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_as_a_client_token(case, client_token):
    _check(case, client_token)


@light_schema.parametrize()
@settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_as_an_official_token_and_an_annotator_session(case, other_caller):
    _check(case, other_caller)
