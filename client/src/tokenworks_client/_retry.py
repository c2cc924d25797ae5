"""When to try a request again: 429 and 503, as the server says, within bounds."""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass

RETRY_STATUSES = frozenset({429, 503})


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass(frozen=True)
class RetryPolicy:
    """At most ``max_retries`` retries, each waiting what Retry-After asks (or an
    exponential backoff without it); a wait longer than ``max_wait`` seconds is not
    waited: the error is raised at once with its ``retry_after``."""

    max_retries: int = 3
    max_wait: float = 60.0
    backoff: float = 0.5

    def delay(self, attempt: int, retry_after: float | None) -> float | None:
        """Seconds to sleep before retry number ``attempt + 1``, or None to give up."""
        if attempt >= self.max_retries:
            return None
        wait = retry_after if retry_after is not None else self.backoff * (2**attempt)
        if wait > self.max_wait:
            return None
        return wait
