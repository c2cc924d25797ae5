"""Multi-label classification: any number of labels per item, within a range.

Item data {"text"}; answer {"labels": ["a", "b"]}, kept in the label schema's
order so that equal answers compare equal. Label schema {"labels": [...],
"min_selected", "max_selected"}.
"""

from django.utils.translation import gettext as _

from annotation.models import TaskType

from .base import TaskTypeSpec, fail, label_values, normalize_labels, not_a_label, strict_object


def _count_message(value, label_schema):
    low = label_schema.get("min_selected", 0)
    high = label_schema.get("max_selected", len(label_schema.get("labels", [])))
    return f"choose between {low} and {high} labels"


class MultiLabel(TaskTypeSpec):
    name = TaskType.MULTI_LABEL
    item_required = ("text",)
    agreement = "nominal"
    votable = True
    editor_script = "js/task-types/multi_label.js"

    messages = {
        (("labels",), "type"): lambda value, schema: "expected a list of labels",
        (("labels",), "uniqueItems"): lambda value, schema: "a label is listed twice",
        (("labels",), "minItems"): _count_message,
        (("labels",), "maxItems"): _count_message,
        (("labels", "*"), None): not_a_label,
    }

    def label_schema_validate(self, schema: dict) -> dict:
        labels = normalize_labels(schema.get("labels"), minimum=1)
        count = len(labels)
        low = schema.get("min_selected", 0)
        high = schema.get("max_selected", count)
        if not (isinstance(low, int) and isinstance(high, int) and 0 <= low <= high <= count):
            fail("label_schema.max_selected", f"need 0 <= min_selected <= max_selected <= {count}")
        return {"labels": labels, "min_selected": low, "max_selected": high}

    def answer_schema(self, label_schema: dict) -> dict:
        labels = label_values(label_schema)
        return strict_object(
            {
                "labels": {
                    "type": "array",
                    "items": {"type": "string", "enum": labels},
                    "uniqueItems": True,
                    "minItems": label_schema.get("min_selected", 0),
                    "maxItems": label_schema.get("max_selected", len(labels)),
                }
            }
        )

    def answer_check(self, answer, label_schema, item_data, field):
        # Sorted by schema order so equal answers compare equal.
        order = {value: i for i, value in enumerate(label_values(label_schema))}
        return {"labels": sorted(answer["labels"], key=order.__getitem__)}

    def answer_key(self, answer):
        return tuple(answer["labels"])

    def answer_from_key(self, key):
        return {"labels": list(key)}

    def gold_from_shorthand(self, value):
        labels = value if isinstance(value, list) else str(value).split("|")
        return {"labels": [str(v).strip() for v in labels if str(v).strip()]}

    def editor_shortcuts(self, label_schema):
        return [("1–9", _("Turn a label on or off"))]
