import pytest

from annotation.schemas import answer_key
from annotation.task_types import SchemaError, answer_validate, task_type_spec

from .conftest import refused, schema_for

SPEC = task_type_spec("multi_label")


@pytest.fixture
def schema():
    return schema_for(
        "multi_label", {"labels": ["a", "b", "c"], "min_selected": 1, "max_selected": 2}
    )


def test_label_schema_bounds_the_selection():
    assert schema_for("multi_label", ["a", "b"])["max_selected"] == 2
    with pytest.raises(SchemaError) as excinfo:
        schema_for("multi_label", {"labels": ["a"], "max_selected": 3})
    assert excinfo.value.field == "label_schema.max_selected"


def test_answers_are_sorted_in_schema_order(schema, source):
    answer = answer_validate("multi_label", schema, {"labels": ["c", "a"]}, source=source)
    assert answer == {"labels": ["a", "c"]}
    assert answer_key("multi_label", answer) == ("a", "c")


@pytest.mark.parametrize(
    ("labels", "field", "message"),
    [
        ("a", "answer.labels", "expected a list of labels"),
        (["a", "x"], "answer.labels[1]", "'x' is not one of the project's labels: a, b, c"),
        (["a", "a"], "answer.labels", "a label is listed twice"),
        ([], "answer.labels", "choose between 1 and 2 labels"),
        (["a", "b", "c"], "answer.labels", "choose between 1 and 2 labels"),
    ],
)
def test_invalid_answers_name_the_field(schema, source, labels, field, message):
    error = refused("multi_label", schema, {"labels": labels}, source=source)
    assert (error.field, error.message) == (field, message)


def test_gold_shorthand_and_exports():
    assert SPEC.gold_from_shorthand("a| b") == {"labels": ["a", "b"]}
    assert SPEC.training_formats == frozenset()
    assert SPEC.results_label({"labels": ["a"]}) == ""


def test_an_answer_rebuilt_from_its_key_is_valid_and_has_that_key(schema):
    answer = SPEC.answer_from_key(("a", "c"))
    assert answer == {"labels": ["a", "c"]} and SPEC.answer_key(answer) == ("a", "c")
    assert answer_validate("multi_label", schema, answer, item_data={"text": "x"}) == answer
