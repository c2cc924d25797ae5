"""Agreement metrics and label aggregation (annotation.agreement).

Pure functions: no database. Published worked examples are checked to the
precision they are published at.
"""

import numpy as np
import pytest

from annotation.agreement import (
    DawidSkeneResult,
    SpanScore,
    cohen_kappa,
    dawid_skene,
    dawid_skene_coded,
    fleiss_kappa,
    fleiss_kappa_from_units,
    krippendorff_alpha,
    majority_vote,
    pairwise_agreement,
    pairwise_span_f1,
    span_f1,
)

# --------------------------------------------------------------------------- #
# Krippendorff's alpha
# --------------------------------------------------------------------------- #

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", example C:
# 4 coders x 12 units, None = missing.
KRIPPENDORFF_CODERS = {
    "A": [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    "B": [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    "C": [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    "D": [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
}


def krippendorff_units() -> list[list[int]]:
    """The coder-by-unit table as per-unit value lists, missing values absent."""
    columns = zip(*KRIPPENDORFF_CODERS.values(), strict=True)
    return [[v for v in column if v is not None] for column in columns]


@pytest.mark.parametrize(
    ("level", "published"),
    [("nominal", 0.743), ("interval", 0.849), ("ordinal", 0.815), ("ratio", 0.797)],
)
def test_krippendorff_alpha_reproduces_published_example(level, published):
    alpha = krippendorff_alpha(krippendorff_units(), level=level)
    assert round(alpha, 3) == published


def test_krippendorff_alpha_drops_none_inside_units():
    with_none = [list(column) for column in zip(*KRIPPENDORFF_CODERS.values(), strict=True)]
    assert krippendorff_alpha(with_none, level="interval") == pytest.approx(
        krippendorff_alpha(krippendorff_units(), level="interval")
    )


def test_krippendorff_alpha_nominal_ignores_value_names_and_coder_order():
    names = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five"}
    renamed = [[names[v] for v in reversed(unit)] for unit in krippendorff_units()]
    assert round(krippendorff_alpha(renamed), 3) == 0.743


def test_krippendorff_alpha_perfect_agreement_is_one():
    assert krippendorff_alpha([[1, 1], [2, 2, 2], [3, 3]]) == pytest.approx(1.0)
    assert krippendorff_alpha([[1, 1], [2, 2, 2], [3, 3]], level="interval") == pytest.approx(1.0)


def test_krippendorff_alpha_systematic_disagreement_is_negative():
    # Two coders always disagree: observed disagreement exceeds chance.
    assert krippendorff_alpha([["a", "b"], ["b", "a"]]) == pytest.approx(-0.5)


def test_krippendorff_alpha_without_pairable_data_is_none():
    assert krippendorff_alpha([]) is None
    assert krippendorff_alpha([[1], [2], [], [None, 3]]) is None


def test_krippendorff_alpha_single_value_used_is_none():
    # Expected disagreement 0: alpha is 0/0.
    assert krippendorff_alpha([["x", "x"], ["x", "x", "x"]]) is None
    assert krippendorff_alpha([[4, 4], [4, 4]], level="ordinal") is None


def test_krippendorff_alpha_rejects_bad_level_and_values():
    with pytest.raises(ValueError, match="level"):
        krippendorff_alpha([[1, 1]], level="cardinal")
    with pytest.raises(ValueError, match="numeric"):
        krippendorff_alpha([["a", "b"]], level="interval")
    with pytest.raises(ValueError, match="non-negative"):
        krippendorff_alpha([[-1, 2]], level="ratio")


# --------------------------------------------------------------------------- #
# Cohen's kappa
# --------------------------------------------------------------------------- #


def wikipedia_cohen_raters() -> tuple[list[str], list[str]]:
    # Wikipedia "Cohen's kappa": 50 proposals; yes/yes 20, yes/no 5, no/yes 10, no/no 15.
    a = ["yes"] * 20 + ["yes"] * 5 + ["no"] * 10 + ["no"] * 15
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    return a, b


def test_cohen_kappa_reproduces_wikipedia_example():
    a, b = wikipedia_cohen_raters()
    assert cohen_kappa(a, b) == pytest.approx(0.4)
    assert cohen_kappa(b, a) == pytest.approx(0.4)


def test_cohen_kappa_perfect_and_inverted_agreement():
    assert cohen_kappa(["a", "b", "c", "a"], ["a", "b", "c", "a"]) == 1.0
    assert cohen_kappa(["x", "y"], ["y", "x"]) == pytest.approx(-1.0)


def test_cohen_kappa_drops_items_missing_either_label():
    a, b = wikipedia_cohen_raters()
    assert cohen_kappa([*a, None, "yes"], [*b, "no", None]) == pytest.approx(0.4)


def test_cohen_kappa_undefined_cases_are_none():
    assert cohen_kappa([], []) is None
    assert cohen_kappa([None], ["a"]) is None
    assert cohen_kappa(["a", "a"], ["a", "a"]) is None  # p_e == 1


def test_cohen_kappa_rejects_unequal_lengths():
    with pytest.raises(ValueError, match="equal-length"):
        cohen_kappa(["a", "b"], ["a"])


# --------------------------------------------------------------------------- #
# Fleiss' kappa
# --------------------------------------------------------------------------- #

# Wikipedia "Fleiss' kappa" worked example: 10 subjects, 14 raters, 5 categories.
WIKIPEDIA_FLEISS = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]


def test_fleiss_kappa_reproduces_wikipedia_example():
    kappa = fleiss_kappa(WIKIPEDIA_FLEISS)
    assert round(kappa, 3) == 0.210
    assert kappa == pytest.approx(0.20993, abs=1e-5)


def test_fleiss_kappa_perfect_agreement_is_one():
    assert fleiss_kappa([[3, 0], [0, 3], [3, 0]]) == pytest.approx(1.0)


def test_fleiss_kappa_mismatched_row_total_names_the_row():
    rows = [[1, 2], [2, 1], [1, 1]]
    with pytest.raises(ValueError, match=r"row 2 sums to 2 raters but row 0 sums to 3"):
        fleiss_kappa(rows)


def test_fleiss_kappa_rejects_ragged_and_negative_rows():
    with pytest.raises(ValueError, match="row 1 has 3 categories"):
        fleiss_kappa([[1, 2], [1, 1, 1]])
    with pytest.raises(ValueError, match="row 1 has a negative count"):
        fleiss_kappa([[1, 2], [4, -1]])


def test_fleiss_kappa_undefined_cases_are_none():
    assert fleiss_kappa([]) is None
    assert fleiss_kappa([[1, 0], [0, 1]]) is None  # one rater: no pairs
    assert fleiss_kappa([[0, 4], [0, 4]]) is None  # one category used: P_e == 1


def wikipedia_fleiss_units() -> list[list[str]]:
    names = ["c1", "c2", "c3", "c4", "c5"]
    return [
        [name for name, count in zip(names, row, strict=True) for _ in range(count)]
        for row in WIKIPEDIA_FLEISS
    ]


def test_fleiss_kappa_from_units_matches_count_table():
    assert fleiss_kappa_from_units(wikipedia_fleiss_units()) == pytest.approx(
        fleiss_kappa(WIKIPEDIA_FLEISS)
    )


def test_fleiss_kappa_from_units_uses_only_modal_rating_count():
    units = wikipedia_fleiss_units()
    # Off-mode units (and single ratings, missing values) would change kappa if used.
    noisy = [*units, ["c1", "c5"], ["c2", "c3", "c4"], ["c1"], [None, None]]
    assert fleiss_kappa_from_units(noisy) == pytest.approx(fleiss_kappa(WIKIPEDIA_FLEISS))


def test_fleiss_kappa_from_units_mode_tie_prefers_more_raters():
    # Two units with 2 ratings, two with 3: the 3-rater units are used.
    units = [["a", "b"], ["a", "b"], ["a", "a", "a"], ["b", "b", "b"]]
    assert fleiss_kappa_from_units(units) == pytest.approx(1.0)


def test_fleiss_kappa_from_units_categories():
    units = wikipedia_fleiss_units()
    # An unused category adds an all-zero column, which leaves kappa unchanged.
    with_extra = fleiss_kappa_from_units(units, categories=["c1", "c2", "c3", "c4", "c5", "c6"])
    assert with_extra == pytest.approx(fleiss_kappa(WIKIPEDIA_FLEISS))
    with pytest.raises(ValueError, match="not in categories"):
        fleiss_kappa_from_units(units, categories=["c1", "c2"])
    assert fleiss_kappa_from_units([]) is None
    assert fleiss_kappa_from_units([["a"], ["b"]]) is None


# --------------------------------------------------------------------------- #
# Spans
# --------------------------------------------------------------------------- #


def span(start: int, end: int, label: str) -> dict:
    return {"start": start, "end": end, "label": label}


def test_span_f1_exact_match_on_start_end_label():
    reference = [span(0, 5, "PER"), span(10, 15, "ORG"), (20, 25, "LOC")]
    predicted = [
        (0, 5, "PER"),  # hit, tuple form
        span(10, 15, "ORG"),  # hit
        span(20, 25, "ORG"),  # wrong label
        span(0, 4, "PER"),  # wrong boundary
    ]
    score = span_f1(reference, predicted)
    assert score == SpanScore(
        precision=0.5,
        recall=pytest.approx(2 / 3),
        f1=pytest.approx(4 / 7),
        true_positives=2,
        reference_count=3,
        predicted_count=4,
    )


def test_span_f1_empty_sides():
    assert span_f1([], []) == SpanScore(1.0, 1.0, 1.0, 0, 0, 0)
    assert span_f1([], [span(0, 1, "X")]) == SpanScore(0.0, 0.0, 0.0, 0, 0, 1)
    assert span_f1([span(0, 1, "X")], []) == SpanScore(0.0, 0.0, 0.0, 0, 1, 0)


def test_span_f1_counts_duplicate_spans_once():
    score = span_f1([span(0, 3, "X")], [span(0, 3, "X"), (0, 3, "X")])
    assert (score.true_positives, score.predicted_count, score.f1) == (1, 1, 1.0)


def test_pairwise_span_f1_averages_pairs_then_items():
    item_one = [
        [span(0, 5, "PER")],
        [span(0, 5, "PER")],
        [span(0, 5, "PER"), span(7, 9, "ORG")],
    ]  # pairs: 1.0, 2/3, 2/3 -> mean 7/9
    item_two = {"ann1": [span(0, 2, "X")], "ann2": [span(0, 2, "Y")]}  # 0.0
    single = [[span(0, 1, "Z")]]  # one annotation: skipped
    assert pairwise_span_f1([item_one, item_two, single]) == pytest.approx((7 / 9 + 0.0) / 2)


def test_pairwise_span_f1_needs_two_annotations():
    assert pairwise_span_f1([]) is None
    assert pairwise_span_f1([[[span(0, 1, "X")]], {"only": []}]) is None


# --------------------------------------------------------------------------- #
# Pairwise agreement and majority vote
# --------------------------------------------------------------------------- #


def test_pairwise_agreement_pools_ordered_pairs():
    # ["a","a","b"]: 2 of 6 ordered pairs agree; ["tie","tie"]: 2 of 2; ["b"] ignored.
    assert pairwise_agreement([["a", "a", "b"], ["tie", "tie"], ["b"]]) == pytest.approx(4 / 8)


def test_pairwise_agreement_edge_cases():
    assert pairwise_agreement([]) is None
    assert pairwise_agreement([["a"], [None, "b"]]) is None
    assert pairwise_agreement([[["x", "y"], ["x", "y"]], [{"k": 1}, {"k": 2}]]) == 0.5


def test_majority_vote_plurality_and_share():
    assert majority_vote(["a", "b", "a"]) == ("a", pytest.approx(2 / 3))


def test_majority_vote_tie_goes_to_value_seen_first():
    assert majority_vote(["b", "a", "a", "b"]) == ("b", 0.5)
    assert majority_vote(["a", "b", "b", "a"]) == ("a", 0.5)
    assert majority_vote(["c", "a", "b"]) == ("c", pytest.approx(1 / 3))


def test_majority_vote_weights():
    assert majority_vote(["a", "b", "b"], weights=[3, 1, 1]) == ("a", pytest.approx(0.6))
    # Weighted tie (2 vs 2): first seen wins.
    assert majority_vote(["b", "a", "b"], weights=[1, 2, 1]) == ("b", 0.5)


def test_majority_vote_unhashable_values_return_original():
    first = {"tags": ["x", "y"], "note": 1}
    votes = [first, ["z"], {"note": 1, "tags": ["x", "y"]}]  # dict key order differs
    winner, share = majority_vote(votes)
    assert winner is first
    assert share == pytest.approx(2 / 3)


def test_majority_vote_skips_missing_and_rejects_bad_input():
    assert majority_vote([None, "a", None]) == ("a", 1.0)
    with pytest.raises(ValueError, match="no votes"):
        majority_vote([])
    with pytest.raises(ValueError, match="no votes"):
        majority_vote(["a"], weights=[0])
    with pytest.raises(ValueError, match="2 values but 1 weights"):
        majority_vote(["a", "b"], weights=[1])
    with pytest.raises(ValueError, match="non-negative"):
        majority_vote(["a", "b"], weights=[1, -1])


# --------------------------------------------------------------------------- #
# Dawid-Skene
# --------------------------------------------------------------------------- #


def synthetic_crowd(seed: int = 7) -> tuple[dict[int, int], list[tuple[int, str, int]]]:
    """500 items, 3 classes; 3 annotators 90% right, 2 always answer (truth + 1) % 3."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 3, size=500)
    triples = []
    for item, true in enumerate(truth.tolist()):
        for annotator in ("good1", "good2", "good3"):
            # Wrong answers go to one of the two other classes at random.
            answer = true if rng.random() < 0.9 else (true + int(rng.integers(1, 3))) % 3
            triples.append((item, annotator, answer))
        for annotator in ("bad1", "bad2"):
            triples.append((item, annotator, (true + 1) % 3))
    return dict(enumerate(truth.tolist())), triples


def accuracy(predicted: dict, truth: dict) -> float:
    return sum(predicted[item] == label for item, label in truth.items()) / len(truth)


def test_dawid_skene_probabilities_are_normalised():
    _, triples = synthetic_crowd()
    result = dawid_skene(triples)
    assert isinstance(result, DawidSkeneResult)
    assert len(result.posteriors) == 500
    for posterior in result.posteriors.values():
        assert sum(posterior.values()) == pytest.approx(1.0)
        assert list(posterior) == [0, 1, 2]
    for matrix in result.confusion.values():
        for row in matrix.values():
            assert sum(row.values()) == pytest.approx(1.0)
    assert sum(result.priors.values()) == pytest.approx(1.0)
    for item, posterior in result.posteriors.items():
        assert result.confidence[item] == max(posterior.values())


def test_dawid_skene_beats_majority_vote_with_adversarial_annotators():
    truth, triples = synthetic_crowd()
    votes: dict[int, list[int]] = {}
    for item, _, label in triples:
        votes.setdefault(item, []).append(label)
    majority = {item: majority_vote(labels)[0] for item, labels in votes.items()}

    result = dawid_skene(triples)
    ds_accuracy = accuracy(result.labels, truth)
    mv_accuracy = accuracy(majority, truth)
    assert result.converged
    assert ds_accuracy >= 0.95
    assert ds_accuracy > mv_accuracy
    # The learned confusion exposes the adversaries: true 0 -> answer 1.
    assert result.confusion["bad1"][0][1] > 0.95
    assert result.confusion["good1"][0][0] > 0.8


def test_dawid_skene_single_annotator_item_gets_posterior():
    _, triples = synthetic_crowd()
    triples += [("solo-good", "good1", 2), ("solo-bad", "bad1", 2)]
    result = dawid_skene(triples)
    assert sum(result.posteriors["solo-good"].values()) == pytest.approx(1.0)
    assert result.labels["solo-good"] == 2
    # bad1 answers (truth + 1) % 3, so its "2" decodes to 1.
    assert result.labels["solo-bad"] == 1
    assert result.confidence["solo-bad"] > 0.9


def test_dawid_skene_unanimous_data_is_confident():
    triples = [
        (item, annotator, "cat" if item % 2 else "dog")
        for item in range(50)
        for annotator in ("a", "b", "c")
    ]
    result = dawid_skene(triples)
    assert result.labels == {item: "cat" if item % 2 else "dog" for item in range(50)}
    assert min(result.confidence.values()) > 0.999
    assert result.priors == {"cat": pytest.approx(0.5), "dog": pytest.approx(0.5)}


def test_dawid_skene_empty_input():
    result = dawid_skene([])
    assert result == DawidSkeneResult({}, {}, {}, {}, {}, 0, True)
    assert dawid_skene([("i", "a", None)]).labels == {}


def test_dawid_skene_ties_follow_class_order():
    # Two annotators, one item, contradictory answers: the model is symmetric,
    # so the posterior is 50/50 and the first class in sorted order wins.
    result = dawid_skene([("x", "ann1", "b"), ("x", "ann2", "a")])
    assert result.posteriors["x"] == {"a": pytest.approx(0.5), "b": pytest.approx(0.5)}
    assert result.labels["x"] == "a"


def test_dawid_skene_classes_argument():
    result = dawid_skene([("x", "a1", "yes"), ("x", "a2", "yes")], classes=["yes", "no", "maybe"])
    assert list(result.posteriors["x"]) == ["maybe", "no", "yes"]
    assert result.labels["x"] == "yes"
    with pytest.raises(ValueError, match="not in classes"):
        dawid_skene([("x", "a1", "other")], classes=["yes", "no"])


def test_dawid_skene_is_deterministic_and_validates_arguments():
    _, triples = synthetic_crowd(seed=11)
    assert dawid_skene(triples) == dawid_skene(list(triples))
    with pytest.raises(ValueError, match="max_iter"):
        dawid_skene(triples, max_iter=0)
    with pytest.raises(ValueError, match="smoothing"):
        dawid_skene(triples, smoothing=0)


def test_dawid_skene_reports_non_convergence():
    _, triples = synthetic_crowd()
    result = dawid_skene(triples, max_iter=1)
    assert (result.iterations, result.converged) == (1, False)


def swapping_crowd() -> list[tuple]:
    """A and B swap "neg" and "neu" (C, D, E outvote them and expose it); the last
    item has only A's and B's "neg", which decodes to "neu", a label neither gave."""
    triples = []
    for n in range(6):
        for annotator, label in zip("ABCDE", ["neg", "neg", "neu", "neu", "neu"], strict=True):
            triples.append((f"neu-{n}", annotator, label))
        for annotator, label in zip("ABCDE", ["neu", "neu", "neg", "neg", "neg"], strict=True):
            triples.append((f"neg-{n}", annotator, label))
    return [*triples, ("last", "A", "neg"), ("last", "B", "neg")]


def test_dawid_skene_may_infer_a_label_no_annotator_of_the_item_gave():
    result = dawid_skene(swapping_crowd())
    assert result.labels["last"] == "neu"
    assert result.confidence["last"] > 0.99
    assert all(result.labels[f"neu-{n}"] == "neu" for n in range(6))


def test_dawid_skene_on_codes_matches_the_keyed_version():
    triples = swapping_crowd()
    keyed = dawid_skene(triples)
    items = list(dict.fromkeys(i for i, _, _ in triples))
    annotators = sorted({a for _, a, _ in triples})
    classes = ["neg", "neu"]
    coded = dawid_skene_coded(
        np.array([items.index(i) for i, _, _ in triples]),
        np.array([annotators.index(a) for _, a, _ in triples]),
        np.array([classes.index(label) for _, _, label in triples]),
        n_items=len(items),
        n_annotators=len(annotators),
        n_classes=len(classes),
    )
    assert [classes[k] for k in coded.winners] == [keyed.labels[i] for i in items]
    assert coded.confidence.tolist() == pytest.approx([keyed.confidence[i] for i in items])
    assert coded.iterations == keyed.iterations and coded.converged
