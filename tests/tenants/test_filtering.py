"""List filters and pagination take what the schema says, and refuse the rest."""

import pytest
from rest_framework.test import APIClient

from tests.factories import annotation_project, api_token, items

pytestmark = pytest.mark.django_db


@pytest.fixture
def api():
    project = annotation_project()
    items(project, 3)
    _, secret = api_token(organization=project.organization)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    client.project = project
    return client


def test_an_id_filter_naming_nothing_gives_an_empty_page(api):
    response = api.get("/api/v1/items/", {"project": 0})
    assert response.status_code == 200 and response.json()["count"] == 0
    mine = api.get("/api/v1/items/", {"project": api.project.pk})
    assert mine.json()["count"] == 3


@pytest.mark.parametrize(
    ("path", "query", "attr"),
    [
        ("/api/v1/items/", {"project": ""}, "project"),
        ("/api/v1/items/", {"project": "x"}, "project"),
        ("/api/v1/items/", {"is_gold": "null"}, "is_gold"),
        ("/api/v1/memberships/", {"role": ""}, "role"),
        ("/api/v1/items/", {"page": "0"}, "page"),
        ("/api/v1/items/", {"page_size": "501"}, "page_size"),
        ("/api/v1/items/", {"page_size": "null"}, "page_size"),
        ("/api/v1/predictions/acceptance/", {}, "project"),
    ],
)
def test_a_parameter_that_is_not_what_the_schema_says_is_a_400_naming_it(api, path, query, attr):
    response = api.get(path, query)
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["type"] == "validation_error"
    assert body["errors"][0]["attr"] == attr


def test_true_false_filters_and_the_last_page_still_work(api):
    assert api.get("/api/v1/items/", {"is_gold": "false"}).json()["count"] == 3
    assert api.get("/api/v1/items/", {"is_gold": "true"}).json()["count"] == 0
    assert api.get("/api/v1/items/", {"page": "last", "page_size": 2}).status_code == 200
