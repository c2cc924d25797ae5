import re

import pytest
from django.urls import reverse

from tenants.models import ApiToken
from tenants.services import api_token_digest
from tests.factories import OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser_client(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


def test_admin_creates_a_token_and_shows_its_secret_once(superuser_client):
    organization = OrganizationFactory()
    response = superuser_client.post(
        reverse("admin:tenants_apitoken_add"),
        {"organization": organization.pk, "name": "from the admin"},
        follow=True,
    )
    assert response.status_code == 200
    text = response.content.decode()
    secret = re.search(r"(tw_[A-Za-z0-9_-]{40,})", text).group(1)
    token = ApiToken.objects.get()
    assert token.digest == api_token_digest(secret)
    assert token.organization == organization and token.name == "from the admin"

    change_page = superuser_client.get(reverse("admin:tenants_apitoken_change", args=[token.pk]))
    assert secret not in change_page.content.decode()


def test_admin_revokes_through_the_action(superuser_client):
    organization = OrganizationFactory()
    superuser_client.post(
        reverse("admin:tenants_apitoken_add"), {"organization": organization.pk, "name": "x"}
    )
    token = ApiToken.objects.get()
    superuser_client.post(
        reverse("admin:tenants_apitoken_changelist"),
        {"action": "revoke", "_selected_action": [token.pk]},
    )
    token.refresh_from_db()
    assert token.revoked_at is not None
