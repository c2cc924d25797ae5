"""When a failed webhook delivery is tried again: the one place that says so.

Eight attempts over three hours: the first at once, then 1 min, 5 min, 15 min,
30 min, 1 h, 2 h and 3 h after it (plus the time the attempts themselves
take). A receiver down for longer gets the event through a manual redelivery
(`POST /api/v1/webhook-deliveries/{id}/redeliver/`), which runs the whole
schedule again.
"""

from datetime import timedelta

# The wait after attempt n is RETRY_DELAYS[n - 1].
RETRY_DELAYS: tuple[timedelta, ...] = (
    timedelta(minutes=1),
    timedelta(minutes=4),
    timedelta(minutes=10),
    timedelta(minutes=15),
    timedelta(minutes=30),
    timedelta(hours=1),
    timedelta(hours=1),
)
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
# From the first attempt to the last, not counting the attempts' own time.
RETRY_SPAN = sum(RETRY_DELAYS, timedelta())


def retry_delay(attempt: int) -> timedelta:
    """How long to wait after the attempt-th attempt (1-based) of a round failed."""
    return RETRY_DELAYS[min(max(attempt, 1), len(RETRY_DELAYS)) - 1]
