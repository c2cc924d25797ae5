"""The built-in model server (compute.builtin) on a free local port, for tests over real HTTP."""

import threading
import time
import warnings

import uvicorn

from compute.builtin import create_app


class BuiltinServer:
    """`with BuiltinServer(data_dir) as url:` serves the OpenAI-compatible API at url (…/v1)."""

    def __init__(self, data_dir):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            app = create_app(data_dir)
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1"

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(10)
