"""The task-type registry: one module per task type, looked up by its name.

Everything a task type means (label schema, item fields and text, the answer's
JSON Schema, checks, key, exports, the workspace editor) lives in its module;
the rest of the code asks ``task_type_spec(project.task_type)`` instead of
branching on the type. ``base`` holds the shared machinery and explains how
one JSON Schema checks both human submits and model replies.

A new task type: a ``TaskType`` value (and its migration), a module here with
a ``TaskTypeSpec`` subclass registered in ``TASK_TYPES`` below, and an editor
component ``static/js/task-types/<name>.js`` that calls
``TW.registerTaskType``; tests/annotation/task_types/test_registry.py checks
that every type has all three.
"""

from .base import HUMAN, MODEL, SchemaError, TaskTypeSpec, label_values
from .base import answer_validate as _answer_validate
from .base import model_answer_schema as _model_answer_schema
from .classification import Classification
from .multi_label import MultiLabel
from .preference import Preference
from .rating import Rating
from .spans import Spans
from .text import Text

TASK_TYPES: dict[str, TaskTypeSpec] = {
    spec.name.value: spec
    for spec in (Classification(), MultiLabel(), Spans(), Text(), Preference(), Rating())
}

__all__ = [
    "HUMAN",
    "MODEL",
    "TASK_TYPES",
    "SchemaError",
    "TaskTypeSpec",
    "answer_json_schema",
    "answer_validate",
    "label_values",
    "task_type_spec",
    "task_types_where",
]


def task_type_spec(task_type: str) -> TaskTypeSpec:
    """The spec of task_type, or SchemaError for a type nobody registered."""
    try:
        return TASK_TYPES[task_type]
    except KeyError:
        raise SchemaError("task_type", f"unknown task type {task_type!r}") from None


def task_types_where(predicate) -> set[str]:
    """The names of the task types whose spec satisfies predicate."""
    return {name for name, spec in TASK_TYPES.items() if predicate(spec)}


def answer_validate(
    task_type: str,
    label_schema: dict,
    answer,
    *,
    item_data: dict | None = None,
    field: str = "answer",
    source: str = HUMAN,
) -> dict:
    """The normalized answer, or SchemaError: the one check for human and model answers."""
    return _answer_validate(
        task_type_spec(task_type),
        label_schema,
        answer,
        item_data=item_data,
        field=field,
        source=source,
    )


def answer_json_schema(task_type: str, label_schema: dict) -> dict:
    """The answer's JSON Schema as a model is given it (strict mode)."""
    return _model_answer_schema(task_type_spec(task_type).answer_schema(label_schema))
