"""Input that once came back as a 500 gets a 4xx with the API's error body."""

import json

import pytest
from rest_framework.test import APIClient

from tests.factories import annotation_project, api_token, items, worker

pytestmark = pytest.mark.django_db


def _standard(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["type"] in ("client_error", "validation_error")
    assert body["errors"][0]["code"] == code
    assert body["errors"][0]["detail"]
    return body


@pytest.fixture
def lease():
    project = annotation_project()
    items(project, 2)
    annotator = worker(project)
    api = APIClient()
    api.force_login(annotator)
    leased = api.post(f"/api/v1/workspace/projects/{project.pk}/next/").json()
    return api, f"/api/v1/workspace/assignments/{leased['id']}/submit/"


@pytest.mark.parametrize(
    "path", ["/api/v1/reports/regions/52%00/", "/api/v1/regions/?parent=52%00"]
)
def test_a_nul_byte_in_an_api_address_is_a_400(client, path):
    _standard(client.get(path), 400, "null_character")


@pytest.mark.parametrize("path", ["/reports/%00/", "/reports/520100%00/report.csv"])
def test_a_nul_byte_in_a_page_address_is_a_400(client, path):
    response = client.get(path)
    assert response.status_code == 400
    assert "NUL" in response.content.decode()


@pytest.mark.parametrize("month", ["9999-12", "0001-01", "1899-12", "2026-13", "26-05"])
def test_a_statement_month_out_of_range_is_refused_naming_the_field(month):
    project = annotation_project()
    _, secret = api_token(organization=project.organization)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    response = api.get(f"/api/v1/projects/{project.pk}/statement/", {"month": month})
    body = _standard(response, 400, "invalid" if month in ("2026-13", "26-05") else "out_of_range")
    assert body["errors"][0]["attr"] == "month"


def test_a_submit_nested_100000_deep_is_a_400(lease):
    api, url = lease
    body = '{"answer": ' + "[" * 100_000 + "]" * 100_000 + "}"
    response = api.post(url, body, content_type="application/json")
    _standard(response, 400, "parse_error")


def test_a_submit_nested_past_the_limit_names_where(lease, settings):
    api, url = lease
    answer = {"label": "positive", "extra": json.loads("[" * 80 + "]" * 80)}
    response = api.post(url, {"answer": answer}, format="json")
    body = _standard(response, 400, "too_deep")
    assert body["errors"][0]["attr"].startswith("answer.extra")


def test_a_nul_in_an_answer_is_a_400_naming_the_field(lease):
    api, url = lease
    response = api.post(url, {"answer": {"label": "pos\u0000itive"}}, format="json")
    body = _standard(response, 400, "null_character")
    assert body["errors"][0]["attr"] == "answer.label"


def test_a_20_mb_submit_is_a_413_before_it_is_read(lease):
    api, url = lease
    body = json.dumps({"answer": {"label": "positive"}, "note": "x" * (20 * 1024 * 1024)})
    response = api.post(url, body, content_type="application/json")
    _standard(response, 413, "payload_too_large")


def test_a_body_found_too_big_while_read_is_a_413_too():
    """Django raises RequestDataTooBig when it measures a body itself: same 413."""
    from django.core.exceptions import RequestDataTooBig
    from drf_standardized_errors.handler import exception_handler

    response = exception_handler(RequestDataTooBig("too big"), {"view": None, "request": None})
    assert response.status_code == 413
    assert response.data["errors"][0]["code"] == "payload_too_large"


def test_an_upload_over_its_limit_is_a_413(settings):
    project = annotation_project()
    _, secret = api_token(organization=project.organization)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    settings.UPLOAD_MAX_BYTES = 10_000
    upload = ("items.jsonl", b'{"text": "' + b"x" * 20_000 + b'"}\n')
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = api.post(
        f"/api/v1/projects/{project.pk}/import/",
        {"file": SimpleUploadedFile(*upload)},
        format="multipart",
    )
    _standard(response, 413, "payload_too_large")


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/backends/-2.2e-313/",
        "/api/v1/workspace/assignments/0.5/skip/",
        "/api/v1/no-such-thing/",
        "/api/v1/me",
    ],
)
def test_an_api_address_no_route_matches_is_a_json_404(client, path):
    response = client.get(path)
    assert response["Content-Type"] == "application/json"
    _standard(response, 404, "not_found")
