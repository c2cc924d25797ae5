"""The one retry policy for calls to inference backends, built on tenacity.

Every HTTP attempt is made once by `BackendClient` and retried only here:
attempts and total time per call are bounded (`max_attempts`, `max_seconds`:
no new attempt starts once the next wait would pass the budget), waits are
exponential with full jitter unless the backend sent Retry-After, and moving
to another backend (failover) waits for nothing. A pre-labeling run stores
the policy it started with (`PrelabelRun.retry_policy`), so every chunk of
the run, even one retried days later, follows the same bounds.
"""

from collections.abc import Callable
from dataclasses import asdict, dataclass, fields

import tenacity
from django.conf import settings


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5  # HTTP attempts per call, the first included, across backends
    max_seconds: float = 120.0  # no attempt starts later than this after the first
    backoff_base: float = 0.5
    backoff_cap: float = 20.0
    invalid_retries: int = 1  # answers violating the schema: re-asked once, with the error

    @classmethod
    def from_settings(cls) -> "RetryPolicy":
        return cls(
            max_attempts=settings.COMPUTE_MAX_RETRIES + 1,
            max_seconds=settings.COMPUTE_MAX_CALL_SECONDS,
            backoff_base=settings.COMPUTE_BACKOFF_BASE,
        )

    @classmethod
    def from_dict(cls, data: dict | None) -> "RetryPolicy":
        """The policy a run recorded; anything it lacks (older runs) from the settings."""
        known = {f.name for f in fields(cls)}
        return cls(
            **{
                **asdict(cls.from_settings()),
                **{k: v for k, v in (data or {}).items() if k in known},
            }
        )

    def as_dict(self) -> dict:
        return asdict(self)

    def backoff(self, retry_state: tenacity.RetryCallState) -> float:
        """Full jitter (AWS architecture blog), or the backend's Retry-After, both capped."""
        outcome = retry_state.outcome
        last = outcome.exception() if outcome.failed else outcome.result()
        if getattr(last, "failover", False):
            return 0.0  # the next attempt goes to another backend: nothing to wait for
        if getattr(last, "retry_now", False):
            return 0.0  # an invalid answer is re-asked at once
        hint = getattr(last, "retry_after", None)
        if hint is not None:
            return min(hint, self.backoff_cap)
        return tenacity.wait_random_exponential(multiplier=self.backoff_base, max=self.backoff_cap)(
            retry_state
        )

    def retrying(
        self,
        *,
        retry_result: Callable[[object], bool] | None = None,
        retry_exception: type[BaseException] | tuple | None = None,
    ) -> tenacity.AsyncRetrying:
        """An AsyncRetrying for one call. With `retry_result`, the call returns a result
        that says whether to retry, and the last result is returned when the budget is
        spent; with `retry_exception`, the last exception is raised."""
        if retry_result is not None:
            retry = tenacity.retry_if_result(retry_result)
        else:
            retry = tenacity.retry_if_exception(
                lambda exc: isinstance(exc, retry_exception) and getattr(exc, "retryable", True)
            )
        return tenacity.AsyncRetrying(
            stop=tenacity.stop_after_attempt(self.max_attempts)
            | tenacity.stop_before_delay(self.max_seconds),
            wait=self.backoff,
            retry=retry,
            retry_error_callback=(lambda state: state.outcome.result()) if retry_result else None,
            reraise=True,
        )
