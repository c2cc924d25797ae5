"""Text: a written response to a prompt.

Item data {"prompt", "system"?}; answer {"text": "..."}. Label schema
{"min_length", "max_length"} in characters. The length is checked in
answer_check, not in the JSON Schema: OpenAI's strict mode refuses
minLength/maxLength.
"""

from annotation.models import ExportFormat, TaskType

from .base import MAX_TEXT_CHARS, TaskTypeSpec, fail, require_text, strict_object


class Text(TaskTypeSpec):
    name = TaskType.TEXT
    item_required = ("prompt",)
    item_optional = ("system",)
    agreement = "exact"
    training_formats = frozenset({ExportFormat.OPENAI_CHAT})
    default_dataset_format = ExportFormat.OPENAI_CHAT
    editor_script = "js/task-types/text.js"
    has_text_box = True
    submit_keys = ("Control+Enter", "Ctrl+Enter")  # the answer is typed: Enter is a newline

    messages = {
        (("text",), None): lambda value, schema: f"expected a string, got {type(value).__name__}",
    }

    def label_schema_validate(self, schema: dict) -> dict:
        low = schema.get("min_length", 1)
        high = schema.get("max_length", 20_000)
        if not (isinstance(low, int) and isinstance(high, int) and 0 <= low <= high):
            fail("label_schema.max_length", "need 0 <= min_length <= max_length")
        return {"min_length": low, "max_length": min(high, MAX_TEXT_CHARS)}

    def answer_schema(self, label_schema: dict) -> dict:
        return strict_object({"text": {"type": "string"}})

    def answer_check(self, answer, label_schema, item_data, field):
        text = answer["text"]
        low = label_schema.get("min_length", 1)
        high = label_schema.get("max_length", MAX_TEXT_CHARS)
        require_text(text, f"{field}.text", allow_empty=low == 0)
        if not low <= len(text) <= high:
            fail(f"{field}.text", f"expected {low} to {high} characters, got {len(text)}")
        return {"text": text}

    def answer_key(self, answer):
        return answer.get("text", "").strip()

    def answer_text(self, answer):
        return answer.get("text", "")

    def gold_from_shorthand(self, value):
        return {"text": str(value)}

    def training_record(self, project, fmt, data, answer):
        if fmt != ExportFormat.OPENAI_CHAT:
            return None
        messages = []
        if data.get("system"):
            messages.append({"role": "system", "content": data["system"]})
        messages += [
            {"role": "user", "content": data["prompt"]},
            {"role": "assistant", "content": answer["text"]},
        ]
        return {"messages": messages}

    def editor_shortcuts(self, label_schema):
        return []
