"""HTTP client for OpenAI-compatible backends (vLLM, SGLang, DeepSeek, Qwen, built-in).

Retries with exponential backoff and full jitter on connection errors,
timeouts, 429 and 5xx, honouring Retry-After; never on other 4xx, which
mean the request itself is wrong. Connections are pooled per client.
"""

import asyncio
import email.utils
import itertools
import math
import random
import time
from dataclasses import dataclass, field

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


@dataclass
class ChatResult:
    content: str
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float
    confidence: float | None
    model: str
    attempts: int
    http_status: int = 200
    raw: dict = field(default_factory=dict, repr=False)


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


def backoff_delay(attempt: int, *, base: float, cap: float, rng: random.Random) -> float:
    """Full jitter (AWS architecture blog): uniform in [0, min(cap, base * 2**attempt)]."""
    return rng.uniform(0, min(cap, base * 2 ** (attempt - 1)))


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
        rng: random.Random | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
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
        self._next_shard = itertools.cycle(self._clients)
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.semaphore = asyncio.Semaphore(max_concurrency)
        self.rng = rng or random.Random()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await asyncio.gather(*(client.aclose() for client in self._clients))

    async def _send(self, method: str, path: str, **kwargs) -> tuple[httpx.Response, int]:
        attempt = 0
        while True:
            attempt += 1
            wait = None
            try:
                async with self.semaphore:
                    response = await next(self._next_shard).request(method, path, **kwargs)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                error = BackendUnavailable(f"{type(exc).__name__}: {exc}", retryable=True)
            else:
                if response.status_code < 400:
                    return response, attempt
                detail = _error_message(response)
                if response.status_code not in RETRYABLE_STATUS:
                    raise BackendRejected(
                        f"HTTP {response.status_code}: {detail}", status=response.status_code
                    )
                error = BackendUnavailable(
                    f"HTTP {response.status_code}: {detail}",
                    status=response.status_code,
                    retryable=True,
                )
                wait = retry_after_seconds(response.headers.get("Retry-After"))
            if attempt > self.max_retries:
                raise error
            if wait is None:
                wait = backoff_delay(
                    attempt, base=self.backoff_base, cap=self.backoff_cap, rng=self.rng
                )
            await asyncio.sleep(min(wait, self.backoff_cap * 3))

    async def chat(
        self,
        *,
        model: str,
        messages: list[dict],
        response_format: dict | None = None,
        max_tokens: int | None = None,
        temperature: float = 0.0,
        logprobs: bool = True,
    ) -> ChatResult:
        payload = {"model": model, "messages": messages, "temperature": temperature}
        if response_format is not None:
            payload["response_format"] = response_format
        if max_tokens is not None:
            payload["max_tokens"] = max_tokens
        if logprobs:
            payload["logprobs"] = True
            payload["top_logprobs"] = 5
        started = time.perf_counter()
        total_attempts = 0
        for parse_attempt in range(1, self.max_retries + 2):
            response, attempts = await self._send("POST", "/chat/completions", json=payload)
            total_attempts += attempts
            try:
                body = response.json()
                choice = body["choices"][0]
                content = choice["message"]["content"]
                usage = body.get("usage") or {}
                if not isinstance(content, str):
                    raise TypeError("message content is not text")
                break
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                # A garbled 200 (a proxy cut the body, a server bug) is transient too.
                if parse_attempt > self.max_retries:
                    raise BackendUnavailable(
                        f"malformed reply: {type(exc).__name__}: {exc}",
                        status=response.status_code,
                        retryable=True,
                    ) from exc
                await asyncio.sleep(
                    backoff_delay(
                        parse_attempt, base=self.backoff_base, cap=self.backoff_cap, rng=self.rng
                    )
                )
        latency_ms = (time.perf_counter() - started) * 1000
        return ChatResult(
            content=content,
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            latency_ms=latency_ms,
            confidence=confidence_from(choice),
            model=str(body.get("model") or model),
            attempts=total_attempts,
            http_status=response.status_code,
            raw=body,
        )

    async def models(self) -> list[str]:
        response, _ = await self._send("GET", "/models")
        return [entry["id"] for entry in response.json().get("data", []) if "id" in entry]

    async def upload_file(
        self, *, filename: str, content: bytes, purpose: str = "fine-tune"
    ) -> dict:
        response, _ = await self._send(
            "POST",
            "/files",
            files={"file": (filename, content, "application/jsonl")},
            data={"purpose": purpose},
        )
        return response.json()

    async def create_fine_tuning_job(self, payload: dict) -> dict:
        response, _ = await self._send("POST", "/fine_tuning/jobs", json=payload)
        return response.json()

    async def fine_tuning_job(self, job_id: str) -> dict:
        response, _ = await self._send("GET", f"/fine_tuning/jobs/{job_id}")
        return response.json()

    async def fine_tuning_events(self, job_id: str) -> list[dict]:
        response, _ = await self._send("GET", f"/fine_tuning/jobs/{job_id}/events")
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
