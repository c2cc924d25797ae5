"""python -m compute.builtin serve --host 127.0.0.1 --port 8100 --data-dir var/builtin-model

The server reads only its own options and BUILTIN_MODEL_API_KEY, never the
variables meant for the other processes of the Procfile. Left to itself,
uvicorn takes WEB_CONCURRENCY (gunicorn's worker count) as its own, and with
more than one worker it refuses an app object and exits, which makes honcho
stop every process of `make run`. The server is always one process: its
trainer thread and model registry live in it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

# uvicorn's exit status when the app does not start (uvicorn.main.STARTUP_FAILURE).
STARTUP_FAILURE = 3


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m compute.builtin",
        description="Tokenworks' built-in OpenAI-compatible model server.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the OpenAI-compatible API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8100)
    serve.add_argument("--data-dir", type=Path, default=Path("var/builtin-model"))
    serve.add_argument(
        "--api-key",
        default=os.environ.get("BUILTIN_MODEL_API_KEY") or None,
        help="require 'Authorization: Bearer KEY' (default: $BUILTIN_MODEL_API_KEY; none: open)",
    )
    serve.add_argument("--log-level", default="info")
    return parser.parse_args(argv)


def server_config(args: argparse.Namespace):
    """The uvicorn.Config that `serve` runs, giving explicitly every setting that
    uvicorn would otherwise take from the environment."""
    import uvicorn

    from .app import create_app

    return uvicorn.Config(
        create_app(args.data_dir, api_key=args.api_key),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        workers=1,  # never $WEB_CONCURRENCY: see the module docstring
        proxy_headers=False,  # nothing proxies it; never read $FORWARDED_ALLOW_IPS
    )


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    args = parse_args(argv)
    config = server_config(args)
    print(
        f"built-in model: http://{args.host}:{args.port}/v1 (data in {args.data_dir}, "
        f"{'API key required' if args.api_key else 'no API key'})",
        file=sys.stderr,
    )
    # One process, so Server.run rather than uvicorn.run (which also weighs workers).
    server = uvicorn.Server(config)
    server.run()
    return 0 if server.started else STARTUP_FAILURE


if __name__ == "__main__":
    sys.exit(main())
