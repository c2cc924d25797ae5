"""Requests-per-minute and tokens-per-minute limits that hold across all workers.

Counters live in Redis (one key per backend, kind and minute) when the broker
is Redis, so every worker process draws from the same budget; otherwise an
in-process counter keeps a single worker (as in `make run`) within limits.
A fixed one-minute window is slightly bursty at the boundary, which backends
tolerate; it needs one INCRBY per call and nothing else.
"""

import asyncio
import threading
import time
from collections import defaultdict

from django.conf import settings

WINDOW_SECONDS = 60


class _LocalCounters:
    def __init__(self):
        self._lock = threading.Lock()
        self._counts: dict[str, int] = defaultdict(int)

    def incrby(self, key: str, amount: int) -> int:
        with self._lock:
            self._counts[key] += amount
            if len(self._counts) > 10_000:  # drop old windows
                current = str(int(time.time() // WINDOW_SECONDS))
                for stale in [k for k in self._counts if not k.endswith(current)]:
                    del self._counts[stale]
            return self._counts[key]


_local = _LocalCounters()
_redis = None


def _redis_client():
    global _redis
    url = settings.CELERY_BROKER_URL
    if not url.startswith(("redis://", "rediss://")):
        return None
    if _redis is None:
        import redis

        _redis = redis.Redis.from_url(url, socket_timeout=2)
    return _redis


def _count(key: str, amount: int) -> int:
    client = _redis_client()
    if client is None:
        return _local.incrby(key, amount)
    pipe = client.pipeline()
    pipe.incrby(key, amount)
    pipe.expire(key, WINDOW_SECONDS * 2)
    return int(pipe.execute()[0])


def _window() -> tuple[int, float]:
    now = time.time()
    window = int(now // WINDOW_SECONDS)
    return window, (window + 1) * WINDOW_SECONDS - now


async def acquire(*, backend_id: int, rpm: int | None, tpm: int | None, tokens: int) -> float:
    """Wait until a call of `tokens` fits the backend's limits; returns seconds waited."""
    waited = 0.0
    while True:
        window, remaining = _window()
        ok = True
        if rpm:
            used = await asyncio.to_thread(_count, f"tw:rl:{backend_id}:rpm:{window}", 1)
            ok = used <= rpm
        if ok and tpm:
            used = await asyncio.to_thread(_count, f"tw:rl:{backend_id}:tpm:{window}", tokens)
            # A single call larger than the whole budget still goes, alone.
            ok = used <= tpm or used == tokens
        if ok:
            return waited
        await asyncio.sleep(remaining + 0.01)
        waited += remaining + 0.01
