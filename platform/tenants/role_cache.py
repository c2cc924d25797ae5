"""A person's roles, cached between requests.

Their roles in active organizations change seldom and are asked on every
request (three queries on an annotator's lease before they were cached). They
are cached per person and forgotten whenever a membership, an organization or
the person changes (tenants.signals), before and after the change commits, so
the very next request sees the change. The expiry only bounds the one race
left: a request that read the old roles just before a change committed and
stores them just after they were forgotten.
"""

from collections.abc import Iterable

from django.core.cache import cache
from django.db import transaction

from .request_context import request_memo
from .selectors import memberships_held

FACTS_TTL_SECONDS = 60
_FACTS_KEY = "tenants:roles:v1:{}"


def principal_facts_key(user_id: int) -> str:
    return _FACTS_KEY.format(user_id)


def principal_facts_forget(user_ids: Iterable[int]) -> None:
    """Drop the cached roles of these people, now and again once the change commits."""
    keys = [principal_facts_key(pk) for pk in set(user_ids) if pk is not None]
    if not keys:
        return
    memo = request_memo()
    if memo is not None:
        for key in keys:
            memo.pop(key, None)
    cache.delete_many(keys)
    transaction.on_commit(lambda: cache.delete_many(keys))


def principal_held(user_id: int, *, cached=None) -> tuple[tuple[int, str, str], ...]:
    """(organization id, organization kind, role) of a person in active organizations:
    remembered for the request, else from the cache (or `cached`, what a caller
    already fetched from it), else one query, then cached."""
    key = principal_facts_key(user_id)
    memo = request_memo()
    if memo is not None and key in memo:
        return memo[key]
    held = cached if cached is not None else cache.get(key)
    if held is None:
        held = tuple(memberships_held(user_id=user_id))
        cache.set(key, held, FACTS_TTL_SECONDS)
    if memo is not None:
        memo[key] = held
    return held
