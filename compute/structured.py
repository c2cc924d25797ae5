"""Structured output: a project's label schema as a JSON schema, and checking replies.

The JSON schema goes out as `response_format: {"type": "json_schema", ...}`,
the form current vLLM, SGLang and OpenAI honour (the older `guided_json`
extra field is ignored by new vLLM servers). Whatever comes back is parsed
and validated against both the JSON schema and the project's own answer
rules; an invalid reply never becomes a suggestion.
"""

import functools
import json
import string

import jsonschema

from annotation.models import Project, TaskType
from annotation.schemas import SchemaError, answer_validate, label_values

from .models import PromptTemplate


class InvalidAnswer(ValueError):
    pass


def answer_json_schema(task_type: str, label_schema: dict) -> dict:
    labels = label_values(label_schema)
    if task_type == TaskType.CLASSIFICATION:
        properties = {"label": {"type": "string", "enum": labels}}
    elif task_type == TaskType.MULTI_LABEL:
        properties = {
            "labels": {
                "type": "array",
                "items": {"type": "string", "enum": labels},
                "uniqueItems": True,
            }
        }
    elif task_type == TaskType.SPANS:
        properties = {
            "spans": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "start": {"type": "integer", "minimum": 0},
                        "end": {"type": "integer", "minimum": 1},
                        "label": {"type": "string", "enum": labels},
                    },
                    "required": ["start", "end", "label"],
                    "additionalProperties": False,
                },
            }
        }
    elif task_type == TaskType.PREFERENCE:
        choices = ["a", "b", "tie"] if label_schema.get("allow_tie", True) else ["a", "b"]
        properties = {"choice": {"type": "string", "enum": choices}}
    elif task_type == TaskType.RATING:
        properties = {
            "rating": {
                "type": "integer",
                "minimum": label_schema.get("min", 1),
                "maximum": label_schema.get("max", 5),
            }
        }
    else:
        properties = {"text": {"type": "string"}}
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def response_format(project: Project) -> dict:
    return {
        "type": "json_schema",
        "json_schema": {
            "name": "tokenworks_answer",
            "schema": answer_json_schema(project.task_type, project.label_schema),
            "strict": True,
        },
    }


@functools.lru_cache(maxsize=256)
def _validator(task_type: str, label_schema_json: str) -> jsonschema.Draft202012Validator:
    """Compiled once per schema: checking the schema itself costs more than using it."""
    schema = answer_json_schema(task_type, json.loads(label_schema_json))
    return jsonschema.Draft202012Validator(schema)


def answer_parse(project: Project, content: str, item_data: dict) -> dict:
    """The validated answer in a reply's content, or InvalidAnswer saying what is wrong."""
    text = content.strip()
    if text.startswith("```"):  # some models fence JSON even when told not to
        text = text.strip("`").removeprefix("json").strip()
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise InvalidAnswer(f"the reply is not JSON ({exc.msg} at position {exc.pos})") from exc
    error = jsonschema.exceptions.best_match(
        _validator(project.task_type, json.dumps(project.label_schema, sort_keys=True)).iter_errors(
            value
        )
    )
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "the answer"
        raise InvalidAnswer(f"{where}: {error.message}")
    try:
        return answer_validate(project.task_type, project.label_schema, value, item_data=item_data)
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
