"""Benchmark: "next task" over HTTP, with 32 concurrent annotators.

    .venv/bin/python bench/next_task.py     # 1M and 10k items, think 0 and 500 ms
    .venv/bin/python bench/next_task.py --items 10000 --think-ms 0 --leases 2000   # quick

For each (project size, think time) a fresh classification project is filled
straight in SQL (INSERT ... SELECT generate_series, then VACUUM ANALYZE), with
--annotators annotators (role annotator in the project's workforce centre),
logged in by writing their sessions directly. gunicorn serves the app as a
subprocess; the load generator (asyncio + httpx, one client and cookie jar per
annotator, on the same machine) loops POST .../next/ -> think -> POST
.../submit/ until --leases leases were made (after a short warm-up that is not
counted). Latency is measured in the client (what an annotator waits) and in
gunicorn's access log (%(D)s, time inside the server). Afterwards SQL checks
that no (item, annotator) pair has two assignments and no item has more
annotations than its target. --explain prints EXPLAIN (ANALYZE, BUFFERS) of the
lease statement (annotation.services._LEASE_SQL) before and after the load;
that run is rolled back.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

ANSWER = {"answer": {"label": "positive"}, "time_spent_ms": 1000}


# --- data -----------------------------------------------------------------------


def populate(project, count: int, texts: list[str]) -> float:
    from django.db import connection

    start = time.perf_counter()
    with connection.cursor() as c:
        c.execute(
            """
            INSERT INTO annotation_item (project_id, external_id, data, gold_answer, is_gold,
                metadata, priority, target_annotations, reserved_count, annotation_count,
                status, token_count, created_at, updated_at)
            SELECT %(project)s, 'b-' || g, jsonb_build_object('text', t.texts[1 + g %% t.n]),
                   NULL, false, '{}'::jsonb, 0, %(overlap)s, 0, 0, 'open',
                   char_length(t.texts[1 + g %% t.n]), now(), now()
            FROM generate_series(0, %(count)s - 1) AS g,
                 (SELECT %(texts)s::text[] AS texts, %(n)s::int AS n) AS t
            """,
            {
                "project": project.pk,
                "overlap": project.overlap,
                "count": count,
                "texts": texts,
                "n": len(texts),
            },
        )
    _common.vacuum_analyze("annotation_item", "annotation_assignment", "annotation_annotation")
    return time.perf_counter() - start


def sessions_for(users, backend: str | None = None) -> list[tuple[str, str]]:
    """(session key, CSRF token) per user, made as django.contrib.auth.login would.

    backend: the one the session names; by default the one a login here would
    name (the first that loads users, as Django's test client picks). A server
    run from another checkout needs one its settings list.
    """
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore
    from django.middleware.csrf import _get_new_csrf_string
    from django.utils.module_loading import import_string

    loaders = [p for p in settings.AUTHENTICATION_BACKENDS if hasattr(import_string(p), "get_user")]
    backend = backend or loaders[0]
    made = []
    for user in users:
        session = SessionStore()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = backend
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.create()
        made.append((session.session_key, _get_new_csrf_string()))
    return made


def delete_sessions(keys) -> None:
    from django.contrib.sessions.models import Session

    Session.objects.filter(session_key__in=list(keys)).delete()


def lease_explain(project, annotator) -> str:
    from django.db import connection, transaction
    from django.utils import timezone

    from annotation import services

    now = timezone.now()
    with transaction.atomic(), connection.cursor() as c:
        c.execute(
            "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + services._LEASE_SQL,
            {
                "project": project.pk,
                "annotator": annotator.pk,
                "ratio": project.gold_ratio,
                "all_gold": project.gold_ratio >= 1,
                "probation": services.PROBATION_GOLD,
                "now": now,
                "expires": now,
            },
        )
        plan = "\n".join(row[0] for row in c.fetchall())
        transaction.set_rollback(True)
    return plan


def verify(project) -> dict:
    from django.db import connection

    with connection.cursor() as c:
        c.execute(
            """SELECT count(*) FROM (SELECT item_id, annotator_id FROM annotation_assignment
               WHERE project_id = %s GROUP BY 1, 2 HAVING count(*) > 1) AS x""",
            [project.pk],
        )
        duplicate_pairs = c.fetchone()[0]
        c.execute(
            """SELECT count(*) FROM annotation_item AS i
               JOIN (SELECT item_id, count(*) AS n FROM annotation_annotation
                     WHERE project_id = %s GROUP BY item_id) AS a ON a.item_id = i.id
               WHERE a.n > i.target_annotations OR i.annotation_count > i.target_annotations
                  OR i.reserved_count > i.target_annotations""",
            [project.pk],
        )
        over_target = c.fetchone()[0]
        c.execute(
            """SELECT count(*), count(*) FILTER (WHERE status = 'submitted'),
                      count(DISTINCT item_id)
               FROM annotation_assignment WHERE project_id = %s""",
            [project.pk],
        )
        assignments, submitted, items = c.fetchone()
        c.execute("SELECT count(*) FROM annotation_annotation WHERE project_id = %s", [project.pk])
        annotations = c.fetchone()[0]
    return {
        "duplicate_pairs": duplicate_pairs,
        "over_target": over_target,
        "assignments": assignments,
        "submitted": submitted,
        "items_touched": items,
        "annotations": annotations,
    }


# --- server ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gunicorn(port: int, workers: int, threads: int, log: Path) -> subprocess.Popen:
    return _common.gunicorn_start(
        port,
        workers=workers,
        options=(
            "--worker-class",
            "gthread",
            "--threads",
            str(threads),
            "--keep-alive",
            "5",
            "--access-logfile",
            str(log),
            "--access-logformat",
            "%(m)s %(U)s %(s)s %(D)s",
            "--error-logfile",
            str(log.with_suffix(".err")),
        ),
    )


def _cpu_ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    except (FileNotFoundError, ProcessLookupError):
        return 0


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def _postgres_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


def _machine_busy() -> tuple[int, int]:
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


class CpuMeter:
    """CPU seconds of the gunicorn tree, PostgreSQL and this process over a run."""

    def __init__(self, server_pid: int):
        self.server_pid = server_pid
        self.tick = os.sysconf("SC_CLK_TCK")

    def _sample(self):
        gunicorn = _cpu_ticks(self.server_pid) + sum(
            _cpu_ticks(p) for p in _children(self.server_pid)
        )
        postgres = sum(_cpu_ticks(p) for p in _postgres_pids())
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return gunicorn, postgres, usage.ru_utime + usage.ru_stime, _machine_busy()

    def start(self):
        self.before = self._sample()

    def stop(self) -> dict:
        after = self._sample()
        g0, p0, s0, (b0, t0) = self.before
        g1, p1, s1, (b1, t1) = after
        return {
            "gunicorn_cpu_s": (g1 - g0) / self.tick,
            "postgres_cpu_s": (p1 - p0) / self.tick,
            "loadgen_cpu_s": s1 - s0,
            "machine_busy": (b1 - b0) / max(t1 - t0, 1),
        }


# --- load -----------------------------------------------------------------------


class State:
    def __init__(self, target: int):
        self.target = target
        self.leases = 0
        self.next_ms: list[float] = []
        self.submit_ms: list[float] = []
        self.errors: dict[str, int] = {}
        self.exhausted = 0


async def annotator_loop(client, project_id: int, state: State, think: float) -> None:
    while state.leases < state.target:
        state.leases += 1
        start = time.perf_counter()
        response = await client.post(f"/api/v1/workspace/projects/{project_id}/next/")
        elapsed = (time.perf_counter() - start) * 1000
        if response.status_code == 204:
            state.leases -= 1
            state.exhausted += 1
            return
        if response.status_code != 200:
            state.leases -= 1
            key = f"next {response.status_code}"
            state.errors[key] = state.errors.get(key, 0) + 1
            if state.errors[key] > 100:
                raise RuntimeError(f"{key}: {response.text[:300]}")
            continue
        state.next_ms.append(elapsed)
        assignment = response.json()["id"]
        if think:
            await asyncio.sleep(think)
        start = time.perf_counter()
        response = await client.post(
            f"/api/v1/workspace/assignments/{assignment}/submit/", json=ANSWER
        )
        state.submit_ms.append((time.perf_counter() - start) * 1000)
        if response.status_code not in (200, 201):
            key = f"submit {response.status_code}"
            state.errors[key] = state.errors.get(key, 0) + 1
            if state.errors[key] > 100:
                raise RuntimeError(f"{key}: {response.text[:300]}")


async def drive(port: int, project_id: int, sessions, leases: int, think: float) -> State:
    import httpx

    clients = [
        httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}",
            cookies={"sessionid": key, "csrftoken": token},
            headers={"X-CSRFToken": token, "Accept": "application/json"},
            timeout=60,
        )
        for key, token in sessions
    ]
    state = State(leases)
    try:
        await asyncio.gather(*(annotator_loop(c, project_id, state, think) for c in clients))
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
    return state


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


def server_latencies(log: Path, offset: int, project_id: int) -> list[float]:
    path = f"/api/v1/workspace/projects/{project_id}/next/"
    found = []
    with log.open() as f:
        f.seek(offset)
        for line in f:
            parts = line.split()
            if len(parts) == 4 and parts[1] == path and parts[2] == "200":
                found.append(int(parts[3]) / 1000)
    return found


# --- main -----------------------------------------------------------------------


def run_one(args, items: int, think_ms: int, port: int, server, log: Path, texts) -> dict:
    fixture = _common.Fixture(f"next{items}", overlap=args.overlap, annotators=args.annotators)
    project = fixture.project
    sessions = []
    try:
        fill_s = populate(project, items, texts)
        sessions = sessions_for(fixture.annotators)
        result = {"items": items, "think_ms": think_ms, "fill_s": fill_s}
        if args.explain:
            result["explain_before"] = lease_explain(project, fixture.annotators[0])
        # Warm-up (not counted): every worker thread opens its connection,
        # every annotator's client its keep-alive socket.
        asyncio.run(drive(port, project.pk, sessions, args.warmup, 0))
        offset = log.stat().st_size
        load_before = _common.load_average()
        meter = CpuMeter(server.pid)
        meter.start()
        start = time.perf_counter()
        state = asyncio.run(drive(port, project.pk, sessions, args.leases, think_ms / 1000))
        wall = time.perf_counter() - start
        result.update(meter.stop())
        time.sleep(0.5)  # let gunicorn flush its access log
        result.update(
            {
                "load_before": load_before,
                "load_after": _common.load_average(),
                "wall_s": wall,
                "leases": len(state.next_ms),
                "errors": state.errors,
                "exhausted": state.exhausted,
                "next_ms": state.next_ms,
                "submit_ms": state.submit_ms,
                "server_next_ms": server_latencies(log, offset, project.pk),
            }
        )
        result.update(verify(project))
        if args.explain:
            result["explain_after"] = lease_explain(project, fixture.annotators[0])
    finally:
        delete_sessions(key for key, _ in sessions)
        if not args.keep:
            fixture.cleanup()
    return result


def summarize(r: dict) -> list:
    n, s, sv = r["next_ms"], r["submit_ms"], r["server_next_ms"]
    return [
        f"{r['items']:,}",
        r["think_ms"],
        f"{r['leases']:,}",
        f"{pct(n, 50):.1f}",
        f"{pct(n, 95):.1f}",
        f"{pct(n, 99):.1f}",
        f"{max(n):.1f}",
        f"{pct(sv, 50):.1f} / {pct(sv, 99):.1f}",
        f"{pct(s, 50):.1f} / {pct(s, 99):.1f}",
        f"{r['leases'] / r['wall_s']:.0f}",
        f"{2 * r['leases'] / r['wall_s']:.0f}",
        f"{r['machine_busy'] * 100:.0f}% (g {r['gunicorn_cpu_s']:.0f} / pg "
        f"{r['postgres_cpu_s']:.0f} / lg {r['loadgen_cpu_s']:.0f})",
        r["load_before"],
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--items", default="1000000,10000", help="comma-separated project sizes")
    parser.add_argument("--think-ms", default="0,500", help="comma-separated think times (ms)")
    parser.add_argument("--annotators", type=int, default=32)
    parser.add_argument("--leases", type=int, default=10_000, help="leases per run")
    parser.add_argument("--warmup", type=int, default=64, help="uncounted leases first")
    parser.add_argument("--overlap", type=int, default=3, help="annotators per item")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=4, help="gunicorn gthread threads")
    parser.add_argument("--explain", action="store_true", help="EXPLAIN the lease statement")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the projects")
    parser.add_argument("--json", help="also write raw results here")
    args = parser.parse_args()

    _common.django_setup()
    _common.print_header("next_task: POST next/ + submit/ over HTTP")
    print(
        f"gunicorn: {args.workers} workers x {args.threads} gthread threads; "
        f"{args.annotators} annotators; overlap {args.overlap}; {args.leases:,} leases per run "
        f"after {args.warmup} warm-up leases; texts: {_common.text_source()}",
        flush=True,
    )
    texts = _common.texts(args.seed)
    port = free_port()
    log_dir = Path(_common.bench_env()["VAR_DIR"]) / "bench"
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"gunicorn-{port}.log"
    server = start_gunicorn(port, args.workers, args.threads, log)
    results = []
    try:
        for items in [int(x) for x in args.items.split(",")]:
            for think_ms in [int(x) for x in args.think_ms.split(",")]:
                print(
                    f"run: {items:,} items, think {think_ms} ms, load {_common.load_average()}",
                    flush=True,
                )
                results.append(run_one(args, items, think_ms, port, server, log, texts))
                r = results[-1]
                print(
                    f"  filled in {r['fill_s']:.1f} s; {r['leases']:,} leases in "
                    f"{r['wall_s']:.1f} s; errors {r['errors'] or 'none'}; "
                    f"204s {r['exhausted']}",
                    flush=True,
                )
    finally:
        server.terminate()
        server.wait(timeout=30)

    print()
    _common.print_table(
        [
            "items",
            "think ms",
            "leases",
            "next p50 ms",
            "p95",
            "p99",
            "max",
            "next in server p50/p99",
            "submit p50/p99",
            "leases/s",
            "req/s",
            "CPU busy (cpu-s: gunicorn/pg/loadgen)",
            "load avg before",
        ],
        [summarize(r) for r in results],
    )
    print()
    _common.print_table(
        [
            "items",
            "think ms",
            "assignments",
            "submitted",
            "annotations",
            "(item, annotator) pairs with >1 assignment",
            "items over target",
        ],
        [
            [
                f"{r['items']:,}",
                r["think_ms"],
                r["assignments"],
                r["submitted"],
                r["annotations"],
                r["duplicate_pairs"],
                r["over_target"],
            ]
            for r in results
        ],
    )
    for r in results:
        for key in ("explain_before", "explain_after"):
            if key in r:
                print(
                    f"\n{key.replace('_', ' ')} the run ({r['items']:,} items, "
                    f"think {r['think_ms']} ms):\n{r[key]}"
                )
    sizes = sorted({r["items"] for r in results})
    for think in sorted({r["think_ms"] for r in results}):
        p99 = {r["items"]: pct(r["next_ms"], 99) for r in results if r["think_ms"] == think}
        if len(sizes) > 1 and all(s in p99 for s in sizes):
            print(
                f"think {think} ms: p99 {sizes[-1]:,} items / {sizes[0]:,} items = "
                f"{p99[sizes[-1]] / p99[sizes[0]]:.2f}"
            )
    print("target: next p99 < 50 ms on 1,000,000 items, and the 10,000-item p99 within 1.5x")
    if args.json:
        Path(args.json).write_text(json.dumps(results, default=str))
    if any(r["duplicate_pairs"] or r["over_target"] for r in results):
        sys.exit("INVARIANT VIOLATED")


if __name__ == "__main__":
    main()
