"""eventhooks.views: the webhooks page."""

import pytest
from django.test import Client
from django.urls import reverse

from eventhooks.models import WebhookEndpoint
from tenants.models import AuditEvent, Membership
from tests.factories import member

pytestmark = pytest.mark.django_db

Role = Membership.Role


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_developer_adds_a_webhook_and_sees_its_secret_once():
    developer = member(role=Role.CLIENT_DEVELOPER)
    organization = developer.memberships.get().organization
    client = signed_in(developer)
    response = client.post(
        reverse("webhooks"),
        {
            "organization": organization.pk,
            "url": "https://hooks.example.com/tokenworks",
            "events": ["import.finished"],
        },
    )
    assert response.status_code == 201
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.events == ["import.finished"]
    assert endpoint.signing_secret() in response.content.decode()
    assert endpoint.signing_secret() not in client.get(reverse("webhooks")).content.decode()
    assert AuditEvent.objects.filter(
        event_type=AuditEvent.EventType.WEBHOOK_ENDPOINT_CREATED
    ).exists()


@pytest.mark.parametrize(
    ("field", "value"),
    [("url", "ftp://files.example.com/"), ("url", "not a url"), ("events", "nope")],
)
def test_bad_input_is_a_form_error_naming_the_field(field, value):
    developer = member(role=Role.CLIENT_DEVELOPER)
    organization = developer.memberships.get().organization
    data = {"organization": organization.pk, "url": "https://hooks.example.com/", field: value}
    response = signed_in(developer).post(reverse("webhooks"), data)
    assert response.status_code == 400
    assert field in response.context["form"].errors
    assert not WebhookEndpoint.objects.exists()


def test_deleting_is_for_the_organizations_own_managers():
    developer = member(role=Role.CLIENT_DEVELOPER)
    organization = developer.memberships.get().organization
    signed_in(developer).post(
        reverse("webhooks"),
        {"organization": organization.pk, "url": "https://hooks.example.com/"},
    )
    endpoint = WebhookEndpoint.objects.get()
    outsider = member(role=Role.CLIENT_DEVELOPER)
    assert (
        signed_in(outsider).post(reverse("webhook-delete", args=[endpoint.pk])).status_code == 404
    )
    assert (
        signed_in(developer).post(reverse("webhook-delete", args=[endpoint.pk])).status_code == 302
    )
    assert not WebhookEndpoint.objects.exists()


def test_annotators_have_no_webhooks_page():
    assert signed_in(member(role=Role.ANNOTATOR)).get(reverse("webhooks")).status_code == 403
