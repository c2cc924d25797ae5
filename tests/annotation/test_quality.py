"""The quality engine's arithmetic (annotation.quality): no database."""

import itertools
import random

import numpy as np
import pytest

from annotation import quality


def test_agreeing_votes_raise_the_posterior_and_a_disagreement_lowers_it():
    k = 4
    priors, errors = np.full(k, 1 / k), quality.uniform_errors(k)
    one = quality.posterior(priors, errors, [(2, 0.85)])
    two = quality.posterior(priors, errors, [(2, 0.85), (2, 0.85)])
    split = quality.posterior(priors, errors, [(2, 0.85), (1, 0.85)])
    assert one.argmax() == two.argmax() == 2
    assert 0.8 < one[2] < two[2]
    assert two[2] > 0.98
    assert split[2] == pytest.approx(split[1]) and split[2] < 0.5


def test_a_voter_at_or_under_chance_has_no_weight():
    k = 10
    priors, errors = np.full(k, 1 / k), quality.uniform_errors(k)
    alone = quality.posterior(priors, errors, [(3, 0.9)])
    # A model at chance (1/K) or worse than chance: the posterior is unchanged.
    for useless in (0.1, 0.05):
        assert np.allclose(quality.posterior(priors, errors, [(3, 0.9), (5, useless)]), alone)
    assert not quality.informative(0.5, 2) and quality.informative(0.51, 2)


def test_no_voter_is_infallible():
    k = 2
    priors, errors = np.full(k, 0.5), quality.uniform_errors(k)
    # Two "perfect" voters disagreeing do not produce a division by zero or a certainty.
    post = quality.posterior(priors, errors, [(0, 1.0), (1, 1.0), (0, 0.9)])
    assert post.argmax() == 0 and post[0] < 1.0


def test_shared_errors_make_a_confusable_answer_weaker_evidence():
    k = 3
    priors = np.full(k, 1 / k)
    errors = np.array([[0, 0.9, 0.1], [0.9, 0, 0.1], [0.5, 0.5, 0]])
    # Class 0 is mostly mistaken for 1: a "1" says less against 0 than against 2.
    post = quality.posterior(priors, errors, [(1, 0.7)])
    assert post[0] > post[2]


def test_decide_asks_for_more_until_the_target_then_sends_to_review_at_the_cap():
    post = np.array([0.9, 0.1])
    assert quality.decide(post, annotations=1, target=0.95, cap=3).action == "more"
    assert quality.decide(post, annotations=3, target=0.95, cap=3).action == "review"
    decided = quality.decide(np.array([0.01, 0.99]), annotations=1, target=0.95, cap=3)
    assert (decided.action, decided.best, decided.confidence) == ("decide", 1, 0.99)


def test_beta_interval_narrows_with_evidence_and_contains_the_mean():
    mean, low, high = quality.beta_interval(8, 10)
    assert low < mean < high
    _, low_many, high_many = quality.beta_interval(800, 1000)
    assert high_many - low_many < (high - low) / 5
    assert quality.beta_interval(0, 0)[0] == pytest.approx(0.7)


def test_model_bands_need_enough_checks_and_never_fall_with_confidence():
    few = quality.model_bins_count([(0.99, True)] * 5)
    assert quality.model_band_accuracy(few) is None
    # Right 90 % of the time at high confidence, 40 % at low, but a noisy middle band.
    pairs = [(0.99, n % 10 != 0) for n in range(60)]
    pairs += [(0.4, n % 5 < 2) for n in range(30)]
    pairs += [(0.75, n % 4 == 0) for n in range(8)]  # 25 %: under the low band
    bands = quality.model_band_accuracy(quality.model_bins_count(pairs))
    assert bands is not None
    assert all(a <= b + 1e-12 for a, b in itertools.pairwise(bands))
    assert bands[quality.model_band(0.99)] > 0.8
    assert bands[quality.model_band(0.4)] < 0.6


def test_the_models_word_counts_only_as_sure_as_its_checks_prove():
    # 40 right of 40 proves little: the flat floor.
    few = quality.model_band_accuracy(quality.model_bins_count([(0.99, True)] * 40))
    assert few[quality.model_band(0.99)] == pytest.approx(quality.MODEL_MAX_PRECISION)
    # 150 right of 150 proves about 0.98 (the lower 95 % bound), more than the floor.
    some = quality.model_band_accuracy(quality.model_bins_count([(0.99, True)] * 150))
    assert quality.MODEL_MAX_PRECISION < some[quality.model_band(0.99)] < 0.985
    # 3,000 right: never past the ceiling, so the model alone never overturns one
    # careful person's answer at a 0.98 target.
    many = quality.model_band_accuracy(quality.model_bins_count([(0.99, True)] * 3000))
    precision = many[quality.model_band(0.99)]
    assert precision == pytest.approx(quality.MODEL_CEILING)
    # Ten classes confused in pairs (0 with 1, 2 with 3…) half the time, as in
    # the benchmark's workforce: the hardest case for the model's word.
    priors, errors = np.full(10, 0.1), quality.uniform_errors(10) * 0.5
    for a in range(0, 10, 2):
        errors[a, a + 1] += 0.5
        errors[a + 1, a] += 0.5
    for accuracy in (0.6, 0.67, 0.85):
        post = quality.posterior(priors, errors, [(1, accuracy)], (0, precision))
        assert post.max() < 0.98
    # ...but a second person agreeing with the model decides an item the first
    # person got wrong, where the flat 0.95 needed a third.
    two = quality.posterior(priors, errors, [(1, 0.83), (0, 0.75)], (0, precision))
    flat = quality.posterior(priors, errors, [(1, 0.83), (0, 0.75)], (0, 0.95))
    assert two[0] >= 0.98 > flat[0]


def _simulated(seed=3, items=600, gold=40, classes=5):
    """A workforce of 4 good (0.9), 4 medium (0.75) and 2 spammers (0.2), three
    answers an item, errors to the next class half the time."""
    rng = random.Random(seed)
    accuracies = [0.9] * 4 + [0.75] * 4 + [0.2] * 2
    truth = [rng.randrange(classes) for _ in range(items)]
    rows = []
    for item, t in enumerate(truth):
        for worker in rng.sample(range(len(accuracies)), 3):
            if rng.random() < accuracies[worker]:
                label = t
            elif rng.random() < 0.5:
                label = (t + 1) % classes
            else:
                label = rng.choice([c for c in range(classes) if c != t])
            rows.append((item, worker, label))
    arrays = [np.array(column) for column in zip(*rows, strict=True)]
    return truth, accuracies, arrays, {i: truth[i] for i in range(gold)}


def test_estimate_recovers_who_is_careful_and_which_classes_are_confused():
    truth, accuracies, (item_of, worker_of, class_of), gold = _simulated()
    est = quality.estimate(
        item_of=item_of,
        worker_of=worker_of,
        class_of=class_of,
        n_items=len(truth),
        n_workers=len(accuracies),
        n_classes=5,
        gold=gold,
    )
    for worker, accuracy in enumerate(accuracies):
        assert abs(est.accuracy[worker] - accuracy) < 0.08, (worker, est.accuracy[worker])
        assert est.low[worker] < est.accuracy[worker] < est.high[worker]
    # The spammers are surely under a 0.6 bar; nobody else is.
    assert [w for w in range(10) if est.high[w] < 0.6] == [8, 9]
    # Errors go to the next class half the time: the learned pattern says so.
    assert all(est.errors[t, (t + 1) % 5] > 0.35 for t in range(5))
    assert np.allclose(np.diag(est.errors), 0, atol=0.02)
    # Gold stays what it is; the rest is mostly right.
    assert all(est.posterior[i].argmax() == truth[i] for i in gold)
    right = sum(est.posterior[i].argmax() == truth[i] for i in range(len(truth)))
    assert right / len(truth) > 0.9


def test_estimate_without_gold_still_works_with_wider_intervals():
    truth, accuracies, (item_of, worker_of, class_of), gold = _simulated()
    kwargs = dict(
        item_of=item_of,
        worker_of=worker_of,
        class_of=class_of,
        n_items=len(truth),
        n_workers=len(accuracies),
        n_classes=5,
    )
    anchored = quality.estimate(gold=gold, **kwargs)
    free = quality.estimate(gold={}, **kwargs)
    assert free.accuracy[0] > 0.8 and free.accuracy[9] < 0.4
    # Gold makes the references surer: the anchored intervals are narrower overall.
    assert (anchored.high - anchored.low).mean() < (free.high - free.low).mean()
    assert anchored.evidence.sum() > free.evidence.sum()


def test_fit_mask_keeps_lone_answers_from_confirming_themselves():
    # One careless worker answering alone on every item: without a second
    # opinion nothing says they are careless, and the mask keeps them at the prior.
    item_of = np.arange(50)
    worker_of = np.zeros(50, dtype=int)
    class_of = np.zeros(50, dtype=int)
    est = quality.estimate(
        item_of=item_of,
        worker_of=worker_of,
        class_of=class_of,
        n_items=50,
        n_workers=1,
        n_classes=3,
        gold={},
        fit_mask=np.zeros(50, dtype=bool),
    )
    assert est.accuracy[0] == pytest.approx(0.7)
    assert est.evidence[0] == 0


def test_a_model_that_always_says_the_commonest_class_moves_nothing():
    priors = np.array([0.5, 0.3, 0.2])
    errors = quality.uniform_errors(3)
    # Right 50 % of the time by always answering class 0, whose prior is 0.5.
    assert not quality.model_informative(0, 0.5, priors)
    assert np.allclose(quality.posterior(priors, errors, [], (0, 0.5)), priors)
    # A model right 90 % when it says class 2 moves class 2 to 0.9 on its own.
    assert quality.posterior(priors, errors, [], (2, 0.9))[2] == pytest.approx(0.9)


def test_checks_spread_over_bands_prove_together_what_none_proves_alone():
    # 30 right in each of the six upper bands: 30 alone prove under 0.95, but
    # precision never falls with confidence, so the top band is at least as
    # precise as all six together (180 of 180).
    pairs = [(upper - 0.001, True) for upper in quality.MODEL_BANDS[2:] for _ in range(30)]
    bands = quality.model_band_accuracy(quality.model_bins_count(pairs))
    assert bands[2] == pytest.approx(quality.MODEL_MAX_PRECISION)
    assert bands[-1] > 0.98
    assert all(a <= b + 1e-12 for a, b in itertools.pairwise(bands))
    # One miss among them lowers what is proven; a band under the floor stays as measured.
    pairs[-1] = (0.999, False)
    pairs += [(0.45, n % 2 == 0) for n in range(40)]
    worse = quality.model_band_accuracy(quality.model_bins_count(pairs))
    assert worse[-1] < bands[-1]
    assert worse[quality.model_band(0.45)] < 0.7
