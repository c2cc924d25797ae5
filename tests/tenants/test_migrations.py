"""tenants 0006: existing tokens get their creator's roles, or are revoked."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("tenants", "0005_audit_quarantine_events")]
AFTER = [("tenants", "0006_apitoken_roles_expiry")]


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.fixture
def old_world():
    """The schema as of 0005, put back to the newest one afterwards."""
    apps = _migrate(BEFORE)
    yield apps
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


def test_existing_tokens_get_their_creators_roles_and_unresolvable_ones_are_revoked(old_world):
    Region = old_world.get_model("tenants", "Region")
    Organization = old_world.get_model("tenants", "Organization")
    User = old_world.get_model("tenants", "User")
    Membership = old_world.get_model("tenants", "Membership")
    ApiToken = old_world.get_model("tenants", "ApiToken")
    country = Region.objects.get_or_create(
        code="CN", defaults={"level": "country", "name_zh": "中国", "name_en": "China"}
    )[0]
    client = Organization.objects.create(
        name="Client", slug="client", kind="client", region=country
    )
    office = Organization.objects.create(
        name="Office", slug="office", kind="government", region=country
    )
    developer = User.objects.create(username="dev")
    Membership.objects.create(user=developer, organization=client, role="client_developer")
    Membership.objects.create(user=developer, organization=client, role="admin")
    Membership.objects.create(user=developer, organization=office, role="official")
    superuser = User.objects.create(username="root", is_superuser=True)

    def token(name, organization, user, **fields):
        return ApiToken.objects.create(
            name=name,
            organization=organization,
            created_by=user,
            prefix=name[:10],
            digest=name.ljust(64, "0"),
            **fields,
        ).pk

    kept = token("kept", client, developer)
    office_token = token("office", office, developer)
    minted_by_root = token("root", office, superuser)
    already_revoked = token("gone", office, superuser, revoked_at="2026-01-01T00:00:00Z")

    new_apps = _migrate(AFTER)
    ApiToken = new_apps.get_model("tenants", "ApiToken")
    AuditEvent = new_apps.get_model("tenants", "AuditEvent")
    tokens = {t.pk: t for t in ApiToken.objects.all()}
    assert tokens[kept].roles == ["admin", "client_developer"]
    assert tokens[kept].revoked_at is None and tokens[kept].expires_at is None
    # Only the roles in the token's organization, never those elsewhere.
    assert tokens[office_token].roles == ["official"]
    # A superuser's token for an organization they hold no role in cannot be
    # given roles safely: revoked, and the trail says so.
    assert tokens[minted_by_root].roles == [] and tokens[minted_by_root].revoked_at is not None
    (event,) = AuditEvent.objects.filter(event_type="api_token.revoked")
    assert (event.target_id, event.organization_id, event.actor_user_id) == (
        str(minted_by_root),
        office.pk,
        None,
    )
    assert event.actor_label.startswith("system:migration")
    # A token revoked before keeps its revocation time and gets no new audit row.
    assert tokens[already_revoked].revoked_at.year == 2026
    assert tokens[already_revoked].revoked_at.month == 1
