"""What a project's label schema, its items and its answers look like: a facade.

Each task type's rules live in its module under ``annotation/task_types/``;
these functions keep the names the rest of the code imports and delegate to
the registry. Each validator returns a normalized value or raises
`SchemaError` with the path of the offending field (e.g.
``answer.spans[2].end``) and what was expected, so that the API, the import
report and the UI can all say exactly what is wrong.
"""

from .task_types import TASK_TYPES, SchemaError, answer_validate, label_values, task_type_spec
from .task_types.base import MAX_LABELS, MAX_TEXT_CHARS, fail

__all__ = [
    "ITEM_FIELDS",
    "MAX_LABELS",
    "MAX_TEXT_CHARS",
    "SchemaError",
    "answer_key",
    "answer_text",
    "answer_validate",
    "item_data_validate",
    "item_text",
    "label_schema_validate",
    "label_values",
]

# Each task type's (required, optional) item fields.
ITEM_FIELDS = {name: (spec.item_required, spec.item_optional) for name, spec in TASK_TYPES.items()}


def label_schema_validate(task_type: str, schema) -> dict:
    """The normalized label schema for task_type, or SchemaError."""
    if schema is None:
        schema = {}
    if isinstance(schema, list):  # shorthand: a bare list of labels
        schema = {"labels": schema}
    if not isinstance(schema, dict):
        fail("label_schema", "expected an object")
    return task_type_spec(task_type).label_schema_validate(schema)


def item_data_validate(task_type: str, data) -> dict:
    """Item data for task_type: the required text fields present; extras kept."""
    return task_type_spec(task_type).item_data_validate(data)


def answer_key(task_type: str, answer: dict):
    """The hashable part of an answer that agreement and voting compare."""
    return TASK_TYPES[task_type].answer_key(answer)


def answer_text(task_type: str, answer: dict) -> str:
    """The text an answer adds, for token counting."""
    return TASK_TYPES[task_type].answer_text(answer)


def item_text(task_type: str, data: dict) -> str:
    """The item's text, for token counts and prompts."""
    return TASK_TYPES[task_type].item_text(data)
