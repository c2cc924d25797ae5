"""python -m compute.builtin serve --host 127.0.0.1 --port 8100 --data-dir var/builtin-model"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
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
    args = parser.parse_args(argv)

    import uvicorn

    from .app import create_app

    app = create_app(args.data_dir, api_key=args.api_key)
    print(
        f"built-in model: http://{args.host}:{args.port}/v1 (data in {args.data_dir}, "
        f"{'API key required' if args.api_key else 'no API key'})",
        file=sys.stderr,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
