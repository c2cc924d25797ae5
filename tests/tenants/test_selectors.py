import pytest

from tenants.models import Region
from tenants.selectors import region_descendant_ids, roles_for_user
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_a_province_includes_its_cities_and_nothing_else():
    guizhou = Region.objects.get(code="520000")
    ids = set(region_descendant_ids(region=guizhou))
    assert Region.objects.get(code="520100").pk in ids  # Guiyang
    assert Region.objects.get(code="520300").pk in ids  # Zunyi
    assert Region.objects.get(code="410100").pk not in ids  # Zhengzhou, Henan


def test_roles_ignore_inactive_organizations():
    user = UserFactory()
    MembershipFactory(user=user, organization=OrganizationFactory(is_active=False), role="admin")
    MembershipFactory(user=user, role="annotator")
    assert roles_for_user(user=user) == {"annotator"}
