"""Classification: one label per item.

Item data {"text"}; answer {"label": "pos"}. Label schema {"labels": [...]}, two at least.
"""

from django.utils.translation import gettext as _

from annotation.models import ExportFormat, TaskType

from .base import TaskTypeSpec, label_values, normalize_labels, not_a_label, strict_object


class Classification(TaskTypeSpec):
    name = TaskType.CLASSIFICATION
    item_required = ("text",)
    agreement = "nominal"
    votable = True
    training_formats = frozenset({ExportFormat.OPENAI_CHAT})
    default_dataset_format = ExportFormat.OPENAI_CHAT
    editor_script = "js/task-types/classification.js"

    messages = {(("label",), None): not_a_label}

    def label_schema_validate(self, schema: dict) -> dict:
        return {"labels": normalize_labels(schema.get("labels"), minimum=2)}

    def answer_schema(self, label_schema: dict) -> dict:
        return strict_object({"label": {"type": "string", "enum": label_values(label_schema)}})

    def answer_check(self, answer, label_schema, item_data, field):
        return {"label": answer["label"]}

    def answer_key(self, answer):
        return answer["label"]

    def answer_from_key(self, key):
        return {"label": key}

    def answer_keys(self, label_schema):
        return label_values(label_schema)

    def gold_from_shorthand(self, value):
        return {"label": str(value)}

    def results_label(self, answer):
        return answer.get("label", "")

    def system_prompt(self, project) -> str:
        labels = ", ".join(label_values(project.label_schema))
        instructions = project.instructions.strip()
        return (f"{instructions}\n\n" if instructions else "") + (
            f"Answer with exactly one label: {labels}."
        )

    def training_record(self, project, fmt, data, answer):
        if fmt != ExportFormat.OPENAI_CHAT:
            return None
        return {
            "messages": [
                {"role": "system", "content": self.system_prompt(project)},
                {"role": "user", "content": data["text"]},
                {"role": "assistant", "content": answer["label"]},
            ]
        }

    def editor_shortcuts(self, label_schema):
        return [("1–9", _("Pick a label"))]
