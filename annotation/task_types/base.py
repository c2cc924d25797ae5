"""What every task type provides, and the validation machinery they share.

One JSON Schema per (task type, label schema) is the single source for
checking answers, whoever gives them:

- ``TaskTypeSpec.answer_schema`` is the *canonical* schema: every property an
  answer may carry, the required ones in ``required``, ``additionalProperties:
  false`` on every object.
- ``model_answer_schema`` is derived from it for ``response_format`` with
  OpenAI ``strict: true``: strict mode wants every property required, so it
  keeps only the required ones (a model never writes the optional extras,
  e.g. a preference rationale).
- Human submits (``source="human"``) tolerate extra keys, as they always did:
  keys the canonical schema does not name are dropped before validation.
  Model replies (``source="model"``) are checked as sent, against exactly the
  schema the model was given, so an extra key is refused.

Both go through ``answer_validate``: the compiled validator (built once per
task type and label schema), its first error turned into
``SchemaError(field, message)`` with the type's own wording (the type's
``messages``; a missing property reads "'label' is a required property"),
then the type's ``answer_check`` for what JSON Schema cannot say (span ends
past the text or before their start, duplicate spans, blank text, a required
rationale) and normalisation. Valid answers, the common case on the submit
path, are recognised by a plain-Python predicate compiled from the same
schema; jsonschema runs only to explain a refusal.

Adding a task type: see ``annotation/task_types/__init__.py``.
"""

import abc
import functools
import json
from collections.abc import Callable
from dataclasses import dataclass

import jsonschema

MAX_LABELS = 200
MAX_TEXT_CHARS = 200_000

HUMAN = "human"
MODEL = "model"


@dataclass
class SchemaError(Exception):
    field: str
    message: str

    def __str__(self):
        return f"{self.field}: {self.message}"


def fail(field: str, message: str):
    raise SchemaError(field, message)


def require_text(value, field: str, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        fail(field, f"expected a string, got {type(value).__name__}")
    if not allow_empty and not value.strip():
        fail(field, "must not be empty")
    if len(value) > MAX_TEXT_CHARS:
        fail(field, f"is {len(value):,} characters long; at most {MAX_TEXT_CHARS:,} allowed")
    return value


def label_values(schema: dict) -> list[str]:
    return [label["value"] for label in schema.get("labels", [])]


def not_a_label(value, label_schema: dict) -> str:
    return f"{value!r} is not one of the project's labels: {', '.join(label_values(label_schema))}"


def normalize_labels(raw, *, minimum: int) -> list[dict]:
    if not isinstance(raw, list):
        fail("label_schema.labels", "expected a list of labels")
    labels, seen_values, seen_hotkeys = [], set(), set()
    for index, entry in enumerate(raw):
        path = f"label_schema.labels[{index}]"
        if isinstance(entry, str):
            entry = {"value": entry}
        if not isinstance(entry, dict):
            fail(path, "expected a string or an object with 'value'")
        value = entry.get("value")
        if not isinstance(value, str) or not value.strip():
            fail(f"{path}.value", "expected a non-empty string")
        if value in seen_values:
            fail(f"{path}.value", f"duplicate label {value!r}")
        seen_values.add(value)
        label = {"value": value, "title": str(entry.get("title") or value)}
        hotkey = entry.get("hotkey")
        if hotkey is not None:
            if not isinstance(hotkey, str) or len(hotkey) != 1:
                fail(f"{path}.hotkey", "expected a single character")
            if hotkey in seen_hotkeys:
                fail(f"{path}.hotkey", f"hotkey {hotkey!r} is used twice")
            seen_hotkeys.add(hotkey)
            label["hotkey"] = hotkey
        labels.append(label)
    if len(labels) < minimum:
        fail("label_schema.labels", f"needs at least {minimum} label(s)")
    if len(labels) > MAX_LABELS:
        fail("label_schema.labels", f"at most {MAX_LABELS} labels")
    # Digits 1-9 pick labels in the workspace unless a label names its own key.
    free = [str(d) for d in range(1, 10) if str(d) not in seen_hotkeys]
    for label in labels:
        if "hotkey" not in label and free:
            label["hotkey"] = free.pop(0)
    return labels


def strict_object(properties: dict, *, optional: tuple[str, ...] = ()) -> dict:
    return {
        "type": "object",
        "properties": properties,
        "required": [name for name in properties if name not in optional],
        "additionalProperties": False,
    }


# What a JSON Schema error says, by the path of the failing value ("*" for any
# list index) and the keyword that failed; None stands for any keyword. A
# message is a callable (value, label_schema) -> str.
Messages = dict[tuple[tuple, str | None], Callable[[object, dict], str]]


class TaskTypeSpec(abc.ABC):
    """Everything one task type means. Subclasses set the attributes, implement
    the abstract methods (a type missing one fails when the registry is built)
    and override the defaults that do not fit."""

    name: str = ""
    # Item data: the text fields an item needs and may have, in reading order.
    item_required: tuple[str, ...] = ()
    item_optional: tuple[str, ...] = ()
    # Agreement: the measure agreement_report computes (see selectors) and
    # whether answers are votes that majority vote and Dawid–Skene may weigh.
    agreement: str = "exact"
    votable: bool = False
    # Training exports this type can fill, and the one a dataset version defaults to.
    training_formats: frozenset[str] = frozenset()
    default_dataset_format: str | None = None
    # Other exports only this type can fill (CoNLL/BIO needs spans).
    export_formats: frozenset[str] = frozenset()
    # The workspace editor: its component script (static/js/task-types/), whether
    # it has a text box (where only Ctrl+Enter and Esc act as shortcuts), and the
    # submit key as aria-keyshortcuts and as shown.
    editor_script: str = ""
    has_text_box: bool = False
    submit_keys: tuple[str, str] = ("Enter", "Enter")

    messages: Messages = {}

    # --- label schema ---------------------------------------------------------

    @abc.abstractmethod
    def label_schema_validate(self, schema: dict) -> dict:
        """The normalized label schema, or SchemaError."""

    # --- item data ------------------------------------------------------------

    def item_data_validate(self, data) -> dict:
        """Item data: the required text fields present; extras kept."""
        if not isinstance(data, dict):
            fail("data", "expected an object")
        for name in self.item_required:
            if name not in data:
                fail(
                    f"data.{name}",
                    f"missing; a {self.name} item needs {', '.join(self.item_required)}",
                )
            require_text(data[name], f"data.{name}")
        for name in self.item_optional:
            if data.get(name) is not None:
                require_text(data[name], f"data.{name}", allow_empty=True)
        return data

    @functools.cached_property
    def text_fields(self) -> tuple[str, ...]:
        return (*self.item_optional, *self.item_required)

    def item_text(self, data: dict) -> str:
        """The item's text, for token counts and prompts."""
        fields = self.text_fields
        if len(fields) == 1:
            return str(data.get(fields[0]) or "")
        return "\n".join([str(data.get(name) or "") for name in fields])

    # --- answers --------------------------------------------------------------

    @abc.abstractmethod
    def answer_schema(self, label_schema: dict) -> dict:
        """The canonical JSON Schema of an answer (see the module docstring)."""

    def answer_check(self, answer: dict, label_schema: dict, item_data, field: str) -> dict:
        """What JSON Schema cannot check, on a schema-valid answer; the normalized answer."""
        return answer

    @abc.abstractmethod
    def answer_key(self, answer: dict):
        """The hashable part of an answer that agreement and voting compare."""

    def answer_from_key(self, key) -> dict:
        """The answer whose answer_key is key. Votable types provide it: Dawid–Skene
        may infer a key that none of an item's annotators gave, and stores this."""
        # Not an unfinished stub: free text is no vote, so it has no key to rebuild from.
        raise NotImplementedError(f"{self.name} answers cannot be rebuilt from their key")

    def answer_keys(self, label_schema: dict) -> list | None:
        """Every answer key the label schema allows, in a fixed order: the classes
        the adaptive decision rule weighs (annotation.quality). None where the
        answers are not a small closed set (free text, spans, label sets), which
        then cannot be decided adaptively."""
        return None

    def answer_text(self, answer: dict) -> str:
        """The text an answer adds, for token counting."""
        return ""

    def gold_from_shorthand(self, value):
        """A gold answer given as a bare value in a CSV cell or simple file."""
        return value

    # --- exports --------------------------------------------------------------

    def results_label(self, answer: dict):
        """The answer's headline value for the results CSV's label column."""
        return ""

    def training_record(self, project, fmt: str, data: dict, answer: dict) -> dict | None:
        """One fine-tuning example in fmt, or None when this answer teaches nothing."""
        return None

    # --- workspace ------------------------------------------------------------

    def editor_shortcuts(self, label_schema: dict) -> list[tuple[str, str]]:
        """(keys, what they do) for the editor's own controls."""
        return []


def model_answer_schema(schema: dict) -> dict:
    """The canonical schema as a model gets it: only the required properties (strict mode)."""
    required = schema["required"]
    return {**schema, "properties": {k: schema["properties"][k] for k in required}}


def _prune(schema: dict, value):
    """value without the object keys schema does not name (humans' extra keys)."""
    if isinstance(value, dict) and "properties" in schema:
        properties = schema["properties"]
        return {k: _prune(properties[k], v) for k, v in value.items() if k in properties}
    if isinstance(value, list) and "items" in schema:
        return [_prune(schema["items"], v) for v in value]
    return value


# Whole numbers only: JSON Schema counts 3.0 as an integer, answers never did.
_Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _checker, value: isinstance(value, int) and not isinstance(value, bool)
    ),
)

_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "null": lambda v: v is None,
}
_FAST_KEYWORDS = {
    "type",
    "enum",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "uniqueItems",
    "minItems",
    "maxItems",
    "minimum",
    "maximum",
}


def _fast_check(schema: dict):
    """A plain-Python predicate for the JSON Schema subset answer schemas use, or None.

    jsonschema walks every node through generic dispatch: ~1 ms for 50 spans on
    the submit path. fastjsonschema would be quick but counts 3.0 as an integer
    (the JSON Schema rule), which answers never accepted; a predicate over the
    few keywords answer schemas use keeps our rule. It only answers "valid?"; when it says no,
    jsonschema finds the error, so its verdict stays the reference. It must
    never pass what jsonschema refuses, hence None for any other keyword.
    """
    if set(schema) - _FAST_KEYWORDS:
        return None
    checks = []
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if not set(kinds) <= set(_TYPES):
            return None
        tests = [_TYPES[k] for k in kinds]
        checks.append(tests[0] if len(tests) == 1 else lambda v: any(t(v) for t in tests))
    if "enum" in schema:
        if not all(isinstance(e, str) for e in schema["enum"]):
            return None
        allowed = frozenset(schema["enum"])
        checks.append(lambda v: isinstance(v, str) and v in allowed)
    if "minimum" in schema or "maximum" in schema:
        low, high = schema.get("minimum"), schema.get("maximum")
        checks.append(
            lambda v: (
                not isinstance(v, int | float)
                or isinstance(v, bool)
                or ((low is None or v >= low) and (high is None or v <= high))
            )
        )
    if "properties" in schema or "required" in schema or "additionalProperties" in schema:
        if schema.get("additionalProperties", False) is not False:
            return None
        properties = {}
        for name, sub in schema.get("properties", {}).items():
            properties[name] = _fast_check(sub)
            if properties[name] is None:
                return None
        required = tuple(schema.get("required", ()))

        def check_object(v):
            if not isinstance(v, dict):
                return True  # "type" decides
            for name in required:
                if name not in v:
                    return False
            for name, x in v.items():
                check = properties.get(name)
                if check is None or not check(x):
                    return False
            return True

        checks.append(check_object)
    if {"items", "uniqueItems", "minItems", "maxItems"} & set(schema):
        item = _fast_check(schema["items"]) if "items" in schema else (lambda v: True)
        if item is None:
            return None
        unique = schema.get("uniqueItems", False)
        low, high = schema.get("minItems", 0), schema.get("maxItems")

        def check_array(v):
            if not isinstance(v, list):
                return True  # "type" decides
            if len(v) < low or (high is not None and len(v) > high):
                return False
            if unique:
                try:
                    if len(set(v)) != len(v):
                        return False
                except TypeError:
                    return False  # unhashable: let jsonschema judge
            return all(map(item, v))

        checks.append(check_array)
    if len(checks) == 1:
        return checks[0]

    return lambda v: all(check(v) for check in checks)


class _Compiled:
    """One task type's validators for one label schema."""

    def __init__(self, spec: TaskTypeSpec, label_schema: dict):
        self.schema = spec.answer_schema(label_schema)
        self.model_schema = model_answer_schema(self.schema)
        self.human = _Validator(self.schema)
        self.model = _Validator(self.model_schema)
        self.human_fast = _fast_check(self.schema)
        self.model_fast = _fast_check(self.model_schema)


@functools.lru_cache(maxsize=512)
def _compiled(spec: TaskTypeSpec, label_schema_json: str) -> _Compiled:
    # Compiled once per schema: building a validator costs more than using it.
    return _Compiled(spec, json.loads(label_schema_json))


def compiled(spec: TaskTypeSpec, label_schema: dict) -> _Compiled:
    return _compiled(spec, json.dumps(label_schema, sort_keys=True))


def _field_path(field: str, path) -> str:
    return field + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


def _schema_error(spec: TaskTypeSpec, error, label_schema: dict, field: str) -> SchemaError:
    path = list(error.absolute_path)
    if error.validator == "required":
        missing = next(n for n in error.validator_value if n not in error.instance)
        field = _field_path(field, [*path, missing])
        return SchemaError(field, f"{missing!r} is a required property")
    pattern = tuple("*" if isinstance(p, int) else p for p in path)
    message = spec.messages.get((pattern, error.validator)) or spec.messages.get((pattern, None))
    text = message(error.instance, label_schema) if message else error.message
    return SchemaError(_field_path(field, path), text)


def answer_validate(
    spec: TaskTypeSpec,
    label_schema: dict,
    answer,
    *,
    item_data: dict | None = None,
    field: str = "answer",
    source: str = HUMAN,
) -> dict:
    """The normalized answer, or SchemaError naming the field and what was expected."""
    if not isinstance(answer, dict):
        fail(field, "expected an object")
    validators = compiled(spec, label_schema)
    if source == HUMAN:
        answer = _prune(validators.schema, answer)
        validator, fast = validators.human, validators.human_fast
    else:
        validator, fast = validators.model, validators.model_fast
    if fast is None or not fast(answer):
        error = jsonschema.exceptions.best_match(validator.iter_errors(answer))
        if error is not None:
            raise _schema_error(spec, error, label_schema, field)
    return spec.answer_check(answer, label_schema, item_data, field)
