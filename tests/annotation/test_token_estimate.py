import pytest

from annotation.token_estimate import estimate_tokens


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("", 0),
        ("很快，好吃", 5),  # four characters and a full-width comma
        ("hello", 2),
        ("tokens", 2),
        ("a b", 2),
        ("2026", 1),
        ("GPU 算力", 3),
        ("   ", 0),
    ],
)
def test_counts(text, tokens):
    assert estimate_tokens(text) == tokens


def test_a_long_chinese_review_counts_about_one_token_per_character():
    text = "没有送水没有送水没有送水" * 10
    assert estimate_tokens(text) == len(text)
