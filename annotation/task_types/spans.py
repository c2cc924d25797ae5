"""Spans: labelled stretches of the item's text (named entities).

Item data {"text"}; answer {"spans": [{"start", "end", "label"}]}, offsets in
Unicode code points as Python counts them, sorted by (start, end, label).
Label schema {"labels": [...]}. JSON Schema cannot compare a span's end with
its start or with the text, nor spot the same span twice: answer_check does.
"""

import itertools

from django.utils.translation import gettext as _

from annotation.models import ExportFormat, TaskType

from .base import TaskTypeSpec, fail, label_values, normalize_labels, not_a_label, strict_object


class Spans(TaskTypeSpec):
    name = TaskType.SPANS
    item_required = ("text",)
    agreement = "span_f1"
    export_formats = frozenset({ExportFormat.CONLL})
    editor_script = "js/task-types/spans.js"

    messages = {
        (("spans",), None): lambda value, schema: "expected a list of spans",
        (("spans", "*"), None): lambda value, schema: (
            "expected an object with start, end and label"
        ),
        (("spans", "*", "start"), None): lambda value, schema: "expected a character offset >= 0",
        (("spans", "*", "end"), None): lambda value, schema: "expected a character offset > start",
        (("spans", "*", "label"), None): not_a_label,
    }

    def label_schema_validate(self, schema: dict) -> dict:
        return {"labels": normalize_labels(schema.get("labels"), minimum=1)}

    def answer_schema(self, label_schema: dict) -> dict:
        span = strict_object(
            {
                "start": {"type": "integer", "minimum": 0},
                "end": {"type": "integer", "minimum": 1},
                "label": {"type": "string", "enum": label_values(label_schema)},
            }
        )
        return strict_object({"spans": {"type": "array", "items": span}})

    def answer_check(self, answer, label_schema, item_data, field):
        length = len((item_data or {}).get("text", ""))
        for index, span in enumerate(answer["spans"]):
            start, end = span["start"], span["end"]
            path = f"{field}.spans[{index}].end"
            if end <= start:
                fail(path, f"expected a character offset > start ({start})")
            if item_data is not None and end > length:
                fail(path, f"{end} is past the end of the text ({length} characters)")
        normalized = sorted(answer["spans"], key=lambda s: (s["start"], s["end"], s["label"]))
        for before, after in itertools.pairwise(normalized):
            if before == after:
                fail(f"{field}.spans", f"the span {before} is listed twice")
        return {"spans": normalized}

    def answer_key(self, answer):
        return tuple((s["start"], s["end"], s["label"]) for s in answer["spans"])

    def editor_shortcuts(self, label_schema):
        return [
            ("1–9", _("Mark the selected text with a label")),
            (_("Click"), _("Remove a marked span")),
        ]
