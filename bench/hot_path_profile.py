"""Profile: where the web CPU of an annotator's `next` and `submit` goes.

    .venv/bin/python bench/hot_path_profile.py --pairs 600 --overlap 3 [--top 40]

In this process, through the whole middleware and DRF stack
(django.test.Client), the cache on Redis as in production: warm-up pairs, then
--pairs next+submit pairs by --overlap annotators in turn (overlap 3: every
third submit decides its item). Prints the process CPU per request (including
the test client's own share, which gunicorn does not pay) and, per request
kind, the frames that hold the CPU, inclusive and self.

A sampler on CPU time, not wall time: SIGPROF fires per interval of CPU the
process used and the handler records the Python stack, so time spent waiting
for PostgreSQL or Redis is not sampled (py-spy's idle filter counted those
waits here). cProfile was not used for shares: its per-call overhead tripled
the CPU of the ORM-heavy code and overstated its share.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common
import next_task

os.environ.setdefault("CACHE_URL", "redis://127.0.0.1:6379/4")


class CpuSampler:
    def __init__(self, interval: float = 0.0005):
        self.interval = interval
        self.stacks: collections.Counter = collections.Counter()
        self.tag: str | None = None

    def _sample(self, signum, frame):
        if self.tag is None:
            return
        names = []
        while frame is not None:
            code = frame.f_code
            where = code.co_filename.split("site-packages/")[-1]
            where = where.replace(f"{_common.REPO}/", "")
            names.append(f"{code.co_qualname} ({where})")
            frame = frame.f_back
        self.stacks[(self.tag, tuple(reversed(names)))] += 1

    def start(self):
        signal.signal(signal.SIGPROF, self._sample)
        signal.setitimer(signal.ITIMER_PROF, self.interval, self.interval)

    def stop(self):
        signal.setitimer(signal.ITIMER_PROF, 0, 0)

    def report(self, tag: str, top: int) -> None:
        root = "BaseHandler.get_response ("
        total, inclusive, own = 0, collections.Counter(), collections.Counter()
        for (kind, frames), n in self.stacks.items():
            if kind != tag:
                continue
            total += n
            start = next((i for i, f in enumerate(frames) if f.startswith(root)), None)
            if start is None:
                inclusive["(the test client, outside the handler)"] += n
                continue
            for frame in set(frames[start:]):
                inclusive[frame] += n
            own[frames[-1]] += n
        print(f"\n=== {tag}: {total} samples")
        print("-- inclusive (share of the request's CPU in this frame and below)")
        for frame, n in inclusive.most_common(top):
            print(f"{100 * n / total:5.1f}%  {frame}")
        print("-- self")
        for frame, n in own.most_common(15):
            print(f"{100 * n / total:5.1f}%  {frame}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=600)
    parser.add_argument("--overlap", type=int, default=3)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=30)
    args = parser.parse_args()

    _common.django_setup()
    from django.test import Client

    _common.print_header("hot_path_profile: CPU of next and submit, in process")
    fixture = _common.Fixture("hotprof", overlap=args.overlap, annotators=args.overlap)
    sampler = CpuSampler()
    cpu = {"next": 0.0, "submit": 0.0}
    try:
        project = fixture.project
        next_task.populate(project, args.pairs + args.warmup + 10, _common.texts())
        clients = []
        for annotator in fixture.annotators:
            client = Client(HTTP_HOST="127.0.0.1")
            client.force_login(annotator)
            clients.append(client)
        base = f"/api/v1/workspace/projects/{project.pk}"
        body = json.dumps(next_task.ANSWER)

        def request(client, kind: str, path: str, data: str, measured: bool):
            start = time.process_time()
            sampler.tag = kind if measured else None
            response = client.post(path, data=data, content_type="application/json")
            sampler.tag = None
            if measured:
                cpu[kind] += time.process_time() - start
            return response

        def pair(client, measured: bool) -> None:
            leased = request(client, "next", f"{base}/next/", "{}", measured)
            assert leased.status_code == 200, leased.content
            submit = f"/api/v1/workspace/assignments/{leased.json()['id']}/submit/"
            submitted = request(client, "submit", submit, body, measured)
            assert submitted.status_code == 201, submitted.content

        for n in range(args.warmup):
            pair(clients[n % len(clients)], False)
        sampler.start()
        for n in range(args.pairs):
            pair(clients[n % len(clients)], True)
        sampler.stop()
    finally:
        sampler.stop()
        fixture.cleanup()
    print(
        f"{args.pairs} next+submit pairs, overlap {args.overlap}; load after "
        f"{_common.load_average()}"
    )
    for kind, seconds in cpu.items():
        per_request = seconds / args.pairs * 1000
        print(f"{kind}: {per_request:.2f} ms of CPU per request (test client included)")
    for kind in cpu:
        sampler.report(kind, args.top)


if __name__ == "__main__":
    main()
