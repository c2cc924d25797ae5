"""Request throttling that costs one cache round trip.

DRF's UserRateThrottle keeps each caller's request times as a list: a GET and
a SET of the whole list per request, two round trips to Redis on every call of
the annotators' hot path. Here a counter per caller and window is incremented
and given its expiry in one pipelined call; the same call fetches the caller's
cached roles (tenants.permissions), which the request asks next anyway.

The window opens with a caller's first request and lasts the rate's period;
across a window's edge a caller can make up to twice the rate: the limit is
against runaway clients, not an exact quota.
"""

from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache
from rest_framework.throttling import UserRateThrottle

from .permissions import principal_for
from .role_cache import principal_facts_key, principal_held


class WindowedUserRateThrottle(UserRateThrottle):
    scope = "user"

    def allow_request(self, request, view):
        if self.rate is None:
            return True
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        user = request.user
        person = (
            user.pk if user and user.is_authenticated and not principal_for(user).is_token else None
        )
        count, self.wait_seconds, held = _count_and_roles(key, self.duration, person)
        if person is not None:
            principal_held(person, cached=held)
        return count <= self.num_requests

    def wait(self):
        return self.wait_seconds


def _count_and_roles(key: str, ttl: int, person: int | None):
    """(requests counted in key's window, this one included; seconds until the window
    closes; the person's cached roles or None), in one round trip on Redis."""
    backend = caches["default"]
    if isinstance(backend, RedisCache):
        raw_key = backend.make_and_validate_key(key)
        pipe = backend._cache.get_client(raw_key, write=True).pipeline(transaction=False)
        pipe.incr(raw_key)
        pipe.expire(raw_key, ttl, nx=True)
        pipe.ttl(raw_key)
        if person is not None:
            pipe.get(backend.make_and_validate_key(principal_facts_key(person)))
        replies = pipe.execute()
        held = replies[3] if person is not None else None
        return (
            replies[0],
            max(replies[2], 1),
            backend._cache._serializer.loads(held) if held is not None else None,
        )
    # Other backends (local memory in development and tests): two calls.
    cache.add(key, 0, ttl)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between the two calls
        cache.set(key, 1, ttl)
        count = 1
    return count, ttl, None
