from types import SimpleNamespace

import pytest

from annotation.schemas import answer_key, answer_text
from annotation.task_types import answer_json_schema, answer_validate, task_type_spec

from .conftest import refused, schema_for

SPEC = task_type_spec("preference")
PAIR = {"prompt": "p", "response_a": "A", "response_b": "B"}


def test_choices_follow_allow_tie(source):
    no_tie = schema_for("preference", {"allow_tie": False})
    error = refused("preference", no_tie, {"choice": "tie"}, source=source)
    assert (error.field, error.message) == ("answer.choice", "expected one of a, b")
    with_tie = schema_for("preference", {})
    assert answer_validate("preference", with_tie, {"choice": "tie"}, source=source) == {
        "choice": "tie"
    }


def test_the_rationale_is_for_humans_only():
    schema = schema_for("preference", {"rationale": "required"})
    error = refused("preference", schema, {"choice": "a", "rationale": " "})
    assert (error.field, error.message) == ("answer.rationale", "this project asks for a rationale")
    answer = answer_validate("preference", schema, {"choice": "a", "rationale": "A is right"})
    assert answer == {"choice": "a", "rationale": "A is right"}
    assert answer_text("preference", answer) == "A is right"
    assert answer_key("preference", answer) == "a"
    # Strict mode would make a model write one: it is not in the model's schema.
    assert list(answer_json_schema("preference", schema)["properties"]) == ["choice"]
    optional = schema_for("preference", {})
    assert answer_validate("preference", optional, {"choice": "b", "rationale": None}) == {
        "choice": "b"
    }
    error = refused("preference", optional, {"choice": "b", "rationale": 3})
    assert (error.field, error.message) == ("answer.rationale", "expected a string")


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("dpo", {"prompt": "p", "chosen": "B", "rejected": "A"}),
        (
            "openai_preference",
            {
                "input": {"messages": [{"role": "user", "content": "p"}]},
                "preferred_output": [{"role": "assistant", "content": "B"}],
                "non_preferred_output": [{"role": "assistant", "content": "A"}],
            },
        ),
    ],
)
def test_preference_exports(fmt, expected):
    project = SimpleNamespace(label_schema={}, instructions="")
    assert SPEC.training_record(project, fmt, PAIR, {"choice": "b"}) == expected
    assert SPEC.training_record(project, fmt, PAIR, {"choice": "tie"}) is None
    assert SPEC.results_label({"choice": "b"}) == "b"
    assert SPEC.default_dataset_format == "dpo"


def test_gold_shorthand_and_item_text():
    assert SPEC.gold_from_shorthand(" A ") == {"choice": "a"}
    assert SPEC.item_text(PAIR) == "p\nA\nB"


def test_an_answer_rebuilt_from_its_key_is_valid_and_has_that_key():
    # A rationale explains a human's choice; a rebuilt answer has none.
    label_schema = schema_for("preference", {"rationale": "optional"})
    answer = SPEC.answer_from_key("tie")
    assert answer == {"choice": "tie"} and SPEC.answer_key(answer) == "tie"
    assert answer_validate("preference", label_schema, answer, item_data=PAIR) == answer
