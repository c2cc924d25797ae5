"""Backends over REST: who reads a backend's address."""

import pytest

from compute.models import Backend
from tenants.models import Membership, Organization
from tests.factories import OrganizationFactory, UserFactory, member

pytestmark = pytest.mark.django_db

Role = Membership.Role
CENTRE_URL = "http://10.0.0.5:8000/v1"
PLATFORM_URL = "https://llm.internal.example.cn/v1"


@pytest.fixture
def backends():
    centre = OrganizationFactory(kind=Organization.Kind.WORKFORCE)
    own = Backend.objects.create(organization=centre, name="gy-vllm", base_url=CENTRE_URL)
    shared = Backend.objects.create(name="shared-qwen", kind="openai", base_url=PLATFORM_URL)
    return centre, own, shared


def addresses(api_client, user) -> dict[str, str | None]:
    api_client.force_authenticate(user)
    response = api_client.get("/api/v1/backends/")
    assert response.status_code == 200
    return {row["name"]: row["base_url"] for row in response.json()["results"]}


@pytest.mark.parametrize("role", [Role.ADMIN, Role.PROJECT_MANAGER])
def test_the_owning_organizations_backend_managers_read_its_address(api_client, backends, role):
    centre, _, _ = backends
    seen = addresses(api_client, member(organization=centre, role=role))
    assert seen == {"gy-vllm": CENTRE_URL, "shared-qwen": None}


@pytest.mark.parametrize("role", [Role.CLIENT_DEVELOPER, Role.ANNOTATOR, Role.REVIEWER])
def test_other_members_see_the_backend_but_not_its_address(api_client, backends, role):
    centre, own, _ = backends
    api_client.force_authenticate(member(organization=centre, role=role))
    row = api_client.get(f"/api/v1/backends/{own.pk}/").json()
    assert row["name"] == "gy-vllm" and row["health"] == "unknown" and row["base_url"] is None
    assert CENTRE_URL not in api_client.get("/api/v1/backends/").content.decode()


def test_a_client_sees_platform_wide_backends_without_their_address(api_client, backends):
    client = member(organization=OrganizationFactory(), role=Role.CLIENT_DEVELOPER)
    assert addresses(api_client, client) == {"shared-qwen": None}


def test_a_manager_elsewhere_does_not_read_a_platform_wide_address(api_client, backends):
    manager = member(organization=OrganizationFactory(), role=Role.ADMIN)
    assert addresses(api_client, manager) == {"shared-qwen": None}


def test_platform_staff_read_every_address(api_client, backends):
    staff = UserFactory(is_staff=True, is_superuser=True)
    seen = addresses(api_client, staff)
    assert seen["shared-qwen"] == PLATFORM_URL


def test_the_schema_says_the_address_may_be_null_in_responses_only(api_client):
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(public=True)
    components = schema["components"]["schemas"]
    response = components["Backend"]["properties"]["base_url"]
    assert response["nullable"] is True and response["format"] == "uri"
    request = components.get("BackendRequest")
    if request is not None:  # only when the schema splits request and response components
        assert "nullable" not in request["properties"]["base_url"]
