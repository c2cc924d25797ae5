"""Benchmark: the built-in model's accuracy and speed on real reviews, over real HTTP.

    .venv/bin/python bench/builtin_model_accuracy.py
    .venv/bin/python bench/builtin_model_accuracy.py --seed 2 --latency-requests 2000

Needs ../shared/data/waimai_10k.csv (label,review; 1 positive, 0 negative); without
it the benchmark says so and exits 0. It starts the built-in model server in-process
(uvicorn on 127.0.0.1, a free port, a temporary data dir) and drives it only through
its OpenAI-compatible API with httpx, the way the platform does:

1. split the reviews 80/20 (shuffled with --seed);
2. upload the 80% as chat-format JSONL (POST /v1/files) and fine-tune tokenworks-base
   on it (POST /v1/fine_tuning/jobs, poll until succeeded);
3. classify the 20% with the fine-tuned model and with tokenworks-base via
   POST /v1/chat/completions with a json_schema label enum ["positive", "negative"];
4. report accuracy, macro-F1, calibration (expected calibration error over 10
   confidence bins) and the share of "don't know" answers (confidence exactly 0.5);
5. time single-request inference: sequential requests over one keep-alive
   connection (requests/s, mean/p50/p95 latency), then 8 concurrent clients.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import random
import shlex
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WAIMAI = REPO.parent / "shared" / "data" / "waimai_10k.csv"
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
import uvicorn  # noqa: E402

from compute.builtin import create_app  # noqa: E402
from compute.builtin.predict import decide  # noqa: E402
from compute.builtin.schemas import parse_response_format  # noqa: E402

SYSTEM = "判断这条外卖评论的情感。Label the sentiment of the review."
LABELS = ["positive", "negative"]
SCHEMA = {
    "type": "object",
    "properties": {"label": {"type": "string", "enum": LABELS}},
    "required": ["label"],
    "additionalProperties": False,
}
RESPONSE_FORMAT = {
    "type": "json_schema",
    "json_schema": {"name": "classification", "schema": SCHEMA, "strict": True},
}


def machine() -> str:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    return (
        f"{os.cpu_count()} cores (nproc), {cpu}, {mem_kib / 1024 / 1024:.1f} GiB RAM, "
        f"Python {platform.python_version()}"
    )


def load(seed: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    with WAIMAI.open(encoding="utf-8", newline="") as handle:
        rows = [
            (row["review"].strip(), "positive" if row["label"].strip() == "1" else "negative")
            for row in csv.DictReader(handle)
            if row["review"].strip()
        ]
    random.Random(seed).shuffle(rows)
    cut = int(len(rows) * 0.8)
    return rows[:cut], rows[cut:]


def training_jsonl(rows) -> bytes:
    lines = (
        json.dumps(
            {
                "messages": [
                    {"role": "system", "content": SYSTEM},
                    {"role": "user", "content": text},
                    {"role": "assistant", "content": json.dumps({"label": label})},
                ]
            },
            ensure_ascii=False,
        )
        for text, label in rows
    )
    return ("\n".join(lines) + "\n").encode()


class Server:
    """The built-in model server on 127.0.0.1:<free port> in a background thread."""

    def __init__(self, data_dir: Path):
        self.app = create_app(data_dir)
        config = uvicorn.Config(self.app, host="127.0.0.1", port=0, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)
        return f"http://127.0.0.1:{self.server.servers[0].sockets[0].getsockname()[1]}/v1"

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def classify(http: httpx.Client, model: str, text: str) -> tuple[str, float]:
    response = http.post(
        "/chat/completions",
        json={
            "model": model,
            "messages": [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": text},
            ],
            "response_format": RESPONSE_FORMAT,
            "logprobs": True,
            "temperature": 0,
        },
    )
    response.raise_for_status()
    choice = response.json()["choices"][0]
    return json.loads(choice["message"]["content"])["label"], choice["tokenworks_confidence"]


def scores(truth: list[str], predicted: list[str], confidence: list[float]) -> dict:
    accuracy = sum(t == p for t, p in zip(truth, predicted, strict=True)) / len(truth)
    f1s = []
    for label in LABELS:
        tp = sum(t == label and p == label for t, p in zip(truth, predicted, strict=True))
        fp = sum(t != label and p == label for t, p in zip(truth, predicted, strict=True))
        fn = sum(t == label and p != label for t, p in zip(truth, predicted, strict=True))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    bins: dict[int, list[tuple[float, bool]]] = {}
    for t, p, c in zip(truth, predicted, confidence, strict=True):
        bins.setdefault(min(int(c * 10), 9), []).append((c, t == p))
    ece = sum(
        len(items)
        / len(truth)
        * abs(statistics.fmean(c for c, _ in items) - statistics.fmean(h for _, h in items))
        for items in bins.values()
    )
    unsure = sum(abs(c - 0.5) < 1e-9 for c in confidence) / len(confidence)
    return {"accuracy": accuracy, "macro_f1": statistics.fmean(f1s), "ece": ece, "unsure": unsure}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=1, help="shuffle seed of the 80/20 split")
    parser.add_argument("--latency-requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    print("# Built-in model: accuracy and speed on waimai_10k over HTTP")
    print("command: .venv/bin/python " + " ".join(shlex.quote(a) for a in sys.argv))
    print(f"machine: {machine()}")
    print(f"load average before the run: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if not WAIMAI.exists():
        print(f"skipped: {WAIMAI} not found (it is optional; see ../shared/data/README.md)")
        return 0
    train, test = load(args.seed)
    print(
        f"data: {WAIMAI.name}, {len(train)} training / {len(test)} held-out reviews, "
        f"seed {args.seed}, held-out positive share "
        f"{sum(lab == 'positive' for _, lab in test) / len(test):.3f}"
    )
    sys.stdout.flush()
    with tempfile.TemporaryDirectory(prefix="builtin-bench-") as tmp:
        server = Server(Path(tmp))
        with server as url:
            return run(args, train, test, url, server.app)


def run(args, train, test, url: str, app) -> int:
    with httpx.Client(base_url=url, timeout=120) as http:
        started = time.perf_counter()
        uploaded = http.post(
            "/files",
            files={"file": ("waimai-train.jsonl", training_jsonl(train))},
            data={"purpose": "fine-tune"},
        ).json()
        job = http.post(
            "/fine_tuning/jobs",
            json={
                "model": "tokenworks-base",
                "training_file": uploaded["id"],
                "suffix": "waimai",
                "seed": args.seed,
            },
        ).json()
        while job["status"] not in ("succeeded", "failed", "cancelled"):
            time.sleep(0.2)
            job = http.get(f"/fine_tuning/jobs/{job['id']}").json()
        training_seconds = time.perf_counter() - started
        if job["status"] != "succeeded":
            print(f"fine-tuning {job['status']}: {job['error']}")
            return 1
        model = job["fine_tuned_model"]
        print(
            f"fine-tuning: {model}, {job['trained_tokens']:,} trained tokens, "
            f"{training_seconds:.1f} s from upload to succeeded"
        )
        truth = [label for _, label in test]
        results = {}
        for name in (model, "tokenworks-base"):
            answers = [classify(http, name, text) for text, _ in test]
            results[name] = scores(truth, [a for a, _ in answers], [c for _, c in answers])
        rows = [
            [
                name,
                f"{r['accuracy']:.4f}",
                f"{r['macro_f1']:.4f}",
                f"{r['ece']:.4f}",
                f"{r['unsure']:.3f}",
            ]
            for name, r in results.items()
        ]
        print_table(
            ["model", "accuracy", "macro-F1", "ECE (10 bins)", "share at confidence 0.5"],
            rows,
        )

        texts = [text for text, _ in test]
        latencies = []
        for n in range(args.latency_requests):
            begin = time.perf_counter()
            classify(http, model, texts[n % len(texts)])
            latencies.append(time.perf_counter() - begin)
        total = sum(latencies)
        latencies.sort()
        sequential = [
            "sequential, 1 connection",
            args.latency_requests,
            f"{args.latency_requests / total:.0f}",
            f"{statistics.fmean(latencies) * 1000:.2f}",
            f"{latencies[len(latencies) // 2] * 1000:.2f}",
            f"{latencies[int(len(latencies) * 0.95)] * 1000:.2f}",
        ]

    local = threading.local()

    def one(n: int) -> float:
        if not hasattr(local, "http"):
            local.http = httpx.Client(base_url=url, timeout=120)
        begin = time.perf_counter()
        classify(local.http, model, texts[n % len(texts)])
        return time.perf_counter() - begin

    begin = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
        concurrent = sorted(pool.map(one, range(args.latency_requests)))
    wall = time.perf_counter() - begin
    parallel = [
        f"{args.concurrency} concurrent clients",
        args.latency_requests,
        f"{args.latency_requests / wall:.0f}",
        f"{statistics.fmean(concurrent) * 1000:.2f}",
        f"{concurrent[len(concurrent) // 2] * 1000:.2f}",
        f"{concurrent[int(len(concurrent) * 0.95)] * 1000:.2f}",
    ]
    print_table(
        ["inference (fine-tuned)", "requests", "requests/s", "mean ms", "p50 ms", "p95 ms"],
        [sequential, parallel],
    )
    # The model alone, no HTTP: what one request costs the server's event loop.
    spec = parse_response_format(RESPONSE_FORMAT)
    tuned = app.state.backend.model(model)
    timings = []
    for n in range(args.latency_requests):
        begin = time.perf_counter()
        decide(tuned, spec, texts[n % len(texts)])
        timings.append(time.perf_counter() - begin)
    timings.sort()
    print(
        f"model call alone (in process, no HTTP): mean {statistics.fmean(timings) * 1000:.2f} ms, "
        f"p50 {timings[len(timings) // 2] * 1000:.2f} ms, "
        f"p95 {timings[int(len(timings) * 0.95)] * 1000:.2f} ms"
    )
    return 0


def print_table(headers: list[str], rows: list[list]) -> None:
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |")
    print("| " + " | ".join("-" * w for w in widths) + " |")
    for row in cells:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
