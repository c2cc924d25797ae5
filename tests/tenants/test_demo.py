import pytest
from django.contrib.auth import authenticate
from django.core.management import CommandError, call_command
from django.test import RequestFactory

from tenants.demo import DEMO_PASSWORD, demo_seed
from tenants.models import Membership, Organization, User

pytestmark = pytest.mark.django_db


def _snapshot():
    return (
        list(User.objects.order_by("pk").values()),
        list(Organization.objects.order_by("pk").values()),
        list(Membership.objects.order_by("pk").values_list("user_id", "organization_id", "role")),
    )


def test_seeding_twice_changes_nothing():
    first = demo_seed()
    before = _snapshot()
    second = demo_seed()
    assert first.created > 0
    assert second.created == 0
    assert _snapshot() == before


def test_there_is_one_working_demo_login_per_role():
    result = demo_seed()
    roles = {role for _, role, _ in result.logins}
    assert roles == set(Membership.Role.values)
    for username, role, _ in result.logins:
        # Login throttling (django-axes) needs the request a login comes with.
        request = RequestFactory().post("/accounts/login/")
        user = authenticate(request, username=username, password=DEMO_PASSWORD)
        assert user is not None, username
        assert user.memberships.filter(role=role).exists()


def test_seed_demo_refuses_without_debug(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="public password"):
        call_command("seed_demo")
    assert not User.objects.exists()


def test_seed_demo_command_adds_the_demo_projects_once(settings, capsys):
    from annotation.models import Item, Project

    settings.DEBUG = True
    call_command("seed_demo")
    first = capsys.readouterr().out
    projects, items = Project.objects.count(), Item.objects.count()
    call_command("seed_demo")
    second = capsys.readouterr().out
    assert projects == 3 and items > 30
    # Every project has enough for two annotators to work a while, not three items.
    for project in Project.objects.all():
        assert project.items.count() >= 60, project.name
    assert (Project.objects.count(), Item.objects.count()) == (projects, items)
    assert "0 row(s) created" in second and "0 row(s) created" not in first
    assert "annotator" in second  # the logins are printed every time


def test_the_demo_city_office_gets_its_token_on_the_tokens_page():
    """The demo's path to a government office's token: official-city makes one at /tokens/."""
    import re

    from django.test import Client

    from tenants.models import ApiToken

    demo_seed()
    browser = Client()
    # Through the login page: login throttling (django-axes) needs the request.
    login = browser.post(
        "/accounts/login/", {"username": "official-city", "password": DEMO_PASSWORD}
    )
    assert login.status_code == 302
    office = Organization.objects.get(slug="guiyang-bigdata-office")
    created = browser.post(
        "/tokens/", {"organization": office.pk, "name": "KPI importer", "roles": ["official"]}
    )
    assert created.status_code == 201
    secret = re.search(r"tw_[A-Za-z0-9_-]{40,}", created.content.decode()).group(0)
    assert ApiToken.objects.get().organization == office
    api = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert [r["code"] for r in api.get("/api/v1/reports/regions/").json()] == ["520100"]
    assert api.get("/api/v1/me/").json()["principal"] == "api_token"
