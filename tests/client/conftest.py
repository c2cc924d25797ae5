"""A live Tokenworks for the client's tests: pytest-django's live server (real HTTP,
PostgreSQL) and a real Celery worker process on Redis, with the organizations,
people and API tokens of the client's loop."""

from dataclasses import dataclass
from decimal import Decimal

import pytest

from tenants.models import Membership, Organization
from tests.compute.fake_openai import FakeOpenAI
from tests.factories import MembershipFactory, OrganizationFactory, RegionFactory, api_token, member


@dataclass
class LiveLoop:
    url: str
    client_token: str  # a client developer's, of the client organization
    annotator_token: str  # an annotator's, of the centre
    official_token: str  # Guizhou's provincial office
    client_org: Organization
    workforce: Organization
    backend_id: int
    fake: FakeOpenAI
    worker_log: object


@pytest.fixture
def live_loop(live_server, celery_workers, settings):
    """Everything the loop needs, with a worker started; yields a LiveLoop."""
    from compute.models import Backend

    guiyang = RegionFactory()  # 520100, inside 520000 (Guizhou)
    client_org = OrganizationFactory(kind=Organization.Kind.CLIENT, name="Acme Models")
    workforce = OrganizationFactory(kind=Organization.Kind.WORKFORCE, region=guiyang)
    office = OrganizationFactory(kind=Organization.Kind.GOVERNMENT, region=guiyang.parent)
    developer = member(organization=client_org, role=Membership.Role.CLIENT_DEVELOPER)
    annotator = member(organization=workforce, role=Membership.Role.ANNOTATOR, skill_tier=1)
    official = member(organization=office, role=Membership.Role.OFFICIAL)
    _token, client_secret = api_token(organization=client_org, user=developer)
    # Annotators do not make tokens: a team lead who also labels makes an annotator's one.
    MembershipFactory(user=annotator, organization=workforce, role=Membership.Role.PROJECT_MANAGER)
    _token, annotator_secret = api_token(
        organization=workforce, user=annotator, roles=[Membership.Role.ANNOTATOR]
    )
    _token, official_secret = api_token(organization=office, user=official)
    celery_workers()
    with FakeOpenAI() as fake:
        # Platform-wide, as the built-in model is in the demo: clients may fine-tune on it.
        backend = Backend.objects.create(
            organization=None,
            name="fake vLLM",
            kind="vllm",
            base_url=fake.url,
            models_served=["fake-model"],
            price_input_per_million=Decimal("1.00"),
            price_output_per_million=Decimal("2.00"),
        )
        yield LiveLoop(
            url=live_server.url,
            client_token=client_secret,
            annotator_token=annotator_secret,
            official_token=official_secret,
            client_org=client_org,
            workforce=workforce,
            backend_id=backend.pk,
            fake=fake,
            worker_log=celery_workers.log,
        )
