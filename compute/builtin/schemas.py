"""Reading a request's ``response_format`` into what the model has to decide.

The platform sends one JSON schema per task type (see ``AnswerSpec``): an object with
one *answer field* (``label``, ``labels``, ``rating``, ``choice``, ``spans`` or ``text``)
and optionally extra free-text fields (e.g. ``rationale``). Anything the built-in model
cannot guarantee to fill validly (``anyOf``, ``$ref``, ``pattern``, numbers, nested
objects…) is refused with a 400 that names the offending part of the schema.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from functools import lru_cache

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from .errors import APIError, invalid

# Keywords that only describe and never constrain: safe to ignore.
_ANNOTATIONS = {"title", "description", "$schema", "$id", "$comment", "examples", "default"}
_ALLOWED = {
    "object": {"type", "properties", "required", "additionalProperties"},
    "string": {"type", "enum", "minLength", "maxLength"},
    "integer": {"type", "minimum", "maximum"},
    "array": {"type", "items", "minItems", "maxItems", "uniqueItems"},
}
ROOT = "response_format.json_schema.schema"
ANSWER_KINDS = ("label", "labels", "rating", "choice", "spans")
PREFERENCE_OPTIONS = {"a", "b", "tie"}


@dataclass
class AnswerSpec:
    """What to produce.

    ``kind``: label, labels, rating, choice, spans, text, plain (no schema) or json_object.
    """

    kind: str
    field: str | None = None
    options: list[str] = dataclasses.field(default_factory=list)  # enum of label, labels, choice
    minimum: int = 0  # rating range
    maximum: int = 0
    min_items: int = 0  # labels
    max_items: int | None = None
    min_length: int = 0  # text
    max_length: int | None = None
    extras: dict[str, tuple[int, int | None]] = dataclasses.field(
        default_factory=dict
    )  # free-text fields
    order: list[str] = dataclasses.field(default_factory=list)  # property order of the reply
    schema: dict | None = None


_KNOWN = set().union(*_ALLOWED.values())


def _type_of(node: dict, path: str) -> str:
    for key in node:
        if key not in _KNOWN and key not in _ANNOTATIONS:
            raise invalid(
                f"{path}.{key}: the keyword {key!r} is not supported by the built-in model",
                param=f"{path}.{key}",
            )
    kind = node.get("type")
    if kind is None and "enum" in node:
        kind = "string"
    if kind is None and "properties" in node:
        kind = "object"
    if not isinstance(kind, str):
        raise invalid(
            f"{path}.type: the built-in model needs a single type "
            f"(one of string, integer, array, object), got {kind!r}",
            param=f"{path}.type",
        )
    if kind not in _ALLOWED:
        raise invalid(
            f"{path}: type {kind!r} is not supported by the built-in model "
            "(supported: string, integer, array, object)",
            param=f"{path}.type",
        )
    for key in node:
        if key not in _ALLOWED[kind] and key not in _ANNOTATIONS:
            raise invalid(
                f"{path}.{key}: the keyword {key!r} is not supported by the built-in model "
                f"for a {kind}",
                param=f"{path}.{key}",
            )
    return kind


def _nonneg_int(node: dict, key: str, path: str) -> int | None:
    value = node.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise invalid(f"{path}.{key}: expected a non-negative integer", param=f"{path}.{key}")
    return value


def _string_enum(node: dict, path: str) -> list[str]:
    values = node["enum"]
    if not isinstance(values, list) or not values:
        raise invalid(f"{path}.enum: expected a non-empty list", param=f"{path}.enum")
    if not all(isinstance(v, str) for v in values):
        raise invalid(
            f"{path}.enum: the built-in model only supports string enums", param=f"{path}.enum"
        )
    if len(set(values)) != len(values):
        raise invalid(f"{path}.enum: duplicate values", param=f"{path}.enum")
    return list(values)


def _classify(name: str, node, path: str) -> tuple[str, dict]:
    """(kind, details) of one property of the root object."""
    if not isinstance(node, dict):
        raise invalid(f"{path}: expected a schema object", param=path)
    kind = _type_of(node, path)
    if kind == "string":
        lengths = (_nonneg_int(node, "minLength", path) or 0, _nonneg_int(node, "maxLength", path))
        if "enum" not in node:
            return "string", {"lengths": lengths}
        options = _string_enum(node, path)
        looks_like_preference = {"a", "b"} <= set(options) <= PREFERENCE_OPTIONS
        if name == "choice" or (name != "label" and looks_like_preference):
            return "choice", {"options": options}
        return "label", {"options": options}
    if kind == "integer":
        low, high = node.get("minimum"), node.get("maximum")
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (low, high)):
            raise invalid(
                f"{path}: an integer answer needs integer 'minimum' and 'maximum'", param=path
            )
        if low > high or high - low > 100:
            raise invalid(
                f"{path}: need minimum <= maximum and at most 101 values", param=f"{path}.maximum"
            )
        return "rating", {"minimum": low, "maximum": high}
    if kind == "array":
        items = node.get("items")
        if not isinstance(items, dict):
            raise invalid(f"{path}.items: expected a schema object", param=f"{path}.items")
        min_items = _nonneg_int(node, "minItems", path) or 0
        max_items = _nonneg_int(node, "maxItems", path)
        item_kind = _type_of(items, f"{path}.items")
        if item_kind == "string" and "enum" in items:
            options = _string_enum(items, f"{path}.items")
            if items.get("minLength") or items.get("maxLength") is not None:
                raise invalid(
                    f"{path}.items: length limits on enum items are not supported",
                    param=f"{path}.items",
                )
            if max_items is not None and max_items < min_items:
                raise invalid(f"{path}: maxItems < minItems", param=f"{path}.maxItems")
            if min_items > len(options) and node.get("uniqueItems"):
                raise invalid(
                    f"{path}.minItems: more unique items required than the enum has",
                    param=f"{path}.minItems",
                )
            if min_items > len(options):
                raise invalid(
                    f"{path}.minItems: the built-in model picks each label at most once",
                    param=f"{path}.minItems",
                )
            return "labels", {"options": options, "min_items": min_items, "max_items": max_items}
        if item_kind == "object":
            props = items.get("properties") or {}
            if {"start", "end"} <= set(props):
                if min_items:
                    raise invalid(
                        f"{path}.minItems: the built-in model finds no spans, so it cannot "
                        "promise at least one",
                        param=f"{path}.minItems",
                    )
                _check_nested(items, f"{path}.items")
                label = props.get("label")
                options = (
                    _string_enum(label, f"{path}.items.properties.label")
                    if isinstance(label, dict) and "enum" in label
                    else []
                )
                return "spans", {"options": options}
        raise invalid(
            f"{path}: the built-in model supports arrays of string enums (labels) and arrays "
            "of {start, end, label} objects (spans) only",
            param=f"{path}.items",
        )
    raise invalid(
        f"{path}: nested objects are not supported by the built-in model (except span items)",
        param=path,
    )


def _check_nested(node: dict, path: str) -> None:
    """Span item schemas: only keywords we know, all of them satisfiable by an empty list."""
    kind = _type_of(node, path)
    if kind == "object":
        for name, child in (node.get("properties") or {}).items():
            if not isinstance(child, dict):
                raise invalid(f"{path}.properties.{name}: expected a schema object")
            _check_nested(child, f"{path}.properties.{name}")
    elif kind == "array" and isinstance(node.get("items"), dict):
        _check_nested(node["items"], f"{path}.items")


def parse_response_format(response_format) -> AnswerSpec:
    if response_format is None:
        return AnswerSpec(kind="plain")
    if not isinstance(response_format, dict):
        raise invalid("response_format: expected an object", param="response_format")
    kind = response_format.get("type")
    if kind == "text":
        return AnswerSpec(kind="plain")
    if kind == "json_object":
        return AnswerSpec(kind="json_object")
    if kind != "json_schema":
        raise invalid(
            f"response_format.type: expected 'text', 'json_object' or 'json_schema', got {kind!r}",
            param="response_format.type",
        )
    wrapper = response_format.get("json_schema")
    if not isinstance(wrapper, dict):
        raise invalid(
            "response_format.json_schema: expected an object with 'name' and 'schema'",
            param="response_format.json_schema",
        )
    name = wrapper.get("name")
    if not isinstance(name, str) or not name:
        raise invalid(
            "response_format.json_schema.name: required, a non-empty string",
            param="response_format.json_schema.name",
        )
    schema = wrapper.get("schema")
    if not isinstance(schema, dict):
        raise invalid(f"{ROOT}: expected a JSON schema object", param=ROOT)
    return _spec_for_schema(json.dumps(schema, sort_keys=True))


@lru_cache(maxsize=512)
def _spec_for_schema(schema_json: str) -> AnswerSpec:
    schema = json.loads(schema_json)
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        where = ".".join(str(p) for p in exc.path)
        raise invalid(
            f"{ROOT}: not a valid JSON schema: {exc.message}",
            param=f"{ROOT}.{where}" if where else ROOT,
        ) from None
    if _type_of(schema, ROOT) != "object" or not isinstance(schema.get("properties"), dict):
        raise invalid(f"{ROOT}: the root must be an object with 'properties'", param=ROOT)
    properties = schema["properties"]
    if not properties:
        raise invalid(f"{ROOT}.properties: needs at least one property", param=f"{ROOT}.properties")
    required = schema.get("required", [])
    for name in required:
        if name not in properties:
            raise invalid(
                f"{ROOT}.required: {name!r} is required but not defined in properties",
                param=f"{ROOT}.required",
            )
    classified = {
        name: _classify(name, node, f"{ROOT}.properties.{name}")
        for name, node in properties.items()
    }
    answers = [name for name, (kind, _) in classified.items() if kind in ANSWER_KINDS]
    if len(answers) > 1:
        raise invalid(
            f"{ROOT}.properties: more than one answer field ({', '.join(answers)}); the built-in "
            "model fills one label, labels, rating, choice or spans field per reply",
            param=f"{ROOT}.properties",
        )
    if answers:
        primary = answers[0]
        kind, details = classified[primary]
    else:
        strings = list(classified)
        primary = "text" if "text" in strings else strings[0]
        kind, details = "text", {}
        lengths = classified[primary][1]["lengths"]
        details = {"min_length": lengths[0], "max_length": lengths[1]}
    spec = AnswerSpec(kind=kind, field=primary, order=list(properties), schema=schema)
    for key, value in details.items():
        setattr(spec, key, value)
    spec.extras = {name: classified[name][1]["lengths"] for name in properties if name != primary}
    return spec


@lru_cache(maxsize=512)
def _validator(schema_json: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads(schema_json))


def check_reply(spec: AnswerSpec, value: dict) -> None:
    """Last line of defence: a reply that does not validate is a bug, reported as a 500."""
    if spec.schema is None:
        return
    errors = list(_validator(json.dumps(spec.schema, sort_keys=True)).iter_errors(value))
    if errors:
        raise APIError(
            f"the built-in model produced a reply that violates the schema: {errors[0].message}",
            status=500,
        )


def fit_length(text: str, low: int, high: int | None, filler: str = "") -> str:
    """text cut to at most high characters and padded (with filler, then dots) to at least low."""
    if high is not None:
        text = text[:high]
    if len(text) < low:
        text = (text + filler)[: max(low, len(text))]
        text = text + "." * (low - len(text))
    return text
