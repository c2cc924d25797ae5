import pytest
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

URL = "/api/v1/reports/regions/"
AUTUMN = {"start": "2026-09", "end": "2026-10"}


def _session(user):
    client = APIClient()
    client.force_login(user)
    return client


def _token(secret):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def test_a_province_office_lists_the_province_and_its_cities(history):
    codes = {r["code"] for r in _session(history["province_official"]).get(URL).json()}
    assert {"520000", "520100", "520300"} <= codes
    assert all(code.startswith("52") for code in codes)


def test_a_city_office_sees_its_city_and_nothing_else(history):
    client = _session(history["city_official"])
    assert [r["code"] for r in client.get(URL).json()] == ["520100"]
    assert client.get(f"{URL}520100/", AUTUMN).status_code == 200
    for code in ("520000", "520300", "410100", "999999"):
        response = client.get(f"{URL}{code}/", AUTUMN)
        assert response.status_code == 404, code
        assert "Zunyi" not in response.content.decode()


def test_a_province_office_never_reaches_another_province(history):
    client = _session(history["province_official"])
    assert client.get(f"{URL}410000/", AUTUMN).status_code == 404
    assert client.get(f"{URL}410100/", AUTUMN).status_code == 404


def test_the_report_over_rest_with_the_offices_token(history):
    response = _token(history["province_secret"]).get(f"{URL}520000/", AUTUMN)
    assert response.status_code == 200
    body = response.json()
    assert body["summary"]["tokens_total"] == 14_000
    assert body["summary"]["revenue"] == "8.81"  # exact decimal strings, never floats
    assert body["summary"]["value_chain_index"] == "0.8182"
    assert body["period"]["months"] == ["2026-09", "2026-10"]
    assert [p["code"] for p in body["map"]] == ["520000"]
    assert "definition" in body["definitions"]["value_chain_index"]
    text = response.content.decode()
    assert "Secret Person" not in text and history["secret_person"].username not in text


def test_reports_are_for_officials_only(history):
    assert _token(history["client_secret"]).get(URL).status_code == 403
    assert APIClient().get(URL).status_code in (401, 403)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"start": "2026-13"}, "start"),
        ({"start": "Sept 2026"}, "start"),
        ({"end": "2026-9"}, "end"),
        ({"start": "2026-10", "end": "2026-09"}, "start"),
        ({"start": "2020-01", "end": "2026-09"}, "start"),
        ({"compare": "decade"}, "compare"),
        ({"tier": "7"}, "tier"),
        ({"trap_threshold": "1.5"}, "trap_threshold"),
        ({"format": "docx"}, "format"),
    ],
)
def test_bad_parameters_name_the_field(history, params, field):
    response = _session(history["province_official"]).get(f"{URL}520000/", params)
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert errors[0]["attr"] == field
    assert errors[0]["detail"]


def test_an_empty_period_answers_zeros(history):
    response = _session(history["province_official"]).get(
        f"{URL}520000/", {"start": "2024-01", "end": "2024-02"}
    )
    assert response.status_code == 200
    assert response.json()["has_data"] is False
    assert response.json()["summary"]["tokens_total"] == 0


@pytest.mark.parametrize(
    ("file_format", "content_type", "magic"),
    [
        ("csv", "text/csv", b"\xef\xbb\xbf"),
        ("xlsx", "application/vnd", b"PK"),
        ("pdf", "application/pdf", b"%PDF"),
    ],
)
def test_the_dashboards_files_over_rest(history, file_format, content_type, magic):
    """An office's own systems get the same CSV, XLSX and PDF as the dashboard's download."""
    response = _session(history["province_official"]).get(
        f"{URL}520000/", {**AUTUMN, "format": file_format}
    )
    assert response.status_code == 200
    assert response["Content-Type"].startswith(content_type)
    assert response.content.startswith(magic)
    assert f"tokenworks-520000-202609-202610.{file_format}" in response["Content-Disposition"]
