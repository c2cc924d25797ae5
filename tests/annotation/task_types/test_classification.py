from types import SimpleNamespace

import pytest

from annotation.schemas import answer_key, item_text
from annotation.task_types import SchemaError, answer_validate, task_type_spec

from .conftest import refused, schema_for

SPEC = task_type_spec("classification")


def test_label_schema_fills_hotkeys_and_needs_two_labels():
    assert schema_for("classification", ["pos", {"value": "neg", "title": "Negative"}]) == {
        "labels": [
            {"value": "pos", "title": "pos", "hotkey": "1"},
            {"value": "neg", "title": "Negative", "hotkey": "2"},
        ]
    }
    with pytest.raises(SchemaError) as excinfo:
        schema_for("classification", ["only"])
    assert excinfo.value.field == "label_schema.labels"


def test_answers_name_a_label_of_the_project(source):
    schema = schema_for("classification", ["pos", "neg"])
    assert answer_validate("classification", schema, {"label": "neg"}, source=source) == {
        "label": "neg"
    }
    error = refused("classification", schema, {"label": "meh"}, source=source)
    assert error.field == "answer.label"
    assert error.message == "'meh' is not one of the project's labels: pos, neg"


def test_key_text_and_shortcuts():
    assert answer_key("classification", {"label": "pos"}) == "pos"
    assert item_text("classification", {"text": "好评", "other": 1}) == "好评"
    assert SPEC.answer_text({"label": "pos"}) == ""
    assert SPEC.gold_from_shorthand("pos") == {"label": "pos"}
    assert SPEC.votable and SPEC.agreement == "nominal"
    assert SPEC.editor_shortcuts({})[0][0] == "1–9"


def test_export_records():
    project = SimpleNamespace(
        label_schema=schema_for("classification", ["pos", "neg"]), instructions="Be kind."
    )
    assert SPEC.results_label({"label": "neg"}) == "neg"
    assert SPEC.training_record(project, "openai_chat", {"text": "t"}, {"label": "neg"}) == {
        "messages": [
            {"role": "system", "content": "Be kind.\n\nAnswer with exactly one label: pos, neg."},
            {"role": "user", "content": "t"},
            {"role": "assistant", "content": "neg"},
        ]
    }
    assert SPEC.training_record(project, "dpo", {"text": "t"}, {"label": "neg"}) is None


def test_an_answer_rebuilt_from_its_key_is_valid_and_has_that_key():
    label_schema = schema_for("classification", ["pos", "neg"])
    answer = SPEC.answer_from_key("neg")
    assert answer == {"label": "neg"} and SPEC.answer_key(answer) == "neg"
    assert answer_validate("classification", label_schema, answer, item_data={"text": "x"})
