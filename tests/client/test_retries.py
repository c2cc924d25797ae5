"""Retries on 429 and 503, as Retry-After asks and within bounds, against a small
local HTTP server that throttles on demand (real sockets, no mocks)."""

import asyncio
import email.utils
import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from tokenworks_client import AsyncClient, Client, RateLimited, RetryPolicy, ServerError

OK = {"principal": "api_token"}


class Throttler:
    """Answers the queued (status, headers) first, then 200 with OK; records each request's
    arrival time and body size."""

    def __init__(self):
        self.replies = []
        self.arrivals = []
        self.bodies = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                outer.bodies.append(len(self.rfile.read(length)))
                outer.arrivals.append(time.monotonic())
                status, headers = outer.replies.pop(0) if outer.replies else (200, {})
                body = (
                    json.dumps(OK)
                    if status == 200
                    else json.dumps(
                        {
                            "type": "client_error" if status < 500 else "server_error",
                            "errors": [{"code": "throttled", "detail": "Slow down.", "attr": None}],
                        }
                    )
                ).encode()
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def throttler():
    with Throttler() as server:
        yield server


def test_a_429_is_retried_after_the_seconds_retry_after_asks(throttler):
    throttler.replies = [(429, {"Retry-After": "1"}), (429, {"Retry-After": "1"})]
    with Client(throttler.url, "tw_x") as client:
        assert client.me() == OK
    first, second, third = throttler.arrivals
    assert second - first >= 1.0 and third - second >= 1.0


def test_a_503_with_an_http_date_is_retried(throttler):
    soon = email.utils.formatdate(time.time() + 1, usegmt=True)
    throttler.replies = [(503, {"Retry-After": soon})]
    with Client(throttler.url, "tw_x") as client:
        assert client.me() == OK
    assert len(throttler.arrivals) == 2


def test_retries_are_bounded_then_the_typed_error_is_raised(throttler):
    throttler.replies = [(429, {"Retry-After": "0"})] * 5
    client = Client(throttler.url, "tw_x", retry=RetryPolicy(max_retries=2))
    with client, pytest.raises(RateLimited) as caught:
        client.me()
    assert len(throttler.arrivals) == 3  # the first try and two retries
    assert caught.value.retry_after == 0 and caught.value.errors[0].detail == "Slow down."


def test_a_wait_longer_than_allowed_is_not_waited(throttler):
    throttler.replies = [(503, {"Retry-After": "3600"})]
    client = Client(throttler.url, "tw_x", retry=RetryPolicy(max_wait=30))
    with client, pytest.raises(ServerError) as caught:
        client.me()
    assert len(throttler.arrivals) == 1 and caught.value.retry_after == 3600


def test_other_errors_are_not_retried(throttler):
    throttler.replies = [(500, {"Retry-After": "0"})]
    with Client(throttler.url, "tw_x") as client, pytest.raises(ServerError):
        client.me()
    assert len(throttler.arrivals) == 1


def test_a_retried_upload_sends_the_whole_file_again(throttler):
    throttler.replies = [(429, {"Retry-After": "0"})]
    data = b'{"text": "\xe5\xa5\xbd"}\n' * 1000
    progress = []
    with Client(throttler.url, "tw_x") as client:
        client.imports.upload(
            1, io.BytesIO(data), on_progress=lambda done, total: progress.append((done, total))
        )
    assert len(throttler.bodies) == 2 and throttler.bodies[0] == throttler.bodies[1] > len(data)
    assert progress[-1] == (len(data), len(data))


def test_the_async_client_retries_alike(throttler):
    throttler.replies = [(429, {"Retry-After": "0.5"})]

    async def main():
        async with AsyncClient(throttler.url, "tw_x") as client:
            return await client.me()

    assert asyncio.run(main()) == OK
    assert throttler.arrivals[1] - throttler.arrivals[0] >= 0.5
