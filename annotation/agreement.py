"""Inter-annotator agreement and label aggregation for quality control.

Pure Python + numpy, no Django: callers pass plain values pulled from the
database, so every function here can be tested and reused without a DB.

Conventions shared by the functions below:

* ``None`` (and float NaN) means "missing" and is dropped before counting.
* Unhashable answers (multi-label lists, dicts) are compared through
  :func:`stable_key`, so ``["a", "b"]`` given twice counts as one value.
* Where a coefficient is undefined (no pairable data, or no variation to
  explain) the function returns ``None`` instead of a misleading number.
"""

import json
import math
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any, Literal, TypeVar

import numpy as np

T = TypeVar("T")

Level = Literal["nominal", "interval", "ordinal", "ratio"]
LEVELS: tuple[str, ...] = ("nominal", "interval", "ordinal", "ratio")

# A span is {"start": 0, "end": 5, "label": "PER"} or (0, 5, "PER"); offsets are
# character offsets, end exclusive by convention (only equality matters here).
Span = Mapping[str, Any] | Sequence[Any]


# --------------------------------------------------------------------------- #
# Helpers
# --------------------------------------------------------------------------- #


def _is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def stable_key(value: object) -> Hashable:
    """Return a hashable key that is equal for equal answers.

    Hashable values are their own key. Unhashable ones (lists, dicts, sets)
    become ``("__json__", json.dumps(value, sort_keys=True))`` so that two
    multi-label answers with the same content compare equal regardless of
    dict key order; sets are sorted first because their order is arbitrary.
    """
    try:
        hash(value)
    except TypeError:
        return ("__json__", json.dumps(value, sort_keys=True, default=_json_default))
    return value  # type: ignore[return-value]


def _json_default(value: object) -> object:
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    return repr(value)


def class_order(labels: Iterable[Hashable]) -> list[Hashable]:
    """The distinct labels in the class order :func:`dawid_skene` uses (ties go to the earlier)."""
    return _sorted_values(set(labels))


def _sorted_values(values: Iterable[T]) -> list[T]:
    """Sort naturally when possible, else by (type name, repr) so mixed types still sort."""
    unique = list(values)
    try:
        return sorted(unique)  # type: ignore[type-var]
    except TypeError:
        return sorted(unique, key=lambda v: (type(v).__name__, repr(v)))


# --------------------------------------------------------------------------- #
# Krippendorff's alpha
# --------------------------------------------------------------------------- #


def krippendorff_alpha(units: Iterable[Iterable[Any]], *, level: Level = "nominal") -> float | None:
    """Krippendorff's alpha reliability coefficient.

    ``alpha = 1 - D_o / D_e``, computed from the coincidence matrix as in
    Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability",
    Annenberg School for Communication, University of Pennsylvania
    (https://repository.upenn.edu/asc_papers/43):

    * each unit ``u`` with ``m_u >= 2`` values adds ``1 / (m_u - 1)`` to
      ``o[c, k]`` for every ordered pair of values ``(c, k)`` from different
      coders;
    * ``n_c = sum_k o[c, k]`` and ``n = sum_c n_c``;
    * ``alpha = 1 - (n - 1) * sum o[c,k] d2(c,k) / sum n_c n_k d2(c,k)``,

    with the difference function ``d2`` chosen by ``level``: nominal
    (0 if equal else 1), interval ``(c - k)^2``, ratio ``((c - k)/(c + k))^2``,
    ordinal ``(sum_{g=c..k} n_g - (n_c + n_k)/2)^2``.

    ``units`` holds one list per unit with the values its coders gave; missing
    values are simply absent (``None``/NaN entries are dropped too). Units with
    fewer than two values are not pairable and are ignored.

    Returns ``None`` when there is no pairable unit, or when expected
    disagreement is 0 (e.g. only one value was ever used), where alpha is
    undefined.
    """
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")

    pairable = []
    for unit in units:
        values = [v for v in unit if not _is_missing(v)]
        if len(values) >= 2:
            pairable.append(values)
    if not pairable:
        return None

    if level == "nominal":
        keyed = [[stable_key(v) for v in unit] for unit in pairable]
        # Order is irrelevant for nominal data; first-seen keeps it deterministic.
        domain = list(dict.fromkeys(v for unit in keyed for v in unit))
    elif level == "ordinal":
        keyed = pairable
        domain = _sorted_values(set(v for unit in keyed for v in unit))
    else:
        keyed = [[_as_number(v, level) for v in unit] for unit in pairable]
        domain = sorted(set(v for unit in keyed for v in unit))
    index = {v: i for i, v in enumerate(domain)}

    size = len(domain)
    observed = np.zeros((size, size))
    for unit in keyed:
        counts = Counter(index[v] for v in unit)
        weight = 1.0 / (len(unit) - 1)
        for c, n_c in counts.items():
            for k, n_k in counts.items():
                # Pairs of *different* coders: a value is never paired with itself.
                observed[c, k] += n_c * (n_k - (c == k)) * weight

    marginals = observed.sum(axis=1)
    total = marginals.sum()
    d2 = _difference_matrix(level, np.asarray(domain, dtype=object), marginals)

    expected = float((np.outer(marginals, marginals) * d2).sum())
    if expected == 0.0:
        return None
    return 1.0 - (total - 1.0) * float((observed * d2).sum()) / expected


def _as_number(value: object, level: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ValueError(f"{level} alpha needs numeric values, got {value!r}")
    number = float(value)
    if level == "ratio" and number < 0:
        # Ratio scales have an absolute zero; negatives make (c+k) vanish or flip sign.
        raise ValueError(f"ratio alpha needs non-negative values, got {value!r}")
    return number


def _difference_matrix(level: str, domain: np.ndarray, marginals: np.ndarray) -> np.ndarray:
    """Squared difference d2(c, k) for every pair of values (Krippendorff 2011, sec. E)."""
    size = len(domain)
    if level == "nominal":
        return 1.0 - np.eye(size)
    if level == "ordinal":
        # sum_{g=c..k} n_g via cumulative sums, over ranks (the values' sort order).
        cumulative = np.cumsum(marginals)
        low = np.minimum.outer(np.arange(size), np.arange(size))
        high = np.maximum.outer(np.arange(size), np.arange(size))
        between = cumulative[high] - cumulative[low] + marginals[low]
        return (between - (marginals[:, None] + marginals[None, :]) / 2.0) ** 2
    values = domain.astype(float)
    diff = values[:, None] - values[None, :]
    if level == "interval":
        return diff**2
    total = values[:, None] + values[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(total == 0, 0.0, diff / total)  # both zero: identical values
    return ratio**2


# --------------------------------------------------------------------------- #
# Cohen's and Fleiss' kappa
# --------------------------------------------------------------------------- #


def cohen_kappa(a: Sequence[Any], b: Sequence[Any]) -> float | None:
    """Cohen's kappa for two raters labelling the same items.

    ``kappa = (p_o - p_e) / (1 - p_e)`` with ``p_o`` the observed share of
    agreement and ``p_e = sum_k p_a(k) p_b(k)`` the agreement expected from
    each rater's own label frequencies (Cohen 1960, "A coefficient of
    agreement for nominal scales", Educational and Psychological Measurement
    20(1):37-46).

    ``a[i]`` and ``b[i]`` are the two labels for item ``i``; items where either
    is ``None`` are dropped. Returns ``None`` when no item remains or when
    ``p_e == 1`` (both raters used one and the same single label), where kappa
    is undefined. Raises ``ValueError`` if the sequences differ in length.
    """
    if len(a) != len(b):
        raise ValueError(f"cohen_kappa needs equal-length label lists, got {len(a)} and {len(b)}")
    pairs = [
        (stable_key(x), stable_key(y))
        for x, y in zip(a, b, strict=True)
        if not _is_missing(x) and not _is_missing(y)
    ]
    n = len(pairs)
    if n == 0:
        return None
    agree = sum(x == y for x, y in pairs)
    count_a = Counter(x for x, _ in pairs)
    count_b = Counter(y for _, y in pairs)
    chance = sum(count_a[k] * count_b[k] for k in count_a)
    # Integer form of (p_o - p_e) / (1 - p_e), multiplied through by n^2: exact.
    if chance == n * n:
        return None
    return (n * agree - chance) / (n * n - chance)


def fleiss_kappa(counts: Sequence[Sequence[float]]) -> float | None:
    """Fleiss' kappa for a fixed number of raters per subject.

    ``counts[i][j]`` is how many raters put subject ``i`` in category ``j``;
    every row must sum to the same number of raters ``n``. With ``N``
    subjects (Fleiss 1971, "Measuring nominal scale agreement among many
    raters", Psychological Bulletin 76(5):378-382):

    * ``P_i = (sum_j n_ij^2 - n) / (n (n - 1))`` and ``P_bar = mean_i P_i``;
    * ``p_j = sum_i n_ij / (N n)`` and ``P_e = sum_j p_j^2``;
    * ``kappa = (P_bar - P_e) / (1 - P_e)``.

    Returns ``None`` for no subjects, fewer than two raters per subject, or
    ``P_e == 1`` (every rating in one category). Raises ``ValueError`` naming
    the offending row if rows differ in length or total, or hold negatives.
    """
    if len(counts) == 0:
        return None
    width = len(counts[0])
    first_total = sum(counts[0])
    for i, row in enumerate(counts):
        if len(row) != width:
            raise ValueError(
                f"fleiss_kappa: row {i} has {len(row)} categories but row 0 has {width}"
            )
        if any(x < 0 for x in row):
            raise ValueError(f"fleiss_kappa: row {i} has a negative count: {list(row)}")
        if sum(row) != first_total:
            raise ValueError(
                f"fleiss_kappa: row {i} sums to {sum(row)} raters but row 0 sums to "
                f"{first_total}; every subject needs the same number of raters"
            )
    table = np.asarray(counts, dtype=float)
    subjects, raters = table.shape[0], float(first_total)
    if raters < 2:
        return None
    p_bar = ((table**2).sum(axis=1) - raters).sum() / (subjects * raters * (raters - 1))
    p_j = table.sum(axis=0) / (subjects * raters)
    if np.count_nonzero(p_j) <= 1:
        return None  # every rating in one category: P_e == 1, kappa is 0/0
    p_e = float((p_j**2).sum())
    return float((p_bar - p_e) / (1.0 - p_e))


def fleiss_kappa_from_units(
    units: Iterable[Iterable[Any]], *, categories: Iterable[Any] | None = None
) -> float | None:
    """Fleiss' kappa from per-unit label lists (see :func:`fleiss_kappa`).

    Fleiss' kappa needs the same number of raters on every subject, so only
    units with the *modal* number of ratings are used: missing values are
    dropped, units with fewer than two ratings are ignored, and of the rest
    the most common rating count wins (on a tie, the larger count, since more
    raters per subject is more information). Other units are left out.

    ``categories`` fixes the category set; a label outside it raises
    ``ValueError``. By default the labels seen in the data are used.
    """
    rated = [[stable_key(v) for v in unit if not _is_missing(v)] for unit in units]
    rated = [unit for unit in rated if len(unit) >= 2]
    if not rated:
        return None
    sizes = Counter(len(unit) for unit in rated)
    modal = max(sizes, key=lambda size: (sizes[size], size))
    used = [unit for unit in rated if len(unit) == modal]

    if categories is None:
        columns = list(dict.fromkeys(v for unit in used for v in unit))
    else:
        columns = list(dict.fromkeys(stable_key(c) for c in categories))
    column = {c: j for j, c in enumerate(columns)}
    rows = []
    for unit in used:
        row = [0] * len(columns)
        for value in unit:
            if value not in column:
                raise ValueError(f"fleiss_kappa_from_units: label {value!r} not in categories")
            row[column[value]] += 1
        rows.append(row)
    return fleiss_kappa(rows)


# --------------------------------------------------------------------------- #
# Span (NER) agreement
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class SpanScore:
    """Exact-match span scores; counts are of distinct (start, end, label) spans."""

    precision: float
    recall: float
    f1: float
    true_positives: int
    reference_count: int
    predicted_count: int


def _span_key(span: Span) -> tuple[Any, Any, Hashable]:
    if isinstance(span, Mapping):
        return (span["start"], span["end"], stable_key(span["label"]))
    start, end, label = span
    return (start, end, stable_key(label))


def _span_set(spans: Iterable[Span]) -> set[tuple[Any, Any, Hashable]]:
    # A set: marking the same span twice is one span, not a double hit.
    return {_span_key(span) for span in spans}


def _score(true_positives: int, reference_count: int, predicted_count: int) -> SpanScore:
    if reference_count == 0 and predicted_count == 0:
        # Both agree there is nothing to mark: perfect agreement.
        return SpanScore(1.0, 1.0, 1.0, 0, 0, 0)
    precision = true_positives / predicted_count if predicted_count else 0.0
    recall = true_positives / reference_count if reference_count else 0.0
    # 2TP / (|ref| + |pred|) is the harmonic mean of P and R, and 0 when one side is empty.
    f1 = 2 * true_positives / (reference_count + predicted_count)
    return SpanScore(precision, recall, f1, true_positives, reference_count, predicted_count)


def span_f1(reference: Iterable[Span], predicted: Iterable[Span]) -> SpanScore:
    """Exact-match precision, recall and F1 of predicted spans against reference spans.

    A predicted span counts only if ``(start, end, label)`` all equal a
    reference span, the strict criterion of the CoNLL-2003 NER evaluation
    (Tjong Kim Sang & De Meulder 2003, "Introduction to the CoNLL-2003 Shared
    Task"). Duplicate spans on one side count once. If both sides are empty
    every score is 1.0; if only one side is empty, F1 is 0.0 (and the
    undefined one of precision/recall is reported as 0.0).
    """
    ref, pred = _span_set(reference), _span_set(predicted)
    return _score(len(ref & pred), len(ref), len(pred))


def pairwise_span_f1(
    annotations_per_item: Iterable[Sequence[Iterable[Span]] | Mapping[Hashable, Iterable[Span]]],
) -> float | None:
    """Mean pairwise span F1 between annotators, averaged over items.

    Without a gold standard, F1 between two annotators is the agreement
    measure of choice for span tasks, where kappa's chance term is undefined
    (Hripcsak & Rothschild 2005, "Agreement, the F-measure, and reliability in
    information retrieval", JAMIA 12(3):296-298). F1 is symmetric, so each
    unordered pair of annotators of an item is scored once; each item's mean
    then counts equally in the overall mean.

    Each element is one item's annotations: a list of span lists, or a
    mapping annotator -> span list. Items with fewer than two annotations are
    skipped; returns ``None`` if no item has two or more.
    """
    item_means = []
    for annotations in annotations_per_item:
        sets = [
            _span_set(spans)
            for spans in (annotations.values() if isinstance(annotations, Mapping) else annotations)
        ]
        if len(sets) < 2:
            continue
        scores = [_score(len(x & y), len(x), len(y)).f1 for x, y in combinations(sets, 2)]
        item_means.append(sum(scores) / len(scores))
    if not item_means:
        return None
    return sum(item_means) / len(item_means)


# --------------------------------------------------------------------------- #
# Pairwise agreement and majority vote
# --------------------------------------------------------------------------- #


def pairwise_agreement(units: Iterable[Iterable[Any]]) -> float | None:
    """Share of agreeing ordered pairs of values within units (percent agreement).

    For a unit with ``m`` values of which ``n_c`` equal ``c`` there are
    ``m (m - 1)`` ordered pairs, ``sum_c n_c (n_c - 1)`` of them agreeing:
    Fleiss' (1971) per-subject agreement ``P_i``, here pooled over all pairs
    of all units, so a unit with more raters weighs more. Suited to
    preference choices such as "a" / "b" / "tie". Missing values are dropped
    and units with fewer than two values ignored; returns ``None`` if no unit
    is pairable.
    """
    agreeing = total = 0
    for unit in units:
        counts = Counter(stable_key(v) for v in unit if not _is_missing(v))
        m = sum(counts.values())
        if m < 2:
            continue
        agreeing += sum(n * (n - 1) for n in counts.values())
        total += m * (m - 1)
    if total == 0:
        return None
    return agreeing / total


def majority_vote(
    values: Iterable[T], *, weights: Iterable[float] | None = None
) -> tuple[T, float]:
    """The (weighted) plurality value and its share of the vote.

    Returns ``(winner, share)`` where ``share`` is the winner's weight over
    the total weight, usable as a confidence. Values are grouped by
    :func:`stable_key`, so unhashable multi-label answers work; the winner is
    returned as the first original value of its group.

    Ties go to the tied value that appears *first* in ``values``, so the
    result depends only on the input order (e.g. submission order), never on
    hashing. Weights are compared exactly. ``None`` votes (and their
    weights) are skipped as missing.

    Raises ``ValueError`` if no vote remains, weights are negative, the total
    weight is 0, or ``weights`` differs in length from ``values``.
    """
    items = list(values)
    weight_list = [1.0] * len(items) if weights is None else [float(w) for w in weights]
    if len(weight_list) != len(items):
        raise ValueError(f"majority_vote: {len(items)} values but {len(weight_list)} weights")

    tally: dict[Hashable, float] = {}
    original: dict[Hashable, T] = {}
    for value, weight in zip(items, weight_list, strict=True):
        if weight < 0 or math.isnan(weight):
            raise ValueError(f"majority_vote: weights must be non-negative, got {weight}")
        if _is_missing(value):
            continue
        key = stable_key(value)
        # dicts keep insertion order, so first-seen order is kept for the tie rule.
        original.setdefault(key, value)
        tally[key] = tally.get(key, 0.0) + weight
    total = math.fsum(tally.values())
    if not tally or total == 0:
        raise ValueError("majority_vote: no votes with positive weight")
    best = max(tally.values())
    winner = next(key for key, weight in tally.items() if weight == best)
    return original[winner], best / total


# --------------------------------------------------------------------------- #
# Dawid-Skene
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class DawidSkeneResult:
    """Output of :func:`dawid_skene`.

    ``confusion[annotator][true][given]`` is the estimated probability that
    the annotator answers ``given`` when the item's class is ``true``.
    """

    labels: dict[Hashable, Hashable]
    posteriors: dict[Hashable, dict[Hashable, float]]
    confidence: dict[Hashable, float]
    confusion: dict[Hashable, dict[Hashable, dict[Hashable, float]]]
    priors: dict[Hashable, float]
    iterations: int
    converged: bool


def dawid_skene(
    labels: Iterable[tuple[Hashable, Hashable, Hashable]],
    *,
    classes: Iterable[Hashable] | None = None,
    max_iter: int = 100,
    tol: float = 1e-6,
    smoothing: float = 0.01,
) -> DawidSkeneResult:
    """Aggregate noisy labels with the Dawid-Skene EM model.

    Each annotator ``a`` has a confusion matrix ``pi_a[k, l] = P(a answers l |
    true class k)`` and classes have priors ``p_k``. EM alternates (Dawid &
    Skene 1979, "Maximum likelihood estimation of observer error-rates using
    the EM algorithm", JRSS Series C 28(1):20-28):

    * E-step: ``T[i, k] ∝ p_k * prod_{(i, a, l)} pi_a[k, l]``;
    * M-step: ``p_k ∝ sum_i T[i, k]`` and
      ``pi_a[k, l] ∝ sum_{(i, a, l)} T[i, k]``.

    ``labels`` holds ``(item_id, annotator_id, label)`` triples; ``None``
    labels are skipped, and repeated triples count as repeated observations.
    ``T`` starts from the soft majority vote (each item's label shares).
    ``smoothing`` is added to every prior and confusion count so no
    probability is 0 (an annotator's first off-diagonal answer would
    otherwise veto a class); E-steps run in log space so items with many
    labels do not underflow. Stops when no posterior moves more than ``tol``
    (``converged=True``) or after ``max_iter`` rounds. The returned
    confusion and priors come from the last M-step, the posteriors from the
    E-step that used them.

    Classes are ``classes`` (a label outside them raises ``ValueError``) or
    the labels seen, ordered by ``sorted`` (by type name and repr if the
    labels do not sort together); ``labels`` ties go to the earlier class.
    Deterministic: no randomness. Empty input gives an empty result.
    """
    if max_iter < 1:
        raise ValueError(f"max_iter must be >= 1, got {max_iter}")
    if smoothing <= 0:
        raise ValueError(f"smoothing must be > 0 to keep probabilities non-zero, got {smoothing}")

    item_index: dict[Hashable, int] = {}
    annotator_index: dict[Hashable, int] = {}
    label_index: dict[Hashable, int] = {}
    rows: list[tuple[int, int, int]] = []
    for item, annotator, label in labels:
        if _is_missing(label):
            continue
        rows.append(
            (
                item_index.setdefault(item, len(item_index)),
                annotator_index.setdefault(annotator, len(annotator_index)),
                label_index.setdefault(label, len(label_index)),
            )
        )
    if not rows:
        return DawidSkeneResult({}, {}, {}, {}, {}, 0, True)

    class_list = _sorted_values(set(label_index) if classes is None else set(classes))
    class_pos = {c: k for k, c in enumerate(class_list)}
    unknown = [label for label in label_index if label not in class_pos]
    if unknown:
        raise ValueError(f"dawid_skene: labels {unknown!r} are not in classes")
    # Map first-seen label ids to class positions in one vectorised lookup.
    remap = np.array([class_pos[label] for label in label_index], dtype=np.intp)
    triples = np.asarray(rows, dtype=np.intp)
    coded = dawid_skene_coded(
        triples[:, 0],
        triples[:, 1],
        remap[triples[:, 2]],
        n_items=len(item_index),
        n_annotators=len(annotator_index),
        n_classes=len(class_list),
        max_iter=max_iter,
        tol=tol,
        smoothing=smoothing,
    )
    posterior = coded.posterior
    items = list(item_index)
    annotators = list(annotator_index)
    post_rows = posterior.tolist()
    return DawidSkeneResult(
        labels={item: class_list[k] for item, k in zip(items, coded.winners.tolist(), strict=True)},
        posteriors={
            item: dict(zip(class_list, row, strict=True))
            for item, row in zip(items, post_rows, strict=True)
        },
        confidence=dict(zip(items, coded.confidence.tolist(), strict=True)),
        confusion={
            annotator: {
                true: dict(zip(class_list, given_row, strict=True))
                for true, given_row in zip(class_list, matrix, strict=True)
            }
            for annotator, matrix in zip(annotators, coded.confusion.tolist(), strict=True)
        },
        priors=dict(zip(class_list, coded.priors.tolist(), strict=True)),
        iterations=coded.iterations,
        converged=coded.converged,
    )


@dataclass(frozen=True)
class DawidSkeneCoded:
    """Output of :func:`dawid_skene_coded`, indexed by the input's integer codes."""

    posterior: np.ndarray  # (items, classes)
    winners: np.ndarray  # (items,) class code of each item's label
    confidence: np.ndarray  # (items,) the winner's posterior
    confusion: np.ndarray  # (annotators, true class, given class)
    priors: np.ndarray  # (classes,)
    iterations: int
    converged: bool


def dawid_skene_coded(
    item_of: np.ndarray,
    annotator_of: np.ndarray,
    class_of: np.ndarray,
    *,
    n_items: int,
    n_annotators: int,
    n_classes: int,
    max_iter: int = 100,
    tol: float = 1e-6,
    smoothing: float = 0.01,
) -> DawidSkeneCoded:
    """:func:`dawid_skene` on integer codes: one row per label, ``item_of[r]`` in
    ``range(n_items)``, ``annotator_of[r]`` in ``range(n_annotators)``, ``class_of[r]``
    in ``range(n_classes)``; every item has at least one label.

    For big projects: the caller streams its rows into three integer arrays
    instead of a list of Python tuples (a few bytes a label instead of ~100),
    and reads the winners back by code. Ties go to the lower class code.
    """
    if max_iter < 1:
        raise ValueError(f"max_iter must be >= 1, got {max_iter}")
    if smoothing <= 0:
        raise ValueError(f"smoothing must be > 0 to keep probabilities non-zero, got {smoothing}")
    item_of = np.asarray(item_of, dtype=np.intp)
    annotator_of = np.asarray(annotator_of, dtype=np.intp)
    class_of = np.asarray(class_of, dtype=np.intp)
    answer_cell = annotator_of * n_classes + class_of  # flat (annotator, given) index

    # Soft majority vote: each item's share of each label.
    posterior = (
        np.bincount(item_of * n_classes + class_of, minlength=n_items * n_classes)
        .reshape(n_items, n_classes)
        .astype(float)
    )
    posterior /= posterior.sum(axis=1, keepdims=True)

    converged = False
    iterations = 0
    while iterations < max_iter and not converged:
        iterations += 1
        priors, confusion = _m_step(
            posterior, item_of, answer_cell, n_annotators, n_classes, smoothing
        )
        new_posterior = _e_step(priors, confusion, item_of, annotator_of, class_of, n_items)
        change = float(np.abs(new_posterior - posterior).max())
        posterior = new_posterior
        converged = change < tol

    return DawidSkeneCoded(
        posterior=posterior,
        winners=posterior.argmax(axis=1),  # argmax returns the first maximum: class order
        confidence=posterior.max(axis=1),
        confusion=confusion,
        priors=priors,
        iterations=iterations,
        converged=converged,
    )


def _m_step(
    posterior: np.ndarray,
    item_of: np.ndarray,
    answer_cell: np.ndarray,
    n_annotators: int,
    n_classes: int,
    smoothing: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Smoothed priors (K,) and confusion matrices (A, K true, K given) from posteriors."""
    priors = posterior.sum(axis=0) + smoothing
    priors /= priors.sum()
    weights = posterior[item_of]  # (L, K): each label's weight for each true class
    confusion = np.empty((n_annotators, n_classes, n_classes))
    for true in range(n_classes):
        # bincount is a fast, deterministic scatter-add over the (annotator, given) cells.
        confusion[:, true, :] = np.bincount(
            answer_cell, weights=weights[:, true], minlength=n_annotators * n_classes
        ).reshape(n_annotators, n_classes)
    confusion += smoothing
    confusion /= confusion.sum(axis=2, keepdims=True)
    return priors, confusion


def _e_step(
    priors: np.ndarray,
    confusion: np.ndarray,
    item_of: np.ndarray,
    annotator_of: np.ndarray,
    class_of: np.ndarray,
    n_items: int,
) -> np.ndarray:
    """Posterior class probabilities (I, K), accumulated in log space."""
    log_likelihood = np.log(confusion)[annotator_of, :, class_of]  # (L, K)
    log_post = np.column_stack(
        [
            np.bincount(item_of, weights=log_likelihood[:, k], minlength=n_items)
            for k in range(log_likelihood.shape[1])
        ]
    )
    log_post += np.log(priors)
    log_post -= log_post.max(axis=1, keepdims=True)  # log-sum-exp shift against underflow
    posterior = np.exp(log_post)
    posterior /= posterior.sum(axis=1, keepdims=True)
    return posterior
