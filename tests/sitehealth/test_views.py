import json
import logging

import pytest
from django.utils import timezone

from config.celery_app import app
from sitehealth.models import Heartbeat

pytestmark = pytest.mark.django_db


def test_healthz_is_200_with_database_and_broker_status(client):
    Heartbeat.objects.create(source="beat", seen_at=timezone.now())
    response = client.get("/healthz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert body["checks"]["database"]["status"] == "ok"
    assert body["checks"]["broker"]["status"] == "ok"
    assert body["heartbeats"]["beat"]["fresh"] is True
    assert response["Cache-Control"].startswith("max-age=0")


def test_healthz_is_503_naming_the_broker_when_it_is_down(client, caplog):
    original = app.conf.broker_url
    app.conf.broker_url = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    try:
        with caplog.at_level(logging.CRITICAL):
            response = client.get("/healthz")
    finally:
        app.conf.broker_url = original
    body = json.loads(response.content)
    assert response.status_code == 503
    assert body["status"] == "error"
    assert body["checks"]["database"]["status"] == "ok"
    assert body["checks"]["broker"]["status"] == "error"
    assert "error" in body["checks"]["broker"]


def test_healthz_tells_the_public_the_kind_of_failure_and_the_log_the_rest(client, caplog):
    # Anyone can ask /healthz: an address inside the cluster must not appear.
    original = app.conf.broker_url
    app.conf.broker_url = "redis://127.0.0.1:1/0"
    try:
        with caplog.at_level(logging.WARNING, logger="sitehealth.selectors"):
            response = client.get("/healthz")
    finally:
        app.conf.broker_url = original
    error = response.json()["checks"]["broker"]["error"]
    assert error.isidentifier() and "127.0.0.1" not in response.content.decode()
    logged = [r for r in caplog.records if r.name == "sitehealth.selectors"]
    assert logged and logged[0].check == "broker" and "127.0.0.1" in logged[0].error


def test_healthz_needs_no_login_and_only_answers_get(client):
    assert client.post("/healthz").status_code == 405
