"""The address a request came from, as login throttling counts it.

Behind TRUSTED_PROXY_COUNT proxies that each append the address they saw to
X-Forwarded-For, the client is that many entries from the right; anything
further left was written by the client and could be anything. With no proxy,
the connection's own address is the client.
"""

from django.conf import settings


def client_address(request) -> str | None:
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies > 0:
        hops = [h.strip() for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        hops = [h for h in hops if h]
        if len(hops) >= proxies:
            return hops[-proxies]
    return request.META.get("REMOTE_ADDR")
