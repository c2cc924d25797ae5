"""Benchmark: CPU the request metrics middleware adds to one request.

    .venv/bin/python bench/metrics_middleware.py [--requests 200000]
    METRICS_DIR=$(mktemp -d) .venv/bin/python bench/metrics_middleware.py

Calls config.metrics.RequestMetricsMiddleware around a view that does
nothing, with a resolved route as Django sets it, and reports process CPU
per call: in memory (one process), or with METRICS_DIR set, in
prometheus-client's multiprocess files as gunicorn workers count.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "platform")]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.development")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200_000)
    args = parser.parse_args()

    import django

    django.setup()
    from config.metrics import RequestMetricsMiddleware

    response = SimpleNamespace(status_code=200)
    middleware = RequestMetricsMiddleware(lambda request: response)
    request = SimpleNamespace(
        method="GET",
        resolver_match=SimpleNamespace(view_name="v1:workspace-assignment-list", route=""),
    )
    for _ in range(1000):  # warm-up: the labelled children are made once
        middleware(request)
    started = time.process_time()
    for _ in range(args.requests):
        middleware(request)
    per_call = (time.process_time() - started) / args.requests
    mode = "files under " + os.environ["METRICS_DIR"] if os.environ.get("METRICS_DIR") else "memory"
    print(f"{per_call * 1e6:.2f} µs CPU per request ({mode}, {args.requests} requests)")


if __name__ == "__main__":
    main()
