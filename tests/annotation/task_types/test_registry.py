"""The registry as a whole: every type is complete, and one path checks every answer."""

import json
import subprocess
from pathlib import Path

import jsonschema
import pytest

from annotation import schemas
from annotation.models import TaskType
from annotation.task_types import (
    HUMAN,
    MODEL,
    TASK_TYPES,
    SchemaError,
    answer_json_schema,
    answer_validate,
    base,
    task_type_spec,
)
from compute import structured

from .conftest import refused, schema_for

ROOT = Path(__file__).resolve().parents[3]
LABELS = ["pos", "neg"]
VALID = {
    "classification": (LABELS, {"label": "neg"}, {"text": "x"}),
    "multi_label": (LABELS, {"labels": ["neg", "pos"]}, {"text": "x"}),
    "spans": (LABELS, {"spans": [{"start": 0, "end": 1, "label": "pos"}]}, {"text": "x"}),
    "text": ({}, {"text": "an answer"}, {"prompt": "p"}),
    "preference": ({}, {"choice": "tie"}, {"prompt": "p", "response_a": "a", "response_b": "b"}),
    "rating": ({}, {"rating": 3}, {"response": "r"}),
}


def test_every_task_type_has_a_spec_and_a_browser_component():
    assert set(TASK_TYPES) == set(TaskType.values) == set(VALID)
    for name, spec in TASK_TYPES.items():
        assert task_type_spec(name) is spec and spec.name == name
        assert spec.item_required, name
        assert (ROOT / "static" / spec.editor_script).is_file(), spec.editor_script
        assert f'TW.registerTaskType("{name}"' in (ROOT / "static" / spec.editor_script).read_text()


def test_an_unknown_task_type_is_a_schema_error():
    with pytest.raises(SchemaError) as excinfo:
        task_type_spec("essay")
    assert excinfo.value.field == "task_type"


@pytest.mark.parametrize("task_type", sorted(VALID))
def test_each_model_schema_is_strict_and_accepts_a_valid_answer(task_type):
    raw, answer, data = VALID[task_type]
    label_schema = schema_for(task_type, raw)
    model_schema = answer_json_schema(task_type, label_schema)
    jsonschema.Draft202012Validator.check_schema(model_schema)
    # OpenAI strict mode: every property required, no others allowed.
    assert model_schema["required"] == list(model_schema["properties"])
    assert model_schema["additionalProperties"] is False
    for source in (HUMAN, MODEL):
        answer_validate(task_type, label_schema, answer, item_data=data, source=source)


def test_a_model_reply_and_a_human_submit_share_one_validate_path(monkeypatch):
    label_schema = schema_for("classification", LABELS)
    calls = []
    real = base.answer_validate

    def spy(spec, *args, **kwargs):
        calls.append(kwargs["source"])
        return real(spec, *args, **kwargs)

    monkeypatch.setattr(base, "answer_validate", spy)
    monkeypatch.setattr("annotation.task_types._answer_validate", spy)

    class Project:
        task_type = "classification"

    Project.label_schema = label_schema
    assert structured.answer_parse(Project, '{"label": "pos"}', {"text": "x"}) == {"label": "pos"}
    assert schemas.answer_validate("classification", label_schema, {"label": "pos"}) == {
        "label": "pos"
    }
    assert calls == [MODEL, HUMAN]
    # And the model is sent the schema that checks it.
    sent = structured.response_format(Project)["json_schema"]["schema"]
    assert sent == base.compiled(task_type_spec("classification"), label_schema).model_schema


def test_validators_are_compiled_once_per_label_schema():
    label_schema = schema_for("rating", {"min": 1, "max": 7})
    spec = task_type_spec("rating")
    first = base.compiled(spec, label_schema)
    assert base.compiled(spec, json.loads(json.dumps(label_schema))) is first
    assert base.compiled(spec, schema_for("rating", {"min": 1, "max": 4})) is not first


def test_humans_may_send_extra_keys_models_may_not():
    label_schema = schema_for("classification", LABELS)
    answer = {"label": "pos", "client_note": 1}
    assert answer_validate("classification", label_schema, answer) == {"label": "pos"}
    error = refused("classification", label_schema, answer, source=MODEL)
    assert (error.field, "Additional properties" in error.message) == ("answer", True)


def test_a_missing_property_is_named_with_its_path():
    error = refused("rating", schema_for("rating", {}), {})
    assert (error.field, error.message) == ("answer.rating", "'rating' is a required property")


def test_an_answer_that_is_no_object_is_refused():
    error = refused("text", schema_for("text", {}), ["text"])
    assert (error.field, error.message) == ("answer", "expected an object")


def test_no_code_outside_the_registry_branches_on_task_types():
    pattern = r"TaskType\.\|task_type ==\|task_type in\|taskType ===\|task_type ==="
    found = subprocess.run(
        ["grep", "-rn", pattern, "annotation", "compute", "platform", "static", "templates"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    outside = [
        line
        for line in found
        if not line.startswith(("annotation/task_types/", "static/js/task-types/"))
        and "/migrations/" not in line
        and not line.startswith("annotation/models.py:")
    ]
    assert outside == []


ODD_VALUES = [None, True, 0, 1, 3.0, -1, "", "pos", "tie", [], ["pos", "pos"], {}, {"x": 1}]


@pytest.mark.parametrize("task_type", sorted(VALID))
def test_the_fast_check_never_passes_what_json_schema_refuses(task_type):
    raw, answer, _data = VALID[task_type]
    compiled = base.compiled(task_type_spec(task_type), schema_for(task_type, raw))
    (name,) = answer
    candidates = [answer, {}, {**answer, "extra": 1}]
    candidates += [{name: odd} for odd in ODD_VALUES]
    if name == "spans":
        span = answer["spans"][0]
        candidates += [{"spans": [{**span, key: odd}]} for key in span for odd in ODD_VALUES]
    for validator, fast in [
        (compiled.human, compiled.human_fast),
        (compiled.model, compiled.model_fast),
    ]:
        assert fast is not None
        for candidate in candidates:
            assert fast(candidate) == validator.is_valid(candidate), candidate


def test_whole_numbers_only():
    error = refused("rating", schema_for("rating", {}), {"rating": 3.0})
    assert error.field == "answer.rating"


@pytest.mark.parametrize("task_type", sorted(VALID))
def test_votable_types_rebuild_an_answer_from_its_key(task_type):
    # Dawid–Skene may infer a key none of an item's annotators gave and stores
    # the answer rebuilt from it, so every votable type must be able to.
    spec = task_type_spec(task_type)
    if not spec.votable:
        with pytest.raises(NotImplementedError):
            spec.answer_from_key("anything")
        return
    raw, answer, data = VALID[task_type]
    label_schema = schema_for(task_type, raw)
    rebuilt = spec.answer_from_key(spec.answer_key(answer))
    assert spec.answer_key(rebuilt) == spec.answer_key(answer)
    answer_validate(task_type, label_schema, rebuilt, item_data=data, source=MODEL)
