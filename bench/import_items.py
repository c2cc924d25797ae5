"""Benchmark: import JSONL items end to end, the way the Celery import job does.

    .venv/bin/python bench/import_items.py                   # 100k then 1M rows
    .venv/bin/python bench/import_items.py --rows 100000     # quick mode

Each size runs in its own child process, so peak RSS (getrusage ru_maxrss, a
high-water mark) is that size's alone. The JSONL file is generated first (not
timed, cached under VAR_DIR) from ../shared/data/waimai_10k.csv reviews when
present; every --gold-every'th row carries a gold answer. The timed path is
import_job_create(..., enqueue=False) (stores the upload) + import_job_run (read,
validate, COPY into the UNLOGGED staging table on a thread of its own, overlapping
the reading, then one merge transaction).
A fresh project is made for each size and deleted afterwards (--keep keeps it).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common


def make_file(rows: int, seed: int, gold_every: int) -> Path:
    directory = Path(_common.bench_env()["VAR_DIR"]) / "bench"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"import-{rows}-s{seed}-g{gold_every}.jsonl"
    if path.exists():
        return path
    texts = _common.texts(seed)
    labels = ("positive", "negative")
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for n in range(rows):
            row = {"external_id": f"s{seed}-{n:08d}", "text": texts[(n * 7 + seed) % len(texts)]}
            if gold_every and n % gold_every == 0:
                row["gold"] = labels[n % 2]
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.rename(path)
    return path


def child(rows: int, path: Path, keep: bool) -> dict:
    _common.django_setup()
    from django.core.files import File
    from django.db import connection

    from annotation import imports
    from annotation.models import ImportJob, Item

    baseline = _common.peak_rss_mib()
    fixture = _common.Fixture("import")
    project = fixture.project

    # Time the COPY (the wait on PostgreSQL, on the staging thread) apart from the
    # staging phase as a whole: wrap the COPY function for this process only. The
    # two overlap, so the COPY is not a part of the phase to subtract.
    copy_seconds = [0.0]
    real_copy_in = imports._copy_in

    def timed_copy_in(text):
        start = time.perf_counter()
        real_copy_in(text)
        copy_seconds[0] += time.perf_counter() - start

    imports._copy_in = timed_copy_in
    marks = {}

    def on_progress(job):
        now = time.perf_counter()
        if job.status == ImportJob.Status.RUNNING:
            marks["staged"] = now
            marks["rss_staging"] = _common.peak_rss_mib()

    try:
        t0 = time.perf_counter()
        with path.open("rb") as f:
            job = imports.import_job_create(
                project=project,
                created_by=fixture.owner,
                upload=File(f, name=path.name),
                filename=path.name,
                enqueue=False,
            )
        t1 = time.perf_counter()
        job = imports.import_job_run(job_id=job.pk, on_progress=on_progress)
        t2 = time.perf_counter()
        assert job.status == ImportJob.Status.SUCCEEDED, (job.status, job.error)
        items = Item.objects.filter(project=project).count()
        gold = Item.objects.filter(project=project, is_gold=True).count()
        with connection.cursor() as c:
            c.execute("SELECT pg_size_pretty(pg_total_relation_size('annotation_item'))")
            size = c.fetchone()[0]
        staged = marks.get("staged", t2)
        result = {
            "rows": rows,
            "file_mib": round(path.stat().st_size / 2**20, 1),
            "items": items,
            "gold": gold,
            "created": job.created_count,
            "total_s": t2 - t0,
            "store_s": t1 - t0,
            "stage_s": staged - t1,
            "copy_s": copy_seconds[0],
            "merge_s": t2 - staged,
            "baseline_rss": baseline,
            "rss_staging": marks.get("rss_staging", 0.0),
            "peak_rss": _common.peak_rss_mib(),
            "item_table": size,
        }
    finally:
        if not keep:
            for stored in ImportJob.objects.filter(project=project):
                stored.file.delete(save=False)
            fixture.cleanup()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--rows", default="100000,1000000", help="comma-separated sizes (default 100000,1000000)"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--gold-every", type=int, default=50, help="one gold row in N (0: none)")
    parser.add_argument("--keep", action="store_true", help="keep the projects for inspection")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--file", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        print(json.dumps(child(args.child, Path(args.file), args.keep)))
        return

    _common.print_header("import_items: JSONL → items through import_job_create + import_job_run")
    print(f"texts: {_common.text_source()}, gold every {args.gold_every} rows, seed {args.seed}")
    results = []
    for rows in [int(r) for r in args.rows.split(",")]:
        path = make_file(rows, args.seed, args.gold_every)
        print(f"load average before {rows:,} rows: {_common.load_average()}", flush=True)
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(rows), "--file", str(path)]
            + (["--keep"] if args.keep else []),
            env=_common.bench_env(),
            capture_output=True,
            text=True,
            cwd=_common.REPO,
        )
        if out.returncode:
            sys.exit(out.stderr)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"load average after: {_common.load_average()}", flush=True)

    print()
    _common.print_table(
        [
            "rows",
            "file MiB",
            "items/s end to end",
            "total s",
            "store upload s",
            "read+validate+COPY s",
            "COPY s (overlapped)",
            "merge s",
            "RSS after setup MiB",
            "peak RSS MiB",
        ],
        [
            [
                f"{r['rows']:,}",
                r["file_mib"],
                f"{r['rows'] / r['total_s']:,.0f}",
                f"{r['total_s']:.1f}",
                f"{r['store_s']:.2f}",
                f"{r['stage_s']:.1f}",
                f"{r['copy_s']:.1f}",
                f"{r['merge_s']:.1f}",
                f"{r['baseline_rss']:.0f}",
                f"{r['peak_rss']:.0f}",
            ]
            for r in results
        ],
    )
    for r in results:
        print(
            f"{r['rows']:,} rows: {r['items']:,} items ({r['gold']:,} gold) created; "
            f"read+validate+COPY phase {r['rows'] / r['stage_s']:,.0f} rows/s, "
            f"merge {r['rows'] / r['merge_s']:,.0f} rows/s"
        )
    print("target: >= 50,000 items/s end to end, flat memory")


if __name__ == "__main__":
    main()
