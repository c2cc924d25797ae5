"""Django's Redis cache, keeping its client objects.

Django builds a new redis.Redis per cache call (RedisCacheClient.get_client);
its constructor sets up a table of response callbacks every time, about a
third of a millisecond of CPU here, twice on every API request (the session
and the throttle). redis.Redis is thread-safe and holds no connection of its
own, so one per connection pool serves every call.
"""

from django.core.cache.backends import redis as django_redis


class RedisCacheClient(django_redis.RedisCacheClient):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._clients = {}

    def get_client(self, key=None, *, write=False):
        index = self._get_connection_pool_index(write)
        client = self._clients.get(index)
        if client is None:
            client = self._clients[index] = self._client(
                connection_pool=self._get_connection_pool(write)
            )
        return client


class RedisCache(django_redis.RedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = RedisCacheClient
