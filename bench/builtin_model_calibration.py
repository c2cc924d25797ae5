"""Benchmark: the built-in model's accuracy and confidence calibration after N labels, over HTTP.

    .venv/bin/python bench/builtin_model_calibration.py
    .venv/bin/python bench/builtin_model_calibration.py --sizes 300,1000 --noise 0.04

The quality engine (issue #10) weighs the model's vote by its accuracy per
confidence band, so this measures that table. For each dataset of
bench/_quality_data.py (topics10, generated; waimai, ../shared/data, skipped
when absent) it takes --items items in the seeded order, fine-tunes
tokenworks-base on the first N of them for each N of --sizes (a share --noise
of those labels replaced by another class, as decided labels are not all
right), and classifies the last --test items with the fine-tuned model. Then
it prints the accuracy and a reliability table: confidence band, items, mean
confidence, accuracy. Everything goes through the server's OpenAI-compatible
API (uvicorn on 127.0.0.1, a free port, a temporary data dir), as the
platform calls it; no database.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import shlex
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common
import _quality_data as qd
import httpx
from builtin_model_accuracy import Server, machine

BANDS = [0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0]


def training_jsonl(rows: list[tuple[str, str]]) -> bytes:
    lines = (
        json.dumps(
            {
                "messages": [
                    {"role": "user", "content": text},
                    {"role": "assistant", "content": json.dumps({"label": label})},
                ]
            },
            ensure_ascii=False,
        )
        for text, label in rows
    )
    return ("\n".join(lines) + "\n").encode()


def fine_tune(http: httpx.Client, rows: list[tuple[str, str]]) -> str:
    uploaded = http.post(
        "/files",
        files={"file": ("train.jsonl", training_jsonl(rows))},
        data={"purpose": "fine-tune"},
    ).json()
    job = http.post(
        "/fine_tuning/jobs",
        json={"model": "tokenworks-base", "training_file": uploaded["id"], "seed": 0},
    ).json()
    while job["status"] not in ("succeeded", "failed", "cancelled"):
        time.sleep(0.2)
        job = http.get(f"/fine_tuning/jobs/{job['id']}").json()
    if job["status"] != "succeeded":
        raise SystemExit(f"fine-tuning {job['status']}: {job.get('error')}")
    return job["fine_tuned_model"]


def classify(http: httpx.Client, model: str, classes: list[str], text: str) -> tuple[str, float]:
    schema = {
        "type": "object",
        "properties": {"label": {"type": "string", "enum": classes}},
        "required": ["label"],
        "additionalProperties": False,
    }
    response = http.post(
        "/chat/completions",
        json={
            "model": model,
            "messages": [{"role": "user", "content": text}],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "label", "schema": schema, "strict": True},
            },
            "temperature": 0,
        },
    )
    response.raise_for_status()
    choice = response.json()["choices"][0]
    return json.loads(choice["message"]["content"])["label"], choice["tokenworks_confidence"]


def reliability(results: list[tuple[bool, float]]) -> list[list[str]]:
    rows = []
    for low, high in itertools.pairwise(BANDS):
        band = [(ok, c) for ok, c in results if low <= c < high or (high == 1.0 and c == 1.0)]
        if band:
            rows.append(
                [
                    f"{low:.2f}-{high:.2f}",
                    f"{len(band):,}",
                    f"{len(band) / len(results):.3f}",
                    f"{sum(c for _, c in band) / len(band):.3f}",
                    f"{sum(ok for ok, _ in band) / len(band):.3f}",
                ]
            )
    return rows


def measure(name: str, ds: qd.Dataset, args, http: httpx.Client) -> None:
    rows = [(text, label) for _, text, label in ds.regular]
    test = rows[-args.test :]
    for size in args.sizes:
        if size + args.test > len(rows):
            print(f"\n{name}: {size} + {args.test} is more than the {len(rows)} items; skipped")
            continue
        rng = random.Random(f"noise:{args.seed}:{size}")
        train = [
            (text, label)
            if rng.random() >= args.noise
            else (text, rng.choice([c for c in ds.classes if c != label]))
            for text, label in rows[:size]
        ]
        started = time.perf_counter()
        model = fine_tune(http, train)
        trained = time.perf_counter() - started
        results = [
            (label == truth, confidence)
            for text, truth in test
            for label, confidence in [classify(http, model, ds.classes, text)]
        ]
        accuracy = sum(ok for ok, _ in results) / len(results)
        noise = f", {args.noise:.0%} of them wrong" if args.noise else ""
        print(
            f"\n### {name}: fine-tuned on {size:,} labels{noise}; {len(test):,} held out: "
            f"accuracy {accuracy:.4f} (fine-tuning {trained:.1f} s)"
        )
        _common.print_table(
            ["confidence", "items", "share", "mean confidence", "accuracy"], reliability(results)
        )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--datasets", default="topics10,waimai")
    parser.add_argument("--sizes", default="300,1000", help="training labels, comma-separated")
    parser.add_argument("--test", type=int, default=2000, help="held-out items classified")
    parser.add_argument("--items", type=int, default=4000, help="items drawn per dataset")
    parser.add_argument("--noise", type=float, default=0.0, help="share of wrong training labels")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    args.sizes = [int(s) for s in args.sizes.split(",") if s]
    if not 0 <= args.noise < 1:
        raise SystemExit("--noise: a share from 0 to 1")
    print("# Built-in model: accuracy and calibration after N labels, over HTTP")
    print("command: .venv/bin/python " + " ".join(shlex.quote(a) for a in sys.argv))
    print(f"machine: {machine()}")
    print(f"load average before the run: {_common.load_average()}")
    with (
        tempfile.TemporaryDirectory(prefix="builtin-calibration-") as tmp,
        Server(Path(tmp)) as url,
        httpx.Client(base_url=url, timeout=120) as http,
    ):
        for name in args.datasets.split(","):
            if name == "topics10":
                ds = qd.topics10(args.seed, args.items, 0)
            elif name == "waimai":
                if not _common.WAIMAI.exists():
                    print(f"\nwaimai: {_common.WAIMAI} not found, skipped")
                    continue
                ds = qd.waimai(_common.WAIMAI, args.seed, args.items, 0)
            else:
                raise SystemExit(f"unknown dataset {name!r} (topics10, waimai)")
            measure(name, ds, args, http)
    print(f"\nload average after the run: {_common.load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
