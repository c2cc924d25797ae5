"""The published schema: what generated clients rely on."""

import inspect
import re

import pytest
from drf_spectacular.generators import SchemaGenerator

from tests.factories import RegionFactory

API_TAGS = {
    "Organizations",
    "Regions",
    "Workforces",
    "Tokens",
    "Audit",
    "Projects",
    "Items",
    "Imports",
    "Exports",
    "Review",
    "Workspace",
    "Backends",
    "Pre-labeling",
    "Fine-tuning",
    "Webhooks",
    "Reports",
    "Statements",
    "Tiers",
    "Ledger",
}


@pytest.fixture(scope="module")
def schema():
    return SchemaGenerator().get_schema(request=None, public=True)


def _operations(schema):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            yield method.upper(), path, operation


def _docstrings():
    """Every docstring of the API's views and the classes they inherit from."""
    from config.urls import api_v1

    found = set()
    for pattern in api_v1:
        view = getattr(pattern.callback, "cls", None)
        for cls in inspect.getmro(view) if view else ():
            if cls.__doc__:
                found.add(inspect.cleandoc(cls.__doc__))
            for member in vars(cls).values():
                if callable(member) and getattr(member, "__doc__", None):
                    found.add(inspect.cleandoc(member.__doc__))
    return found


def test_every_operation_has_a_client_description_and_no_docstring(schema):
    docstrings = _docstrings()
    for method, path, operation in _operations(schema):
        description = operation.get("description", "")
        assert description.strip(), f"{method} {path} has no description"
        assert inspect.cleandoc(description) not in docstrings, f"{method} {path}: a docstring"
        assert "caller's organizations" not in description, f"{method} {path}"


def test_operation_ids_are_unique_resource_action_names(schema):
    ids = [operation["operationId"] for _, _, operation in _operations(schema)]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[a-z]+(_[a-z]+)+", i) for i in ids), ids
    by_id = {operation["operationId"]: (m, p) for m, p, operation in _operations(schema)}
    assert by_id["projects_list"] == ("GET", "/api/v1/projects/")
    assert by_id["projects_items_import"] == ("POST", "/api/v1/projects/{id}/import/")
    assert by_id["workspace_projects_review_next"][1].endswith("/review-next/")


def test_every_operation_has_one_tag_by_resource(schema):
    tags = {}
    for method, path, operation in _operations(schema):
        assert len(operation["tags"]) == 1 and operation["tags"][0] in API_TAGS, (method, path)
        tags[operation["operationId"]] = operation["tags"][0]
    assert tags["projects_statement"] == "Statements"
    assert tags["workspace_items_review"] == "Review"
    assert tags["api_tokens_list"] == "Tokens"


def _error_ref(response):
    return response["content"]["application/json"]["schema"]["$ref"]


def test_every_operation_documents_the_error_body_for_what_it_can_refuse(schema):
    for method, path, operation in _operations(schema):
        responses = operation["responses"]
        # A NUL in the address or query is refused everywhere; throttles and
        # authentication apply to every operation.
        expected = {"400", "401", "405", "406", "429", "500"}
        if method in ("POST", "PUT", "PATCH"):
            expected |= {"403", "413", "415"}
        if "{" in path:
            expected.add("404")
        assert expected <= set(responses), (method, path, expected - set(responses))
        for status in expected:
            assert _error_ref(responses[status]) == "#/components/schemas/ErrorResponse"
            assert responses[status]["description"]
    error = schema["components"]["schemas"]["ErrorResponse"]
    assert sorted(error["required"]) == ["errors", "type"]


def test_role_checked_reads_document_403(schema):
    operation = schema["paths"]["/api/v1/reports/regions/"]["get"]
    assert "403" in operation["responses"]
    assert "403" in schema["paths"]["/api/v1/audit-events/"]["get"]["responses"]


def test_query_parameters_say_what_they_require(schema):
    acceptance = schema["paths"]["/api/v1/predictions/acceptance/"]["get"]["parameters"]
    (project,) = [p for p in acceptance if p["name"] == "project"]
    assert project["required"] is True and project["schema"]["type"] == "integer"
    listing = schema["paths"]["/api/v1/items/"]["get"]["parameters"]
    by_name = {p["name"]: p["schema"] for p in listing}
    assert by_name["project"]["type"] == "integer"
    assert by_name["is_gold"]["type"] == "boolean"
    assert by_name["page_size"] == {"type": "integer", "minimum": 1, "maximum": 500}


@pytest.mark.django_db
def test_the_country_has_a_null_parent_code_as_declared(schema, api_client):
    from tests.factories import member

    region = RegionFactory()
    api_client.force_login(member())
    country = region.parent.parent
    body = api_client.get(f"/api/v1/regions/{country.pk}/").json()
    assert body["parent_code"] is None
    declared = schema["components"]["schemas"]["Region"]["properties"]["parent_code"]
    assert declared.get("nullable") is True or "null" in str(declared)
