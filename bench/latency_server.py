"""A local OpenAI-compatible server with a fixed latency L and a concurrency limit C.

Its ceiling is C/L requests per second: at most C requests are served at
once, each takes L seconds. It answers chat completions with the first label
of the request's json_schema, with usage and a logprob confidence, like vLLM.

    .venv/bin/python bench/latency_server.py --port 8199 --latency 0.05 --concurrency 25
"""

import argparse
import asyncio
import json
import math
import time

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


def create_app(latency: float, concurrency: int) -> Starlette:
    slots = asyncio.Semaphore(concurrency)
    served = {"count": 0}

    async def chat(request: Request):
        body = await request.json()
        async with slots:
            await asyncio.sleep(latency)
        schema = (body.get("response_format") or {}).get("json_schema", {}).get("schema", {})
        label = schema.get("properties", {}).get("label", {}).get("enum", ["positive"])[0]
        content = json.dumps({"label": label})
        served["count"] += 1
        prompt_tokens = sum(len(m.get("content", "")) for m in body.get("messages", []))
        return JSONResponse(
            {
                "id": f"chatcmpl-{served['count']}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", "bench"),
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": content},
                        "logprobs": {"content": [{"token": label, "logprob": math.log(0.9)}]},
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": 4,
                    "total_tokens": prompt_tokens + 4,
                },
            }
        )

    async def models(request: Request):
        return JSONResponse({"object": "list", "data": [{"id": "bench", "object": "model"}]})

    async def stats(request: Request):
        return JSONResponse(served)

    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/v1/models", models),
            Route("/stats", stats),
        ]
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8199)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per request")
    parser.add_argument("--concurrency", type=int, default=25)
    args = parser.parse_args()
    uvicorn.run(
        create_app(args.latency, args.concurrency),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        backlog=4096,
    )


if __name__ == "__main__":
    main()
