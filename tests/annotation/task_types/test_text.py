from types import SimpleNamespace

import pytest

from annotation.schemas import answer_key, answer_text, item_data_validate, item_text
from annotation.task_types import SchemaError, answer_validate, task_type_spec

from .conftest import refused, schema_for

SPEC = task_type_spec("text")


def test_label_schema_caps_the_length():
    assert schema_for("text", {}) == {"min_length": 1, "max_length": 20_000}
    assert schema_for("text", {"max_length": 10**9})["max_length"] == 200_000
    with pytest.raises(SchemaError):
        schema_for("text", {"min_length": 5, "max_length": 2})


@pytest.mark.parametrize(
    ("text", "field", "message"),
    [
        (5, "answer.text", "expected a string, got int"),
        ("   ", "answer.text", "must not be empty"),
        ("x" * 11, "answer.text", "expected 1 to 10 characters, got 11"),
    ],
)
def test_invalid_text_names_the_field(source, text, field, message):
    schema = schema_for("text", {"max_length": 10})
    error = refused("text", schema, {"text": text}, source=source)
    assert (error.field, error.message) == (field, message)


def test_a_valid_text_its_key_and_its_tokens(source):
    schema = schema_for("text", {})
    answer = answer_validate("text", schema, {"text": " 好的 "}, source=source)
    assert answer == {"text": " 好的 "}
    assert answer_key("text", answer) == "好的"
    assert answer_text("text", answer) == " 好的 "


def test_item_fields_and_text():
    with pytest.raises(SchemaError) as excinfo:
        item_data_validate("text", {"system": "s"})
    assert excinfo.value.field == "data.prompt"
    assert item_text("text", {"system": "be brief", "prompt": "hi"}) == "be brief\nhi"
    assert item_text("text", {"prompt": "hi"}) == "\nhi"


def test_chat_export_and_editor():
    project = SimpleNamespace(label_schema={}, instructions="")
    data = {"prompt": "hi", "system": "be brief"}
    assert SPEC.training_record(project, "openai_chat", data, {"text": "hello"}) == {
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
        ]
    }
    assert SPEC.has_text_box and SPEC.submit_keys == ("Control+Enter", "Ctrl+Enter")
