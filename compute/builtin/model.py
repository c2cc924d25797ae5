"""The models behind the server: the untrained base model and fine-tuned classifiers.

Every prediction is a probability distribution over the values the schema allows;
the decided value is its most likely one and its probability is the confidence.

- ``BaseModel`` (``tokenworks-base``): sentiment-looking label sets get the lexicon's
  probabilities (see ``lexicon``), any other label set a uniform distribution (1/k).
  Ratings: uniform over the range, so the middle value with confidence 1/k.
  Preference: a weak prior for the longer, more polite response (at most ~0.6).
- ``FineTunedModel``: TF-IDF over character 1-3-grams (``char_wb``, so no word
  segmentation is needed for Chinese) + logistic regression, one *head* per answer
  kind found in the training data (label, labels, rating, choice). A head's
  probabilities are restricted to the schema's enum and renormalised; an enum value
  the head never saw gets a small floor. Kinds without a head fall back to the base
  model's behaviour.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np

from . import lexicon

FLOOR = 0.01  # weight of an enum value the classifier never saw, before renormalising
UNKNOWN_TEXT_CONFIDENCE = 0.05  # spans and free text: a flag "do not trust", not an estimate
DEFAULT_LABELS = ["positive", "negative"]  # the base model's answer set without a schema

_POLITE = re.compile(
    r"please|thank|thanks|sorry|glad|happy to|appreciate|kindly|welcome|"
    r"您|请|谢谢|感谢|抱歉|不好意思|很高兴|乐意|欢迎|辛苦",
    re.IGNORECASE,
)


def normalise(weights: list[float]) -> list[float]:
    total = sum(weights)
    return [w / total for w in weights]


def uniform(count: int) -> list[float]:
    return [1.0 / count] * count


class BaseModel:
    model_id = "tokenworks-base"
    classes: tuple[str, ...] = ()

    def label_distribution(self, text: str, options: list[str]) -> list[float]:
        polarities = lexicon.label_polarities(options)
        if polarities is None:
            return uniform(len(options))
        return lexicon.sentiment_distribution(text, options, polarities)

    def label_marginals(self, text: str, options: list[str]) -> list[float]:
        """Multi-label: the single-label distribution read as per-label probabilities."""
        return self.label_distribution(text, options)

    def rating_distribution(self, text: str, values: list[int]) -> list[float]:
        return uniform(len(values))

    def choice_distribution(self, text: str, options: list[str]) -> list[float]:
        return preference_prior(text, options)

    def plain_labels(self) -> list[str]:
        return list(DEFAULT_LABELS)


def restrict(classes: list[str], probabilities, options: list[str]) -> list[float]:
    """The head's distribution over options: seen values keep theirs, unseen get FLOOR."""
    known = dict(zip(classes, (float(p) for p in probabilities), strict=True))
    if not any(o in known for o in options):
        mapped = _polarity_transfer(known, options)
        if mapped is not None:
            return mapped
    return normalise([max(known.get(o, FLOOR), 1e-9) for o in options])


def _polarity_transfer(known: dict[str, float], options: list[str]) -> list[float] | None:
    """A head trained on e.g. 1/0 asked for positive/negative: map through polarity."""
    trained = lexicon.label_polarities(list(known))
    wanted = lexicon.label_polarities(options)
    if trained is None or wanted is None:
        return None
    mass: dict[str, float] = {}
    for label, p in known.items():
        mass[trained[label]] = mass.get(trained[label], 0.0) + p
    counts = {p: list(wanted.values()).count(p) for p in set(wanted.values())}
    return normalise([max(mass.get(wanted[o], FLOOR), 1e-9) / counts[wanted[o]] for o in options])


class FineTunedModel(BaseModel):
    """heads: {"label" | "rating" | "choice": Pipeline, "labels": (Pipeline, [classes])}."""

    def __init__(self, model_id: str, heads: dict):
        self.model_id = model_id
        self.heads = heads
        self.classes = tuple(heads["label"].classes_) if "label" in heads else ()

    def _proba(self, kind: str, text: str) -> tuple[list[str], np.ndarray]:
        head = self.heads[kind]
        if kind == "labels":
            pipeline, classes = head
            return classes, pipeline.predict_proba([text])[0]
        return [str(c) for c in head.classes_], head.predict_proba([text])[0]

    def label_distribution(self, text: str, options: list[str]) -> list[float]:
        if "label" not in self.heads:
            return super().label_distribution(text, options)
        return restrict(*self._proba("label", text), options)

    def label_marginals(self, text: str, options: list[str]) -> list[float]:
        if "labels" not in self.heads:
            return self.label_distribution(text, options)
        classes, probabilities = self._proba("labels", text)
        known = dict(zip(classes, (float(p) for p in probabilities), strict=True))
        return [min(max(known.get(o, FLOOR), 1e-9), 1 - 1e-9) for o in options]

    def rating_distribution(self, text: str, values: list[int]) -> list[float]:
        if "rating" not in self.heads:
            return super().rating_distribution(text, values)
        return restrict(*self._proba("rating", text), [str(v) for v in values])

    def choice_distribution(self, text: str, options: list[str]) -> list[float]:
        if "choice" not in self.heads:
            return super().choice_distribution(text, options)
        return restrict(*self._proba("choice", text), options)

    def plain_labels(self) -> list[str]:
        for kind in ("label", "rating", "choice"):
            if kind in self.heads:
                return [str(c) for c in self.heads[kind].classes_]
        return super().plain_labels()


# --- preference ----------------------------------------------------------------------

_MARKER = re.compile(
    r"(?im)(?:response|answer|reply|completion|output|assistant|candidate|回答|回复|答案|选项)"
    r"[ \t_]*([ab])\b[ \t]*[\])]?[ \t]*[:：]?"  # Response A:, answer_b, 回答A：
    r"|^[ \t#*>-]*\[([ab])\][ \t]*[:：]?"  # [A]
    r"|^[ \t#*>-]*\(?([ab])[)）:：]"  # A: (A) A)
)


def split_responses(text: str) -> tuple[str, str] | None:
    """(response A, response B) from a preference prompt, or None when not found.

    Understands a JSON object with response_a/response_b and markers such as
    "Response A:", "[A]", "A:", "回答A：".
    """
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            data = json.loads(stripped)
        except ValueError:
            data = None
        if (
            isinstance(data, dict)
            and isinstance(data.get("response_a"), str)
            and isinstance(data.get("response_b"), str)
        ):
            return data["response_a"], data["response_b"]
    marks = [
        (m.start(), m.end(), next(g for g in m.groups() if g).lower())
        for m in _MARKER.finditer(text)
    ]
    first_a = next((m for m in marks if m[2] == "a"), None)
    if first_a is None:
        return None
    first_b = next((m for m in marks if m[2] == "b" and m[0] >= first_a[1]), None)
    if first_b is None:
        return None
    return text[first_a[1] : first_b[0]].strip(), text[first_b[1] :].strip()


def preference_prior(text: str, options: list[str]) -> list[float]:
    """Longer and more polite wins, weakly: logits a = +s, b = -s, tie = -0.5, |s| <= 0.6."""
    pair = split_responses(text)
    if pair is None:
        return uniform(len(options))
    a, b = pair
    longest = max(len(a), len(b), 1)
    length = (len(a) - len(b)) / longest
    polite = max(-2, min(2, len(_POLITE.findall(a)) - len(_POLITE.findall(b)))) / 2
    s = 0.6 * (0.6 * length + 0.4 * polite)
    logits = {"a": s, "b": -s, "tie": -0.5}
    return normalise([math.exp(logits.get(o, -0.5)) for o in options])
