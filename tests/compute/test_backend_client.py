import email.utils
import math
import random
import time

from compute.backend_client import backoff_delay, confidence_from, retry_after_seconds


def test_retry_after_accepts_seconds_and_http_dates():
    assert retry_after_seconds("1.5") == 1.5
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    in_ten = email.utils.formatdate(time.time() + 10, usegmt=True)
    assert 8 <= retry_after_seconds(in_ten) <= 10


def test_backoff_is_jittered_and_capped():
    rng = random.Random(7)
    delays = [backoff_delay(attempt, base=0.5, cap=4.0, rng=rng) for attempt in range(1, 9)]
    assert all(0 <= d <= min(4.0, 0.5 * 2 ** (n - 1)) for n, d in enumerate(delays, 1))
    assert len(set(delays)) == len(delays)


def test_confidence_from_logprobs_or_the_builtin_field():
    choice = {"logprobs": {"content": [{"token": "positive", "logprob": math.log(0.8)}]}}
    assert abs(confidence_from(choice) - 0.8) < 1e-9
    assert confidence_from({"tokenworks_confidence": 0.42}) == 0.42
    assert confidence_from({"message": {}}) is None
