import json

import jsonschema
import pytest

from compute.structured import InvalidAnswer, answer_json_schema, answer_parse, response_format
from tests.factories import annotation_project

pytestmark = pytest.mark.django_db


def test_classification_becomes_a_strict_json_schema_with_the_labels():
    project = annotation_project()
    fmt = response_format(project)
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    assert fmt["json_schema"]["schema"] == {
        "type": "object",
        "properties": {"label": {"type": "string", "enum": ["positive", "negative"]}},
        "required": ["label"],
        "additionalProperties": False,
    }


@pytest.mark.parametrize(
    ("task_type", "schema", "answer"),
    [
        ("multi_label", {"labels": ["a", "b", "c"]}, {"labels": ["a", "c"]}),
        ("spans", {"labels": ["PER"]}, {"spans": [{"start": 0, "end": 2, "label": "PER"}]}),
        ("preference", {"allow_tie": False}, {"choice": "b"}),
        ("rating", {"min": 1, "max": 4}, {"rating": 3}),
        ("text", {}, {"text": "好的"}),
    ],
)
def test_each_task_type_has_a_schema_its_answers_satisfy(task_type, schema, answer):
    project = annotation_project(task_type=task_type, label_schema=schema)
    jsonschema.Draft202012Validator.check_schema(
        answer_json_schema(project.task_type, project.label_schema)
    )
    data = {"text": "王小丽", "prompt": "p", "response_a": "a", "response_b": "b", "response": "r"}
    assert answer_parse(project, json.dumps(answer), data) == answer


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("positive", "not JSON"),
        ('{"label": "neutral"}', "is not one of"),
        ('{"label": "positive", "extra": 1}', "Additional properties"),
        ("{}", "'label' is a required property"),
    ],
)
def test_invalid_replies_are_refused_with_the_reason(content, message):
    project = annotation_project()
    with pytest.raises(InvalidAnswer, match=message):
        answer_parse(project, content, {"text": "x"})


def test_fenced_json_is_accepted():
    project = annotation_project()
    assert answer_parse(project, '```json\n{"label": "negative"}\n```', {"text": "x"}) == {
        "label": "negative"
    }


def test_span_offsets_are_checked_against_the_text():
    project = annotation_project(task_type="spans", label_schema={"labels": ["LOC"]})
    with pytest.raises(InvalidAnswer, match="past the end"):
        answer_parse(
            project, '{"spans": [{"start": 0, "end": 9, "label": "LOC"}]}', {"text": "贵阳"}
        )
