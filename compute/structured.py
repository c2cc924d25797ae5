"""Structured output: a project's label schema as a JSON schema, and checking replies.

The JSON schema goes out as `response_format: {"type": "json_schema", ...}`,
the form current vLLM, SGLang and OpenAI honour (the older `guided_json`
extra field is ignored by new vLLM servers). The schema is the task type's
own (annotation/task_types/), and whatever comes back is checked by the same
`answer_validate` that checks human submits: one compiled schema, then the
type's own checks; an invalid reply never becomes a suggestion.
"""

import json
import string

from annotation.models import Project
from annotation.task_types import MODEL, SchemaError, answer_json_schema, answer_validate

from .models import PromptTemplate


class InvalidAnswer(ValueError):
    pass


def response_format(project: Project) -> dict:
    return {
        "type": "json_schema",
        "json_schema": {
            "name": "tokenworks_answer",
            "schema": answer_json_schema(project.task_type, project.label_schema),
            "strict": True,
        },
    }


def answer_parse(project: Project, content: str, item_data: dict) -> dict:
    """The validated answer in a reply's content, or InvalidAnswer saying what is wrong."""
    text = content.strip()
    if text.startswith("```"):  # some models fence JSON even when told not to
        text = text.strip("`").removeprefix("json").strip()
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise InvalidAnswer(f"the reply is not JSON ({exc.msg} at position {exc.pos})") from exc
    try:
        return answer_validate(
            project.task_type, project.label_schema, value, item_data=item_data, source=MODEL
        )
    except SchemaError as exc:
        raise InvalidAnswer(str(exc)) from exc


class _Fields(dict):
    def __missing__(self, key):
        return ""


def default_system_prompt(project: Project) -> str:
    parts = [project.instructions.strip()] if project.instructions.strip() else []
    labels = label_schema_titles(project)
    if labels:
        parts.append(f"Labels: {labels}.")
    parts.append("Answer with JSON matching the given schema, nothing else.")
    return "\n\n".join(parts)


def label_schema_titles(project: Project) -> str:
    return ", ".join(
        f"{label['value']} ({label['title']})"
        if label["title"] != label["value"]
        else label["value"]
        for label in project.label_schema.get("labels", [])
    )


def prompt_messages(prompt: PromptTemplate, project: Project, item_data: dict) -> list[dict]:
    fields = _Fields({k: v for k, v in item_data.items() if isinstance(v, str | int | float)})
    user = string.Formatter().vformat(prompt.user, (), fields)
    return [
        {"role": "system", "content": prompt.system or default_system_prompt(project)},
        {"role": "user", "content": user},
    ]


def prompt_fields(template: str) -> list[str]:
    """The {field} names a template uses, for validating it against the task type."""
    try:
        return [name for _, name, _, _ in string.Formatter().parse(template) if name]
    except ValueError as exc:
        raise InvalidAnswer(f"the template is not valid: {exc}") from exc
