"""A fault-injecting OpenAI-compatible server for client tests, over real HTTP.

    from tests.compute.fake_openai import Fault, FakeOpenAI

    with FakeOpenAI() as fake:                      # uvicorn on 127.0.0.1:<free port>
        fake.enqueue(Fault.status(429, retry_after=1.5), Fault.status(500))
        client = MyClient(base_url=fake.url)        # "http://127.0.0.1:PORT/v1"
        client.classify(...)                        # 429, then 500, then a normal reply
        assert len(fake.requests) == 3

Default behaviour
    GET /v1/models lists ``fake-model`` (plus fine-tuned models). POST
    /v1/chat/completions answers a chat.completion whose content validates against the
    request's json_schema (first enum value, minimum of a range, [] for spans, "fake
    answer" for free text), or ``answer(request_json)`` when given (a dict is sent as
    JSON, a string as is). Usage is deliberately simple: prompt_tokens = sum of
    len(content) over the messages, completion_tokens = len(reply content). With
    ``logprobs: true`` the choice carries one token entry for the decided value with
    logprob ln(confidence) and ``top_logprobs`` entries when asked (like OpenAI: none
    unless top_logprobs is given); ``tokenworks_confidence`` is included like the
    built-in model does (``tokenworks_confidence=False`` leaves it out).

Faults
    ``fake.enqueue(*faults, path=None)`` queues faults, consumed one per matching
    request in order (``path``: only requests whose path starts with it). When the queue
    has nothing for a request, ``rule(recorded_request)`` (constructor or
    ``fake.set_rule``) may return a Fault. See ``Fault`` for the kinds. Faults that
    only make sense for a chat completion (schema_violation, not_json_content) answer
    normally on other paths.

Fine-tuning
    Minimal /v1/files (upload, get, content) and /v1/fine_tuning/jobs (create, list,
    get, events, cancel). A job starts ``queued``, turns ``running`` on the
    ``polls_until_running``-th GET of the job and ``succeeded`` (or ``job_outcome``) on
    the ``polls_until_done``-th, with ``trained_tokens`` = sum of len(content) over the
    training file's messages and a ``fine_tuned_model`` that /v1/models then lists.

Inspection
    ``fake.requests``: thread-safe log of RecordedRequest(method, path, query, headers,
    json, body, time, status, handled_seconds); ``fake.counts(path)``: a Counter of the
    statuses answered on paths starting with ``path`` ("dropped" for requests that got
    no response), so tests can compare what a client recorded with what the server
    answered, attempts included; ``fake.received(path)``: every request, answered or not
    (a client's X-Client-Request-Id is in ``headers``), to match call by call;
    ``fake.max_in_flight``/``fake.in_flight``: concurrency seen;
    ``fake.set_latency(seconds)``: added to every request; ``fake.hold()`` /
    ``fake.release()`` / ``fake.held``: keep requests unanswered (a client killed
    meanwhile has them dropped); ``fake.reset()``.
"""

from __future__ import annotations

import asyncio
import json
import math
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import uvicorn
from starlette.datastructures import UploadFile
from starlette.requests import Request

LONG_SLEEP = 30.0


@dataclass(frozen=True)
class Fault:
    """One misbehaviour. Build them with the class methods."""

    kind: str
    status_code: int | None = None
    retry_after: float | None = None
    seconds: float = 0.0
    message: str | None = None

    @classmethod
    def status(
        cls, code: int, *, retry_after: float | None = None, message: str | None = None
    ) -> Fault:
        """An OpenAI error body with this HTTP status (Retry-After and retry-after-ms if given)."""
        return cls("status", status_code=code, retry_after=retry_after, message=message)

    @classmethod
    def delay(cls, seconds: float) -> Fault:
        """Wait, then answer normally."""
        return cls("delay", seconds=seconds)

    @classmethod
    def timeout(cls, seconds: float = LONG_SLEEP) -> Fault:
        """Hang longer than any sane client timeout (cut short when the server stops)."""
        return cls("timeout", seconds=seconds)

    @classmethod
    def malformed_json(cls) -> Fault:
        """200 with Content-Type application/json and a body that is not JSON."""
        return cls("malformed_json")

    @classmethod
    def schema_violation(cls) -> Fault:
        """200, a valid chat.completion, whose content is JSON that violates the schema."""
        return cls("schema_violation")

    @classmethod
    def not_json_content(cls) -> Fault:
        """200, a valid chat.completion, whose content is prose, not JSON."""
        return cls("not_json_content")

    @classmethod
    def drop(cls) -> Fault:
        """Close the TCP connection without sending any response."""
        return cls("drop")


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    json: Any
    body: bytes
    time: float  # time.monotonic() when the request arrived
    fault: Fault | None = field(default=None)
    status: int | None = None  # the HTTP status answered; None: dropped, or never answered
    handled_seconds: float | None = None  # from arrival to the response sent


class RequestLog:
    """A list of RecordedRequest safe to read while the server appends to it."""

    def __init__(self):
        self._lock = threading.Lock()
        self._items: list[RecordedRequest] = []

    def append(self, item: RecordedRequest) -> None:
        with self._lock:
            self._items.append(item)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def snapshot(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._items)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def __getitem__(self, index):
        with self._lock:
            return self._items[index]

    def __iter__(self) -> Iterator[RecordedRequest]:
        return iter(self.snapshot())

    def __repr__(self) -> str:
        return f"RequestLog({self.snapshot()!r})"


# --- schema-shaped values ---------------------------------------------------------------


def _first_type(node: dict) -> str | None:
    kind = node.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind is None and "enum" in node:
        return "enum"
    if kind is None and "properties" in node:
        return "object"
    return kind


def example_for(node) -> Any:
    """A minimal value valid against a (simple) JSON schema: first enum value, minimum, …"""
    if not isinstance(node, dict):
        return None
    for key in ("anyOf", "oneOf"):
        if node.get(key):
            return example_for(node[key][0])
    if "const" in node:
        return node["const"]
    if node.get("enum"):
        return node["enum"][0]
    kind = _first_type(node)
    if kind == "object":
        return {name: example_for(child) for name, child in (node.get("properties") or {}).items()}
    if kind == "array":
        items = node.get("items") or {}
        low = node.get("minItems", 0)
        high = node.get("maxItems")
        if isinstance(items, dict) and items.get("enum"):
            count = max(low, 1 if high is None or high >= 1 else 0)
            return list(items["enum"][:count])
        return [example_for(items) for _ in range(low)]
    if kind in ("integer", "number"):
        if "minimum" in node:
            return node["minimum"]
        if "maximum" in node:
            return min(0, node["maximum"])
        return 0
    if kind == "boolean":
        return False
    if kind == "null":
        return None
    text = "fake answer"
    if "maxLength" in node:
        text = text[: node["maxLength"]]
    return text.ljust(node.get("minLength", 0), ".")


def violation_for(schema) -> Any:
    """A value that does NOT validate against the schema (object schemas as the platform sends)."""
    if not isinstance(schema, dict):
        return {"unexpected": True}
    properties = schema.get("properties") or {}
    if _first_type(schema) != "object" or not properties:
        return "not the expected JSON"
    value = example_for(schema)
    name, node = next(iter(properties.items()))
    kind = _first_type(node) if isinstance(node, dict) else None
    if isinstance(node, dict) and node.get("enum"):
        value[name] = "__not_in_enum__"
    elif kind in ("integer", "number"):
        if "maximum" in node:
            value[name] = node["maximum"] + 1
        elif "minimum" in node:
            value[name] = node["minimum"] - 1
        else:
            value[name] = "not a number"
    elif kind == "array":
        items = node.get("items") or {}
        value[name] = ["__not_in_enum__"] if items.get("enum") else "not an array"
    elif kind == "string":
        value[name] = 12345
    else:
        value[name] = None if kind != "null" else "not null"
    return value


def _content_text(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _error(message: str, status: int, code: str | None = None, param: str | None = None):
    kinds = {
        400: "invalid_request_error",
        401: "invalid_request_error",
        403: "permission_error",
        404: "invalid_request_error",
        409: "invalid_request_error",
        422: "invalid_request_error",
        429: "requests",
    }
    body = {
        "error": {
            "message": message,
            "type": kinds.get(status, "server_error"),
            "param": param,
            "code": code,
        }
    }
    return status, body, {}


_STATUS_CODES = {
    401: "invalid_api_key",
    404: "not_found",
    429: "rate_limit_exceeded",
    500: "server_error",
    502: "bad_gateway",
    503: "service_unavailable",
}


class FakeOpenAI:
    def __init__(
        self,
        answer: Callable[[dict], Any] | None = None,
        *,
        rule: Callable[[RecordedRequest], Fault | None] | None = None,
        api_key: str | None = None,
        latency: float = 0.0,
        confidence: float = 0.9,
        tokenworks_confidence: bool = True,
        models: tuple[str, ...] = ("fake-model",),
        polls_until_running: int = 1,
        polls_until_done: int = 2,
        job_outcome: str = "succeeded",
    ):
        self.answer = answer
        self.rule = rule
        self.api_key = api_key
        self.latency = latency
        self.confidence = confidence
        self.tokenworks_confidence = tokenworks_confidence
        self.model_ids = list(models)
        self.polls_until_running = polls_until_running
        self.polls_until_done = polls_until_done
        self.job_outcome = job_outcome
        self.requests = RequestLog()
        self.files: dict[str, dict] = {}
        self.file_contents: dict[str, bytes] = {}
        self.jobs: dict[str, dict] = {}
        self._events: dict[str, list[dict]] = {}
        self._polls: dict[str, int] = {}
        self._lock = threading.Lock()
        self._faults: list[tuple[Fault, str | None]] = []
        self._in_flight = 0
        self._max_in_flight = 0
        self._held = 0
        self._holding = threading.Event()
        self._stopping = threading.Event()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port: int | None = None

    # --- control ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("FakeOpenAI is not running; use it as a context manager")
        return f"http://127.0.0.1:{self.port}/v1"

    def enqueue(self, *faults: Fault, path: str | None = None) -> None:
        with self._lock:
            self._faults.extend((fault, path) for fault in faults)

    def set_rule(self, rule: Callable[[RecordedRequest], Fault | None] | None) -> None:
        self.rule = rule

    def set_latency(self, seconds: float) -> None:
        self.latency = seconds

    def hold(self) -> None:
        """Requests (those arriving, and those in their latency) wait unanswered until
        release(); one whose client hangs up meanwhile is dropped."""
        self._holding.set()

    def release(self) -> None:
        self._holding.clear()

    @property
    def held(self) -> int:
        """Requests waiting for release() now."""
        with self._lock:
            return self._held

    @property
    def pending_faults(self) -> int:
        with self._lock:
            return len(self._faults)

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    @property
    def max_in_flight(self) -> int:
        with self._lock:
            return self._max_in_flight

    def received(self, path: str = "/v1/chat/completions") -> list[RecordedRequest]:
        """Requests on paths starting with `path`, answered or not, in arrival order."""
        return [r for r in self.requests if r.path.startswith(path)]

    def counts(self, path: str = "/v1/chat/completions") -> Counter:
        """Requests on paths starting with `path` that have ended, by status answered."""
        return Counter(
            "dropped" if r.status is None else r.status
            for r in self.requests
            if r.path.startswith(path) and r.handled_seconds is not None
        )

    def reset(self) -> None:
        """Forget requests, queued faults and the concurrency high-water mark."""
        self.requests.clear()
        with self._lock:
            self._faults.clear()
            self._max_in_flight = self._in_flight

    def start(self) -> FakeOpenAI:
        config = uvicorn.Config(
            self._asgi,
            host="127.0.0.1",
            port=0,
            http="h11",
            interface="asgi3",
            lifespan="off",
            log_level="error",
            access_log=False,
            proxy_headers=False,
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="fake-openai", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("FakeOpenAI did not start")
            time.sleep(0.005)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- the ASGI app ----------------------------------------------------------------

    async def _sleep(self, seconds: float, gone: asyncio.Event) -> bool:
        """Sleep, waking early when the server stops or the client hangs up; False then."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if self._stopping.is_set() or gone.is_set():
                return False
            await asyncio.sleep(min(left, 0.02))
        return not (self._stopping.is_set() or gone.is_set())

    async def _wait_released(self, gone: asyncio.Event) -> bool:
        """Wait while held; False when the server stops or the client hangs up first."""
        with self._lock:
            self._held += 1
        try:
            while self._holding.is_set():
                if self._stopping.is_set() or gone.is_set():
                    return False
                await asyncio.sleep(0.02)
            return True
        finally:
            with self._lock:
                self._held -= 1

    def _next_fault(self, recorded: RecordedRequest) -> Fault | None:
        with self._lock:
            for index, (fault, path) in enumerate(self._faults):
                if path is None or recorded.path.startswith(path):
                    del self._faults[index]
                    return fault
        return self.rule(recorded) if self.rule else None

    async def _asgi(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        chunks = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        recorded = RecordedRequest(
            method=scope["method"],
            path=scope["path"],
            query=dict(parse_qsl(scope.get("query_string", b"").decode())),
            headers=headers,
            json=parsed,
            body=body,
            time=time.monotonic(),
        )
        self.requests.append(recorded)
        gone = asyncio.Event()  # the client hung up (e.g. its timeout fired)

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()

        watcher = asyncio.create_task(watch())
        with self._lock:
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)

        async def counted_send(message) -> None:
            if message["type"] == "http.response.start":
                recorded.status = message["status"]
            await send(message)

        counted_send.__self__ = getattr(send, "__self__", None)  # _drop reaches the socket
        try:
            await self._handle(scope, counted_send, recorded, gone)
        finally:
            watcher.cancel()
            recorded.handled_seconds = time.monotonic() - recorded.time
            with self._lock:
                self._in_flight -= 1

    async def _handle(self, scope, send, recorded: RecordedRequest, gone) -> None:
        if self.latency and not await self._sleep(self.latency, gone):
            return await self._drop(send)
        if self._holding.is_set() and not await self._wait_released(gone):
            return await self._drop(send)
        if self.api_key is not None and recorded.headers.get("authorization") != (
            f"Bearer {self.api_key}"
        ):
            status, body, extra = _error("Incorrect API key provided.", 401, "invalid_api_key")
            return await self._respond(send, status, body, extra)
        fault = self._next_fault(recorded)
        recorded.fault = fault
        if fault is not None:
            if fault.kind == "drop":
                return await self._drop(send)
            if fault.kind == "status":
                code = fault.status_code or 500
                message = fault.message or f"Injected fault: HTTP {code}"
                status, body, extra = _error(message, code, _STATUS_CODES.get(code))
                if fault.retry_after is not None:
                    extra["retry-after"] = f"{fault.retry_after:g}"
                    extra["retry-after-ms"] = str(int(fault.retry_after * 1000))
                return await self._respond(send, status, body, extra)
            if fault.kind in ("delay", "timeout") and not await self._sleep(fault.seconds, gone):
                return await self._drop(send)
            if fault.kind == "malformed_json":
                return await self._respond_raw(
                    send, 200, b'{"id": "chatcmpl-broken", "choices": [{"index": 0, "mess'
                )
        status, body, extra = await self._route(scope, recorded, fault)
        await self._respond(send, status, body, extra)

    @staticmethod
    async def _drop(send) -> None:
        """Close the socket under uvicorn's h11 protocol: the client gets no response at all."""
        cycle = getattr(send, "__self__", None)
        transport = getattr(cycle, "transport", None)
        if transport is None:
            raise RuntimeError("cannot reach the connection to drop it (needs uvicorn's h11)")
        transport.close()
        # Let uvicorn see the connection lost before the app returns, so it does not try
        # to send a 500 of its own.
        for _ in range(50):
            if getattr(cycle, "disconnected", True):
                break
            await asyncio.sleep(0.001)

    @staticmethod
    async def _respond(send, status: int, body, extra: dict) -> None:
        if isinstance(body, bytes):  # file content
            await FakeOpenAI._respond_raw(send, status, body, extra, b"application/octet-stream")
            return
        payload = json.dumps(body, ensure_ascii=False).encode()
        await FakeOpenAI._respond_raw(send, status, payload, extra)

    @staticmethod
    async def _respond_raw(
        send, status: int, payload: bytes, extra=None, content_type=b"application/json"
    ) -> None:
        headers = [(b"content-type", content_type), (b"content-length", b"%d" % len(payload))]
        headers += [(k.encode(), v.encode()) for k, v in (extra or {}).items()]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    # --- endpoints -------------------------------------------------------------------

    async def _route(self, scope, recorded: RecordedRequest, fault: Fault | None):
        method, path = recorded.method, recorded.path.rstrip("/")
        parts = path.split("/")
        if method == "GET" and path == "/v1/models":
            data = [
                {"id": m, "object": "model", "created": 1700000000, "owned_by": "fake"}
                for m in self.model_ids
            ]
            return 200, {"object": "list", "data": data}, {}
        if method == "POST" and path == "/v1/chat/completions":
            return self._chat(recorded, fault)
        if method == "POST" and path == "/v1/files":
            return await self._upload(scope, recorded)
        if method == "GET" and len(parts) == 4 and parts[2] == "files":
            file = self.files.get(parts[3])
            return (200, file, {}) if file else _error(f"No such File object: {parts[3]}", 404)
        if method == "GET" and len(parts) == 5 and parts[2] == "files" and parts[4] == "content":
            if parts[3] not in self.file_contents:
                return _error(f"No such File object: {parts[3]}", 404)
            return 200, self.file_contents[parts[3]], {}
        if path == "/v1/fine_tuning/jobs":
            if method == "POST":
                return self._create_job(recorded)
            if method == "GET":
                jobs = sorted(self.jobs.values(), key=lambda j: j["_seq"], reverse=True)
                data = [self._public(j) for j in jobs]
                return 200, {"object": "list", "data": data, "has_more": False}, {}
        if len(parts) >= 5 and parts[2] == "fine_tuning" and parts[3] == "jobs":
            job = self.jobs.get(parts[4])
            if job is None:
                return _error(f"Could not find fine-tune job: {parts[4]}", 404)
            if method == "GET" and len(parts) == 5:
                self._poll(job)
                return 200, self._public(job), {}
            if method == "GET" and parts[5:] == ["events"]:
                events = list(reversed(self._events[job["id"]]))
                return 200, {"object": "list", "data": events, "has_more": False}, {}
            if method == "POST" and parts[5:] == ["cancel"]:
                if job["status"] in ("succeeded", "failed", "cancelled"):
                    return _error("Job has already finished", 400, "job_not_cancellable")
                self._advance(job, "cancelled")
                return 200, self._public(job), {}
        return _error(f"Invalid URL ({method} {recorded.path})", 404)

    def _chat(self, recorded: RecordedRequest, fault: Fault | None):
        request = recorded.json
        if not isinstance(request, dict) or not isinstance(request.get("messages"), list):
            return _error("messages: required", 400, param="messages")
        model = request.get("model")
        if model not in self.model_ids:
            return _error(
                f"The model `{model}` does not exist or you do not have access to it.",
                404,
                "model_not_found",
            )
        response_format = request.get("response_format") or {}
        schema = (response_format.get("json_schema") or {}).get("schema")
        kind = fault.kind if fault else None
        if kind == "not_json_content":
            content = "Sure! Here is my answer: the first option, I think."
        elif kind == "schema_violation":
            content = json.dumps(violation_for(schema), ensure_ascii=False)
        else:
            if self.answer is not None:
                value = self.answer(request)
            elif schema is not None:
                value = example_for(schema)
            elif response_format.get("type") == "json_object":
                value = {"answer": "fake answer"}
            else:
                value = "fake answer"
            content = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        prompt = sum(
            len(_content_text(m.get("content"))) for m in request["messages"] if isinstance(m, dict)
        )
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": content, "refusal": None},
            "logprobs": self._logprobs(content, schema, request)
            if request.get("logprobs")
            else None,
            "finish_reason": "stop",
        }
        if self.tokenworks_confidence:
            choice["tokenworks_confidence"] = self.confidence
        body = {
            "id": "chatcmpl-" + secrets.token_hex(8),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": "fp_fake",
            "choices": [choice],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": len(content),
                "total_tokens": prompt + len(content),
            },
        }
        return 200, body, {}

    def _logprobs(self, content: str, schema, request: dict) -> dict:
        token, options = content, []
        try:
            value = json.loads(content)
        except ValueError:
            value = None
        if isinstance(value, dict) and value:
            first = next(iter(value.values()))
            token = first if isinstance(first, str) else json.dumps(first, ensure_ascii=False)
            node = next(iter((schema or {}).get("properties", {}).values()), {})
            if isinstance(node, dict):
                options = [o for o in node.get("enum", []) if isinstance(o, str)]
        logprob = math.log(self.confidence)

        def entry(text: str, lp: float) -> dict:
            return {"token": text, "logprob": lp, "bytes": list(text.encode())}

        alternatives = [entry(token, logprob)]
        others = [o for o in options if o != token]
        for other in others:
            alternatives.append(
                entry(other, math.log(max(1 - self.confidence, 1e-9) / len(others)))
            )
        top = request.get("top_logprobs") or 0
        return {
            "content": [{**entry(token, logprob), "top_logprobs": alternatives[:top]}],
            "refusal": None,
        }

    async def _upload(self, scope, recorded: RecordedRequest):
        async def replay():
            return {"type": "http.request", "body": recorded.body, "more_body": False}

        request = Request(scope, receive=replay)
        if not recorded.headers.get("content-type", "").startswith("multipart/form-data"):
            return _error("file: required (multipart/form-data)", 400, param="file")
        form = await request.form()
        upload, purpose = form.get("file"), form.get("purpose")
        if not isinstance(upload, UploadFile):
            return _error("file: required", 400, param="file")
        if not purpose:
            return _error("purpose: required", 400, param="purpose")
        content = await upload.read()
        await form.close()
        file_id = "file-" + secrets.token_hex(8)
        self.file_contents[file_id] = content
        self.files[file_id] = {
            "id": file_id,
            "object": "file",
            "bytes": len(content),
            "created_at": int(time.time()),
            "filename": upload.filename or "upload.jsonl",
            "purpose": purpose,
            "status": "processed",
            "status_details": None,
        }
        return 200, self.files[file_id], {}

    def _create_job(self, recorded: RecordedRequest):
        body = recorded.json
        if not isinstance(body, dict):
            return _error("could not parse the JSON body", 400)
        if body.get("model") not in self.model_ids:
            return _error(f"model {body.get('model')!r} not found", 404, "model_not_found", "model")
        training_file = body.get("training_file")
        if training_file not in self.files:
            return _error(f"invalid training_file: {training_file}", 400, param="training_file")
        job_id = "ftjob-" + secrets.token_hex(8)
        method = body.get("method") or {"type": "supervised"}
        job = {
            "id": job_id,
            "object": "fine_tuning.job",
            "model": body["model"],
            "created_at": int(time.time()),
            "finished_at": None,
            "status": "queued",
            "fine_tuned_model": None,
            "organization_id": "org-fake",
            "result_files": [],
            "trained_tokens": None,
            "training_file": training_file,
            "validation_file": body.get("validation_file"),
            "error": None,
            "method": method,
            "hyperparameters": {
                "n_epochs": "auto",
                "batch_size": "auto",
                "learning_rate_multiplier": "auto",
            },
            "seed": body.get("seed", 42),
            "suffix": body.get("suffix"),
            "integrations": [],
            "metadata": body.get("metadata"),
            "_seq": time.monotonic_ns(),
        }
        self.jobs[job_id] = job
        self._events[job_id] = []
        self._polls[job_id] = 0
        self._event(job, "Fine-tuning job created; queued")
        return 200, self._public(job), {}

    @staticmethod
    def _public(job: dict) -> dict:
        return {k: v for k, v in job.items() if not k.startswith("_")}

    def _event(self, job: dict, message: str, level: str = "info") -> None:
        self._events[job["id"]].append(
            {
                "object": "fine_tuning.job.event",
                "id": "ftevent-" + secrets.token_hex(8),
                "created_at": int(time.time()),
                "level": level,
                "message": message,
                "type": "message",
            }
        )

    def _poll(self, job: dict) -> None:
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return
        self._polls[job["id"]] += 1
        polls = self._polls[job["id"]]
        if polls >= self.polls_until_done:
            self._advance(job, self.job_outcome)
        elif polls >= self.polls_until_running and job["status"] == "queued":
            self._advance(job, "running")

    def _advance(self, job: dict, status: str) -> None:
        job["status"] = status
        if status == "running":
            self._event(job, "Fine-tuning job started")
            return
        job["finished_at"] = int(time.time())
        if status == "succeeded":
            job["trained_tokens"] = self._trained_tokens(job["training_file"])
            job["fine_tuned_model"] = f"ft:{job['model']}:tokenworks:{job['id'][6:14]}"
            self.model_ids.append(job["fine_tuned_model"])
            self._event(job, f"New fine-tuned model created: {job['fine_tuned_model']}")
            self._event(job, "The job has successfully completed")
        elif status == "failed":
            job["error"] = {
                "code": "invalid_training_file",
                "message": "Injected failure: the training file was rejected",
                "param": "training_file",
            }
            self._event(job, job["error"]["message"], level="error")
        else:
            self._event(job, f"Job {status}")

    def _trained_tokens(self, file_id: str) -> int:
        content = self.file_contents.get(file_id, b"")
        total = 0
        for line in content.decode("utf-8", "replace").splitlines():
            try:
                data = json.loads(line)
            except ValueError:
                continue
            messages = data.get("messages", []) if isinstance(data, dict) else []
            total += sum(
                len(_content_text(m.get("content"))) for m in messages if isinstance(m, dict)
            )
        return total or len(content)
