"""A small, hand-checkable value-chain history across two provinces."""

from datetime import datetime
from decimal import Decimal

import pytest
from django.utils import timezone

from tenants.models import Membership, Organization, Region
from tests.factories import OrganizationFactory, UserFactory, api_token, member
from valuechain.services import ledger_post, rollups_catch_up

SEPT, OCT = (2026, 9), (2026, 10)


def _at(month, day=15):
    return timezone.make_aware(datetime(*month, day, 10, 0))


@pytest.fixture
def history(db):
    regions = {
        r.code: r
        for r in Region.objects.filter(code__in=["520000", "520100", "520300", "410000", "410100"])
    }
    client = OrganizationFactory(kind=Organization.Kind.CLIENT, name="Acme Models")
    w1, w2, w3 = UserFactory(display_name="Secret Person"), UserFactory(), UserFactory()
    posts = [
        # key, month, city, tier, kind, tokens in, out, revenue, cost, worker, backend, gpu_ms
        ("gy-sept-t1", SEPT, "520100", 1, "annotation", 900, 100, "0.80", "0.40", w1, None, 0),
        ("gy-oct-t3", OCT, "520100", 3, "annotation", 1800, 200, "7.20", "3.60", w1, None, 0),
        (
            "gy-oct-llm",
            OCT,
            "520100",
            None,
            "inference",
            9000,
            1000,
            "0.013",
            "0.01",
            None,
            77,
            3_600_000,
        ),
        ("zy-oct-t1", OCT, "520300", 1, "annotation", 900, 100, "0.80", "0.40", w2, None, 0),
        ("zz-sept-t1", SEPT, "410100", 1, "annotation", 4500, 500, "4.00", "2.00", w3, None, 0),
        ("zz-oct-t1", OCT, "410100", 1, "annotation", 4500, 500, "4.00", "2.00", w3, None, 0),
    ]
    for key, month, city, tier, kind, tin, tout, revenue, cost, worker, backend, gpu in posts:
        ledger_post(
            idempotency_key=key,
            kind=kind,
            occurred_at=_at(month),
            region_id=regions[city].pk,
            client_id=client.pk,
            skill_tier=tier,
            tokens_input=tin,
            tokens_output=tout,
            gpu_ms=gpu,
            revenue=Decimal(revenue),
            cost=Decimal(cost),
            worker_id=worker.pk if worker else None,
            backend_id=backend,
        )
    rollups_catch_up()  # the batcher, which beat runs every few seconds
    guizhou = OrganizationFactory(
        kind=Organization.Kind.GOVERNMENT, name="Guizhou Bureau", region=regions["520000"]
    )
    guiyang = OrganizationFactory(
        kind=Organization.Kind.GOVERNMENT, name="Guiyang Office", region=regions["520100"]
    )
    province_official = member(organization=guizhou, role=Membership.Role.OFFICIAL)
    city_official = member(organization=guiyang, role=Membership.Role.OFFICIAL)
    # An admin of the office gives its token the official role it reads reports with.
    _, province_secret = api_token(
        organization=guizhou,
        user=member(organization=guizhou, role=Membership.Role.ADMIN),
        roles=[Membership.Role.OFFICIAL],
    )
    _, client_secret = api_token(
        organization=client, user=member(organization=client, role=Membership.Role.ADMIN)
    )
    return {
        "regions": regions,
        "client": client,
        "province_official": province_official,
        "city_official": city_official,
        "province_secret": province_secret,
        "client_secret": client_secret,
        "secret_person": w1,
    }
