import pytest
from django.utils import translation

from annotation.schemas import answer_key, item_text
from annotation.task_types import answer_validate, task_type_spec

from .conftest import refused, schema_for

SPEC = task_type_spec("spans")
TEXT = {"text": "王小丽在贵阳"}


@pytest.fixture
def schema():
    return schema_for("spans", ["PER", "LOC"])


def span(start, end, label="LOC", **extra):
    return {"start": start, "end": end, "label": label, **extra}


def test_spans_are_sorted(schema, source):
    answer = answer_validate(
        "spans", schema, {"spans": [span(4, 6), span(0, 3, "PER")]}, item_data=TEXT, source=source
    )
    assert answer == {"spans": [span(0, 3, "PER"), span(4, 6)]}
    assert answer_key("spans", answer) == ((0, 3, "PER"), (4, 6, "LOC"))


@pytest.mark.parametrize(
    ("spans", "field", "message"),
    [
        ({"x": 1}, "answer.spans", "expected a list of spans"),
        (["x"], "answer.spans[0]", "expected an object with start, end and label"),
        ([span(-1, 2)], "answer.spans[0].start", "expected a character offset >= 0"),
        (
            [span(0, 2), span(3, 2)],
            "answer.spans[1].end",
            "expected a character offset > start (3)",
        ),
        ([span(4, 9)], "answer.spans[0].end", "9 is past the end of the text (6 characters)"),
        (
            [span(0, 2, "ORG")],
            "answer.spans[0].label",
            "'ORG' is not one of the project's labels: PER, LOC",
        ),
        (
            [span(0, 2), span(0, 2)],
            "answer.spans",
            "the span {'start': 0, 'end': 2, 'label': 'LOC'} is listed twice",
        ),
    ],
)
def test_invalid_spans_name_the_field(schema, source, spans, field, message):
    error = refused("spans", schema, {"spans": spans}, item_data=TEXT, source=source)
    assert (error.field, error.message) == (field, message)


def test_humans_extra_span_keys_are_dropped_models_are_refused(schema):
    answer = {"spans": [span(0, 3, "PER", note="x")]}
    assert answer_validate("spans", schema, answer, item_data=TEXT) == {
        "spans": [span(0, 3, "PER")]
    }
    error = refused("spans", schema, answer, item_data=TEXT, source="model")
    assert error.field == "answer.spans[0]"


def test_item_text_and_agreement():
    assert item_text("spans", TEXT) == "王小丽在贵阳"
    assert SPEC.agreement == "span_f1" and not SPEC.votable
    with translation.override("en"):  # an earlier test may leave another language active
        assert [keys for keys, _ in SPEC.editor_shortcuts({})] == ["1–9", "Click"]
