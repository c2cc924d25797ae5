"""Benchmark: the annotator's hot path, per request and in the loop.

    .venv/bin/python bench/hot_path.py                      # everything, defaults below
    .venv/bin/python bench/hot_path.py --annotators 32 --loop-leases 2000   # quicker
    .venv/bin/python bench/hot_path.py --annotators 32 --rounds 10 --no-loop   # parts 1-2

The summary table gives web CPU and SQL statements per `next` and `submit`;
bench/hot_path_profile.py shows where that CPU goes.

Three parts, against gunicorn as in the Procfile (sync workers, --workers 2)
on PostgreSQL, with the cache on Redis (CACHE_URL, as in production: sessions
and throttling live there):

1. **Statements per request**, in this process through the whole middleware
   and DRF stack (django.test.Client): the SQL statements and Redis round
   trips of `next` (a new lease and a held one), `submit`, `skip`,
   `review-next` and a review, each listed.
2. **Web CPU per request**: N annotators take a lease each (all at once, then
   wait for each other), then all submit, for --rounds rounds. The gunicorn
   workers' CPU time (utime + stime from /proc) is sampled around each phase,
   so next and submit are charged separately. Divided by the requests made.
3. **The next+submit loop** with 32 and 128 annotators (closed loop, no think
   time, the load generator on the same machine, as bench/next_task.py):
   annotations/s and the client's latency of next.

Afterwards SQL checks that no (item, annotator) pair has two assignments and
no item has more annotations than its target. --server-dir runs gunicorn from
another checkout of the code (the "before" of a before/after pair; it must
share this database's migrations).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common
import next_task

# Production keeps sessions and throttle counters in Redis; measure that.
os.environ.setdefault("CACHE_URL", "redis://127.0.0.1:6379/4")


# --- 1. statements per request --------------------------------------------------


class RedisCounter:
    """Counts round trips to Redis made by this process (commands and pipelines)."""

    def __init__(self):
        self.calls: list[str] = []

    def __enter__(self):
        import redis.client

        self._patched = []
        counter = self

        def wrap(cls, name, label):
            original = getattr(cls, name)

            def counted(self, *args, **kwargs):
                counter.calls.append(label(self, args))
                return original(self, *args, **kwargs)

            setattr(cls, name, counted)
            self._patched.append((cls, name, original))

        wrap(
            redis.client.Pipeline,
            "execute",
            lambda p, a: "PIPELINE " + " ".join(str(c[0][0]) for c in p.command_stack),
        )
        wrap(
            redis.client.Redis,
            "execute_command",
            lambda r, a: str(a[0]) if not isinstance(r, redis.client.Pipeline) else None,
        )
        return self

    def __exit__(self, *exc):
        for cls, name, original in reversed(self._patched):
            setattr(cls, name, original)
        self.calls = [c for c in self.calls if c is not None]


def probe(client, method: str, path: str, body=None) -> dict:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries, RedisCounter() as redis_calls:
        response = getattr(client, method)(
            path, data=json.dumps(body or {}), content_type="application/json"
        )
    return {
        "status": response.status_code,
        "json": response.json() if response.content else None,
        "sql": [q["sql"] for q in queries.captured_queries],
        "redis": redis_calls.calls,
    }


def statements(args, texts) -> list[tuple[str, dict]]:
    """Each hot request once, in this process, with its statements."""
    from django.test import Client

    from annotation.models import Item, Project
    from tenants.models import Membership, User

    fixture = _common.Fixture("hotsql", overlap=1, annotators=2)
    try:
        project = fixture.project
        # Every submitted item goes to review (rate 1): the reviewer has work.
        Project.objects.filter(pk=project.pk).update(review_rate=1)
        next_task.populate(project, 200, texts)
        reviewer = User.objects.create(username=f"{fixture.tag}-rev")
        Membership.objects.create(
            user=reviewer, organization=fixture.workforce, role=Membership.Role.REVIEWER
        )
        fixture.annotators.append(reviewer)
        annotator = Client(HTTP_HOST="127.0.0.1")
        annotator.force_login(fixture.annotators[0])
        base = f"/api/v1/workspace/projects/{project.pk}"
        out = []
        # Warm: first requests import and compile; count the steady state.
        for _ in range(2):
            lease = probe(annotator, "post", f"{base}/next/")
            probe(
                annotator,
                "post",
                f"/api/v1/workspace/assignments/{lease['json']['id']}/submit/",
                next_task.ANSWER,
            )
        lease = probe(annotator, "post", f"{base}/next/")
        out.append(("next (new lease)", lease))
        out.append(("next (lease held, page reload)", probe(annotator, "post", f"{base}/next/")))
        submit = f"/api/v1/workspace/assignments/{lease['json']['id']}/submit/"
        out.append(("submit", probe(annotator, "post", submit, next_task.ANSWER)))
        out.append(("submit (retried)", probe(annotator, "post", submit, next_task.ANSWER)))
        lease = probe(annotator, "post", f"{base}/next/")
        skip = f"/api/v1/workspace/assignments/{lease['json']['id']}/skip/"
        out.append(("skip", probe(annotator, "post", skip)))
        reviewing = Client(HTTP_HOST="127.0.0.1")
        reviewing.force_login(reviewer)
        probe(reviewing, "post", f"{base}/review-next/")  # warm
        review = "/api/v1/workspace/items/{}/review/"
        taken = probe(reviewing, "post", f"{base}/review-next/")
        out.append(("review-next (lease held)", taken))
        item = (
            taken["json"]["item"]["id"]
            if isinstance(taken["json"]["item"], dict)
            else taken["json"]["item"]
        )
        out.append(
            (
                "review submit (accept)",
                probe(reviewing, "post", review.format(item), {"verdict": "accept"}),
            )
        )
        out.append(("review-next (new lease)", probe(reviewing, "post", f"{base}/review-next/")))
        assert Item.objects.filter(project=project, status="in_review").exists()
    finally:
        fixture.cleanup()
    return out


# --- 2. CPU per request ----------------------------------------------------------


def worker_cpu_ticks(server_pid: int) -> int:
    return sum(next_task._cpu_ticks(p) for p in next_task._children(server_pid))


async def phased(port: int, project_id: int, sessions, rounds: int, server_pid: int) -> dict:
    import httpx

    clients = [
        httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}",
            cookies={"sessionid": key, "csrftoken": token},
            headers={"X-CSRFToken": token, "Accept": "application/json"},
            timeout=120,
        )
        for key, token in sessions
    ]
    ticks = {"next": 0, "submit": 0}
    counts = {"next": 0, "submit": 0}
    bad = 0

    async def lease(client):
        r = await client.post(f"/api/v1/workspace/projects/{project_id}/next/")
        return r.json()["id"] if r.status_code == 200 else None

    async def submit(client, assignment):
        r = await client.post(
            f"/api/v1/workspace/assignments/{assignment}/submit/", json=next_task.ANSWER
        )
        return r.status_code in (200, 201)

    try:
        for _ in range(rounds):
            before = worker_cpu_ticks(server_pid)
            leased = await asyncio.gather(*(lease(c) for c in clients))
            ticks["next"] += worker_cpu_ticks(server_pid) - before
            counts["next"] += len(clients)
            pairs = [(c, a) for c, a in zip(clients, leased, strict=True) if a is not None]
            bad += len(clients) - len(pairs)
            before = worker_cpu_ticks(server_pid)
            done = await asyncio.gather(*(submit(c, a) for c, a in pairs))
            ticks["submit"] += worker_cpu_ticks(server_pid) - before
            counts["submit"] += len(pairs)
            bad += done.count(False)
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
    tick = os.sysconf("SC_CLK_TCK")
    return {
        "next_cpu_ms": ticks["next"] / tick * 1000 / max(counts["next"], 1),
        "submit_cpu_ms": ticks["submit"] / tick * 1000 / max(counts["submit"], 1),
        "requests": counts,
        "failed": bad,
    }


# --- server -----------------------------------------------------------------------


def start_gunicorn(port: int, workers: int, server_dir: Path, log: Path) -> subprocess.Popen:
    """As the Procfile runs it (sync workers), from server_dir's code."""
    import httpx

    env = _common.bench_env()
    env["PYTHONPATH"] = os.pathsep.join([str(server_dir), str(server_dir / "platform")])
    command = [
        sys.executable.replace("/python", "/gunicorn"),
        "config.wsgi",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--access-logfile",
        str(log),
        "--access-logformat",
        "%(m)s %(U)s %(s)s %(D)s",
        "--error-logfile",
        str(log.with_suffix(".err")),
        "--backlog",
        "2048",
    ]
    server = subprocess.Popen(command, cwd=server_dir, env=env)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
            return server
        except httpx.TransportError:
            if server.poll() is not None:
                sys.exit(f"gunicorn exited with status {server.returncode}")
            time.sleep(0.3)
    server.terminate()
    sys.exit("gunicorn did not answer within 60 s")


# --- main ---------------------------------------------------------------------------


class LockWaits:
    """Samples pg_stat_activity every 0.1 s from a connection of its own while the
    loop runs: how often any backend of the bench database waits on a lock, and
    how often the waiting statement touches a rollup table (#14: none on the
    submit path, since rollups are a batcher's)."""

    def __init__(self):
        self.samples = self.waiting = self.on_rollups = 0
        self.statements: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        import psycopg

        with psycopg.connect(_common.bench_env()["DATABASE_URL"], autocommit=True) as conn:
            while not self._stop.wait(0.1):
                rows = conn.execute(
                    "SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), 70) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                    " AND pid <> pg_backend_pid()"
                ).fetchall()
                self.samples += 1
                if rows:
                    self.waiting += 1
                    self.on_rollups += any("rollup" in q for (q,) in rows)
                    for (q,) in rows:
                        self.statements[q] = self.statements.get(q, 0) + 1

    def start(self):
        self._thread.start()

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join(5)
        top = sorted(self.statements.items(), key=lambda kv: -kv[1])[:3]
        return {
            "lock_samples": self.samples,
            "lock_waiting": self.waiting,
            "lock_on_rollups": self.on_rollups,
            "lock_statements": top,
        }


def run_annotators(args, annotators: int, port: int, server, log: Path, texts) -> dict:
    fixture = _common.Fixture(f"hot{annotators}", overlap=args.overlap, annotators=annotators)
    project = fixture.project
    sessions = []
    try:
        next_task.populate(project, args.items, texts)
        # Another checkout's server may not know this one's backends: Django's
        # is in both (and is what that code's logins name).
        other = Path(args.server_dir).resolve() != _common.REPO
        sessions = next_task.sessions_for(
            fixture.annotators,
            backend="django.contrib.auth.backends.ModelBackend" if other else None,
        )
        # Warm-up (not counted): the workers' connections and imports.
        asyncio.run(next_task.drive(port, project.pk, sessions, args.warmup, 0))
        result = {"annotators": annotators, "load_before": _common.load_average()}
        result.update(asyncio.run(phased(port, project.pk, sessions, args.rounds, server.pid)))
        if args.no_loop:
            result["load_after"] = _common.load_average()
            result.update(next_task.verify(project))
            return result
        offset = log.stat().st_size
        meter = next_task.CpuMeter(server.pid)
        locks = LockWaits()
        meter.start()
        locks.start()
        start = time.perf_counter()
        state = asyncio.run(next_task.drive(port, project.pk, sessions, args.loop_leases, 0))
        wall = time.perf_counter() - start
        result.update(meter.stop())
        result.update(locks.stop())
        time.sleep(0.5)
        result.update(
            {
                "load_after": _common.load_average(),
                "wall_s": wall,
                "leases": len(state.next_ms),
                "submits": len(state.submit_ms),
                "errors": state.errors,
                "next_ms": state.next_ms,
                "submit_ms": state.submit_ms,
                "server_next_ms": next_task.server_latencies(log, offset, project.pk),
            }
        )
        result.update(next_task.verify(project))
    finally:
        next_task.delete_sessions(key for key, _ in sessions)
        fixture.cleanup()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--annotators", default="32,128", help="comma-separated loop sizes")
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--overlap", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=10, help="phased rounds for CPU/request")
    parser.add_argument("--loop-leases", type=int, default=4000, help="leases per loop run")
    parser.add_argument("--warmup", type=int, default=64)
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY", 2)))
    parser.add_argument("--server-dir", default=str(_common.REPO), help="code gunicorn runs")
    parser.add_argument("--no-statements", action="store_true")
    parser.add_argument(
        "--no-loop", action="store_true", help="parts 1 and 2 only (a short run on a busy box)"
    )
    parser.add_argument("--sql", action="store_true", help="print every statement")
    parser.add_argument("--json", help="also write raw results here")
    args = parser.parse_args()

    _common.django_setup()
    server_dir = Path(args.server_dir).resolve()
    _common.print_header("hot_path: next / submit / skip / review lease")
    revision = subprocess.run(
        ["git", "-C", str(server_dir), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    print(
        f"server code: {server_dir.name} @ {revision}; gunicorn {args.workers} sync workers "
        f"(Procfile); cache {os.environ['CACHE_URL']}; {args.items:,} items, overlap "
        f"{args.overlap}",
        flush=True,
    )
    texts = _common.texts()
    sql_counts = {}
    if not args.no_statements and server_dir == _common.REPO:
        print("\nstatements per request (in process, steady state):")
        rows = []
        for name, r in statements(args, texts):
            sql_counts[name] = len(r["sql"])
            rows.append([name, r["status"], len(r["sql"]), len(r["redis"]), "; ".join(r["redis"])])
            if args.sql:
                print(f"\n-- {name}")
                for q in r["sql"]:
                    print("   ", q[:300])
        _common.print_table(["request", "status", "SQL", "Redis", "Redis calls"], rows)

    port = next_task.free_port()
    log_dir = Path(_common.bench_env()["VAR_DIR"]) / "bench"
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"gunicorn-hot-{port}.log"
    server = start_gunicorn(port, args.workers, server_dir, log)
    results = []
    try:
        for annotators in [int(x) for x in args.annotators.split(",")]:
            print(f"run: {annotators} annotators, load {_common.load_average()}", flush=True)
            results.append(run_annotators(args, annotators, port, server, log, texts))
    finally:
        server.terminate()
        server.wait(timeout=30)

    pct = next_task.pct
    print()
    sql = (
        f"{sql_counts['next (new lease)']} / {sql_counts['submit']}"
        if sql_counts
        else "(not counted)"
    )
    _common.print_table(
        [
            "annotators",
            "web CPU ms / next",
            "/ submit",
            "SQL / next / submit",
            "requests next / submit",
            "load before / after",
        ],
        [
            [
                r["annotators"],
                f"{r['next_cpu_ms']:.2f}",
                f"{r['submit_cpu_ms']:.2f}",
                sql,
                f"{r['requests']['next']} / {r['requests']['submit']}",
                f"{r['load_before']} / {r['load_after']}",
            ]
            for r in results
        ],
    )
    if args.no_loop:
        for r in results:
            print(
                f"{r['annotators']} annotators: {r['assignments']} assignments, "
                f"{r['duplicate_pairs']} duplicate pairs, {r['over_target']} over target"
            )
        print("targets: next <= 3 ms and submit <= 5 ms of web CPU")
        if any(r["duplicate_pairs"] or r["over_target"] for r in results):
            sys.exit("INVARIANT VIOLATED")
        return
    print()
    _common.print_table(
        [
            "annotators",
            "web CPU ms / next",
            "/ submit",
            "loop annotations/s",
            "next p50 / p99 ms",
            "in server p50 / p99",
            "submit p50 / p99",
            "CPU-s gunicorn / pg / loadgen",
            "errors",
            "load before / after",
        ],
        [
            [
                r["annotators"],
                f"{r['next_cpu_ms']:.2f}",
                f"{r['submit_cpu_ms']:.2f}",
                f"{r['submits'] / r['wall_s']:.0f}",
                f"{pct(r['next_ms'], 50):.1f} / {pct(r['next_ms'], 99):.1f}",
                f"{pct(r['server_next_ms'], 50):.1f} / {pct(r['server_next_ms'], 99):.1f}",
                f"{pct(r['submit_ms'], 50):.1f} / {pct(r['submit_ms'], 99):.1f}",
                f"{r['gunicorn_cpu_s']:.0f} / {r['postgres_cpu_s']:.0f} / {r['loadgen_cpu_s']:.0f}",
                (r["errors"] or "none") if not r["failed"] else f"{r['errors']} +{r['failed']}",
                f"{r['load_before']} / {r['load_after']}",
            ]
            for r in results
        ],
    )
    for r in results:
        print(
            f"{r['annotators']} annotators: {r['assignments']} assignments, {r['annotations']} "
            f"annotations, {r['duplicate_pairs']} duplicate pairs, {r['over_target']} over target; "
            f"lock waits in {r['lock_waiting']} of {r['lock_samples']} samples (0.1 s), "
            f"on rollup tables in {r['lock_on_rollups']}"
        )
        for statement, count in r["lock_statements"]:
            print(f"  waiting {count}x: {statement}")
    print(
        "targets: next <= 3 ms and submit <= 5 ms of web CPU; >= 150 annotations/s; "
        "next p99 <= 50 ms at 32 annotators"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(results, default=str))
    if any(r["duplicate_pairs"] or r["over_target"] for r in results):
        sys.exit("INVARIANT VIOLATED")


if __name__ == "__main__":
    main()
