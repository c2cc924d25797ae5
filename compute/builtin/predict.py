"""From (model, answer spec, text) to the reply's content, its confidence and alternatives."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from .messages import first_sentence
from .model import UNKNOWN_TEXT_CONFIDENCE, BaseModel, normalise
from .schemas import AnswerSpec, check_reply, fit_length

MIN_PROBABILITY = 1e-12


@dataclass
class Decision:
    content: str  # the assistant message
    token: str  # the decided value as one "token" for logprobs
    confidence: float  # probability of the decided value
    alternatives: list[tuple[str, float]]  # (token, probability), most likely first


def _argmax(probabilities: list[float]) -> int:
    """Index of the largest probability; the first one on a tie."""
    return max(range(len(probabilities)), key=lambda i: (probabilities[i], -i))


def _ranked(tokens: list[str], probabilities: list[float]) -> list[tuple[str, float]]:
    pairs = list(zip(tokens, probabilities, strict=True))
    order = sorted(range(len(pairs)), key=lambda i: (-pairs[i][1], i))
    return [pairs[i] for i in order]


def _clip(p: float) -> float:
    return min(max(p, MIN_PROBABILITY), 1.0)


def _compact(value) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _choose_labels(spec: AnswerSpec, marginals: list[float]) -> list[int]:
    chosen = [i for i, p in enumerate(marginals) if p >= 0.5]
    if not chosen:
        chosen = [_argmax(marginals)]
    by_probability = sorted(range(len(marginals)), key=lambda i: (-marginals[i], i))
    if spec.max_items is not None and len(chosen) > spec.max_items:
        chosen = sorted(by_probability[: spec.max_items])
    for index in by_probability:
        if len(chosen) >= spec.min_items:
            break
        if index not in chosen:
            chosen.append(index)
    return sorted(chosen)


def _set_probability(chosen: set[int], marginals: list[float]) -> float:
    """Probability of exactly this set, deciding each label independently."""
    return math.prod(p if i in chosen else 1 - p for i, p in enumerate(marginals))


def _labels_decision(spec: AnswerSpec, marginals: list[float]):
    chosen = _choose_labels(spec, marginals)
    candidates = {tuple(chosen)}
    for index in range(len(marginals)):
        flipped = set(chosen) ^ {index}
        if spec.min_items <= len(flipped) and (
            spec.max_items is None or len(flipped) <= spec.max_items
        ):
            candidates.add(tuple(sorted(flipped)))
    scored = [
        (_compact([spec.options[i] for i in c]), _set_probability(set(c), marginals))
        for c in candidates
    ]
    value = [spec.options[i] for i in chosen]
    token = _compact(value)
    confidence = _set_probability(set(chosen), marginals)
    scored.sort(key=lambda pair: (-pair[1], pair[0] != token, pair[0]))
    return value, token, confidence, scored


def decide(model: BaseModel, spec: AnswerSpec, text: str) -> Decision:
    kind = spec.kind
    if kind in ("plain", "json_object"):
        options = model.plain_labels()
        probabilities = model.label_distribution(text, options)
        best = _argmax(probabilities)
        label = options[best]
        content = label if kind == "plain" else _compact({"label": label})
        return Decision(content, label, _clip(probabilities[best]), _ranked(options, probabilities))
    if kind == "label":
        probabilities = model.label_distribution(text, spec.options)
        best = _argmax(probabilities)
        value, token = spec.options[best], spec.options[best]
        confidence, alternatives = probabilities[best], _ranked(spec.options, probabilities)
    elif kind == "choice":
        probabilities = normalise(model.choice_distribution(text, spec.options))
        best = _argmax(probabilities)
        value, token = spec.options[best], spec.options[best]
        confidence, alternatives = probabilities[best], _ranked(spec.options, probabilities)
    elif kind == "rating":
        values = list(range(spec.minimum, spec.maximum + 1))
        probabilities = model.rating_distribution(text, values)
        middle = (spec.minimum + spec.maximum) / 2
        # The most likely rating; on a tie the one nearest the middle of the range.
        best = max(
            range(len(values)),
            key=lambda i: (round(probabilities[i], 12), -abs(values[i] - middle), -values[i]),
        )
        value, token = values[best], str(values[best])
        confidence = probabilities[best]
        alternatives = _ranked([str(v) for v in values], probabilities)
    elif kind == "labels":
        marginals = model.label_marginals(text, spec.options)
        value, token, confidence, alternatives = _labels_decision(spec, marginals)
    elif kind == "spans":
        value, token, confidence = [], "[]", UNKNOWN_TEXT_CONFIDENCE
        alternatives = [(token, confidence)]
    else:  # text
        sentence = first_sentence(text)
        value = fit_length(
            sentence, spec.min_length, spec.max_length, text.strip()[len(sentence) :]
        )
        token, confidence = value, UNKNOWN_TEXT_CONFIDENCE
        alternatives = [(token, confidence)]
    confidence = _clip(confidence)
    reply = {}
    for name in spec.order:
        if name == spec.field:
            reply[name] = value
        else:
            low, high = spec.extras[name]
            note = f"Built-in model answer {token} with confidence {confidence:.2f}."
            reply[name] = fit_length(note, low, high)
    check_reply(spec, reply)
    return Decision(_compact(reply), token, confidence, alternatives)
