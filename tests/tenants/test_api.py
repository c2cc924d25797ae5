import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from tenants.models import ApiToken, Membership
from tests.factories import OrganizationFactory, api_token, member

pytestmark = pytest.mark.django_db

TOKENS = reverse("v1:api-token-list")


def bearer(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def test_create_token_shows_the_secret_once_and_never_again(api_client):
    organization = OrganizationFactory()
    user = member(organization=organization)
    api_client.force_login(user)

    created = api_client.post(
        TOKENS,
        {"organization": organization.pk, "name": "trainer", "roles": ["client_developer"]},
        format="json",
    )
    assert created.status_code == 201, created.content
    secret = created.json()["token"]
    assert secret.startswith("tw_")

    listed = api_client.get(TOKENS).json()
    detail = api_client.get(reverse("v1:api-token-detail", args=[created.json()["id"]])).json()
    assert secret not in str(listed) and secret not in str(detail)
    assert listed["results"][0]["prefix"] == secret[:10]

    # The secret works as a bearer token, as the token (not as its creator).
    me = bearer(secret).get(reverse("v1:me"))
    assert me.status_code == 200
    assert me.json()["principal"] == "api_token" and me.json()["username"] is None
    assert me.json()["token"]["created_by"] == user.username


def test_token_last_used_time_is_recorded():
    organization = OrganizationFactory()
    token, secret = api_token(organization=organization)
    assert token.last_used_at is None
    assert bearer(secret).get(reverse("v1:me")).status_code == 200
    token.refresh_from_db()
    assert token.last_used_at is not None
    assert (timezone.now() - token.last_used_at).total_seconds() < 60


def test_revoked_token_gets_401_in_the_standard_error_shape(api_client):
    organization = OrganizationFactory()
    token, secret = api_token(organization=organization)
    api_client.force_login(token.created_by)
    assert api_client.delete(reverse("v1:api-token-detail", args=[token.pk])).status_code == 204

    response = bearer(secret).get(reverse("v1:me"))
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    assert response.json() == {
        "type": "client_error",
        "errors": [
            {"code": "authentication_failed", "detail": "Invalid or revoked token.", "attr": None}
        ],
    }


@pytest.mark.parametrize(
    "header",
    ["Bearer tw_not-a-real-token", "Bearer", "Bearer a b", "Bearer sk-elsewhere"],
)
def test_bad_tokens_get_401(header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get(reverse("v1:organization-list"))
    assert response.status_code == 401
    assert response.json()["type"] == "client_error"


def test_anonymous_requests_get_401():
    response = APIClient().get(reverse("v1:organization-list"))
    assert response.status_code == 401


def test_validation_errors_name_the_field(api_client):
    organization = OrganizationFactory()
    api_client.force_login(member(organization=organization))
    response = api_client.post(TOKENS, {"organization": organization.pk})
    assert response.status_code == 400
    assert response.json()["type"] == "validation_error"
    assert sorted(e["attr"] for e in response.json()["errors"]) == ["name", "roles"]
    assert not ApiToken.objects.exists()


def test_creating_a_token_for_another_organization_fails_like_a_missing_one(api_client):
    mine, theirs = OrganizationFactory(), OrganizationFactory()
    api_client.force_login(member(organization=mine))
    response = api_client.post(
        TOKENS, {"organization": theirs.pk, "name": "x", "roles": ["admin"]}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["attr"] == "organization"
    assert response.json()["errors"][0]["code"] == "does_not_exist"
    assert not ApiToken.objects.exists()


def test_an_annotator_may_not_create_tokens_and_is_told_why(api_client):
    organization = OrganizationFactory()
    api_client.force_login(member(organization=organization, role=Membership.Role.ANNOTATOR))
    response = api_client.post(
        TOKENS,
        {"organization": organization.pk, "name": "x", "roles": ["annotator"]},
        format="json",
    )
    assert response.status_code == 403
    assert "project manager" in response.json()["errors"][0]["detail"]


def test_a_token_acts_only_for_its_own_organization():
    first, second = OrganizationFactory(), OrganizationFactory()
    user = member(organization=first)
    Membership.objects.create(user=user, organization=second, role="client_developer")
    _, secret = api_token(organization=first, user=user)

    organizations = bearer(secret).get(reverse("v1:organization-list")).json()["results"]
    assert [o["id"] for o in organizations] == [first.pk]
    response = bearer(secret).get(reverse("v1:organization-detail", args=[second.pk]))
    assert response.status_code == 404


def test_lists_are_paginated(api_client):
    api_client.force_login(member())
    body = api_client.get(reverse("v1:region-list"), {"page_size": 5}).json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert len(body["results"]) == 5 and body["count"] > 40


def test_regions_filter_by_parent_code(api_client):
    api_client.force_login(member())
    body = api_client.get(reverse("v1:region-list"), {"parent_code": "520000"}).json()
    assert {r["name_en"] for r in body["results"]} >= {"Guiyang", "Zunyi"}
    assert all(r["parent_code"] == "520000" for r in body["results"])


def test_throttling_answers_429_in_the_standard_shape(api_client):
    from django.core.cache import cache
    from rest_framework.throttling import SimpleRateThrottle

    cache.clear()
    api_client.force_login(member())
    original = SimpleRateThrottle.THROTTLE_RATES
    SimpleRateThrottle.THROTTLE_RATES = {**original, "user": "2/minute"}
    try:
        responses = [api_client.get(reverse("v1:region-list")) for _ in range(3)]
    finally:
        SimpleRateThrottle.THROTTLE_RATES = original
        cache.clear()
    assert [r.status_code for r in responses] == [200, 200, 429]
    assert responses[2].json()["errors"][0]["code"] == "throttled"
    assert int(responses[2]["Retry-After"]) > 0


def test_schema_and_offline_docs_are_served(client):
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/v1/api-tokens/" in schema.content
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in html
    assert "cdn" not in html.lower() and "unpkg" not in html.lower()


# --- audit trail -----------------------------------------------------------------------

AUDIT = reverse("v1:audit-event-list")


def test_a_change_made_with_a_token_records_the_token_and_the_next_request_does_not():
    from tenants.models import AuditEvent

    organization = OrganizationFactory()
    token, secret = api_token(organization=organization)
    second, _ = api_token(organization=organization, user=token.created_by, name="second")
    revoked = bearer(secret).delete(reverse("v1:api-token-detail", args=[second.pk]))
    assert revoked.status_code == 204, revoked.content
    event = AuditEvent.objects.get(event_type="api_token.revoked")
    assert (event.actor_user, event.actor_token) == (token.created_by, token)
    assert token.prefix in event.actor_label

    # A session request after it (same thread) is not attributed to the token.
    session = APIClient()
    session.force_login(token.created_by)
    revoked = session.delete(reverse("v1:api-token-detail", args=[token.pk]))
    assert revoked.status_code == 204
    event = AuditEvent.objects.get(event_type="api_token.revoked", target_id=str(token.pk))
    assert (event.actor_user, event.actor_token) == (token.created_by, None)


@pytest.fixture
def audited():
    """Two organizations with audit rows, an admin of the first, a developer of it."""
    from tenants.services import membership_create

    mine, theirs = OrganizationFactory(), OrganizationFactory()
    admin = member(organization=mine, role=Membership.Role.ADMIN)
    developer = member(organization=mine, role=Membership.Role.CLIENT_DEVELOPER)
    api_token(organization=mine, user=developer, name="mine")
    other_admin = member(organization=theirs, role=Membership.Role.ADMIN)
    membership_create(
        user=developer, organization=theirs, role=Membership.Role.ANNOTATOR, actor=other_admin
    )
    return {"mine": mine, "theirs": theirs, "admin": admin, "developer": developer}


def test_an_admin_reads_their_organizations_audit_trail_and_no_other(audited):
    client = APIClient()
    client.force_login(audited["admin"])
    response = client.get(AUDIT)
    assert response.status_code == 200, response.content
    rows = response.json()["results"]
    assert [row["event_type"] for row in rows] == ["api_token.created"]
    assert {row["organization"] for row in rows} == {audited["mine"].pk}
    assert rows[0]["actor"] == audited["developer"].pk and "digest" not in str(rows[0])


def test_a_member_who_is_not_an_admin_may_not_read_the_audit_trail(audited):
    client = APIClient()
    client.force_login(audited["developer"])  # a member of both, admin of neither
    response = client.get(AUDIT)
    assert response.status_code == 403
    assert response.json()["errors"][0]["detail"].startswith("Only an admin")


def test_an_admins_token_reads_only_the_tokens_organization(audited):
    _, secret = api_token(organization=audited["mine"], user=audited["admin"])
    rows = bearer(secret).get(AUDIT).json()["results"]
    assert {row["organization"] for row in rows} == {audited["mine"].pk}
    # A token of an organization its creator does not administer reads nothing.
    _, developer_secret = api_token(organization=audited["mine"], user=audited["developer"])
    assert bearer(developer_secret).get(AUDIT).status_code == 403


def test_the_audit_trail_filters_by_event_type_target_and_time(audited):
    from tenants.models import AuditEvent

    client = APIClient()
    client.force_login(audited["admin"])
    token = ApiToken.objects.get(name="mine")
    event = AuditEvent.objects.get(organization=audited["mine"])
    by_target = client.get(AUDIT, {"target_type": "tenants.apitoken", "target_id": token.pk})
    assert [row["id"] for row in by_target.json()["results"]] == [event.pk]
    assert client.get(AUDIT, {"event_type": "api_token.revoked"}).json()["results"] == []
    assert client.get(AUDIT, {"event_type": "nonsense"}).status_code == 400
    later = (event.created_at + timezone.timedelta(seconds=1)).isoformat()
    assert client.get(AUDIT, {"until": later}).json()["count"] == 1
    assert client.get(AUDIT, {"since": later}).json()["count"] == 0


def test_a_superuser_reads_every_organization_and_platform_wide_events(audited):
    from tenants.models import AuditEvent
    from tests.factories import UserFactory

    AuditEvent.objects.create(event_type="ledger.repaired", actor_label="system:reconcile")
    client = APIClient()
    client.force_login(UserFactory(is_superuser=True))
    rows = client.get(AUDIT).json()["results"]
    assert {row["organization"] for row in rows} == {
        audited["mine"].pk,
        audited["theirs"].pk,
        None,
    }


def test_the_audit_trail_is_documented(client):
    schema = client.get(reverse("api-schema")).content.decode()
    assert "/api/v1/audit-events/" in schema and "target_type" in schema
