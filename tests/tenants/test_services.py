import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from tenants import services
from tenants.models import ApiToken, Membership, Organization, Region, User
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


@pytest.mark.parametrize("role", [Membership.Role.ANNOTATOR, Membership.Role.OFFICIAL])
def test_only_managing_roles_may_create_tokens(role):
    organization = OrganizationFactory()
    user = member(organization=organization, role=role)
    with pytest.raises(PermissionDenied):
        services.api_token_create(organization=organization, created_by=user, name="x")
    assert not ApiToken.objects.exists()


def test_a_member_of_another_organization_may_not_create_tokens_for_this_one():
    organization = OrganizationFactory()
    outsider = member(role=Membership.Role.ADMIN)
    with pytest.raises(PermissionDenied):
        services.api_token_create(organization=organization, created_by=outsider, name="x")


def test_token_name_is_required():
    organization = OrganizationFactory()
    user = member(organization=organization)
    with pytest.raises(ValidationError) as excinfo:
        services.api_token_create(organization=organization, created_by=user, name="  ")
    assert "name" in excinfo.value.message_dict


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
