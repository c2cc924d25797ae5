from types import SimpleNamespace

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import DatabaseError, transaction

from tenants import services
from tenants.models import ApiToken, AuditEvent, Membership, Organization, Region, User
from tenants.request_context import api_token_bind
from tests.factories import OrganizationFactory, RegionFactory, UserFactory, api_token, member

pytestmark = pytest.mark.django_db


def test_api_token_secret_is_returned_once_and_only_its_digest_is_stored():
    organization = OrganizationFactory()
    token, secret = api_token(organization=organization)

    stored = ApiToken.objects.get(pk=token.pk)
    assert secret.startswith("tw_") and len(secret) > 40
    assert secret not in {stored.digest, stored.prefix, stored.name}
    assert stored.digest == services.api_token_digest(secret)
    assert stored.prefix == secret[:10]


@pytest.mark.parametrize("role", [Membership.Role.ANNOTATOR, Membership.Role.REVIEWER])
def test_only_managing_roles_may_create_tokens(role):
    organization = OrganizationFactory()
    user = member(organization=organization, role=role)
    with pytest.raises(PermissionDenied):
        services.api_token_create(
            organization=organization, created_by=user, name="x", roles=[role]
        )
    assert not ApiToken.objects.exists()


def test_a_member_of_another_organization_may_not_create_tokens_for_this_one():
    organization = OrganizationFactory()
    outsider = member(role=Membership.Role.ADMIN)
    with pytest.raises(PermissionDenied):
        services.api_token_create(
            organization=organization, created_by=outsider, name="x", roles=["admin"]
        )


def test_token_name_and_roles_are_required_and_each_error_names_its_field():
    organization = OrganizationFactory()
    user = member(organization=organization)
    with pytest.raises(ValidationError) as excinfo:
        services.api_token_create(organization=organization, created_by=user, name="  ", roles=[])
    assert set(excinfo.value.message_dict) == {"name", "roles"}


def test_revoking_twice_keeps_the_first_revocation_time():
    organization = OrganizationFactory()
    token, _ = api_token(organization=organization)
    services.api_token_revoke(token=token, revoked_by=token.created_by)
    first = token.revoked_at
    services.api_token_revoke(token=token, revoked_by=token.created_by)
    assert first is not None and token.revoked_at == first


def test_regions_are_seeded_with_every_provincial_division_and_the_named_cities():
    assert Region.objects.filter(level="province").count() == 34
    cities = set(Region.objects.filter(level="city").values_list("name_en", flat=True))
    for name in [
        "Guiyang",
        "Zhengzhou",
        "Chengdu",
        "Chongqing",
        "Xi'an",
        "Hefei",
        "Taiyuan",
        "Hohhot",
        "Lanzhou",
        "Yinchuan",
        "Beijing",
        "Hangzhou",
        "Shanghai",
        "Shenzhen",
    ]:
        assert name in cities
    guiyang = Region.objects.get(name_en="Guiyang")
    assert (guiyang.name_zh, guiyang.parent.name_en, guiyang.parent.parent.code) == (
        "贵阳市",
        "Guizhou",
        "CN",
    )


def test_regions_sync_twice_changes_nothing():
    before = list(Region.objects.values_list("pk", "code", "parent_id", "name_zh", "name_en"))
    services.regions_sync()
    after = list(Region.objects.values_list("pk", "code", "parent_id", "name_zh", "name_en"))
    assert before == after


# --- audit trail -----------------------------------------------------------------------


def test_audit_changes_lists_changed_fields_and_redacts_secrets():
    assert services.audit_changes(
        {"name": "a", "url": "u", "api_key": "old"},
        {"name": "b", "url": "u", "api_key": "new"},
        redact={"api_key"},
    ) == {"name": ["a", "b"], "api_key": ["<redacted>", "<redacted>"]}


def test_audit_event_record_refuses_to_run_outside_a_transaction(monkeypatch):
    monkeypatch.setattr(
        services.transaction, "get_connection", lambda: SimpleNamespace(in_atomic_block=False)
    )
    with pytest.raises(AssertionError, match="inside the transaction"):
        services.audit_event_record(
            event_type=AuditEvent.EventType.PROJECT_CREATED, organization=None
        )


def test_a_system_actor_is_named_by_its_label_and_a_request_token_is_not_borrowed():
    organization = OrganizationFactory()
    token, _ = api_token(organization=organization)
    api_token_bind(token)
    try:
        event = services.audit_event_record(
            event_type=AuditEvent.EventType.TIER_CHANGED,
            organization=organization,
            actor_label="system:tier-review",
        )
        explicit = services.audit_event_record(
            event_type=AuditEvent.EventType.TIER_CHANGED,
            organization=organization,
            actor=token.created_by,
            actor_token=None,
        )
    finally:
        api_token_bind(None)
    assert (event.actor_user, event.actor_token, event.actor_label) == (
        None,
        None,
        "system:tier-review",
    )
    assert explicit.actor_token is None  # explicit arguments win


def test_creating_a_token_is_audited_without_its_secret_or_digest():
    organization = OrganizationFactory()
    token, secret = api_token(organization=organization, name="pipeline")
    event = AuditEvent.objects.get(event_type="api_token.created")
    assert (event.organization, event.actor_user, event.actor_token) == (
        organization,
        token.created_by,
        None,
    )
    assert (event.target_type, event.target_id) == ("tenants.apitoken", str(token.pk))
    assert event.changes == {
        "name": [None, "pipeline"],
        "roles": [None, ["client_developer"]],
        "expires_at": [None, None],
    }
    stored = str(AuditEvent.objects.values("changes", "extra", "target_repr").get())
    assert secret not in stored and token.digest not in stored


def test_revoking_a_token_is_audited_once_and_a_refused_revocation_not_at_all():
    organization = OrganizationFactory()
    token, _ = api_token(organization=organization)
    annotator = member(organization=organization, role=Membership.Role.ANNOTATOR)
    with pytest.raises(PermissionDenied):
        services.api_token_revoke(token=token, revoked_by=annotator)
    assert not AuditEvent.objects.filter(event_type="api_token.revoked").exists()
    services.api_token_revoke(token=token, revoked_by=token.created_by)
    services.api_token_revoke(token=token, revoked_by=token.created_by)
    event = AuditEvent.objects.get(event_type="api_token.revoked")
    assert event.actor_user == token.created_by and event.organization == organization
    assert event.changes["revoked_at"][0] is None


def test_a_change_rolled_back_leaves_no_audit_row():
    organization = OrganizationFactory()
    user = member(organization=organization)
    with pytest.raises(RuntimeError), transaction.atomic():
        services.api_token_create(
            organization=organization, created_by=user, name="x", roles=["client_developer"]
        )
        raise RuntimeError("the caller fails after the change")
    assert not AuditEvent.objects.exists() and not ApiToken.objects.exists()


def test_membership_changes_are_audited_with_the_acting_admin():
    organization = OrganizationFactory()
    admin = member(organization=organization, role=Membership.Role.ADMIN)
    user = UserFactory()
    membership = services.membership_create(
        user=user, organization=organization, role="annotator", actor=admin
    )
    membership_id = membership.pk
    services.membership_role_change(membership=membership, role="reviewer", actor=admin)
    services.membership_delete(membership=membership, actor=admin)
    events = list(AuditEvent.objects.order_by("pk"))
    assert [(e.event_type, e.changes) for e in events] == [
        ("membership.created", {"role": [None, "annotator"]}),
        ("membership.role_changed", {"role": ["annotator", "reviewer"]}),
        ("membership.deleted", {"role": ["reviewer", None]}),
    ]
    assert {(e.organization, e.actor_user, e.target_id) for e in events} == {
        (organization, admin, str(membership_id))
    }
    assert not Membership.objects.filter(user=user).exists()


@pytest.mark.parametrize("role", [Membership.Role.CLIENT_DEVELOPER, Membership.Role.ANNOTATOR])
def test_only_an_admin_may_change_members_and_a_refusal_is_not_audited(role):
    organization = OrganizationFactory()
    someone = member(organization=organization, role=role)
    with pytest.raises(PermissionDenied):
        services.membership_create(
            user=UserFactory(), organization=organization, role="annotator", actor=someone
        )
    membership = Membership.objects.get(user=someone)
    with pytest.raises(PermissionDenied):
        services.membership_role_change(membership=membership, role="admin", actor=someone)
    with pytest.raises(ValidationError):
        services.membership_create(
            user=someone, organization=organization, role="overlord", actor=None
        )
    assert not AuditEvent.objects.exists()
    assert Membership.objects.get(user=someone).role == role


@pytest.mark.postgres
def test_the_database_refuses_to_rewrite_the_audit_trail_but_lets_an_actor_go():
    organization = OrganizationFactory()
    admin = member(organization=organization, role=Membership.Role.ADMIN)
    services.membership_create(
        user=UserFactory(), organization=organization, role="annotator", actor=admin
    )
    event = AuditEvent.objects.get()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(changes={})
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(actor_label="someone else")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).delete()
    # Deleting the actor (ON DELETE SET NULL) is the one update allowed; the label stays.
    admin.delete()
    event.refresh_from_db()
    assert (event.actor_user, event.actor_label) == (None, admin.username)


def test_organization_get_or_create_finds_by_slug_and_creates_once():
    region = RegionFactory()
    first, created = services.organization_get_or_create(
        slug="acme", name="Acme", kind=Organization.Kind.CLIENT, region=region
    )
    again, created_again = services.organization_get_or_create(
        slug="acme", name="Other name", kind=Organization.Kind.WORKFORCE, region=region
    )
    assert (created, created_again) == (True, False)
    assert again.pk == first.pk and again.name == "Acme"


def test_annotators_create_makes_people_without_passwords_as_annotators():
    centre = OrganizationFactory(kind=Organization.Kind.WORKFORCE)
    users = services.annotators_create(organization=centre, people=[("a1", "A 1"), ("a2", "A 2")])
    assert [u.username for u in users] == ["a1", "a2"]
    assert not any(User.objects.get(pk=u.pk).has_usable_password() for u in users)
    assert set(
        Membership.objects.filter(organization=centre).values_list("user__username", "role")
    ) == {("a1", Membership.Role.ANNOTATOR), ("a2", Membership.Role.ANNOTATOR)}


def test_users_skill_tier_set_moves_each_person_to_their_level():
    a, b, c = UserFactory(), UserFactory(), UserFactory()
    assert services.users_skill_tier_set(levels={a.pk: 3, b.pk: 3, c.pk: 2}) == 3
    assert dict(User.objects.values_list("pk", "skill_tier")) == {a.pk: 3, b.pk: 3, c.pk: 2}
