import re

import pytest
from django.urls import reverse

from tenants.models import ApiToken, Membership
from tenants.services import api_token_digest
from tests.factories import OrganizationFactory, UserFactory, api_token

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser():
    return UserFactory(is_staff=True, is_superuser=True)


@pytest.fixture
def superuser_client(client, superuser):
    client.force_login(superuser)
    return client


def test_admin_creates_a_token_and_shows_its_secret_once(superuser_client, superuser):
    organization = OrganizationFactory()
    Membership.objects.create(user=superuser, organization=organization, role="admin")
    response = superuser_client.post(
        reverse("admin:tenants_apitoken_add"),
        {"organization": organization.pk, "name": "from the admin", "roles": ["official"]},
        follow=True,
    )
    assert response.status_code == 200
    text = response.content.decode()
    secret = re.search(r"(tw_[A-Za-z0-9_-]{40,})", text).group(1)
    token = ApiToken.objects.get()
    assert token.digest == api_token_digest(secret)
    assert token.organization == organization and token.name == "from the admin"
    assert token.roles == ["official"]

    change_page = superuser_client.get(reverse("admin:tenants_apitoken_change", args=[token.pk]))
    assert secret not in change_page.content.decode()


def test_admin_revokes_through_the_action(superuser_client):
    # A superuser revokes any organization's tokens (revoking only ever takes power away).
    token, _ = api_token(organization=OrganizationFactory())
    superuser_client.post(
        reverse("admin:tenants_apitoken_changelist"),
        {"action": "revoke", "_selected_action": [token.pk]},
    )
    token.refresh_from_db()
    assert token.revoked_at is not None


def test_membership_admin_changes_go_through_the_audited_services(superuser_client):
    from tenants.models import AuditEvent, Membership

    organization, user = OrganizationFactory(), UserFactory()
    superuser_client.post(
        reverse("admin:tenants_membership_add"),
        {"user": user.pk, "organization": organization.pk, "role": "annotator"},
    )
    membership = Membership.objects.get(user=user)
    superuser_client.post(
        reverse("admin:tenants_membership_change", args=[membership.pk]),
        {"user": user.pk, "organization": organization.pk, "role": "reviewer"},
    )
    superuser_client.post(
        reverse("admin:tenants_membership_delete", args=[membership.pk]), {"post": "yes"}
    )
    assert not Membership.objects.filter(user=user).exists()
    events = AuditEvent.objects.order_by("pk")
    assert [e.event_type for e in events] == [
        "membership.created",
        "membership.role_changed",
        "membership.deleted",
    ]
    assert all(e.organization == organization and e.actor_user.is_superuser for e in events)


def test_the_audit_trail_is_read_only_in_the_admin(superuser_client):
    from tenants.models import AuditEvent

    api_token(organization=OrganizationFactory(), name="x")
    event = AuditEvent.objects.get()
    changelist = superuser_client.get(
        reverse("admin:tenants_auditevent_changelist"),
        {"event_type__exact": "api_token.created", "q": "x"},
    )
    assert changelist.status_code == 200
    assert "api_token.created" in changelist.content.decode()
    assert superuser_client.get(reverse("admin:tenants_auditevent_add")).status_code == 403
    detail = superuser_client.get(reverse("admin:tenants_auditevent_change", args=[event.pk]))
    assert detail.status_code == 200 and 'name="_save"' not in detail.content.decode()
    assert (
        superuser_client.get(
            reverse("admin:tenants_auditevent_delete", args=[event.pk])
        ).status_code
        == 403
    )


def test_memberships_edited_inline_on_a_user_are_audited(superuser_client):
    from tenants.models import AuditEvent, Membership

    organization, user = OrganizationFactory(), UserFactory()
    kept = Membership.objects.create(user=user, organization=organization, role="annotator")
    dropped = Membership.objects.create(user=user, organization=organization, role="official")
    response = superuser_client.post(
        reverse("admin:tenants_user_change", args=[user.pk]),
        {
            "username": user.username,
            "email": user.email,
            "is_active": "on",
            "date_joined_0": "2026-01-01",
            "date_joined_1": "00:00:00",
            "display_name": "",
            "memberships-TOTAL_FORMS": "3",
            "memberships-INITIAL_FORMS": "2",
            "memberships-0-id": kept.pk,
            "memberships-0-user": user.pk,
            "memberships-0-organization": organization.pk,
            "memberships-0-role": "reviewer",
            "memberships-1-id": dropped.pk,
            "memberships-1-user": user.pk,
            "memberships-1-organization": organization.pk,
            "memberships-1-role": "official",
            "memberships-1-DELETE": "on",
            "memberships-2-user": user.pk,
            "memberships-2-organization": organization.pk,
            "memberships-2-role": "admin",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    assert sorted(Membership.objects.filter(user=user).values_list("role", flat=True)) == [
        "admin",
        "reviewer",
    ]
    assert sorted(AuditEvent.objects.values_list("event_type", flat=True)) == [
        "membership.created",
        "membership.deleted",
        "membership.role_changed",
    ]
