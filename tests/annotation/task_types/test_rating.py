import pytest

from annotation.schemas import answer_key, item_text
from annotation.task_types import SchemaError, answer_validate, task_type_spec

from .conftest import refused, schema_for

SPEC = task_type_spec("rating")


def test_label_schema_checks_the_scale_and_rubric():
    assert schema_for("rating", {"min": 0, "max": 3, "rubric": {"3": "great"}}) == {
        "min": 0,
        "max": 3,
        "rubric": {"3": "great"},
    }
    for bad, field in [
        ({"min": 5, "max": 1}, "label_schema.max"),
        ({"rubric": {"9": "x"}}, "label_schema.rubric.9"),
    ]:
        with pytest.raises(SchemaError) as excinfo:
            schema_for("rating", bad)
        assert excinfo.value.field == field


@pytest.mark.parametrize("rating", [0, 6, 2.5, True, "3"])
def test_ratings_are_whole_numbers_on_the_scale(source, rating):
    error = refused("rating", schema_for("rating", {}), {"rating": rating}, source=source)
    assert (error.field, error.message) == ("answer.rating", "expected a whole number from 1 to 5")


def test_valid_rating_key_text_and_gold(source):
    answer = answer_validate("rating", schema_for("rating", {}), {"rating": 4}, source=source)
    assert answer_key("rating", answer) == 4
    assert item_text("rating", {"prompt": "q", "response": "r"}) == "q\nr"
    assert SPEC.gold_from_shorthand("4") == {"rating": 4}
    assert SPEC.results_label(answer) == 4
    assert SPEC.agreement == "interval" and SPEC.votable


@pytest.mark.parametrize(
    ("scale", "keys"),
    [({}, "1–5"), ({"min": 0, "max": 10}, "0–9"), ({"min": 1, "max": 10}, "1–9, 0 = 10")],
)
def test_shortcuts_follow_the_scale(scale, keys):
    assert SPEC.editor_shortcuts(schema_for("rating", scale))[0][0] == keys


def test_an_answer_rebuilt_from_its_key_is_valid_and_has_that_key():
    label_schema = schema_for("rating", {"min": 1, "max": 5})
    answer = SPEC.answer_from_key(2)
    assert answer == {"rating": 2} and SPEC.answer_key(answer) == 2
    assert answer_validate("rating", label_schema, answer, item_data={"response": "r"}) == answer
