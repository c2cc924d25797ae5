"""The HTTP API: an OpenAI-compatible subset, served by Starlette."""

from __future__ import annotations

import hmac
import json
import math
import secrets
import time
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Route

from annotation.token_estimate import estimate_tokens

from .errors import APIError, error_body, invalid
from .messages import MessageError, last_user_text, prompt_tokens, read_messages
from .predict import Decision, decide
from .schemas import parse_response_format
from .service import Backend

MAX_JSON_BODY = 32 * 1024 * 1024
MAX_UPLOAD = 1024 * 1024 * 1024
DEFAULT_TOP_LOGPROBS = 5
FINGERPRINT = "fp_tokenworks_builtin_1"


async def _json_body(request: Request) -> dict:
    raw = await request.body()
    try:
        body = json.loads(raw)
    except ValueError:
        raise invalid(
            "We could not parse the JSON body of your request. The built-in model expects a "
            "JSON payload."
        ) from None
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object.")
    return body


def _backend(request: Request) -> Backend:
    return request.app.state.backend


def _optional_number(body: dict, name: str, low: float, high: float) -> None:
    value = body.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise invalid(f"{name}: expected a number from {low} to {high}, got {value!r}", param=name)


def _optional_int(body: dict, name: str, low: int, high: int | None = None) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise invalid(f"{name}: expected an integer >= {low}, got {value!r}", param=name)
    if high is not None and value > high:
        raise invalid(f"{name}: expected an integer <= {high}, got {value!r}", param=name)
    return value


def _token_entry(token: str, probability: float) -> dict:
    return {
        "token": token,
        "logprob": math.log(min(max(probability, 1e-12), 1.0)),
        "bytes": list(token.encode("utf-8")),
    }


def _logprobs(decision: Decision, top: int) -> dict:
    entry = _token_entry(decision.token, decision.confidence)
    entry["top_logprobs"] = [_token_entry(t, p) for t, p in decision.alternatives[:top]]
    return {"content": [entry], "refusal": None}


def _truncate(content: str, max_tokens: int) -> str:
    """The longest prefix of content that counts at most max_tokens tokens."""
    low, high = 0, len(content)
    while low < high:
        middle = (low + high + 1) // 2
        if estimate_tokens(content[:middle]) <= max_tokens:
            low = middle
        else:
            high = middle - 1
    return content[:low]


# --- endpoints -----------------------------------------------------------------------


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def list_models(request: Request) -> JSONResponse:
    return JSONResponse(_backend(request).list_models())


async def get_model(request: Request) -> JSONResponse:
    return JSONResponse(_backend(request).describe_model(request.path_params["model"]))


async def chat_completions(request: Request) -> JSONResponse:
    body = await _json_body(request)
    model_id = body.get("model")
    if not isinstance(model_id, str) or not model_id:
        raise invalid("model: required, the id of a model from GET /v1/models", param="model")
    if "messages" not in body:
        raise invalid("messages: required", param="messages")
    try:
        chat = read_messages(body["messages"])
    except MessageError as exc:
        raise invalid(str(exc), param=exc.param) from None
    text = last_user_text(chat)
    if text is None:
        raise invalid("messages: needs a user message (the text to answer)", param="messages")
    if body.get("stream"):
        raise invalid("stream: streaming is not supported by the built-in model", param="stream")
    if body.get("tools") or body.get("functions"):
        param = "tools" if body.get("tools") else "functions"
        raise invalid(f"{param}: tool calling is not supported by the built-in model", param=param)
    n = body.get("n")
    if n is not None and (n != 1 or isinstance(n, bool)):
        raise invalid("n: the built-in model returns exactly one choice (n=1)", param="n")
    _optional_number(body, "temperature", 0, 2)
    _optional_number(body, "top_p", 0, 1)
    _optional_int(body, "seed", -(2**63), 2**63 - 1)
    max_tokens = _optional_int(body, "max_tokens", 1)
    max_completion = _optional_int(body, "max_completion_tokens", 1)
    limit = min((v for v in (max_tokens, max_completion) if v is not None), default=None)
    logprobs = body.get("logprobs", False)
    if logprobs is None:
        logprobs = False
    if not isinstance(logprobs, bool):
        raise invalid("logprobs: expected true or false", param="logprobs")
    top = _optional_int(body, "top_logprobs", 0, 20)
    if top is not None and not logprobs:
        raise invalid("top_logprobs: requires logprobs to be true", param="top_logprobs")
    spec = parse_response_format(body.get("response_format"))
    backend = _backend(request)
    model = backend.model(model_id)
    decision = decide(model, spec, text)
    content, finish_reason = decision.content, "stop"
    if limit is not None and estimate_tokens(content) > limit:
        content, finish_reason = _truncate(content, limit), "length"
    completion_tokens = estimate_tokens(content)
    used = prompt_tokens(chat)
    choice = {
        "index": 0,
        "message": {"role": "assistant", "content": content, "refusal": None},
        "logprobs": _logprobs(decision, DEFAULT_TOP_LOGPROBS if top is None else top)
        if logprobs
        else None,
        "finish_reason": finish_reason,
        "tokenworks_confidence": decision.confidence,
    }
    return JSONResponse(
        {
            "id": "chatcmpl-" + secrets.token_hex(12),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model_id,
            "system_fingerprint": FINGERPRINT,
            "choices": [choice],
            "usage": {
                "prompt_tokens": used,
                "completion_tokens": completion_tokens,
                "total_tokens": used + completion_tokens,
            },
        }
    )


async def create_file(request: Request) -> JSONResponse:
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise invalid(
            "file: upload the file as multipart/form-data with fields 'file' and 'purpose'",
            param="file",
        )
    form = await request.form(max_files=1, max_fields=16)
    try:
        upload = form.get("file")
        purpose = form.get("purpose")
        if not isinstance(upload, UploadFile):
            raise invalid("file: required, the file to upload", param="file")
        if not isinstance(purpose, str) or not purpose:
            raise invalid("purpose: required, 'fine-tune'", param="purpose")
        backend = _backend(request)
        created = await run_in_threadpool(
            backend.create_file, upload.file, upload.filename or "", purpose
        )
    finally:
        await form.close()
    return JSONResponse(created)


async def list_files(request: Request) -> JSONResponse:
    return JSONResponse(_backend(request).list_files(request.query_params.get("purpose")))


async def get_file(request: Request) -> JSONResponse:
    return JSONResponse(_backend(request).get_file(request.path_params["file_id"]))


async def delete_file(request: Request) -> JSONResponse:
    return JSONResponse(_backend(request).delete_file(request.path_params["file_id"]))


async def file_content(request: Request) -> FileResponse:
    backend = _backend(request)
    file_id = request.path_params["file_id"]
    meta = backend.get_file(file_id)
    return FileResponse(
        backend.file_path(file_id),
        media_type="application/octet-stream",
        filename=meta["filename"],
    )


async def create_job(request: Request) -> JSONResponse:
    body = await _json_body(request)
    return JSONResponse(_backend(request).create_job(body))


async def list_jobs(request: Request) -> JSONResponse:
    query = request.query_params
    return JSONResponse(_backend(request).list_jobs(query.get("after"), query.get("limit")))


async def get_job(request: Request) -> JSONResponse:
    return JSONResponse(_backend(request).job_view(request.path_params["job_id"]))


async def job_events(request: Request) -> JSONResponse:
    query = request.query_params
    return JSONResponse(
        _backend(request).job_events(
            request.path_params["job_id"], query.get("after"), query.get("limit")
        )
    )


async def cancel_job(request: Request) -> JSONResponse:
    return JSONResponse(_backend(request).cancel_job(request.path_params["job_id"]))


# --- errors and authentication -------------------------------------------------------


async def _api_error(request: Request, exc: APIError) -> JSONResponse:
    return exc.response()


async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    if exc.status_code in (404, 405):
        message = f"Invalid URL ({request.method} {request.url.path})"
    else:
        message = str(exc.detail)
    return JSONResponse(error_body(message, status=exc.status_code), status_code=exc.status_code)


async def _server_error(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(
        error_body(f"The built-in model hit an internal error: {type(exc).__name__}", status=500),
        status_code=500,
    )


class BearerAuth:
    """ASGI middleware: every /v1 path needs ``Authorization: Bearer <api_key>``."""

    def __init__(self, app, api_key: str):
        self.app = app
        self.expected = f"Bearer {api_key}".encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope["path"].startswith("/v1"):
            return await self.app(scope, receive, send)
        given = dict(scope["headers"]).get(b"authorization")
        if given is not None and hmac.compare_digest(given, self.expected):
            return await self.app(scope, receive, send)
        if given is None:
            error = APIError(
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                status=401,
            )
        else:
            error = APIError("Incorrect API key provided.", status=401, code="invalid_api_key")
        await error.response()(scope, receive, send)


def create_app(data_dir: Path, api_key: str | None = None) -> Starlette:
    """The built-in model server's ASGI app, keeping its state under data_dir."""
    backend = Backend(Path(data_dir))

    @asynccontextmanager
    async def lifespan(app):
        backend.closed = False
        yield
        backend.close()

    routes = [
        Route("/health", health),
        Route("/v1/models", list_models),
        Route("/v1/models/{model:path}", get_model),
        Route(
            "/v1/chat/completions",
            chat_completions,
            methods=["POST"],
            max_body_size=MAX_JSON_BODY,
        ),
        Route("/v1/files", create_file, methods=["POST"], max_body_size=MAX_UPLOAD),
        Route("/v1/files", list_files),
        Route("/v1/files/{file_id}", get_file),
        Route("/v1/files/{file_id}", delete_file, methods=["DELETE"]),
        Route("/v1/files/{file_id}/content", file_content),
        Route("/v1/fine_tuning/jobs", create_job, methods=["POST"], max_body_size=MAX_JSON_BODY),
        Route("/v1/fine_tuning/jobs", list_jobs),
        Route("/v1/fine_tuning/jobs/{job_id}", get_job),
        Route("/v1/fine_tuning/jobs/{job_id}/events", job_events),
        Route("/v1/fine_tuning/jobs/{job_id}/cancel", cancel_job, methods=["POST"]),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={
            APIError: _api_error,
            HTTPException: _http_error,
            Exception: _server_error,
        },
        lifespan=lifespan,
    )
    app.state.backend = backend
    if api_key:
        app.add_middleware(BearerAuth, api_key=api_key)
    return app
