"""Fine-tuning data and training: JSONL examples in, classifier heads out.

A training line is OpenAI's chat format, ``{"messages": [...]}``: the last user
message is the input text and the last assistant message is the target. The target
is read as the platform writes answers: a JSON object with one of ``label``,
``labels``, ``rating``, ``choice`` (learned), ``spans`` or ``text`` (accepted, not
learned), or else the plain assistant text as a label. Preference lines
(``{"input": {"messages"}, "preferred_output", "non_preferred_output"}``) are valid
only for DPO jobs, which the built-in model refuses (see ``service``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MultiLabelBinarizer

from annotation.token_estimate import estimate_tokens

from .messages import MessageError, last_user_text, read_messages

LEARNED_KINDS = ("label", "labels", "rating", "choice")
TARGET_KINDS = (*LEARNED_KINDS, "spans", "text")
REGULARISATION_C = 5.0  # between C=3 and C=10, the best two in 5-fold CV on waimai_10k
MAX_ITER = 2000


class DataFileError(ValueError):
    """A training or validation file that cannot be used, naming the line when there is one."""

    def __init__(self, message: str, line: int | None = None):
        super().__init__(f"line {line}: {message}" if line else message)
        self.line = line


@dataclass
class Example:
    text: str
    kind: str  # label, labels, rating, choice, spans, text, or "preference"
    target: object
    tokens: int


def parse_target(content: str) -> tuple[str, object]:
    stripped = content.strip()
    if not stripped:
        raise ValueError("the assistant message is empty")
    if stripped.startswith("{"):
        try:
            data = json.loads(stripped)
        except ValueError:
            data = None
        if isinstance(data, dict):
            for kind in TARGET_KINDS:
                if kind in data:
                    return kind, _check_target(kind, data[kind])
            raise ValueError(
                "the assistant message is a JSON object with none of the answer fields "
                + ", ".join(TARGET_KINDS)
            )
    return "label", stripped


def _check_target(kind: str, value):
    ok = {
        "label": isinstance(value, str) and value != "",
        "labels": isinstance(value, list) and all(isinstance(v, str) for v in value),
        "rating": isinstance(value, int) and not isinstance(value, bool),
        "choice": isinstance(value, str) and value != "",
        "spans": isinstance(value, list),
        "text": isinstance(value, str),
    }[kind]
    if not ok:
        expected = {
            "label": "a non-empty string",
            "labels": "a list of strings",
            "rating": "an integer",
            "choice": "a non-empty string",
            "spans": "a list",
            "text": "a string",
        }[kind]
        raise ValueError(f"the assistant's {kind!r} must be {expected}, got {value!r}")
    return str(value) if kind == "rating" else value


def _chat_tokens(chat) -> int:
    return sum(estimate_tokens(text) for _, text in chat)


def parse_line(data) -> Example:
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    if "messages" in data:
        try:
            chat = read_messages(data["messages"])
        except MessageError as exc:
            raise ValueError(str(exc)) from None
        last_assistant = max((i for i, (r, _) in enumerate(chat) if r == "assistant"), default=-1)
        if last_assistant < 0:
            raise ValueError("no assistant message (the target) in 'messages'")
        text = last_user_text(chat[:last_assistant])
        if text is None:
            raise ValueError("no user message (the input) before the last assistant message")
        kind, target = parse_target(chat[last_assistant][1])
        return Example(text=text, kind=kind, target=target, tokens=_chat_tokens(chat))
    if "input" in data and "preferred_output" in data:
        source = data["input"]
        if not isinstance(source, dict):
            raise ValueError("'input' must be an object with 'messages'")
        try:
            chat = read_messages(source.get("messages"), "input.messages")
            preferred = read_messages(data["preferred_output"], "preferred_output")
            rejected = read_messages(data.get("non_preferred_output"), "non_preferred_output")
        except MessageError as exc:
            raise ValueError(str(exc)) from None
        text = last_user_text(chat)
        if text is None:
            raise ValueError("no user message in 'input.messages'")
        tokens = _chat_tokens(chat) + _chat_tokens(preferred) + _chat_tokens(rejected)
        return Example(text=text, kind="preference", target=None, tokens=tokens)
    raise ValueError(
        "expected chat format {'messages': [...]} or preference format "
        "{'input': {'messages': [...]}, 'preferred_output': [...], 'non_preferred_output': [...]}"
    )


def read_examples(path: Path) -> list[Example]:
    examples = []
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise DataFileError("not UTF-8 text", number) from None
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except ValueError as exc:
                raise DataFileError(f"not valid JSON ({exc})", number) from None
            try:
                examples.append(parse_line(data))
            except ValueError as exc:
                raise DataFileError(str(exc), number) from None
    if not examples:
        raise DataFileError("the file has no examples")
    return examples


# --- training ------------------------------------------------------------------------


def make_pipeline(seed: int, *, multilabel: bool = False) -> Pipeline:
    classifier = LogisticRegression(C=REGULARISATION_C, max_iter=MAX_ITER, random_state=seed)
    return Pipeline(
        [
            (
                "tfidf",
                TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), sublinear_tf=True),
            ),
            ("clf", OneVsRestClassifier(classifier) if multilabel else classifier),
        ]
    )


MAX_LABELS = 200  # a platform label schema has at most this many labels


def looks_like_free_text(targets: list[str]) -> bool:
    """Label targets that are really free-text answers (a text task exported as chat).

    More distinct values than any label schema allows, or mostly unique answers.
    """
    distinct = len(set(targets))
    return distinct > MAX_LABELS or (len(targets) >= 10 and distinct > len(targets) / 2)


def train_heads(examples: list[Example], seed: int) -> tuple[dict, list[str]]:
    """({kind: head}, notes) for every learnable kind with at least two distinct targets."""
    heads, notes = {}, []
    labels = [str(e.target) for e in examples if e.kind == "label"]
    if labels and looks_like_free_text(labels):
        notes.append(
            f"label: the assistant answers look like free text ({len(set(labels))} different "
            f"answers in {len(labels)} examples), not labels; the built-in model does not learn "
            "free text"
        )
        examples = [e for e in examples if e.kind != "label"]
    for kind in LEARNED_KINDS:
        subset = [e for e in examples if e.kind == kind]
        if not subset:
            continue
        texts = [e.text for e in subset]
        if kind == "labels":
            sets = {tuple(sorted(set(e.target))) for e in subset}
            if len(sets) < 2:
                notes.append(f"{kind}: every example has the same labels; nothing to learn")
                continue
            binarizer = MultiLabelBinarizer()
            matrix = binarizer.fit_transform([sorted(set(e.target)) for e in subset])
            pipeline = make_pipeline(seed, multilabel=True).fit(texts, matrix)
            heads[kind] = (pipeline, [str(c) for c in binarizer.classes_])
            continue
        targets = [str(e.target) for e in subset]
        if len(set(targets)) < 2:
            notes.append(f"{kind}: every example has the target {targets[0]!r}; nothing to learn")
            continue
        heads[kind] = make_pipeline(seed).fit(texts, targets)
    for kind in ("spans", "text"):
        count = sum(1 for e in examples if e.kind == kind)
        if count:
            notes.append(
                f"{kind}: {count} example(s) accepted but not learned; the built-in model "
                f"answers {kind} without training"
            )
    return heads, notes


def evaluate(heads: dict, examples: list[Example]) -> dict[str, dict]:
    """{kind: {"accuracy", "loss"?, "examples"}} for the heads that have examples here.

    accuracy is exact match (for labels: the whole set, deciding each label at 0.5);
    loss is the mean negative log-likelihood of the true value (single-label heads).
    """
    results = {}
    for kind, head in heads.items():
        subset = [e for e in examples if e.kind == kind]
        if not subset:
            continue
        texts = [e.text for e in subset]
        if kind == "labels":
            pipeline, classes = head
            marginals = pipeline.predict_proba(texts)
            hits = sum(
                {c for c, p in zip(classes, row, strict=True) if p >= 0.5} == set(e.target)
                for row, e in zip(marginals, subset, strict=True)
            )
            results[kind] = {"accuracy": hits / len(subset), "examples": len(subset)}
            continue
        classes = [str(c) for c in head.classes_]
        probabilities = head.predict_proba(texts)
        index = {c: i for i, c in enumerate(classes)}
        predicted = [classes[int(np.argmax(row))] for row in probabilities]
        truth = [str(e.target) for e in subset]
        loss = -sum(
            math.log(max(float(row[index[t]]) if t in index else 0.0, 1e-15))
            for row, t in zip(probabilities, truth, strict=True)
        ) / len(subset)
        hits = sum(p == t for p, t in zip(predicted, truth, strict=True))
        results[kind] = {"accuracy": hits / len(subset), "loss": loss, "examples": len(subset)}
    return results
