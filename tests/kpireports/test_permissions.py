"""kpireports.permissions and the jurisdiction selectors: who may read which region."""

import pytest
from django.core.exceptions import PermissionDenied

from kpireports import permissions, selectors
from tenants.models import Membership, Organization, Region, User
from tenants.permissions import principal_attach
from tests.factories import OrganizationFactory, UserFactory, api_token, member

pytestmark = pytest.mark.django_db


def regions(*codes):
    found = {r.code: r for r in Region.objects.filter(code__in=codes)}
    return [found[code] for code in codes]


def office(code, **fields):
    (region,) = regions(code)
    return OrganizationFactory(kind=Organization.Kind.GOVERNMENT, region=region, **fields)


def test_a_province_official_reads_the_province_and_its_cities_only():
    official = member(organization=office("520000"), role=Membership.Role.OFFICIAL)
    guizhou, guiyang, henan, zhengzhou = regions("520000", "520100", "410000", "410100")
    assert permissions.can_read_reports(official)
    assert permissions.can_read_region_report(official, guizhou)
    assert permissions.can_read_region_report(official, guiyang)
    assert not permissions.can_read_region_report(official, henan)
    assert not permissions.can_read_region_report(official, zhengzhou)


def test_a_city_official_reads_the_city_not_its_province():
    official = member(organization=office("520100"), role=Membership.Role.OFFICIAL)
    guizhou, guiyang = regions("520000", "520100")
    assert permissions.can_read_region_report(official, guiyang)
    assert not permissions.can_read_region_report(official, guizhou)


@pytest.mark.parametrize("role", sorted(set(Membership.Role.values) - {Membership.Role.OFFICIAL}))
def test_other_roles_of_an_office_read_no_report(role):
    user = member(organization=office("520000"), role=role)
    (guizhou,) = regions("520000")
    assert not permissions.can_read_reports(user)
    assert not permissions.can_read_region_report(user, guizhou)
    with pytest.raises(PermissionDenied, match="officials of a regional office"):
        permissions.require_can_read_reports(user)


def test_an_official_of_an_inactive_office_or_a_client_reads_nothing():
    closed = member(organization=office("520000", is_active=False), role=Membership.Role.OFFICIAL)
    at_client = member(role=Membership.Role.OFFICIAL)
    assert not permissions.can_read_reports(closed)
    assert not permissions.can_read_reports(at_client)


def test_a_superuser_reads_every_region():
    superuser = UserFactory(is_superuser=True)
    assert all(
        permissions.can_read_region_report(superuser, region)
        for region in regions("520000", "520100", "410000", "410100")
    )


def _as_token(token):
    """The token's creator as a token request sees them (tenants.authentication does this)."""
    user = User.objects.get(pk=token.created_by_id)
    principal_attach(user, token)
    return user


def test_an_admins_token_with_the_official_role_reads_its_own_offices_jurisdiction():
    guizhou_office = office("520000")
    token_owner = member(organization=guizhou_office, role=Membership.Role.ADMIN)
    token, _ = api_token(
        organization=guizhou_office, user=token_owner, roles=[Membership.Role.OFFICIAL]
    )
    as_token = _as_token(token)
    roots = selectors.jurisdiction_roots(user=as_token)
    assert [r.code for r in roots] == ["520000"]
    (guiyang,) = regions("520100")
    assert permissions.can_read_region_report(as_token, guiyang, roots=roots)
    # A session of the same person is not an official's.
    assert not permissions.can_read_reports(token_owner)


def test_an_offices_token_without_the_official_role_has_no_jurisdiction():
    guizhou_office = office("520000")
    token_owner = member(organization=guizhou_office, role=Membership.Role.ADMIN)
    token, _ = api_token(organization=guizhou_office, user=token_owner)  # admin only
    assert selectors.jurisdiction_roots(user=_as_token(token)) == []


def test_a_superusers_token_is_not_the_whole_country():
    guiyang_office = office("520100")
    superuser = member(
        organization=guiyang_office, role=Membership.Role.OFFICIAL, is_superuser=True
    )
    token, _ = api_token(organization=guiyang_office, user=superuser)
    assert [r.code for r in selectors.jurisdiction_roots(user=_as_token(token))] == ["520100"]
    assert selectors.jurisdiction_roots(user=superuser)[0].code == "CN"


def test_a_token_of_a_client_organization_has_no_jurisdiction():
    client = OrganizationFactory(kind=Organization.Kind.CLIENT)
    user = member(organization=client, role=Membership.Role.ADMIN)
    token, _ = api_token(organization=client, user=user, roles=[Membership.Role.OFFICIAL])
    assert selectors.jurisdiction_roots(user=_as_token(token)) == []


def test_a_region_outside_the_jurisdiction_is_none_whether_or_not_it_exists():
    roots = regions("520100")
    assert selectors.region_in_jurisdiction(code="520100", roots=roots).code == "520100"
    assert selectors.region_in_jurisdiction(code="410100", roots=roots) is None
    assert selectors.region_in_jurisdiction(code="no-such-code", roots=roots) is None


def test_pages_and_api_answer_404_outside_the_jurisdiction(client):
    official = member(organization=office("520100"), role=Membership.Role.OFFICIAL)
    client.force_login(official)
    assert client.get("/reports/520100/").status_code == 200
    assert client.get("/reports/410100/").status_code == 404
    assert client.get("/api/v1/reports/regions/520100/").status_code == 200
    assert client.get("/api/v1/reports/regions/410100/").status_code == 404
