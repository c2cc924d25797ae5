"""What a project's label schema, its items and its answers look like, per task type.

Each validator returns a normalized value or raises `SchemaError` with the
path of the offending field (e.g. ``answer.spans[2].end``) and what was
expected, so that the API, the import report and the UI can all say exactly
what is wrong.

Item data and answers, by task type:

- classification: data {"text"}, answer {"label": "pos"}
- multi_label: data {"text"}, answer {"labels": ["a", "b"]}
- spans: data {"text"}, answer {"spans": [{"start", "end", "label"}]}
- text: data {"prompt", "system"?}, answer {"text": "..."}
- preference: data {"prompt", "response_a", "response_b"},
  answer {"choice": "a" | "b" | "tie", "rationale"?}
- rating: data {"response", "prompt"?}, answer {"rating": 4}
"""

import itertools
from dataclasses import dataclass

from .models import TaskType

LABELED_TYPES = {TaskType.CLASSIFICATION, TaskType.MULTI_LABEL, TaskType.SPANS}
MAX_LABELS = 200
MAX_TEXT_CHARS = 200_000


@dataclass
class SchemaError(Exception):
    field: str
    message: str

    def __str__(self):
        return f"{self.field}: {self.message}"


def _fail(field: str, message: str):
    raise SchemaError(field, message)


def _require_text(value, field: str, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        _fail(field, f"expected a string, got {type(value).__name__}")
    if not allow_empty and not value.strip():
        _fail(field, "must not be empty")
    if len(value) > MAX_TEXT_CHARS:
        _fail(field, f"is {len(value):,} characters long; at most {MAX_TEXT_CHARS:,} allowed")
    return value


# --- label schema -------------------------------------------------------------


def _normalize_labels(raw, *, minimum: int) -> list[dict]:
    if not isinstance(raw, list):
        _fail("label_schema.labels", "expected a list of labels")
    labels, seen_values, seen_hotkeys = [], set(), set()
    for index, entry in enumerate(raw):
        path = f"label_schema.labels[{index}]"
        if isinstance(entry, str):
            entry = {"value": entry}
        if not isinstance(entry, dict):
            _fail(path, "expected a string or an object with 'value'")
        value = entry.get("value")
        if not isinstance(value, str) or not value.strip():
            _fail(f"{path}.value", "expected a non-empty string")
        if value in seen_values:
            _fail(f"{path}.value", f"duplicate label {value!r}")
        seen_values.add(value)
        label = {"value": value, "title": str(entry.get("title") or value)}
        hotkey = entry.get("hotkey")
        if hotkey is not None:
            if not isinstance(hotkey, str) or len(hotkey) != 1:
                _fail(f"{path}.hotkey", "expected a single character")
            if hotkey in seen_hotkeys:
                _fail(f"{path}.hotkey", f"hotkey {hotkey!r} is used twice")
            seen_hotkeys.add(hotkey)
            label["hotkey"] = hotkey
        labels.append(label)
    if len(labels) < minimum:
        _fail("label_schema.labels", f"needs at least {minimum} label(s)")
    if len(labels) > MAX_LABELS:
        _fail("label_schema.labels", f"at most {MAX_LABELS} labels")
    # Digits 1-9 pick labels in the workspace unless a label names its own key.
    free = [str(d) for d in range(1, 10) if str(d) not in seen_hotkeys]
    for label in labels:
        if "hotkey" not in label and free:
            label["hotkey"] = free.pop(0)
    return labels


def label_schema_validate(task_type: str, schema) -> dict:
    """The normalized label schema for task_type, or SchemaError."""
    if schema is None:
        schema = {}
    if isinstance(schema, list):  # shorthand: a bare list of labels
        schema = {"labels": schema}
    if not isinstance(schema, dict):
        _fail("label_schema", "expected an object")
    if task_type in LABELED_TYPES:
        minimum = 2 if task_type == TaskType.CLASSIFICATION else 1
        normalized = {"labels": _normalize_labels(schema.get("labels"), minimum=minimum)}
        if task_type == TaskType.MULTI_LABEL:
            count = len(normalized["labels"])
            low = schema.get("min_selected", 0)
            high = schema.get("max_selected", count)
            if not (isinstance(low, int) and isinstance(high, int) and 0 <= low <= high <= count):
                _fail(
                    "label_schema.max_selected",
                    f"need 0 <= min_selected <= max_selected <= {count}",
                )
            normalized.update(min_selected=low, max_selected=high)
        return normalized
    if task_type == TaskType.TEXT:
        low = schema.get("min_length", 1)
        high = schema.get("max_length", 20_000)
        if not (isinstance(low, int) and isinstance(high, int) and 0 <= low <= high):
            _fail("label_schema.max_length", "need 0 <= min_length <= max_length")
        return {"min_length": low, "max_length": min(high, MAX_TEXT_CHARS)}
    if task_type == TaskType.PREFERENCE:
        rationale = schema.get("rationale", "optional")
        if rationale not in ("none", "optional", "required"):
            _fail("label_schema.rationale", "expected 'none', 'optional' or 'required'")
        allow_tie = schema.get("allow_tie", True)
        if not isinstance(allow_tie, bool):
            _fail("label_schema.allow_tie", "expected true or false")
        return {"allow_tie": allow_tie, "rationale": rationale}
    if task_type == TaskType.RATING:
        low, high = schema.get("min", 1), schema.get("max", 5)
        if not (isinstance(low, int) and isinstance(high, int) and 0 <= low < high <= low + 10):
            _fail("label_schema.max", "need integers with min < max and at most 11 steps")
        rubric = schema.get("rubric", {})
        if not isinstance(rubric, dict):
            _fail("label_schema.rubric", "expected an object mapping scores to descriptions")
        for key in rubric:
            if not str(key).lstrip("-").isdigit() or not low <= int(key) <= high:
                _fail(f"label_schema.rubric.{key}", f"expected a score from {low} to {high}")
        return {"min": low, "max": high, "rubric": {str(k): str(v) for k, v in rubric.items()}}
    _fail("task_type", f"unknown task type {task_type!r}")
    return {}  # unreachable


def label_values(schema: dict) -> list[str]:
    return [label["value"] for label in schema.get("labels", [])]


# --- item data ----------------------------------------------------------------

ITEM_FIELDS = {
    TaskType.CLASSIFICATION: (("text",), ()),
    TaskType.MULTI_LABEL: (("text",), ()),
    TaskType.SPANS: (("text",), ()),
    TaskType.TEXT: (("prompt",), ("system",)),
    TaskType.PREFERENCE: (("prompt", "response_a", "response_b"), ()),
    TaskType.RATING: (("response",), ("prompt",)),
}


def item_data_validate(task_type: str, data) -> dict:
    """Item data for task_type: the required text fields present; extras kept."""
    if not isinstance(data, dict):
        _fail("data", "expected an object")
    required, optional = ITEM_FIELDS[task_type]
    for name in required:
        if name not in data:
            _fail(f"data.{name}", f"missing; a {task_type} item needs {', '.join(required)}")
        _require_text(data[name], f"data.{name}")
    for name in optional:
        if data.get(name) is not None:
            _require_text(data[name], f"data.{name}", allow_empty=True)
    return data


# --- answers ------------------------------------------------------------------


def answer_validate(
    task_type: str, schema: dict, answer, *, item_data: dict | None = None, field: str = "answer"
) -> dict:
    """The normalized answer, or SchemaError naming the field and what was expected."""
    if not isinstance(answer, dict):
        _fail(field, "expected an object")
    if task_type == TaskType.CLASSIFICATION:
        label = answer.get("label")
        allowed = label_values(schema)
        if label not in allowed:
            _fail(
                f"{field}.label",
                f"{label!r} is not one of the project's labels: {', '.join(allowed)}",
            )
        return {"label": label}
    if task_type == TaskType.MULTI_LABEL:
        labels = answer.get("labels")
        if not isinstance(labels, list):
            _fail(f"{field}.labels", "expected a list of labels")
        allowed = label_values(schema)
        for index, label in enumerate(labels):
            if label not in allowed:
                _fail(
                    f"{field}.labels[{index}]",
                    f"{label!r} is not one of the project's labels: {', '.join(allowed)}",
                )
        if len(set(labels)) != len(labels):
            _fail(f"{field}.labels", "a label is listed twice")
        low, high = schema.get("min_selected", 0), schema.get("max_selected", len(allowed))
        if not low <= len(labels) <= high:
            _fail(f"{field}.labels", f"choose between {low} and {high} labels")
        # Sorted by schema order so equal answers compare equal.
        order = {value: i for i, value in enumerate(allowed)}
        return {"labels": sorted(labels, key=order.__getitem__)}
    if task_type == TaskType.SPANS:
        spans = answer.get("spans")
        if not isinstance(spans, list):
            _fail(f"{field}.spans", "expected a list of spans")
        text = (item_data or {}).get("text", "")
        allowed = label_values(schema)
        normalized = []
        for index, span in enumerate(spans):
            path = f"{field}.spans[{index}]"
            if not isinstance(span, dict):
                _fail(path, "expected an object with start, end and label")
            start, end, label = span.get("start"), span.get("end"), span.get("label")
            if not isinstance(start, int) or isinstance(start, bool) or start < 0:
                _fail(f"{path}.start", "expected a character offset >= 0")
            if not isinstance(end, int) or isinstance(end, bool) or end <= start:
                _fail(f"{path}.end", f"expected a character offset > start ({start})")
            if item_data is not None and end > len(text):
                _fail(f"{path}.end", f"{end} is past the end of the text ({len(text)} characters)")
            if label not in allowed:
                _fail(
                    f"{path}.label",
                    f"{label!r} is not one of the project's labels: {', '.join(allowed)}",
                )
            normalized.append({"start": start, "end": end, "label": label})
        normalized.sort(key=lambda s: (s["start"], s["end"], s["label"]))
        for before, after in itertools.pairwise(normalized):
            if before == after:
                _fail(f"{field}.spans", f"the span {before} is listed twice")
        return {"spans": normalized}
    if task_type == TaskType.TEXT:
        text = answer.get("text")
        _require_text(text, f"{field}.text", allow_empty=schema.get("min_length", 1) == 0)
        low, high = schema.get("min_length", 1), schema.get("max_length", MAX_TEXT_CHARS)
        if not low <= len(text) <= high:
            _fail(f"{field}.text", f"expected {low} to {high} characters, got {len(text)}")
        return {"text": text}
    if task_type == TaskType.PREFERENCE:
        choice = answer.get("choice")
        allowed = ["a", "b", "tie"] if schema.get("allow_tie", True) else ["a", "b"]
        if choice not in allowed:
            _fail(f"{field}.choice", f"expected one of {', '.join(allowed)}")
        rationale = answer.get("rationale") or ""
        if not isinstance(rationale, str):
            _fail(f"{field}.rationale", "expected a string")
        if schema.get("rationale") == "required" and not rationale.strip():
            _fail(f"{field}.rationale", "this project asks for a rationale")
        result = {"choice": choice}
        if rationale.strip():
            result["rationale"] = rationale
        return result
    if task_type == TaskType.RATING:
        rating = answer.get("rating")
        low, high = schema.get("min", 1), schema.get("max", 5)
        if not isinstance(rating, int) or isinstance(rating, bool) or not low <= rating <= high:
            _fail(f"{field}.rating", f"expected a whole number from {low} to {high}")
        return {"rating": rating}
    _fail("task_type", f"unknown task type {task_type!r}")
    return {}  # unreachable


def answer_key(task_type: str, answer: dict):
    """The hashable part of an answer that agreement and voting compare."""
    if task_type == TaskType.CLASSIFICATION:
        return answer["label"]
    if task_type == TaskType.MULTI_LABEL:
        return tuple(answer["labels"])
    if task_type == TaskType.SPANS:
        return tuple((s["start"], s["end"], s["label"]) for s in answer["spans"])
    if task_type == TaskType.PREFERENCE:
        return answer["choice"]
    if task_type == TaskType.RATING:
        return answer["rating"]
    return answer.get("text", "").strip()


def answer_text(task_type: str, answer: dict) -> str:
    """The text an answer adds, for token counting."""
    if task_type == TaskType.TEXT:
        return answer.get("text", "")
    if task_type == TaskType.PREFERENCE:
        return answer.get("rationale", "")
    return ""


# Each task type's text fields in reading order, looked up once: imports call
# item_text for every row.
_TEXT_FIELDS = {
    task_type: (*optional, *required) for task_type, (required, optional) in ITEM_FIELDS.items()
}


def item_text(task_type: str, data: dict) -> str:
    fields = _TEXT_FIELDS[task_type]
    if len(fields) == 1:
        return str(data.get(fields[0]) or "")
    return "\n".join([str(data.get(name) or "") for name in fields])
