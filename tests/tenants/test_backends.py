"""tenants.backends.ModelBackend: the session's user read by hand-written SQL."""

import pytest
from django.contrib.auth import authenticate
from django.contrib.auth.signals import user_login_failed
from django.test import Client, RequestFactory

from tenants.backends import ModelBackend, user_by_pk
from tenants.models import User

pytestmark = pytest.mark.django_db


def test_the_user_read_by_sql_is_the_user_the_orm_reads():
    user = User.objects.create_user(
        username="li.na",
        password="x" * 12,
        email="li@example.cn",
        display_name="李娜",
        skill_tier=3,
    )
    by_sql, by_orm = user_by_pk(user.pk), User.objects.get(pk=user.pk)
    for field in User._meta.concrete_fields:
        assert getattr(by_sql, field.attname) == getattr(by_orm, field.attname), field.name
    assert by_sql._state.adding is False and by_sql._state.db == "default"
    assert user_by_pk(user.pk + 1000) is None


def test_an_inactive_user_has_no_session_user():
    user = User.objects.create_user(username="gone", password="x" * 12, is_active=False)
    assert ModelBackend().get_user(user.pk) is None


def test_a_login_uses_it_and_a_session_of_djangos_backend_still_works():
    user = User.objects.create_user(username="wang", password="right-password-1")
    client = Client()
    response = client.post("/accounts/login/", {"username": "wang", "password": "right-password-1"})
    assert response.status_code == 302, response.content
    assert client.session["_auth_user_backend"] == "tenants.backends.ModelBackend"
    assert client.get("/api/v1/workspace/me/").status_code == 200
    legacy = Client()
    legacy.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    assert legacy.get("/api/v1/workspace/me/").status_code == 200


def test_a_wrong_password_is_refused_and_counted_once():
    User.objects.create_user(username="zhao", password="right-password-1")
    failures = []

    def failed(**kwargs):
        failures.append(kwargs["credentials"]["username"])

    user_login_failed.connect(failed)
    try:
        for username in ("zhao", "nobody"):
            request = RequestFactory().post("/accounts/login/")
            assert authenticate(request, username=username, password="wrong-password-1") is None
    finally:
        user_login_failed.disconnect(failed)
    assert failures == ["zhao", "nobody"]  # once each, whichever backend stopped
    request = RequestFactory().post("/accounts/login/")
    assert authenticate(request, username="zhao", password="right-password-1") is not None
