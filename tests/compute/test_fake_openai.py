"""The fault-injecting fake OpenAI server does what client tests rely on, seen with plain httpx."""

from __future__ import annotations

import io
import json
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import jsonschema
import pytest

from tests.compute.fake_openai import FakeOpenAI, Fault

LABEL = {
    "type": "object",
    "properties": {"label": {"type": "string", "enum": ["positive", "negative"]}},
    "required": ["label"],
    "additionalProperties": False,
}
SHAPES = {
    "classification": LABEL,
    "multi_label": {
        "type": "object",
        "properties": {
            "labels": {
                "type": "array",
                "items": {"type": "string", "enum": ["food", "delivery"]},
                "uniqueItems": True,
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
            "rationale": {"type": "string"},
        },
        "required": ["choice"],
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
                        "start": {"type": "integer"},
                        "end": {"type": "integer"},
                        "label": {"type": "string", "enum": ["PER", "LOC"]},
                    },
                    "required": ["start", "end", "label"],
                },
            }
        },
        "required": ["spans"],
        "additionalProperties": False,
    },
    "text": {
        "type": "object",
        "properties": {"text": {"type": "string", "minLength": 1}},
        "required": ["text"],
        "additionalProperties": False,
    },
}


def chat_body(schema=LABEL, **extra):
    body = {
        "model": "fake-model",
        "messages": [
            {"role": "system", "content": "Label it."},
            {"role": "user", "content": "很好吃"},
        ],
        **extra,
    }
    if schema is not None:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": schema, "strict": True},
        }
    return body


def content_of(response) -> str:
    return response.json()["choices"][0]["message"]["content"]


@pytest.fixture
def fake():
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def http(fake):
    with httpx.Client(base_url=fake.url, timeout=10) as client:
        yield client


def test_url_and_models(fake, http):
    assert fake.url.startswith("http://127.0.0.1:") and fake.url.endswith("/v1")
    assert [m["id"] for m in http.get("/models").json()["data"]] == ["fake-model"]


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_default_replies_validate(http, shape):
    response = http.post("/chat/completions", json=chat_body(SHAPES[shape]))
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
    jsonschema.validate(json.loads(content_of(response)), SHAPES[shape])


def test_default_reply_picks_the_first_enum_value_and_counts_characters(http):
    response = http.post("/chat/completions", json=chat_body())
    content = content_of(response)
    assert json.loads(content) == {"label": "positive"}
    assert response.json()["usage"] == {
        "prompt_tokens": len("Label it.") + len("很好吃"),
        "completion_tokens": len(content),
        "total_tokens": len("Label it.") + len("很好吃") + len(content),
    }
    assert content_of(http.post("/chat/completions", json=chat_body(None))) == "fake answer"


def test_answer_callback():
    seen = []

    def answer(request):
        seen.append(request)
        return {"label": "negative"}

    with FakeOpenAI(answer=answer) as fake, httpx.Client(base_url=fake.url) as http:
        assert json.loads(content_of(http.post("/chat/completions", json=chat_body()))) == {
            "label": "negative"
        }
    assert seen[0]["messages"][1]["content"] == "很好吃"


def test_logprobs_when_asked(http):
    plain = http.post("/chat/completions", json=chat_body()).json()["choices"][0]
    assert plain["logprobs"] is None and plain["tokenworks_confidence"] == 0.9
    choice = http.post("/chat/completions", json=chat_body(logprobs=True, top_logprobs=2)).json()[
        "choices"
    ][0]
    (entry,) = choice["logprobs"]["content"]
    assert entry["token"] == "positive"
    assert math.exp(entry["logprob"]) == pytest.approx(0.9)
    assert [t["token"] for t in entry["top_logprobs"]] == ["positive", "negative"]
    assert math.exp(entry["top_logprobs"][1]["logprob"]) == pytest.approx(0.1)


def test_requests_are_recorded(fake, http):
    http.post("/chat/completions", json=chat_body(), headers={"X-Trace": "t1"})
    http.get("/models", params={"limit": "3"})
    first, second = fake.requests[0], fake.requests[1]
    assert (first.method, first.path) == ("POST", "/v1/chat/completions")
    assert first.json["model"] == "fake-model" and first.headers["x-trace"] == "t1"
    assert (second.method, second.path, second.query) == ("GET", "/v1/models", {"limit": "3"})
    assert first.time <= second.time
    assert len(fake.requests) == 2 and [r.path for r in fake.requests] == [
        "/v1/chat/completions",
        "/v1/models",
    ]


# --- faults ---------------------------------------------------------------------------


def test_status_faults_are_consumed_in_order(fake, http):
    fake.enqueue(Fault.status(500), Fault.status(400), Fault.status(503))
    codes = [http.post("/chat/completions", json=chat_body()).status_code for _ in range(4)]
    assert codes == [500, 400, 503, 200]
    assert fake.pending_faults == 0


def test_status_fault_bodies_are_openai_errors(fake, http):
    fake.enqueue(Fault.status(500), Fault.status(400, message="bad thing"))
    error = http.post("/chat/completions", json=chat_body()).json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["type"] == "server_error"
    error = http.post("/chat/completions", json=chat_body()).json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"] == "bad thing"


def test_rate_limit_with_retry_after(fake, http):
    fake.enqueue(Fault.status(429, retry_after=1.5))
    response = http.post("/chat/completions", json=chat_body())
    assert response.status_code == 429
    assert response.headers["retry-after"] == "1.5"
    assert response.headers["retry-after-ms"] == "1500"
    assert response.json()["error"]["code"] == "rate_limit_exceeded"


def test_delay_then_normal(fake, http):
    fake.enqueue(Fault.delay(0.3))
    started = time.monotonic()
    response = http.post("/chat/completions", json=chat_body())
    assert time.monotonic() - started >= 0.3
    assert response.status_code == 200 and json.loads(content_of(response))


def test_timeout_outlasts_the_client_and_does_not_block_shutdown():
    fake = FakeOpenAI().start()
    try:
        fake.enqueue(Fault.timeout())
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{fake.url}/chat/completions", json=chat_body(), timeout=0.5)
        fake.enqueue(Fault.timeout())
        outcome = []

        def hang() -> None:
            try:
                httpx.post(f"{fake.url}/chat/completions", json=chat_body(), timeout=60)
            except httpx.HTTPError as exc:
                outcome.append(exc)

        hung = threading.Thread(target=hang, daemon=True)
        hung.start()
        time.sleep(0.2)
        assert fake.in_flight == 1
    finally:
        started = time.monotonic()
        fake.stop()
    assert time.monotonic() - started < 5
    hung.join(5)
    assert not hung.is_alive()
    assert isinstance(outcome[0], httpx.RemoteProtocolError | httpx.ReadError)  # dropped


def test_malformed_json(fake, http):
    fake.enqueue(Fault.malformed_json())
    response = http.post("/chat/completions", json=chat_body())
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    with pytest.raises(json.JSONDecodeError):
        response.json()


@pytest.mark.parametrize("shape", sorted(set(SHAPES) - {"spans"}))
def test_schema_violation(fake, http, shape):
    fake.enqueue(Fault.schema_violation())
    response = http.post("/chat/completions", json=chat_body(SHAPES[shape]))
    assert response.status_code == 200 and response.json()["object"] == "chat.completion"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(json.loads(content_of(response)), SHAPES[shape])


def test_schema_violation_for_spans(fake, http):
    fake.enqueue(Fault.schema_violation())
    response = http.post("/chat/completions", json=chat_body(SHAPES["spans"]))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(json.loads(content_of(response)), SHAPES["spans"])


def test_not_json_content(fake, http):
    fake.enqueue(Fault.not_json_content())
    response = http.post("/chat/completions", json=chat_body())
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(content_of(response))


def test_drop_closes_the_connection_without_a_response(fake, http):
    fake.enqueue(Fault.drop())
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        http.post("/chat/completions", json=chat_body())
    assert http.post("/chat/completions", json=chat_body()).status_code == 200  # and recovers


def test_faults_for_one_path_leave_others_alone(fake, http):
    fake.enqueue(Fault.status(500), path="/v1/chat/completions")
    assert http.get("/models").status_code == 200
    assert http.post("/chat/completions", json=chat_body()).status_code == 500


def test_rule_callable():
    calls = {"n": 0}

    def every_other(request):
        calls["n"] += 1
        return Fault.status(503) if calls["n"] % 2 else None

    with FakeOpenAI(rule=every_other) as fake, httpx.Client(base_url=fake.url) as http:
        codes = [http.post("/chat/completions", json=chat_body()).status_code for _ in range(4)]
        assert codes == [503, 200, 503, 200]
        fake.enqueue(Fault.status(400))  # the queue wins over the rule
        assert http.post("/chat/completions", json=chat_body()).status_code == 400
        fake.set_rule(None)
        assert http.post("/chat/completions", json=chat_body()).status_code == 200


def test_latency_and_max_in_flight(fake):
    fake.set_latency(0.3)
    with httpx.Client(base_url=fake.url, timeout=10) as http:

        def call(_):
            return http.post("/chat/completions", json=chat_body()).status_code

        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=5) as pool:
            assert list(pool.map(call, range(5))) == [200] * 5
        assert time.monotonic() - started >= 0.3
        assert fake.max_in_flight == 5
        fake.reset()
        fake.set_latency(0)
        call(0)
        call(0)
        assert fake.max_in_flight == 1 and len(fake.requests) == 2


def test_api_key():
    with FakeOpenAI(api_key="k") as fake:
        response = httpx.get(f"{fake.url}/models")
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_api_key"
        assert httpx.get(f"{fake.url}/models", headers={"Authorization": "Bearer k"}).is_success


def test_unknown_model_and_route(http):
    response = http.post("/chat/completions", json={**chat_body(), "model": "other"})
    assert response.status_code == 404 and response.json()["error"]["code"] == "model_not_found"
    assert http.get("/nowhere").status_code == 404


# --- fine-tuning ----------------------------------------------------------------------

TRAINING = (
    json.dumps(
        {
            "messages": [
                {"role": "user", "content": "好吃"},
                {"role": "assistant", "content": '{"label": "positive"}'},
            ]
        }
    )
    + "\n"
).encode()


def upload(http) -> dict:
    response = http.post(
        "/files",
        files={"file": ("train.jsonl", io.BytesIO(TRAINING))},
        data={"purpose": "fine-tune"},
    )
    assert response.status_code == 200
    return response.json()


def test_fine_tuning_job_lifecycle():
    with (
        FakeOpenAI(polls_until_running=1, polls_until_done=3) as fake,
        httpx.Client(base_url=fake.url) as http,
    ):
        file = upload(http)
        assert file["id"].startswith("file-") and file["bytes"] == len(TRAINING)
        assert http.get(f"/files/{file['id']}").json() == file
        assert http.get(f"/files/{file['id']}/content").content == TRAINING
        job = http.post(
            "/fine_tuning/jobs", json={"model": "fake-model", "training_file": file["id"]}
        ).json()
        assert job["status"] == "queued" and job["object"] == "fine_tuning.job"
        statuses = [http.get(f"/fine_tuning/jobs/{job['id']}").json()["status"] for _ in range(4)]
        assert statuses == ["running", "running", "succeeded", "succeeded"]
        done = http.get(f"/fine_tuning/jobs/{job['id']}").json()
        assert done["trained_tokens"] == len("好吃") + len('{"label": "positive"}')
        assert done["fine_tuned_model"] in [m["id"] for m in http.get("/models").json()["data"]]
        events = http.get(f"/fine_tuning/jobs/{job['id']}/events").json()
        assert events["data"][0]["message"] == "The job has successfully completed"
        assert http.get("/fine_tuning/jobs").json()["data"][0]["id"] == job["id"]
        reply = http.post(
            "/chat/completions", json={**chat_body(), "model": done["fine_tuned_model"]}
        )
        assert reply.status_code == 200


def test_fine_tuning_failure_cancel_and_faults():
    with (
        FakeOpenAI(polls_until_done=1, job_outcome="failed") as fake,
        httpx.Client(base_url=fake.url) as http,
    ):
        file = upload(http)
        job = http.post(
            "/fine_tuning/jobs", json={"model": "fake-model", "training_file": file["id"]}
        ).json()
        fake.enqueue(Fault.status(503), path="/v1/fine_tuning")
        assert http.get(f"/fine_tuning/jobs/{job['id']}").status_code == 503
        failed = http.get(f"/fine_tuning/jobs/{job['id']}").json()
        assert failed["status"] == "failed" and failed["error"]["code"] == "invalid_training_file"
        other = http.post(
            "/fine_tuning/jobs", json={"model": "fake-model", "training_file": file["id"]}
        ).json()
        assert http.post(f"/fine_tuning/jobs/{other['id']}/cancel").json()["status"] == "cancelled"
        assert http.post(f"/fine_tuning/jobs/{other['id']}/cancel").status_code == 400
        missing = http.post("/fine_tuning/jobs", json={"model": "fake-model", "training_file": "x"})
        assert missing.status_code == 400 and missing.json()["error"]["param"] == "training_file"
        assert http.get("/fine_tuning/jobs/ftjob-nope").status_code == 404
