import pytest
from rest_framework.exceptions import ValidationError

from tenants.parsers import json_checked


def test_ordinary_documents_pass_unchanged():
    document = {"answer": {"spans": [{"start": 0, "end": 2, "label": "PER"}]}, "n": 1}
    assert json_checked(document, max_depth=5) is document


def test_depth_is_counted_per_container():
    assert json_checked([[[]]], max_depth=3) == [[[]]]
    with pytest.raises(ValidationError) as refused:
        json_checked([[[[]]]], max_depth=3)
    assert refused.value.detail == {"[0][0][0]": ["nested deeper than 3 levels"]}


@pytest.mark.parametrize(
    ("document", "where"),
    [
        ({"a": {"b": ["ok", "n\x00"]}}, "a.b[1]"),
        ({"a": {"k\x00": 1}}, "a"),
        ("\x00", "body"),
    ],
)
def test_a_nul_character_is_refused_where_it_is(document, where):
    with pytest.raises(ValidationError) as refused:
        json_checked(document, max_depth=10)
    assert list(refused.value.detail) == [where]
