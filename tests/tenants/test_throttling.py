import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from tenants.role_cache import principal_facts_key
from tests.factories import member

pytestmark = pytest.mark.django_db


@pytest.fixture
def redis_cache(settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "tenants.cache.RedisCache",
            "LOCATION": settings.TEST_REDIS_URL,
            "KEY_PREFIX": "test-throttling",
        }
    }
    from django.core.cache import cache

    cache.clear()
    yield cache
    cache.clear()


@pytest.mark.redis
def test_on_redis_the_throttle_counts_and_fetches_roles_in_one_round_trip(redis_cache, settings):
    from rest_framework.throttling import SimpleRateThrottle

    person = member()
    api = APIClient()
    api.force_login(person)
    original = SimpleRateThrottle.THROTTLE_RATES
    SimpleRateThrottle.THROTTLE_RATES = {**original, "user": "3/minute"}
    try:
        responses = [api.get(reverse("v1:region-list")) for _ in range(4)]
        held = redis_cache.get(principal_facts_key(person.pk))
    finally:
        SimpleRateThrottle.THROTTLE_RATES = original
    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    assert 0 < int(responses[3]["Retry-After"]) <= 60
    # The roles the first request looked up were cached, and read back with the counter.
    assert held is not None and all(len(fact) == 3 for fact in held)
