"""Rating: a score on a rubric for one response.

Item data {"response", "prompt"?}; answer {"rating": 4}. Label schema {"min",
"max", "rubric": {"4": "..."}}, at most 11 steps.
"""

from django.utils.translation import gettext as _

from annotation.models import TaskType

from .base import TaskTypeSpec, fail, strict_object


def _range_message(value, label_schema):
    low, high = label_schema.get("min", 1), label_schema.get("max", 5)
    return f"expected a whole number from {low} to {high}"


class Rating(TaskTypeSpec):
    name = TaskType.RATING
    item_required = ("response",)
    item_optional = ("prompt",)
    agreement = "interval"
    votable = True
    editor_script = "js/task-types/rating.js"

    messages = {(("rating",), None): _range_message}

    def label_schema_validate(self, schema: dict) -> dict:
        low, high = schema.get("min", 1), schema.get("max", 5)
        if not (isinstance(low, int) and isinstance(high, int) and 0 <= low < high <= low + 10):
            fail("label_schema.max", "need integers with min < max and at most 11 steps")
        rubric = schema.get("rubric", {})
        if not isinstance(rubric, dict):
            fail("label_schema.rubric", "expected an object mapping scores to descriptions")
        for key in rubric:
            if not str(key).lstrip("-").isdigit() or not low <= int(key) <= high:
                fail(f"label_schema.rubric.{key}", f"expected a score from {low} to {high}")
        return {"min": low, "max": high, "rubric": {str(k): str(v) for k, v in rubric.items()}}

    def answer_schema(self, label_schema: dict) -> dict:
        rating = {
            "type": "integer",
            "minimum": label_schema.get("min", 1),
            "maximum": label_schema.get("max", 5),
        }
        return strict_object({"rating": rating})

    def answer_check(self, answer, label_schema, item_data, field):
        return {"rating": answer["rating"]}

    def answer_key(self, answer):
        return answer["rating"]

    def answer_from_key(self, key):
        return {"rating": key}

    def answer_keys(self, label_schema):
        return list(range(label_schema.get("min", 1), label_schema.get("max", 5) + 1))

    def gold_from_shorthand(self, value):
        try:
            return {"rating": int(value)}
        except (TypeError, ValueError):
            return {"rating": value}

    def results_label(self, answer):
        return answer.get("rating", "")

    def editor_shortcuts(self, label_schema):
        low, high = label_schema.get("min", 1), label_schema.get("max", 5)
        digits = f"{low}–{min(high, 9)}"
        if high >= 10 and low > 0:  # 0 stands for 10 on such a scale
            digits += ", 0 = 10"
        return [(digits, _("Pick a score"))]
