"""The login page: throttling of wrong passwords (django-axes)."""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.utils import timezone

from tests.factories import DEFAULT_PASSWORD, member

pytestmark = pytest.mark.django_db

LOCKED = "Too many failed logins for this username from your address"


def log_in(client, username, password, address="203.0.113.7"):
    return client.post(
        "/accounts/login/",
        {"username": username, "password": password},
        REMOTE_ADDR=address,
    )


def fail(client, username, times, address="203.0.113.7"):
    for _ in range(times):
        response = log_in(client, username, "wrong password", address)
        assert response.status_code in {200, 429}


def test_right_password_after_the_limit_is_refused_with_the_lockout_message(client, settings):
    user = member()
    fail(client, user.username, settings.AXES_FAILURE_LIMIT)

    response = log_in(client, user.username, DEFAULT_PASSWORD)

    assert response.status_code == 429
    page = response.content.decode()
    assert LOCKED in page and "Try again in 15 minutes" in page
    assert "_auth_user_id" not in client.session


def test_wrong_passwords_under_the_limit_do_not_lock(client, settings):
    user = member()
    fail(client, user.username, settings.AXES_FAILURE_LIMIT - 1)
    response = log_in(client, user.username, DEFAULT_PASSWORD)
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(user.pk)


def test_the_lock_ends_after_the_cool_off(client, settings):
    user = member()
    fail(client, user.username, settings.AXES_FAILURE_LIMIT)
    assert log_in(client, user.username, DEFAULT_PASSWORD).status_code == 429

    # The cool-off passes: the failures are now older than it.
    AccessAttempt.objects.update(
        attempt_time=timezone.now() - settings.AXES_COOLOFF_TIME - timedelta(seconds=1)
    )
    response = log_in(client, user.username, DEFAULT_PASSWORD)

    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(user.pk)


def test_another_user_from_the_same_address_is_unaffected(client, settings):
    victim, colleague = member(), member()
    fail(client, victim.username, settings.AXES_FAILURE_LIMIT + 3)

    response = log_in(client, colleague.username, DEFAULT_PASSWORD)

    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(colleague.pk)


def test_the_same_user_from_another_address_is_unaffected(client, settings):
    # An attacker elsewhere cannot lock the real user out of their own office.
    user = member()
    fail(client, user.username, settings.AXES_FAILURE_LIMIT, address="198.51.100.9")
    response = log_in(client, user.username, DEFAULT_PASSWORD, address="203.0.113.7")
    assert response.status_code == 302


def test_the_admin_login_is_throttled_too(client, settings):
    admin = member()
    admin.is_staff = admin.is_superuser = True
    admin.save()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post(
            "/admin/login/",
            {"username": admin.username, "password": "wrong"},
            REMOTE_ADDR="203.0.113.7",
        )
    response = client.post(
        "/admin/login/",
        {"username": admin.username, "password": DEFAULT_PASSWORD},
        REMOTE_ADDR="203.0.113.7",
    )
    assert response.status_code == 429 and LOCKED in response.content.decode()


def test_the_lockout_message_is_translated(client, settings):
    user = member()
    fail(client, user.username, settings.AXES_FAILURE_LIMIT)
    client.cookies["django_language"] = "zh-hans"
    page = log_in(client, user.username, DEFAULT_PASSWORD).content.decode()
    assert LOCKED not in page and "15 分钟" in page


def test_behind_trusted_proxies_the_client_is_counted_from_the_right(rf, settings):
    from config.client_address import client_address

    request = rf.get("/", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.7, 10.0.0.2")
    request.META["REMOTE_ADDR"] = "10.0.0.3"
    settings.TRUSTED_PROXY_COUNT = 0
    assert client_address(request) == "10.0.0.3"
    settings.TRUSTED_PROXY_COUNT = 2
    # The spoofed left-most entry is never taken.
    assert client_address(request) == "203.0.113.7"
