"""Preference: which of two responses to a prompt is better (or a tie).

Item data {"prompt", "response_a", "response_b"}; answer {"choice": "a" | "b"
| "tie", "rationale"?}. Label schema {"allow_tie", "rationale": "none" |
"optional" | "required"}. The rationale is optional in the answer schema, so
models are never asked for one (strict mode sends required properties only).
"""

from django.utils.translation import gettext as _

from annotation.models import ExportFormat, TaskType

from .base import TaskTypeSpec, fail, strict_object


def _choices(label_schema: dict) -> list[str]:
    return ["a", "b", "tie"] if label_schema.get("allow_tie", True) else ["a", "b"]


def preference_pair(data: dict, answer: dict) -> tuple[str, str, str] | None:
    """(prompt, chosen, rejected), or None for a tie (no preference to learn)."""
    if answer.get("choice") == "a":
        return data["prompt"], data["response_a"], data["response_b"]
    if answer.get("choice") == "b":
        return data["prompt"], data["response_b"], data["response_a"]
    return None


class Preference(TaskTypeSpec):
    name = TaskType.PREFERENCE
    item_required = ("prompt", "response_a", "response_b")
    agreement = "nominal"
    votable = True
    training_formats = frozenset({ExportFormat.DPO, ExportFormat.OPENAI_PREFERENCE})
    default_dataset_format = ExportFormat.DPO
    editor_script = "js/task-types/preference.js"
    has_text_box = True  # the rationale box

    messages = {
        (("choice",), None): lambda value, schema: f"expected one of {', '.join(_choices(schema))}",
        (("rationale",), None): lambda value, schema: "expected a string",
    }

    def label_schema_validate(self, schema: dict) -> dict:
        rationale = schema.get("rationale", "optional")
        if rationale not in ("none", "optional", "required"):
            fail("label_schema.rationale", "expected 'none', 'optional' or 'required'")
        allow_tie = schema.get("allow_tie", True)
        if not isinstance(allow_tie, bool):
            fail("label_schema.allow_tie", "expected true or false")
        return {"allow_tie": allow_tie, "rationale": rationale}

    def answer_schema(self, label_schema: dict) -> dict:
        return strict_object(
            {
                "choice": {"type": "string", "enum": _choices(label_schema)},
                "rationale": {"type": ["string", "null"]},
            },
            optional=("rationale",),
        )

    def answer_check(self, answer, label_schema, item_data, field):
        rationale = answer.get("rationale") or ""
        if label_schema.get("rationale") == "required" and not rationale.strip():
            fail(f"{field}.rationale", "this project asks for a rationale")
        result = {"choice": answer["choice"]}
        if rationale.strip():
            result["rationale"] = rationale
        return result

    def answer_key(self, answer):
        return answer["choice"]

    def answer_keys(self, label_schema):
        return _choices(label_schema)

    def answer_from_key(self, key):
        # No rationale: nobody wrote one for an answer rebuilt from its key.
        return {"choice": key}

    def answer_text(self, answer):
        return answer.get("rationale", "")

    def gold_from_shorthand(self, value):
        return {"choice": str(value).strip().lower()}

    def results_label(self, answer):
        return answer.get("choice", "")

    def training_record(self, project, fmt, data, answer):
        pair = preference_pair(data, answer)
        if pair is None:
            return None
        prompt, chosen, rejected = pair
        if fmt == ExportFormat.DPO:
            return {"prompt": prompt, "chosen": chosen, "rejected": rejected}
        if fmt == ExportFormat.OPENAI_PREFERENCE:
            return {  # OpenAI's preference (DPO) fine-tuning format
                "input": {"messages": [{"role": "user", "content": prompt}]},
                "preferred_output": [{"role": "assistant", "content": chosen}],
                "non_preferred_output": [{"role": "assistant", "content": rejected}],
            }
        return None

    def editor_shortcuts(self, label_schema):
        return [("1 / 2 / 3", _("Response A / response B / tie"))]
