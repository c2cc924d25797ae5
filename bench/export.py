"""Benchmark: stream exports through annotation.exports.export_lines.

    .venv/bin/python bench/export.py                      # 100k then 1M rows, both formats
    .venv/bin/python bench/export.py --rows 100000        # quick mode

Each size runs in its own child process (peak RSS, from getrusage, is a
high-water mark). The child fills a fresh project straight in SQL (INSERT ...
SELECT generate_series): N done items, one submitted assignment and one
annotation per item (32 annotators), and one approved result per item; then
VACUUM ANALYZE. It times export_lines(project, fmt) for each --formats entry,
writing every line (UTF-8) to --out (default /dev/null). The project is
deleted afterwards unless --keep.

The application's export loops read value tuples (values_list) since the first
measurement, which built model objects per row; docs/BENCHMARKS.md has both.
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


def populate(fixture, rows: int, texts: list[str]) -> float:
    from django.db import connection

    project = fixture.project
    annotators = [u.pk for u in fixture.annotators]
    params = {
        "project": project.pk,
        "count": rows,
        "texts": texts,
        "n": len(texts),
        "annotators": annotators,
        "k": len(annotators),
    }
    start = time.perf_counter()
    with connection.cursor() as c:
        c.execute(
            """
            INSERT INTO annotation_item (project_id, external_id, data, gold_answer, is_gold,
                metadata, priority, target_annotations, reserved_count, annotation_count,
                status, token_count, created_at, updated_at)
            SELECT %(project)s, 'e-' || g, jsonb_build_object('text', t.texts[1 + g %% t.n]),
                   NULL, false, '{}'::jsonb, 0, 1, 1, 1, 'done',
                   char_length(t.texts[1 + g %% t.n]), now(), now()
            FROM generate_series(0, %(count)s - 1) AS g,
                 (SELECT %(texts)s::text[] AS texts, %(n)s::int AS n) AS t
            """,
            params,
        )
        c.execute(
            """
            INSERT INTO annotation_assignment (project_id, item_id, annotator_id, status,
                leased_at, expires_at, finished_at)
            SELECT %(project)s, i.id, (%(annotators)s::bigint[])[1 + i.id %% %(k)s],
                   'submitted', now() - interval '10 minutes', now() + interval '5 minutes',
                   now()
            FROM annotation_item AS i WHERE i.project_id = %(project)s ORDER BY i.id
            """,
            params,
        )
        c.execute(
            """
            INSERT INTO annotation_annotation (project_id, item_id, annotator_id, assignment_id,
                answer, status, gold_correct, time_spent_ms, item_tokens, answer_tokens,
                created_at)
            SELECT %(project)s, a.item_id, a.annotator_id, a.id,
                   jsonb_build_object('label', CASE WHEN a.id %% 3 = 0 THEN 'negative'
                                                    ELSE 'positive' END),
                   'submitted', NULL, 1000 + a.id %% 9000, 20, 0, now()
            FROM annotation_assignment AS a WHERE a.project_id = %(project)s ORDER BY a.id
            """,
            params,
        )
        c.execute(
            """
            INSERT INTO annotation_itemresult (item_id, project_id, answer, confidence, method,
                agreement, approved, reviewed_by_id, provenance, updated_at)
            SELECT an.item_id, %(project)s, an.answer, 1.0, 'single', NULL, true, NULL,
                   jsonb_build_object('annotations', jsonb_build_array(an.id),
                                      'annotators', jsonb_build_array(an.annotator_id)),
                   now()
            FROM annotation_annotation AS an WHERE an.project_id = %(project)s ORDER BY an.id
            """,
            params,
        )
    _common.vacuum_analyze(
        "annotation_item", "annotation_assignment", "annotation_annotation", "annotation_itemresult"
    )
    return time.perf_counter() - start


def child(rows: int, formats: list[str], out: str, keep: bool) -> dict:
    _common.django_setup()
    from annotation.exports import export_lines

    fixture = _common.Fixture("export", annotators=32)
    result = {"rows": rows, "runs": []}
    try:
        result["fill_s"] = populate(fixture, rows, _common.texts())
        result["baseline_rss"] = _common.peak_rss_mib()
        jobs = [(fmt, lambda fmt=fmt: export_lines(fixture.project, fmt)) for fmt in formats]
        for name, lines in jobs:
            count = size = 0
            start = time.perf_counter()
            first = None
            with open(out, "wb", buffering=1 << 20) as f:
                for line in lines():
                    if first is None:
                        first = time.perf_counter() - start
                    data = line.encode()
                    f.write(data)
                    count += 1
                    size += len(data)
            seconds = time.perf_counter() - start
            result["runs"].append(
                {
                    "format": name,
                    "lines": count,
                    "mib": size / 2**20,
                    "seconds": seconds,
                    "first_line_s": first,
                    "peak_rss": _common.peak_rss_mib(),
                }
            )
    finally:
        if not keep:
            fixture.cleanup()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rows", default="100000,1000000", help="comma-separated sizes")
    parser.add_argument(
        "--formats", default="annotations_jsonl,results_jsonl", help="comma-separated formats"
    )
    parser.add_argument("--out", default="/dev/null", help="where the lines go")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    formats = args.formats.split(",")

    if args.child:
        print(json.dumps(child(args.child, formats, args.out, args.keep)))
        return

    _common.print_header("export: export_lines(project, fmt) → " + args.out)
    print(f"texts: {_common.text_source()}", flush=True)
    results = []
    for rows in [int(r) for r in args.rows.split(",")]:
        print(f"load average before {rows:,} rows: {_common.load_average()}", flush=True)
        command = [sys.executable, __file__, "--child", str(rows), "--formats", args.formats]
        command += ["--out", args.out] + (["--keep"] if args.keep else [])
        out = subprocess.run(
            command, env=_common.bench_env(), capture_output=True, text=True, cwd=_common.REPO
        )
        if out.returncode:
            sys.exit(out.stderr)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(
            f"filled {rows:,} items + assignments + annotations + results in "
            f"{results[-1]['fill_s']:.0f} s; load average after: {_common.load_average()}",
            flush=True,
        )
    print()
    _common.print_table(
        [
            "rows",
            "format",
            "lines",
            "MiB",
            "seconds",
            "rows/s",
            "first line s",
            "RSS before MiB",
            "peak RSS MiB",
        ],
        [
            [
                f"{r['rows']:,}",
                run["format"],
                f"{run['lines']:,}",
                f"{run['mib']:.0f}",
                f"{run['seconds']:.1f}",
                f"{run['lines'] / run['seconds']:,.0f}",
                f"{run['first_line_s']:.2f}",
                f"{r['baseline_rss']:.0f}",
                f"{run['peak_rss']:.0f}",
            ]
            for r in results
            for run in r["runs"]
        ],
    )
    print("target: >= 50,000 rows/s, flat memory")


if __name__ == "__main__":
    main()
