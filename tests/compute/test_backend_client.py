import email.utils
import math
import random
import time

import tenacity

from compute.backend_client import confidence_from, retry_after_seconds
from compute.retry_policy import RetryPolicy


def test_retry_after_accepts_seconds_and_http_dates():
    assert retry_after_seconds("1.5") == 1.5
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    in_ten = email.utils.formatdate(time.time() + 10, usegmt=True)
    assert 8 <= retry_after_seconds(in_ten) <= 10


class _Last:
    def __init__(self, **flags):
        self.__dict__.update(flags)


def _state(attempt: int, last) -> tenacity.RetryCallState:
    state = tenacity.RetryCallState(retry_object=None, fn=None, args=(), kwargs={})
    state.attempt_number = attempt
    state.set_result(last)
    return state


def test_backoff_is_jittered_and_capped_and_retry_after_wins():
    random.seed(7)
    policy = RetryPolicy(backoff_base=0.5, backoff_cap=4.0)
    delays = [policy.backoff(_state(n, _Last())) for n in range(1, 9)]
    assert all(0 <= d <= min(4.0, 0.5 * 2 ** (n - 1)) for n, d in enumerate(delays, 1))
    assert len(set(delays)) == len(delays)
    assert policy.backoff(_state(1, _Last(retry_after=1.5))) == 1.5
    assert policy.backoff(_state(1, _Last(retry_after=60))) == 4.0  # capped
    assert policy.backoff(_state(3, _Last(failover=True, retry_after=9))) == 0.0


def test_a_run_keeps_the_policy_it_started_with(settings):
    settings.COMPUTE_MAX_RETRIES = 6
    recorded = RetryPolicy(max_attempts=3, max_seconds=9.0).as_dict()
    assert RetryPolicy.from_dict(recorded).max_attempts == 3
    assert RetryPolicy.from_dict({}).max_attempts == 7  # an older run: today's settings


def test_confidence_from_logprobs_or_the_builtin_field():
    choice = {"logprobs": {"content": [{"token": "positive", "logprob": math.log(0.8)}]}}
    assert abs(confidence_from(choice) - 0.8) < 1e-9
    assert confidence_from({"tokenworks_confidence": 0.42}) == 0.42
    assert confidence_from({"message": {}}) is None
