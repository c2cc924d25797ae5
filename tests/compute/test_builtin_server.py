"""The built-in model server (compute.builtin): the OpenAI wire format, the model, fine-tuning.

Plain pytest, no database: Starlette's TestClient for most tests, and one real uvicorn
server on 127.0.0.1:0 spoken to with httpx.
"""

from __future__ import annotations

import io
import json
import math
import random
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import httpx
import jsonschema
import pytest
import uvicorn

from annotation.token_estimate import estimate_tokens
from compute.builtin import create_app
from compute.builtin import service as service_module
from compute.builtin.schemas import parse_response_format

with warnings.catch_warnings():
    # This Starlette prefers httpx2 for its TestClient; httpx is what the project has.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

BASE = "tokenworks-base"
LABELS = ["positive", "negative"]


def label_schema(labels=LABELS):
    return {
        "type": "object",
        "properties": {"label": {"type": "string", "enum": labels}},
        "required": ["label"],
        "additionalProperties": False,
    }


SCHEMAS = {
    "classification": label_schema(["positive", "negative", "neutral"]),
    "multi_label": {
        "type": "object",
        "properties": {
            "labels": {
                "type": "array",
                "items": {"type": "string", "enum": ["food", "delivery", "price", "service"]},
                "uniqueItems": True,
                "minItems": 1,
                "maxItems": 2,
            }
        },
        "required": ["labels"],
        "additionalProperties": False,
    },
    "rating": {
        "type": "object",
        "properties": {"rating": {"type": "integer", "minimum": 1, "maximum": 5}},
        "required": ["rating"],
        "additionalProperties": False,
    },
    "preference": {
        "type": "object",
        "properties": {
            "choice": {"type": "string", "enum": ["a", "b", "tie"]},
            "rationale": {"type": "string", "maxLength": 200},
        },
        "required": ["choice", "rationale"],
        "additionalProperties": False,
    },
    "spans": {
        "type": "object",
        "properties": {
            "spans": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "start": {"type": "integer", "minimum": 0},
                        "end": {"type": "integer", "minimum": 1},
                        "label": {"type": "string", "enum": ["PER", "ORG", "LOC"]},
                    },
                    "required": ["start", "end", "label"],
                    "additionalProperties": False,
                },
            }
        },
        "required": ["spans"],
        "additionalProperties": False,
    },
    "text": {
        "type": "object",
        "properties": {"text": {"type": "string", "minLength": 1, "maxLength": 40}},
        "required": ["text"],
        "additionalProperties": False,
    },
}

PREFERENCE_PROMPT = (
    "Question: how do I reset my password?\n"
    "Response A: Click reset.\n"
    "Response B: Thank you for asking! Please open Settings, choose Security, then click "
    "'Reset password' and follow the email we send you."
)


def response_format(schema, name="answer"):
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}


def chat(client, text, *, model=BASE, schema=None, system="Label the text.", **extra):
    body = {
        "model": model,
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": text}],
        **extra,
    }
    if schema is not None:
        body["response_format"] = response_format(schema)
    return client.post("/v1/chat/completions", json=body)


def assert_openai_error(response, status, *, param=None, code=None):
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    assert error["type"] == ("server_error" if status >= 500 else "invalid_request_error")
    if param is not None:
        assert error["param"] == param, error
    if code is not None:
        assert error["code"] == code, error
    return error


# --- synthetic Chinese sentiment data -------------------------------------------------
# The cue phrases are slang the base model's lexicon does not know, so the base model
# can only guess (confidence 0.5) and fine-tuning has something to learn.

POSITIVE_CUES = ["回味无穷", "没得说", "绝绝子", "吃得精光", "下次带朋友来", "宝藏店", "封神了"]
NEGATIVE_CUES = ["踩雷了", "翻车了", "一言难尽", "劝退", "吃了两口就扔了", "智商税", "交了学费"]
DISHES = [
    "宫保鸡丁",
    "黄焖鸡米饭",
    "牛肉面",
    "酸菜鱼",
    "煲仔饭",
    "盖浇饭",
    "螺蛳粉",
    "烤鸭",
    "饺子",
]
TEMPLATES = [
    "{dish}{cue}",
    "今天点的{dish}，{cue}",
    "{dish}这次{cue}",
    "{cue}，{dish}",
    "第三次点{dish}了，{cue}",
    "朋友推的{dish}，{cue}",
    "晚饭吃的{dish}，{cue}",
]


def synthetic(seed: int, count: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        label = rng.choice(LABELS)
        cue = rng.choice(POSITIVE_CUES if label == "positive" else NEGATIVE_CUES)
        text = rng.choice(TEMPLATES).format(dish=rng.choice(DISHES), cue=cue)
        rows.append((text, label))
    return rows


def chat_line(text: str, answer: str, system="Label the sentiment.") -> str:
    return json.dumps(
        {
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": text},
                {"role": "assistant", "content": answer},
            ]
        },
        ensure_ascii=False,
    )


def jsonl(rows, answer=lambda label: json.dumps({"label": label})) -> bytes:
    return ("\n".join(chat_line(t, answer(lab)) for t, lab in rows) + "\n").encode()


def upload(client, content: bytes, name="train.jsonl", purpose="fine-tune"):
    response = client.post(
        "/v1/files",
        files={"file": (name, io.BytesIO(content), "application/jsonl")},
        data={"purpose": purpose},
    )
    assert response.status_code == 200, response.text
    return response.json()


def wait_for_job(client, job_id, timeout=60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/fine_tuning/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s: {job}")


def accuracy(client, model, rows) -> float:
    hits = 0
    for text, label in rows:
        reply = chat(client, text, model=model, schema=label_schema())
        assert reply.status_code == 200, reply.text
        hits += json.loads(reply.json()["choices"][0]["message"]["content"])["label"] == label
    return hits / len(rows)


@pytest.fixture
def client(tmp_path):
    with TestClient(create_app(tmp_path / "model")) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One fine-tuning run shared by the tests that need a fine-tuned model."""
    data_dir = tmp_path_factory.mktemp("trained")
    train_rows, held_out = synthetic(1, 300), synthetic(2, 120)
    validation_rows = synthetic(3, 60)
    with TestClient(create_app(data_dir)) as test_client:
        training = upload(test_client, jsonl(train_rows))
        validation = upload(test_client, jsonl(validation_rows), name="valid.jsonl")
        created = test_client.post(
            "/v1/fine_tuning/jobs",
            json={
                "model": BASE,
                "training_file": training["id"],
                "validation_file": validation["id"],
                "suffix": "sentiment",
                "seed": 7,
            },
        )
        assert created.status_code == 200, created.text
        job = wait_for_job(test_client, created.json()["id"])
        yield {
            "client": test_client,
            "data_dir": data_dir,
            "created": created.json(),
            "job": job,
            "train_rows": train_rows,
            "held_out": held_out,
            "training_file": training,
        }


# --- models ---------------------------------------------------------------------------


def test_models_list_the_base_model(client):
    response = client.get("/v1/models")
    assert response.status_code == 200
    assert response.json() == {
        "object": "list",
        "data": [{"id": BASE, "object": "model", "created": 1735689600, "owned_by": "tokenworks"}],
    }
    assert client.get(f"/v1/models/{BASE}").json()["id"] == BASE
    assert_openai_error(client.get("/v1/models/gpt-9"), 404, code="model_not_found")


def test_health_and_unknown_routes(client):
    assert client.get("/health").json() == {"status": "ok"}
    error = assert_openai_error(client.get("/v1/nowhere"), 404)
    assert error["message"] == "Invalid URL (GET /v1/nowhere)"
    assert_openai_error(client.delete("/v1/models"), 405)


# --- chat completions: the wire format --------------------------------------------------


def test_chat_completion_object(client):
    response = chat(client, "很好吃，送餐快", schema=label_schema())
    assert response.status_code == 200
    body = response.json()
    assert body["id"].startswith("chatcmpl-")
    assert body["object"] == "chat.completion"
    assert body["model"] == BASE
    assert isinstance(body["created"], int) and abs(body["created"] - time.time()) < 60
    (choice,) = body["choices"]
    assert choice["index"] == 0
    assert choice["finish_reason"] == "stop"
    assert choice["message"]["role"] == "assistant"
    assert choice["logprobs"] is None  # not asked for
    assert json.loads(choice["message"]["content"]) == {"label": "positive"}
    assert 0.5 < choice["tokenworks_confidence"] < 1


def test_usage_counts_are_estimate_tokens(client):
    system, text = (
        "Classify the review's sentiment. 请判断情感。",
        "The noodles were cold, 面条凉了！",
    )
    body = chat(client, text, system=system, schema=label_schema()).json()
    content = body["choices"][0]["message"]["content"]
    usage = body["usage"]
    assert usage["prompt_tokens"] == estimate_tokens(system) + estimate_tokens(text)
    assert usage["completion_tokens"] == estimate_tokens(content)
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_plain_text_reply_without_response_format(client):
    body = chat(client, "太难吃了，再也不点").json()
    assert body["choices"][0]["message"]["content"] == "negative"


def test_content_parts_are_read_as_text(client):
    response = client.post(
        "/v1/chat/completions",
        json={
            "model": BASE,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "非常好吃，"},
                        {"type": "text", "text": "超赞"},
                    ],
                }
            ],
            "response_format": response_format(label_schema()),
        },
    )
    assert response.status_code == 200
    assert response.json()["usage"]["prompt_tokens"] == estimate_tokens("非常好吃，\n超赞")


@pytest.mark.parametrize("shape", sorted(SCHEMAS))
def test_replies_validate_against_each_schema_shape(client, shape):
    schema = SCHEMAS[shape]
    text = PREFERENCE_PROMPT if shape == "preference" else "外卖送得很快，味道也不错。下次还点。"
    response = chat(client, text, schema=schema, logprobs=True)
    assert response.status_code == 200, response.text
    choice = response.json()["choices"][0]
    answer = json.loads(choice["message"]["content"])
    jsonschema.validate(answer, schema)
    entry = choice["logprobs"]["content"][0]
    assert math.isclose(math.exp(entry["logprob"]), choice["tokenworks_confidence"], abs_tol=1e-6)


def test_base_model_answers_per_shape(client):
    def answer(schema, text):
        body = chat(client, text, schema=schema).json()
        return json.loads(body["choices"][0]["message"]["content"]), body["choices"][0]

    value, choice = answer(SCHEMAS["rating"], "The answer is fine.")
    assert value == {"rating": 3}  # the middle of 1-5, as unsure as it gets
    assert choice["tokenworks_confidence"] == pytest.approx(1 / 5)
    value, choice = answer(SCHEMAS["preference"], PREFERENCE_PROMPT)
    assert value["choice"] == "b"  # longer and more polite
    assert 0.34 < choice["tokenworks_confidence"] < 0.7  # but not sure of it
    value, choice = answer(SCHEMAS["spans"], "张三在北京的腾讯工作。")
    assert value == {"spans": []}
    assert choice["tokenworks_confidence"] == pytest.approx(0.05)
    value, _ = answer(SCHEMAS["text"], "First sentence here. Second one.")
    assert value == {"text": "First sentence here."}
    value, choice = answer(SCHEMAS["multi_label"], "送得快，价格实惠")
    assert value == {"labels": ["food"]}  # no idea: the top (first) label only
    assert choice["tokenworks_confidence"] == pytest.approx(0.25 * 0.75**3)


@pytest.mark.parametrize(
    ("labels", "text", "expected"),
    [
        (["positive", "negative"], "很好吃，送餐也快，满意", "positive"),
        (["positive", "negative"], "The food was cold and the driver was rude.", "negative"),
        (["正面", "负面"], "太难吃了，失望", "负面"),
        (["好评", "差评"], "分量足，味道好", "好评"),
        (["1", "0"], "送餐太慢，都凉了", "0"),
        (["pos", "neg", "neutral"], "excellent, loved it", "pos"),
    ],
)
def test_base_model_reads_sentiment_labels_with_its_lexicon(client, labels, text, expected):
    body = chat(client, text, schema=label_schema(labels), logprobs=True).json()
    choice = body["choices"][0]
    assert json.loads(choice["message"]["content"])["label"] == expected
    assert choice["tokenworks_confidence"] > 1 / len(labels)


def test_base_model_is_uniform_on_labels_it_knows_nothing_about(client):
    labels = ["sports", "politics", "tech", "food"]
    body = chat(client, "很好吃，送餐快", schema=label_schema(labels), logprobs=True).json()
    choice = body["choices"][0]
    assert choice["tokenworks_confidence"] == pytest.approx(0.25)
    assert json.loads(choice["message"]["content"])["label"] == "sports"  # a tie: the first
    assert all(
        e["logprob"] == pytest.approx(math.log(0.25))
        for e in choice["logprobs"]["content"][0]["top_logprobs"]
    )
    # No sentiment word at all: sentiment labels are a coin flip too.
    body = chat(client, "今天周二", schema=label_schema()).json()
    assert body["choices"][0]["tokenworks_confidence"] == pytest.approx(0.5)


def test_logprobs_carry_the_confidence(client):
    labels = ["positive", "negative", "neutral", "mixed", "spam", "other"]
    schema = label_schema(["positive", "negative", "neutral"])
    body = chat(client, "不错，挺好吃", schema=schema, logprobs=True, top_logprobs=2).json()
    choice = body["choices"][0]
    (entry,) = choice["logprobs"]["content"]
    assert entry["token"] == "positive"
    assert entry["bytes"] == list(b"positive")
    assert math.isclose(math.exp(entry["logprob"]), choice["tokenworks_confidence"], abs_tol=1e-6)
    assert [t["token"] for t in entry["top_logprobs"]] == ["positive", "neutral"]
    assert entry["top_logprobs"][0]["logprob"] == entry["logprob"]
    # Default: up to 5 alternatives, most likely first, probabilities summing to 1.
    body = chat(client, "不错", schema=label_schema(labels), logprobs=True).json()
    top = body["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
    assert len(top) == 5
    assert [t["logprob"] for t in top] == sorted((t["logprob"] for t in top), reverse=True)
    body = chat(client, "不错", schema=label_schema(labels), logprobs=True, top_logprobs=20).json()
    top = body["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
    assert sum(math.exp(t["logprob"]) for t in top) == pytest.approx(1.0)
    body = chat(client, "不错", schema=label_schema(), logprobs=True, top_logprobs=0).json()
    assert body["choices"][0]["logprobs"]["content"][0]["top_logprobs"] == []


def test_multi_label_logprobs_are_set_probabilities(client):
    body = chat(client, "快", schema=SCHEMAS["multi_label"], logprobs=True).json()
    entry = body["choices"][0]["logprobs"]["content"][0]
    assert entry["token"] == '["food"]'
    assert all(json.loads(t["token"]) for t in entry["top_logprobs"])


def test_max_tokens_cuts_the_reply(client):
    body = chat(client, "很好吃", schema=label_schema(), max_tokens=2).json()
    choice = body["choices"][0]
    assert choice["finish_reason"] == "length"
    assert estimate_tokens(choice["message"]["content"]) <= 2
    assert body["usage"]["completion_tokens"] == estimate_tokens(choice["message"]["content"])


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"model": None}, "model"),
        ({"messages": None}, "messages"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "system", "content": "only instructions"}]}, "messages"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
            "messages[0].content[0].type",
        ),
        ({"n": 2}, "n"),
        ({"temperature": 7}, "temperature"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"logprobs": "yes"}, "logprobs"),
        ({"top_logprobs": 3}, "top_logprobs"),
        ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        ({"stream": True}, "stream"),
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
        ({"response_format": {"type": "xml"}}, "response_format.type"),
        ({"response_format": {"type": "json_schema"}}, "response_format.json_schema"),
    ],
)
def test_malformed_requests_are_400_naming_the_param(client, change, param):
    body = {"model": BASE, "messages": [{"role": "user", "content": "好吃"}]}
    for key, value in change.items():
        if value is None:
            body.pop(key)
        else:
            body[key] = value
    assert_openai_error(client.post("/v1/chat/completions", json=body), 400, param=param)


def test_body_that_is_not_json_is_400(client):
    response = client.post(
        "/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert_openai_error(response, 400)


def test_unknown_model_is_404(client):
    response = chat(client, "好吃", model="ft:tokenworks-base:nope:12345678")
    assert_openai_error(response, 404, code="model_not_found")


@pytest.mark.parametrize(
    ("schema", "named"),
    [
        (
            {"type": "object", "properties": {"label": {"anyOf": [{"type": "string"}]}}},
            "properties.label.anyOf",
        ),
        ({"type": "object", "properties": {"score": {"type": "number"}}}, "properties.score"),
        (
            {"type": "object", "properties": {"x": {"type": "string", "pattern": "^a"}}},
            "properties.x.pattern",
        ),
        (
            {
                "type": "object",
                "properties": {"meta": {"type": "object", "properties": {}}},
            },
            "properties.meta",
        ),
        (
            {
                "type": "object",
                "properties": {
                    "label": {"type": "string", "enum": ["a1", "b1"]},
                    "rating": {"type": "integer", "minimum": 1, "maximum": 3},
                },
            },
            "label, rating",
        ),
        ({"type": "array", "items": {"type": "string"}}, "schema"),
        ({"type": "object", "properties": {"rating": {"type": "integer"}}}, "properties.rating"),
        ({"$ref": "#/$defs/x", "$defs": {}}, "schema"),
    ],
)
def test_unsupported_schemas_are_400_naming_the_part(client, schema, named):
    error = assert_openai_error(chat(client, "好吃", schema=schema), 400)
    assert named in error["message"]
    assert error["param"].startswith("response_format.json_schema.schema")


def test_answer_field_kinds():
    def kind(properties):
        schema = {"type": "object", "properties": properties}
        return parse_response_format(response_format(schema)).kind

    assert kind({"label": {"type": "string", "enum": ["a", "b"]}}) == "label"
    assert kind({"choice": {"type": "string", "enum": ["a", "b"]}}) == "choice"
    assert kind({"winner": {"type": "string", "enum": ["a", "b", "tie"]}}) == "choice"
    assert kind({"sentiment": {"type": "string", "enum": ["pos", "neg"]}}) == "label"
    assert kind({"text": {"type": "string"}, "rationale": {"type": "string"}}) == "text"
    assert kind({"summary": {"type": "string"}}) == "text"


# --- authentication -----------------------------------------------------------------------


def test_api_key_is_required_when_set(tmp_path):
    with TestClient(create_app(tmp_path, api_key="s3cret")) as open_client:
        error = assert_openai_error(open_client.get("/v1/models"), 401)
        assert "API key" in error["message"]
        wrong = open_client.get("/v1/models", headers={"Authorization": "Bearer nope"})
        assert_openai_error(wrong, 401, code="invalid_api_key")
        assert wrong.headers["www-authenticate"] == "Bearer"
        right = open_client.get("/v1/models", headers={"Authorization": "Bearer s3cret"})
        assert right.status_code == 200
        reply = open_client.post(
            "/v1/chat/completions",
            json={"model": BASE, "messages": [{"role": "user", "content": "好吃"}]},
            headers={"Authorization": "Bearer s3cret"},
        )
        assert reply.status_code == 200
        assert open_client.get("/health").status_code == 200  # probes need no key


def test_no_api_key_means_open(client):
    assert client.get("/v1/models", headers={"Authorization": "Bearer anything"}).status_code == 200
    assert client.get("/v1/models").status_code == 200


# --- files --------------------------------------------------------------------------------


def test_file_upload_retrieve_content_list_delete(client):
    content = jsonl(synthetic(5, 3))
    created = upload(client, content, name="../../etc/train.jsonl")
    assert created["id"].startswith("file-")
    assert created["object"] == "file"
    assert created["bytes"] == len(content)
    assert created["filename"] == "train.jsonl"
    assert created["purpose"] == "fine-tune"
    assert isinstance(created["created_at"], int)
    assert client.get(f"/v1/files/{created['id']}").json() == created
    downloaded = client.get(f"/v1/files/{created['id']}/content")
    assert downloaded.status_code == 200 and downloaded.content == content
    assert client.get("/v1/files").json()["data"] == [created]
    deleted = client.delete(f"/v1/files/{created['id']}").json()
    assert deleted == {"id": created["id"], "object": "file", "deleted": True}
    assert_openai_error(client.get(f"/v1/files/{created['id']}"), 404)
    assert_openai_error(client.get(f"/v1/files/{created['id']}/content"), 404)


def test_file_upload_errors(client):
    bad_purpose = client.post(
        "/v1/files", files={"file": ("a.jsonl", b"{}\n")}, data={"purpose": "assistants"}
    )
    assert_openai_error(bad_purpose, 400, param="purpose")
    no_file = client.post("/v1/files", files={"other": ("a", b"x")}, data={"purpose": "fine-tune"})
    assert_openai_error(no_file, 400, param="file")
    assert_openai_error(client.post("/v1/files", json={"purpose": "fine-tune"}), 400, param="file")


# --- fine-tuning --------------------------------------------------------------------------


def test_fine_tuning_job_object(trained):
    created, job = trained["created"], trained["job"]
    assert created["id"].startswith("ftjob-")
    assert created["object"] == "fine_tuning.job"
    assert created["status"] == "validating_files"
    assert created["fine_tuned_model"] is None and created["finished_at"] is None
    assert created["error"] is None
    assert created["training_file"] == trained["training_file"]["id"]
    assert created["seed"] == 7
    assert created["method"]["type"] == "supervised"
    assert created["hyperparameters"] == {
        "n_epochs": "auto",
        "batch_size": "auto",
        "learning_rate_multiplier": "auto",
    }
    assert job["status"] == "succeeded", job
    assert job["fine_tuned_model"] == f"ft:tokenworks-base:sentiment:{job['id'][6:14]}"
    assert job["finished_at"] >= job["created_at"]
    expected_tokens = sum(
        estimate_tokens("Label the sentiment.")
        + estimate_tokens(text)
        + estimate_tokens(json.dumps({"label": label}))
        for text, label in trained["train_rows"]
    )
    assert job["trained_tokens"] == expected_tokens


def test_fine_tuning_events_newest_first_with_validation_accuracy(trained):
    client, job = trained["client"], trained["job"]
    events = client.get(f"/v1/fine_tuning/jobs/{job['id']}/events").json()
    assert events["object"] == "list" and events["has_more"] is False
    data = events["data"]
    assert data[0]["message"] == "The job has successfully completed"
    assert data[-1]["message"].startswith("Validating training file")
    for event in data:
        assert event["object"] == "fine_tuning.job.event"
        assert event["id"].startswith("ftevent-")
        assert event["level"] in ("info", "warn", "error")
        assert event["type"] in ("message", "metrics")
    (metrics,) = [e for e in data if e["type"] == "metrics"]
    assert metrics["data"]["valid_examples"] == 60
    assert metrics["data"]["valid_accuracy"] >= 0.9
    page = client.get(f"/v1/fine_tuning/jobs/{job['id']}/events", params={"limit": 2}).json()
    assert [e["id"] for e in page["data"]] == [e["id"] for e in data[:2]] and page["has_more"]
    rest = client.get(
        f"/v1/fine_tuning/jobs/{job['id']}/events", params={"after": data[1]["id"], "limit": 100}
    ).json()
    assert [e["id"] for e in rest["data"]] == [e["id"] for e in data[2:]]


def test_fine_tuned_model_is_listed_and_beats_the_base_model(trained):
    client, job = trained["client"], trained["job"]
    models = [m["id"] for m in client.get("/v1/models").json()["data"]]
    assert models == [BASE, job["fine_tuned_model"]]
    assert client.get("/v1/fine_tuning/jobs").json()["data"][0]["id"] == job["id"]
    tuned = accuracy(client, job["fine_tuned_model"], trained["held_out"])
    base = accuracy(client, BASE, trained["held_out"])
    assert tuned >= 0.9
    assert tuned > base


def test_fine_tuned_model_confidence_and_enum_restriction(trained):
    client, model = trained["client"], trained["job"]["fine_tuned_model"]
    text = "今天点的烤鸭，绝绝子"
    body = chat(client, text, model=model, schema=label_schema(), logprobs=True).json()
    choice = body["choices"][0]
    assert json.loads(choice["message"]["content"]) == {"label": "positive"}
    entry = choice["logprobs"]["content"][0]
    assert math.isclose(math.exp(entry["logprob"]), choice["tokenworks_confidence"], abs_tol=1e-6)
    assert choice["tokenworks_confidence"] > 0.7
    # A label the model never saw gets only a small floor.
    labels = ["positive", "negative", "sarcastic"]
    body = chat(client, text, model=model, schema=label_schema(labels), logprobs=True).json()
    top = {
        t["token"]: math.exp(t["logprob"])
        for t in body["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
    }
    assert top["sarcastic"] < 0.02
    # None of the enum seen, but both read as sentiment: mapped through polarity.
    body = chat(client, text, model=model, schema=label_schema(["好评", "差评"])).json()
    assert json.loads(body["choices"][0]["message"]["content"]) == {"label": "好评"}
    # None seen and no polarity: honest uniform.
    body = chat(client, text, model=model, schema=label_schema(["x1", "x2"])).json()
    assert body["choices"][0]["tokenworks_confidence"] == pytest.approx(0.5)
    # Plain text: the classifier's own label.
    assert chat(client, text, model=model).json()["choices"][0]["message"]["content"] == "positive"


def test_restart_keeps_the_fine_tuned_model(trained):
    model = trained["job"]["fine_tuned_model"]
    text = "朋友推的酸菜鱼，踩雷了"
    before = chat(trained["client"], text, model=model, schema=label_schema()).json()
    with TestClient(create_app(trained["data_dir"])) as restarted:
        assert model in [m["id"] for m in restarted.get("/v1/models").json()["data"]]
        assert (
            restarted.get(f"/v1/fine_tuning/jobs/{trained['job']['id']}").json() == trained["job"]
        )
        after = chat(restarted, text, model=model, schema=label_schema()).json()
        assert after["choices"][0]["message"] == before["choices"][0]["message"]
        assert after["choices"][0]["tokenworks_confidence"] == pytest.approx(
            before["choices"][0]["tokenworks_confidence"]
        )
        assert accuracy(restarted, model, trained["held_out"][:40]) >= 0.9


def test_weights_that_do_not_match_the_registry_are_not_loaded(trained, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(trained["data_dir"], copy)
    (weights,) = (copy / "models").glob("*.joblib")
    weights.write_bytes(weights.read_bytes() + b"tampered")
    with TestClient(create_app(copy), raise_server_exceptions=False) as restarted:
        reply = chat(restarted, "好吃", model=trained["job"]["fine_tuned_model"])
        assert_openai_error(reply, 500)


def test_dpo_job_fails_with_unsupported_method(client):
    line = json.dumps(
        {
            "input": {"messages": [{"role": "user", "content": "你好"}]},
            "preferred_output": [{"role": "assistant", "content": "您好！"}],
            "non_preferred_output": [{"role": "assistant", "content": "嗯"}],
        },
        ensure_ascii=False,
    )
    training = upload(client, (line + "\n").encode())
    created = client.post(
        "/v1/fine_tuning/jobs",
        json={
            "model": BASE,
            "training_file": training["id"],
            "method": {"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.1}}},
        },
    ).json()
    assert created["method"] == {
        "type": "dpo",
        "dpo": {
            "hyperparameters": {
                "n_epochs": "auto",
                "batch_size": "auto",
                "learning_rate_multiplier": "auto",
                "beta": 0.1,
            }
        },
    }
    job = wait_for_job(client, created["id"])
    assert job["status"] == "failed"
    assert job["error"]["code"] == "unsupported_method"
    assert "dpo" in job["error"]["message"]
    assert job["fine_tuned_model"] is None and job["trained_tokens"] is None
    events = client.get(f"/v1/fine_tuning/jobs/{job['id']}/events").json()["data"]
    assert events[0]["level"] == "error"


@pytest.mark.parametrize(
    ("lines", "line_number", "fragment"),
    [
        (
            [chat_line("好吃", "positive"), chat_line("难吃", "negative"), "{oops"],
            3,
            "not valid JSON",
        ),
        (
            [
                chat_line("好吃", "positive"),
                json.dumps({"messages": [{"role": "user", "content": "x"}]}),
            ],
            2,
            "no assistant message",
        ),
        ([chat_line("好吃", "positive"), json.dumps({"text": "x"})], 2, "expected chat format"),
        ([chat_line("好吃", "positive"), chat_line("难吃", '{"rating": "high"}')], 2, "rating"),
    ],
)
def test_bad_training_line_fails_the_job_naming_the_line(client, lines, line_number, fragment):
    training = upload(client, ("\n".join(lines) + "\n").encode())
    created = client.post(
        "/v1/fine_tuning/jobs", json={"model": BASE, "training_file": training["id"]}
    ).json()
    job = wait_for_job(client, created["id"])
    assert job["status"] == "failed"
    assert job["error"]["code"] == "invalid_training_file"
    assert job["error"]["param"] == "training_file"
    assert f"line {line_number}:" in job["error"]["message"]
    assert fragment in job["error"]["message"]


def test_single_label_training_data_fails_honestly(client):
    training = upload(client, jsonl([("好吃", "positive"), ("不错", "positive")]))
    created = client.post(
        "/v1/fine_tuning/jobs", json={"model": BASE, "training_file": training["id"]}
    ).json()
    job = wait_for_job(client, created["id"])
    assert job["status"] == "failed" and "two different labels" in job["error"]["message"]


def test_free_text_answers_are_not_learned_as_labels(client):
    rows = [(f"问题{n}：怎么退款？", f"第{n}种答案：在订单页点退款。") for n in range(30)]
    training = upload(client, jsonl(rows, answer=lambda text: text))
    created = client.post(
        "/v1/fine_tuning/jobs", json={"model": BASE, "training_file": training["id"]}
    ).json()
    job = wait_for_job(client, created["id"])
    assert job["status"] == "failed"
    assert job["error"]["code"] == "invalid_training_file"
    assert "free text" in job["error"]["message"]


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"training_file": "file-x"}, 400, "model"),
        ({"model": "gpt-4o", "training_file": "TRAIN"}, 404, "model"),
        ({"model": BASE}, 400, "training_file"),
        ({"model": BASE, "training_file": "file-nope"}, 400, "training_file"),
        (
            {"model": BASE, "training_file": "TRAIN", "validation_file": "file-no"},
            400,
            "validation_file",
        ),
        ({"model": BASE, "training_file": "TRAIN", "suffix": "has:colon"}, 400, "suffix"),
        ({"model": BASE, "training_file": "TRAIN", "seed": "42"}, 400, "seed"),
        ({"model": BASE, "training_file": "TRAIN", "seed": 2**63}, 400, "seed"),
        (
            {"model": BASE, "training_file": "TRAIN", "method": {"type": "magic"}},
            400,
            "method.type",
        ),
        (
            {
                "model": BASE,
                "training_file": "TRAIN",
                "method": {
                    "type": "supervised",
                    "supervised": {"hyperparameters": {"n_epochs": 0}},
                },
            },
            400,
            "method.supervised.hyperparameters.n_epochs",
        ),
    ],
)
def test_job_creation_errors(client, body, status, param):
    training = upload(client, jsonl(synthetic(4, 4)))
    body = {k: (training["id"] if v == "TRAIN" else v) for k, v in body.items()}
    assert_openai_error(client.post("/v1/fine_tuning/jobs", json=body), status, param=param)


def test_unknown_job_is_404(client):
    assert_openai_error(client.get("/v1/fine_tuning/jobs/ftjob-nope"), 404)
    assert_openai_error(client.get("/v1/fine_tuning/jobs/ftjob-nope/events"), 404)
    assert_openai_error(client.post("/v1/fine_tuning/jobs/ftjob-nope/cancel"), 404)


def test_cancel_a_running_job(client, monkeypatch):
    started, release = threading.Event(), threading.Event()
    real_train = service_module.train_heads

    def slow_train(examples, seed):
        started.set()
        release.wait(10)
        return real_train(examples, seed)

    monkeypatch.setattr(service_module, "train_heads", slow_train)
    training = upload(client, jsonl(synthetic(6, 40)))
    created = client.post(
        "/v1/fine_tuning/jobs", json={"model": BASE, "training_file": training["id"]}
    ).json()
    assert started.wait(10)
    assert client.get(f"/v1/fine_tuning/jobs/{created['id']}").json()["status"] == "running"
    cancelled = client.post(f"/v1/fine_tuning/jobs/{created['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    release.set()
    time.sleep(0.5)
    job = client.get(f"/v1/fine_tuning/jobs/{created['id']}").json()
    assert job["status"] == "cancelled" and job["fine_tuned_model"] is None
    assert [m["id"] for m in client.get("/v1/models").json()["data"]] == [BASE]
    again = client.post(f"/v1/fine_tuning/jobs/{created['id']}/cancel")
    assert_openai_error(again, 400, code="job_not_cancellable")


def test_unfinished_job_resumes_after_a_restart(tmp_path, monkeypatch):
    with monkeypatch.context() as patch:
        patch.setattr(service_module.Backend, "_enqueue", lambda self, job_id: None)
        with TestClient(create_app(tmp_path)) as first:
            training = upload(first, jsonl(synthetic(8, 60)))
            created = first.post(
                "/v1/fine_tuning/jobs", json={"model": BASE, "training_file": training["id"]}
            ).json()
            assert first.get(f"/v1/fine_tuning/jobs/{created['id']}").json()["status"] == (
                "validating_files"
            )
    with TestClient(create_app(tmp_path)) as second:
        job = wait_for_job(second, created["id"])
        assert job["status"] == "succeeded"
        messages = [
            e["message"]
            for e in second.get(f"/v1/fine_tuning/jobs/{job['id']}/events").json()["data"]
        ]
        assert "Job re-queued after a server restart" in messages


def test_labels_rating_and_choice_heads(client):
    rng = random.Random(9)
    lines = []
    for _ in range(120):
        fast, tasty = rng.random() < 0.5, rng.random() < 0.5
        text = ("送餐神速" if fast else "骑手迷路") + "，" + ("回味无穷" if tasty else "一言难尽")
        labels = [name for name, on in (("delivery", fast), ("food", tasty)) if on]
        lines.append(chat_line(text, json.dumps({"labels": labels})))
        lines.append(chat_line(text + "。", json.dumps({"rating": 1 + 2 * fast + 2 * tasty})))
    training = upload(client, ("\n".join(lines) + "\n").encode())
    created = client.post(
        "/v1/fine_tuning/jobs", json={"model": BASE, "training_file": training["id"]}
    ).json()
    job = wait_for_job(client, created["id"])
    assert job["status"] == "succeeded", job
    model = job["fine_tuned_model"]
    schema = {
        "type": "object",
        "properties": {
            "labels": {
                "type": "array",
                "items": {"type": "string", "enum": ["food", "delivery", "price"]},
                "uniqueItems": True,
            }
        },
        "required": ["labels"],
    }
    body = chat(client, "送餐神速，回味无穷", model=model, schema=schema, logprobs=True).json()
    assert json.loads(body["choices"][0]["message"]["content"]) == {"labels": ["food", "delivery"]}
    entry = body["choices"][0]["logprobs"]["content"][0]
    assert math.isclose(
        math.exp(entry["logprob"]), body["choices"][0]["tokenworks_confidence"], abs_tol=1e-6
    )
    body = chat(client, "骑手迷路，一言难尽。", model=model, schema=SCHEMAS["rating"]).json()
    assert json.loads(body["choices"][0]["message"]["content"]) == {"rating": 1}
    assert body["choices"][0]["tokenworks_confidence"] > 0.5


# --- speed and the real server ----------------------------------------------------------------


class _Server:
    def __init__(self, app):
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1"

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(10)


def test_real_server_over_http(tmp_path):
    app = create_app(tmp_path, api_key="k")
    with (
        _Server(app) as url,
        httpx.Client(base_url=url, headers={"Authorization": "Bearer k"}, timeout=30) as http,
    ):
        assert httpx.get(f"{url}/models").status_code == 401
        assert http.get("/models").json()["data"][0]["id"] == BASE
        uploaded = http.post(
            "/files",
            files={"file": ("train.jsonl", jsonl(synthetic(11, 200)))},
            data={"purpose": "fine-tune"},
        )
        assert uploaded.status_code == 200, uploaded.text
        job = http.post(
            "/fine_tuning/jobs",
            json={"model": BASE, "training_file": uploaded.json()["id"], "suffix": "http"},
        ).json()
        deadline = time.monotonic() + 60
        while job["status"] not in ("succeeded", "failed", "cancelled"):
            assert time.monotonic() < deadline
            time.sleep(0.05)
            job = http.get(f"/fine_tuning/jobs/{job['id']}").json()
        assert job["status"] == "succeeded", job
        model = job["fine_tuned_model"]
        held_out = synthetic(12, 60)

        def classify(row):
            reply = http.post(
                "/chat/completions",
                json={
                    "model": model,
                    "messages": [{"role": "user", "content": row[0]}],
                    "response_format": response_format(label_schema()),
                    "logprobs": True,
                },
            )
            assert reply.status_code == 200, reply.text
            choice = reply.json()["choices"][0]
            return json.loads(choice["message"]["content"])["label"] == row[1]

        with ThreadPoolExecutor(max_workers=8) as pool:  # concurrent requests
            hits = list(pool.map(classify, held_out))
        assert sum(hits) / len(hits) >= 0.9
