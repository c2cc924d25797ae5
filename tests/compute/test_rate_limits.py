import asyncio

import pytest
from django.conf import settings

from compute import rate_limits

pytestmark = pytest.mark.redis


@pytest.fixture
def one_second_windows(monkeypatch):
    import redis

    monkeypatch.setattr(rate_limits, "WINDOW_SECONDS", 1)
    client = redis.Redis.from_url(settings.TEST_REDIS_URL)
    for key in client.scan_iter("tw:rl:999*"):
        client.delete(key)
    yield client
    for key in client.scan_iter("tw:rl:999*"):
        client.delete(key)


def test_requests_per_minute_hold_across_processes_through_redis(one_second_windows):
    assert settings.CELERY_BROKER_URL.startswith("redis://")

    async def burst():
        return [
            await rate_limits.acquire(backend_id=999, rpm=3, tpm=None, tokens=10) for _ in range(5)
        ]

    waits = asyncio.run(burst())
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert waits[3] > 0  # the fourth call waited for the next window
    # The budget is a Redis counter, so every worker process draws from it.
    assert any(one_second_windows.scan_iter("tw:rl:999:rpm:*"))


def test_tokens_per_minute_count_the_estimate(one_second_windows):
    async def calls():
        first = await rate_limits.acquire(backend_id=9991, rpm=None, tpm=100, tokens=60)
        second = await rate_limits.acquire(backend_id=9991, rpm=None, tpm=100, tokens=60)
        return first, second

    first, second = asyncio.run(calls())
    assert first == 0.0 and second > 0
