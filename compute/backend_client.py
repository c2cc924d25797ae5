"""HTTP client for OpenAI-compatible backends (vLLM, SGLang, DeepSeek, Qwen, built-in).

`chat_attempt` makes exactly one HTTP request and says what happened: the
caller meters every attempt and its retry policy (compute.retry_policy) alone
decides whether to try again. The other calls (models, files, fine-tuning)
are retried by the same policy on connection errors, timeouts, 429 and 5xx,
honouring Retry-After; never on other 4xx, which mean the request itself is
wrong. Connections are pooled per client.
"""

import asyncio
import email.utils
import math
import time
from dataclasses import dataclass

import httpx

RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=5.0)
CONNECTIONS_PER_SHARD = 8


class BackendError(Exception):
    """A call that did not produce an answer."""

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = False):
        super().__init__(message)
        self.status = status
        self.retryable = retryable


class BackendRejected(BackendError):
    """A 4xx other than 408/409/425/429: retrying the same request cannot help."""


class BackendUnavailable(BackendError):
    """Still failing after every retry: try another backend."""


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds: either delta-seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def confidence_from(choice: dict) -> float | None:
    """The model's confidence in its answer, if the reply carries one.

    OpenAI-compatible servers report token log-probabilities when asked
    (`logprobs: true`); the answer's confidence is the product of its token
    probabilities. The built-in backend also sends `tokenworks_confidence`.
    """
    if isinstance(choice.get("tokenworks_confidence"), int | float):
        return float(choice["tokenworks_confidence"])
    content = (choice.get("logprobs") or {}).get("content") or []
    logprobs = [entry.get("logprob") for entry in content if isinstance(entry, dict)]
    logprobs = [lp for lp in logprobs if isinstance(lp, int | float)]
    if not logprobs:
        return None
    return math.exp(sum(logprobs))


class Outcome:
    """What one HTTP attempt came to; the values of InferenceCall.Outcome."""

    OK = "ok"
    RATE_LIMITED = "rate_limited"  # 429
    SERVER_ERROR = "server_error"  # 5xx, 408, 409, 425
    TIMEOUT = "timeout"
    CONNECTION = "connection"  # refused, reset, dropped without a response
    MALFORMED = "malformed"  # a 2xx whose body is not a chat completion
    REJECTED = "rejected"  # other 4xx: the request itself is wrong


RETRYABLE_OUTCOMES = {
    Outcome.RATE_LIMITED,
    Outcome.SERVER_ERROR,
    Outcome.TIMEOUT,
    Outcome.CONNECTION,
    Outcome.MALFORMED,
}


@dataclass
class ChatAttempt:
    """One HTTP request to /chat/completions and its reply (or what went wrong).

    `latency_ms` is the backend's time: from sending the request to having read
    the response, never the wait for a concurrency slot or a backoff sleep.
    """

    outcome: str
    latency_ms: float
    http_status: int | None = None
    content: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    confidence: float | None = None
    model: str = ""
    error: str = ""
    retry_after: float | None = None


class BackendClient:
    """One backend's pooled async client. Use as an async context manager."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str = "",
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        max_retries: int = 4,
        backoff_base: float = 0.5,
        backoff_cap: float = 20.0,
        max_concurrency: int = 16,
        policy=None,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        from .retry_policy import RetryPolicy

        headers = {"User-Agent": "Tokenworks/1.0"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        # httpcore matches each request against every pooled connection, so a
        # single pool of C connections costs O(C²) per request; shards of a
        # few connections each keep that flat (a third of the worker's CPU at
        # C = 50 in bench/prelabel_throughput.py).
        shards = max(1, math.ceil(max_concurrency / CONNECTIONS_PER_SHARD))
        per_shard = math.ceil(max_concurrency / shards)
        self._clients = [
            httpx.AsyncClient(
                base_url=base_url.rstrip("/"),
                headers=headers,
                timeout=timeout,
                limits=httpx.Limits(max_connections=per_shard, max_keepalive_connections=per_shard),
                transport=transport,
            )
            for _ in range(shards)
        ]
        # Requests go to the least busy shard: with at most max_concurrency in
        # flight one always has a free connection, so no request waits in a
        # pool, and the time measured around it is the backend's.
        self._busy = [0] * shards
        self.policy = policy or RetryPolicy(
            max_attempts=max_retries + 1, backoff_base=backoff_base, backoff_cap=backoff_cap
        )
        self.semaphore = asyncio.Semaphore(max_concurrency)

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await asyncio.gather(*(client.aclose() for client in self._clients))

    async def _request(
        self, method: str, path: str, *, before_send=None, **kwargs
    ) -> tuple[httpx.Response, float]:
        """One request inside a concurrency slot; returns it with the backend's time in ms.
        `before_send` (a coroutine function) runs once the slot is held, just before the
        request goes out: the caller's write-ahead record of the call. If it raises,
        nothing is sent."""
        async with self.semaphore:
            if before_send is not None:
                await before_send()
            shard = min(range(len(self._clients)), key=self._busy.__getitem__)
            self._busy[shard] += 1
            started = time.perf_counter()
            try:
                response = await self._clients[shard].request(method, path, **kwargs)
            except httpx.RequestError as exc:
                exc.tokenworks_latency_ms = (time.perf_counter() - started) * 1000
                raise
            finally:
                self._busy[shard] -= 1
            return response, (time.perf_counter() - started) * 1000

    async def _send_once(self, method: str, path: str, **kwargs) -> httpx.Response:
        try:
            response, _ = await self._request(method, path, **kwargs)
        except httpx.RequestError as exc:
            raise BackendUnavailable(f"{type(exc).__name__}: {exc}", retryable=True) from exc
        if response.status_code < 400:
            return response
        detail = _error_message(response)
        if response.status_code not in RETRYABLE_STATUS:
            raise BackendRejected(
                f"HTTP {response.status_code}: {detail}", status=response.status_code
            )
        error = BackendUnavailable(
            f"HTTP {response.status_code}: {detail}", status=response.status_code, retryable=True
        )
        error.retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        raise error

    async def _send(self, method: str, path: str, **kwargs) -> httpx.Response:
        retrying = self.policy.retrying(retry_exception=BackendUnavailable)
        return await retrying(self._send_once, method, path, **kwargs)

    async def chat_attempt(
        self,
        *,
        model: str,
        messages: list[dict],
        response_format: dict | None = None,
        max_tokens: int | None = None,
        temperature: float = 0.0,
        logprobs: bool = True,
        request_id: str = "",
        before_send=None,
    ) -> ChatAttempt:
        """One POST /chat/completions, never retried here, never raising for the
        backend's faults: the attempt says what happened. `request_id` goes out as
        X-Client-Request-Id (the call's metering key, so a provider's logs and ours
        can be matched call by call); `before_send` as in _request."""
        payload = {"model": model, "messages": messages, "temperature": temperature}
        if response_format is not None:
            payload["response_format"] = response_format
        if max_tokens is not None:
            payload["max_tokens"] = max_tokens
        if logprobs:
            payload["logprobs"] = True
            payload["top_logprobs"] = 5
        try:
            response, latency_ms = await self._request(
                "POST",
                "/chat/completions",
                json=payload,
                headers={"X-Client-Request-Id": request_id} if request_id else None,
                before_send=before_send,
            )
        except httpx.TimeoutException as exc:
            return ChatAttempt(
                outcome=Outcome.TIMEOUT,
                latency_ms=exc.tokenworks_latency_ms,
                error=f"{type(exc).__name__}: {exc}"[:1000],
            )
        except httpx.RequestError as exc:
            return ChatAttempt(
                outcome=Outcome.CONNECTION,
                latency_ms=exc.tokenworks_latency_ms,
                error=f"{type(exc).__name__}: {exc}"[:1000],
            )
        status = response.status_code
        if status >= 400:
            if status == 429:
                outcome = Outcome.RATE_LIMITED
            elif status in RETRYABLE_STATUS or status >= 500:
                outcome = Outcome.SERVER_ERROR
            else:
                outcome = Outcome.REJECTED
            return ChatAttempt(
                outcome=outcome,
                latency_ms=latency_ms,
                http_status=status,
                error=f"HTTP {status}: {_error_message(response)}"[:1000],
                retry_after=retry_after_seconds(response.headers.get("Retry-After")),
            )
        try:
            body = response.json()
            choice = body["choices"][0]
            content = choice["message"]["content"]
            usage = body.get("usage") or {}
            if not isinstance(content, str):
                raise TypeError("message content is not text")
            prompt_tokens = int(usage.get("prompt_tokens") or 0)
            completion_tokens = int(usage.get("completion_tokens") or 0)
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            # A garbled 200 (a proxy cut the body, a server bug): transient.
            return ChatAttempt(
                outcome=Outcome.MALFORMED,
                latency_ms=latency_ms,
                http_status=status,
                error=f"malformed reply: {type(exc).__name__}: {exc}"[:1000],
            )
        return ChatAttempt(
            outcome=Outcome.OK,
            latency_ms=latency_ms,
            http_status=status,
            content=content,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            confidence=confidence_from(choice),
            model=str(body.get("model") or model),
        )

    async def models(self) -> list[str]:
        response = await self._send("GET", "/models")
        return [entry["id"] for entry in response.json().get("data", []) if "id" in entry]

    async def upload_file(
        self, *, filename: str, content: bytes, purpose: str = "fine-tune"
    ) -> dict:
        response = await self._send(
            "POST",
            "/files",
            files={"file": (filename, content, "application/jsonl")},
            data={"purpose": purpose},
        )
        return response.json()

    async def create_fine_tuning_job(self, payload: dict) -> dict:
        response = await self._send("POST", "/fine_tuning/jobs", json=payload)
        return response.json()

    async def fine_tuning_job(self, job_id: str) -> dict:
        response = await self._send("GET", f"/fine_tuning/jobs/{job_id}")
        return response.json()

    async def fine_tuning_events(self, job_id: str) -> list[dict]:
        response = await self._send("GET", f"/fine_tuning/jobs/{job_id}/events")
        return response.json().get("data", [])


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or error)[:300]
    return str(body)[:300]
