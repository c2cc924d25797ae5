"""The quality engine's arithmetic: pure numpy and scipy, no Django.

The model (a "one-coin" Dawid–Skene with a shared confusion pattern):

* annotator ``a`` answers the true class with probability ``acc[a]``;
* a wrong answer to a true ``t`` says ``l`` with probability ``errors[t, l]``,
  one matrix for the whole project: which classes are confused with which is
  a property of the task (sports read as entertainment), while how often a
  person errs is a property of the person. A full confusion matrix per
  annotator needs hundreds of their answers per class before it says more
  than this; the two numbers per person are what gold and a few dozen
  decided items can estimate;
* the model is one more voter, but not a symmetric one: what is measured is
  its *precision* by confidence band (``model_band_accuracy``: how often the
  truth is the class it said), on gold and audit items only, never on items
  its own vote decided. Its vote moves the posterior by that precision over
  the class's prior (:func:`model_log_likelihood`), so a model that always
  says the commonest class, however "accurate", moves nothing;
* classes have priors.

So the posterior of an item is ``priors[t] * prod_votes P(answer | t)``
(:func:`posterior`), and :func:`estimate` fits accuracies, errors and priors
by EM over a project's answers with gold items clamped to their answer.

A voter no better than chance is left out (its weight is zero, never
negative): an annotator at or under 1/K accuracy, a model whose precision is
at or under the prior of the class it said.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import betaincinv

# A new annotator counts as about 0.7 accurate, over four pseudo-answers: their
# first answers are weighed as a typical worker's until gold and decided items
# say otherwise.
ACCURACY_PRIOR = (2.8, 1.2)
# No voter is ever treated as infallible: one trusted wrong answer would
# otherwise decide an item against every other vote.
MAX_ACCURACY = 0.99
INTERVAL = 0.95
# Model confidence bands: upper bounds, ascending. A band's accuracy is measured
# on gold and audit items the model predicted with a confidence in it.
MODEL_BANDS = (0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 1.0)
# The model votes only once this many of its predictions were checked.
MODEL_MIN_CHECKED = 20
# How sure the model's word may count. A band's precision is its measured
# accuracy, but above MODEL_MAX_PRECISION only as far as the evidence proves:
# the lower 95 % bound of the checks behind it (a hundred right of a hundred
# proves 0.97, not 0.99), and never above MODEL_CEILING, so that the model alone
# cannot overturn one careful person's answer at a 0.98 target (0.985 against a
# 0.67 annotator leaves 0.97). At the old flat cap of 0.95 a model measured at
# 0.994 on 500 checks needed three people whenever the first one erred: the
# second one agreeing with it only reached 0.95 (topics10, docs/BENCHMARKS.md).
MODEL_MAX_PRECISION = 0.95
MODEL_CEILING = 0.985
MODEL_PROOF = 0.05
# Pseudo-counts pulling a sparse band towards the model's overall accuracy.
MODEL_BAND_STRENGTH = 4.0
# Smoothing of the shared error pattern towards "any other class alike".
ERROR_SMOOTHING = 2.0
EM_ROUNDS = 15


def beta_interval(
    correct: float, total: float, *, prior: tuple[float, float] = ACCURACY_PRIOR
) -> tuple[float, float, float]:
    """Mean and central 95 % interval of an accuracy after ``correct`` of ``total``
    checked answers (Beta posterior; fractional counts allowed)."""
    a = prior[0] + max(correct, 0.0)
    b = prior[1] + max(total - correct, 0.0)
    tail = (1 - INTERVAL) / 2
    return a / (a + b), float(betaincinv(a, b, tail)), float(betaincinv(a, b, 1 - tail))


def wilson(correct: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a share (for measured accuracies with no prior)."""
    if n == 0:
        return 0.0, 1.0
    p = correct / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(centre - half, 0.0), min(centre + half, 1.0)


def uniform_errors(k: int) -> np.ndarray:
    """Wrong answers spread evenly over the other classes."""
    if k < 2:
        return np.ones((k, k))
    errors = np.full((k, k), 1.0 / (k - 1))
    np.fill_diagonal(errors, 0.0)
    return errors


def informative(accuracy: float | None, k: int) -> bool:
    """Whether a voter of this accuracy counts at all (better than chance)."""
    return accuracy is not None and k >= 2 and accuracy > 1.0 / k + 1e-9


def _vote_log_likelihood(label: int, accuracy: float, errors: np.ndarray) -> np.ndarray:
    """log P(answer = label | true = t) for every t."""
    accuracy = min(accuracy, MAX_ACCURACY)
    with np.errstate(divide="ignore"):
        ll = np.log((1.0 - accuracy) * np.maximum(errors[:, label], 1e-12))
    ll[label] = math.log(accuracy)
    return ll


def model_informative(label: int, precision: float | None, priors: np.ndarray) -> bool:
    """Whether the model's word says more than the class's base rate."""
    return precision is not None and precision > float(priors[label]) + 1e-9


def model_log_likelihood(
    label: int, precision: float, priors: np.ndarray, errors: np.ndarray
) -> np.ndarray:
    """log-likelihood (up to a constant) of the model saying `label`, for every true
    class, from its measured precision: the vote alone would take the prior to
    P(true = label) = precision, and spread the rest over the other classes as
    wrong answers of that label are spread (priors[t] * errors[t, label])."""
    precision = min(precision, MAX_ACCURACY)
    k = len(priors)
    others = np.maximum(priors * errors[:, label], 1e-12)
    others[label] = 0.0
    spread = others / others.sum() if others.sum() > 0 else np.full(k, 1.0 / max(k - 1, 1))
    with np.errstate(divide="ignore"):
        ll = np.log(np.maximum((1.0 - precision) * spread, 1e-300) / np.maximum(priors, 1e-12))
    ll[label] = math.log(precision / max(float(priors[label]), 1e-12))
    return ll


def posterior(
    priors: np.ndarray,
    errors: np.ndarray,
    votes: list[tuple[int, float]],
    model: tuple[int, float] | None = None,
) -> np.ndarray:
    """The item's class probabilities from (class, annotator accuracy) votes and the
    model's (class, precision); voters no better than chance are left out."""
    k = len(priors)
    log_post = np.log(np.maximum(priors, 1e-12)).astype(float)
    for label, accuracy in votes:
        if informative(accuracy, k):
            log_post = log_post + _vote_log_likelihood(label, accuracy, errors)
    if model is not None and model_informative(model[0], model[1], priors):
        log_post = log_post + model_log_likelihood(model[0], model[1], priors, errors)
    log_post -= log_post.max()
    post = np.exp(log_post)
    return post / post.sum()


def model_band(confidence: float) -> int:
    for index, upper in enumerate(MODEL_BANDS):
        if confidence <= upper:
            return index
    return len(MODEL_BANDS) - 1


def model_band_accuracy(bins: list[list[float]]) -> list[float] | None:
    """Each band's accuracy from [upper, correct, checked] rows: shrunk towards the
    model's overall accuracy where checks are few, and made non-decreasing in
    confidence (pool adjacent violators), so a higher confidence never weighs
    less. None while too few predictions were checked to trust any of it."""
    checked = sum(row[2] for row in bins)
    if checked < MODEL_MIN_CHECKED:
        return None
    # Laplace: 100 right of 100 is not a certainty.
    overall = (sum(row[1] for row in bins) + 1) / (checked + 2)
    means = [
        (row[1] + MODEL_BAND_STRENGTH * overall) / (row[2] + MODEL_BAND_STRENGTH) for row in bins
    ]
    weights = [row[2] + MODEL_BAND_STRENGTH for row in bins]
    # Pool adjacent violators: merge neighbouring bands until means ascend.
    blocks: list[list[float]] = []  # [mean, weight, count of bands]
    for mean, weight in zip(means, weights, strict=True):
        blocks.append([mean, weight, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, w2, n2 = blocks.pop()
            m1, w1, n1 = blocks.pop()
            blocks.append([(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2, n1 + n2])
    result: list[float] = []
    for mean, _, count in blocks:
        result += [mean] * int(count)
    return [min(mean, cap) for mean, cap in zip(result, model_precision_caps(bins), strict=True)]


def model_precision_caps(bins: list[list[float]]) -> list[float]:
    """The most each band may count for: MODEL_MAX_PRECISION, or what its checks
    prove beyond it, up to MODEL_CEILING.

    Precision never falls as confidence rises, so a band is at least as precise
    as any run of bands from a lower one up to it: the proof for band b is the
    best lower 95 % bound (Beta posterior) over the pooled checks of bands
    j..b. The checks a band gets alone (a few dozen) prove little; 226 right of
    226 across the upper bands prove 0.987."""
    caps = []
    for b in range(len(bins)):
        proven = 0.0
        right = checked = 0.0
        for j in range(b, -1, -1):
            right += bins[j][1]
            checked += bins[j][2]
            if checked:
                proven = max(proven, float(betaincinv(right + 1, checked - right + 1, MODEL_PROOF)))
        caps.append(min(max(MODEL_MAX_PRECISION, proven), MODEL_CEILING))
    return caps


def model_bins_count(pairs: list[tuple[float, bool]]) -> list[list[float]]:
    """[upper, correct, checked] per band from (confidence, was right) pairs."""
    bins = [[upper, 0, 0] for upper in MODEL_BANDS]
    for confidence, right in pairs:
        row = bins[model_band(confidence)]
        row[1] += int(right)
        row[2] += 1
    return bins


@dataclass(frozen=True)
class Decision:
    """What an item's votes say: its best class, how likely, and what to do next:
    "decide" (confident), "review" (at the cap and still unsure) or "more"."""

    best: int
    confidence: float
    action: str


def decide(post: np.ndarray, *, annotations: int, target: float, cap: int) -> Decision:
    best = int(post.argmax())
    confidence = float(post[best])
    if confidence >= target:
        action = "decide"
    elif annotations >= cap:
        action = "review"
    else:
        action = "more"
    return Decision(best, confidence, action)


@dataclass(frozen=True)
class Estimate:
    """Output of :func:`estimate`, indexed like its input codes."""

    accuracy: np.ndarray  # (workers,) posterior mean
    low: np.ndarray  # (workers,) 95 % interval
    high: np.ndarray
    evidence: np.ndarray  # (workers,) checked answers, each weighed by its reference's sureness
    correct: np.ndarray  # (workers,) of which right (same weights)
    errors: np.ndarray  # (K, K)
    priors: np.ndarray  # (K,)
    posterior: np.ndarray  # (items, K)


def estimate(
    *,
    item_of: np.ndarray,
    worker_of: np.ndarray,
    class_of: np.ndarray,
    n_items: int,
    n_workers: int,
    n_classes: int,
    gold: dict[int, int],
    model_votes: dict[int, tuple[int, float]] | None = None,
    fit_mask: np.ndarray | None = None,
    rounds: int = EM_ROUNDS,
) -> Estimate:
    """Fit annotator accuracies, the shared error pattern and class priors by EM.

    One row per answer (item code, worker code, class code). ``gold`` maps item
    codes to their known class: those items are clamped (gold anchors the
    scale, so a crowd of careless annotators agreeing cannot define the
    truth). ``model_votes`` maps item codes to (class, calibrated accuracy):
    the model informs the items' posteriors, and so what each annotator is
    credited with, but is never itself fitted here. ``fit_mask`` (one bool a
    row) says which answers are evidence for the M-step; the rest only receive
    a posterior (by default all rows are evidence).

    The start is gold alone: accuracies from the annotators' gold answers
    (prior for those with none), uniform errors and priors; every round then
    re-weighs each answer by the current posterior of its item.
    """
    k = n_classes
    item_of = np.asarray(item_of, dtype=np.intp)
    worker_of = np.asarray(worker_of, dtype=np.intp)
    class_of = np.asarray(class_of, dtype=np.intp)
    fit = np.ones(len(item_of), dtype=bool) if fit_mask is None else np.asarray(fit_mask, bool)
    clamp = np.zeros((n_items, k))
    is_gold = np.zeros(n_items, dtype=bool)
    for item, cls in gold.items():
        clamp[item, cls] = 1.0
        is_gold[item] = True

    # Seed: gold answers only.
    gold_rows = is_gold[item_of]
    right = gold_rows & (clamp[item_of, class_of] > 0)
    correct = np.bincount(worker_of[right], minlength=n_workers).astype(float)
    total = np.bincount(worker_of[gold_rows], minlength=n_workers).astype(float)
    a0, b0 = ACCURACY_PRIOR
    accuracy = (a0 + correct) / (a0 + b0 + total)
    errors = uniform_errors(k)
    priors = np.full(k, 1.0 / k)
    votes_by_model = list((model_votes or {}).items())

    post = clamp.copy()
    for _ in range(max(rounds, 1)):
        # The model's word depends on the current priors and error pattern.
        model_ll = np.zeros((n_items, k))
        for item, (cls, precision) in votes_by_model:
            if model_informative(cls, precision, priors):
                model_ll[item] = model_log_likelihood(cls, precision, priors, errors)
        # E-step (log space): every answer's likelihood under every true class.
        acc = np.minimum(accuracy, MAX_ACCURACY)[worker_of]  # (L,)
        useful = acc > 1.0 / k + 1e-9
        wrong = np.log(np.maximum((1.0 - acc)[:, None] * errors[:, class_of].T, 1e-300))
        ll = wrong.copy()
        ll[np.arange(len(class_of)), class_of] = np.log(acc)
        ll[~useful] = 0.0
        log_post = np.log(np.maximum(priors, 1e-12)) + model_ll
        log_post = log_post + np.column_stack(
            [np.bincount(item_of, weights=ll[:, t], minlength=n_items) for t in range(k)]
        )
        log_post -= log_post.max(axis=1, keepdims=True)
        post = np.exp(log_post)
        post /= post.sum(axis=1, keepdims=True)
        post[is_gold] = clamp[is_gold]

        # M-step: accuracy = expected share right; errors from expected wrong answers.
        f_item, f_worker, f_class = item_of[fit], worker_of[fit], class_of[fit]
        weight_right = post[f_item, f_class]
        correct = np.bincount(f_worker, weights=weight_right, minlength=n_workers)
        total = np.bincount(f_worker, minlength=n_workers).astype(float)
        accuracy = (a0 + correct) / (a0 + b0 + total)
        wrong_mass = post[f_item].copy()  # (L, K): P(true = t) for each answer
        wrong_mass[np.arange(len(f_class)), f_class] = 0.0
        counts = np.zeros((k, k))
        for given in range(k):
            counts[:, given] = wrong_mass[f_class == given].sum(axis=0)
        base = uniform_errors(k) * ERROR_SMOOTHING
        errors = (counts + base) / (counts + base).sum(axis=1, keepdims=True)
        regular = ~is_gold
        if regular.any():
            priors = (post[regular].sum(axis=0) + 1.0) / (regular.sum() + k)

    # The interval counts each answer by how sure its reference is (1 on gold,
    # the item's best posterior elsewhere): agreeing with an unsure crowd is
    # weaker evidence than agreeing with gold, so without gold the intervals
    # are honestly wider.
    f_item, f_worker, f_class = item_of[fit], worker_of[fit], class_of[fit]
    sureness = post[f_item].max(axis=1)
    evidence = np.bincount(f_worker, weights=sureness, minlength=n_workers)
    sure_right = np.bincount(
        f_worker, weights=sureness * post[f_item, f_class], minlength=n_workers
    )
    low = np.empty(n_workers)
    high = np.empty(n_workers)
    mean = np.empty(n_workers)
    for w in range(n_workers):
        mean[w] = (a0 + correct[w]) / (a0 + b0 + total[w])
        _, low[w], high[w] = beta_interval(sure_right[w], evidence[w])
    return Estimate(
        accuracy=mean,
        low=low,
        high=high,
        evidence=evidence,
        correct=sure_right,
        errors=errors,
        priors=priors,
        posterior=post,
    )
