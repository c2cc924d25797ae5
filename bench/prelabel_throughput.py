"""Pre-labeling throughput against a backend with latency L and concurrency limit C.

Starts bench/latency_server.py in its own process, makes a project of N items
in the bench database, and runs the real worker code path
(compute.services.prelabel_chunk_run: each chunk a row claimed under a lease,
renewed from a thread, as the Celery chunk task does) in one or more worker
processes. Reports items/s against the ceiling C/L, and the
worker CPU time per item; then the same with one request at a time (what
tools that call a model per item synchronously do).

    .venv/bin/python bench/prelabel_throughput.py --items 20000 \
        --configs 0.05:5,0.05:25,0.02:10 --chunk 1000 --workers 2
"""

import argparse
import multiprocessing
import os
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, timeout: float = 20) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit(f"server at {url} did not start")


def worker(chunk_ids: list[int], queue) -> None:
    _common.django_setup()
    # A forked child must not use the parent's pooled sockets (as a Celery
    # prefork child does not: see config.celery_app).
    from config.celery_app import _forget_inherited_connections

    _forget_inherited_connections()
    from compute.services import prelabel_chunk_run

    start = resource.getrusage(resource.RUSAGE_SELF)
    for chunk_id in chunk_ids:
        prelabel_chunk_run(chunk_id=chunk_id)
    end = resource.getrusage(resource.RUSAGE_SELF)
    queue.put((end.ru_utime - start.ru_utime) + (end.ru_stime - start.ru_stime))


def measure(fixture, item_ids, *, latency, concurrency, chunk, workers, client_concurrency):
    from compute.models import Backend, InferenceCall, Prediction, PrelabelChunk, PrelabelRun
    from compute.services import prompt_template_create

    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).with_name("latency_server.py")),
            "--port",
            str(port),
            "--latency",
            str(latency),
            "--concurrency",
            str(concurrency),
        ]
    )
    try:
        wait_for(f"http://127.0.0.1:{port}/v1/models")
        backend = Backend.objects.create(
            organization=fixture.workforce,
            name=f"{fixture.tag}-{port}",
            kind="vllm",
            base_url=f"http://127.0.0.1:{port}/v1",
            models_served=["bench"],
            max_concurrency=client_concurrency,
        )
        prompt = fixture.project.prompts.first() or prompt_template_create(
            project=fixture.project, created_by=fixture.owner
        )
        run = PrelabelRun.objects.create(
            project=fixture.project,
            created_by=fixture.owner,
            prompt=prompt,
            status="running",
            backend=backend,
            total_items=len(item_ids),
        )
        chunks = PrelabelChunk.objects.bulk_create(
            PrelabelChunk(run=run, item_ids=item_ids[i : i + chunk])
            for i in range(0, len(item_ids), chunk)
        )
        chunk_ids = [c.pk for c in chunks]
        shares = [chunk_ids[w::workers] for w in range(workers)]
        queue = multiprocessing.get_context("fork").Queue()
        from django.db import connections

        connections.close_all()
        started = time.perf_counter()
        processes = [
            multiprocessing.get_context("fork").Process(target=worker, args=(share, queue))
            for share in shares
        ]
        for process in processes:
            process.start()
        for process in processes:
            process.join()
        elapsed = time.perf_counter() - started
        cpu = sum(queue.get() for _ in processes)
        predicted = Prediction.objects.filter(run=run).count()
        calls = InferenceCall.objects.filter(run=run).count()
        backend.delete()
        ceiling = concurrency / latency
        rate = predicted / elapsed
        return {
            "L (ms)": int(latency * 1000),
            "C": concurrency,
            "ceiling C/L": f"{ceiling:.0f}/s",
            "client in flight": client_concurrency,
            "workers": workers,
            "chunk": chunk,
            "items": len(item_ids),
            "predicted": predicted,
            "calls": calls,
            "items/s": f"{rate:.0f}",
            "of ceiling": f"{100 * rate / ceiling:.1f}%",
            "worker CPU/item": f"{1000 * cpu / max(predicted, 1):.2f} ms",
        }
    finally:
        server.terminate()
        server.wait(timeout=10)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument(
        "--configs",
        default="0.05:5,0.05:25,0.02:10",
        help="comma-separated latency_seconds:concurrency pairs",
    )
    parser.add_argument("--chunk", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--sequential-items",
        type=int,
        default=300,
        help="items for the one-request-at-a-time comparison",
    )
    args = parser.parse_args()
    _common.django_setup()
    _common.print_header("Pre-labeling throughput")
    from annotation.models import Item

    rows = []
    for pair in args.configs.split(","):
        latency, concurrency = float(pair.split(":")[0]), int(pair.split(":")[1])
        for mode in ("concurrent", "sequential"):
            fixture = _common.Fixture(f"prelabel-{mode}")
            count = args.items if mode == "concurrent" else args.sequential_items
            texts = _common.texts()
            Item.objects.bulk_create(
                [
                    Item(
                        project=fixture.project,
                        external_id=f"b{n}",
                        data={"text": texts[n % len(texts)]},
                        target_annotations=1,
                        token_count=len(texts[n % len(texts)]),
                    )
                    for n in range(count)
                ],
                batch_size=5000,
            )
            ids = list(
                Item.objects.filter(project=fixture.project)
                .order_by("pk")
                .values_list("pk", flat=True)
            )
            try:
                rows.append(
                    measure(
                        fixture,
                        ids,
                        latency=latency,
                        concurrency=concurrency,
                        chunk=args.chunk if mode == "concurrent" else 50,
                        workers=args.workers if mode == "concurrent" else 1,
                        client_concurrency=concurrency if mode == "concurrent" else 1,
                    )
                )
            finally:
                from django.db import connection

                with connection.cursor() as c:
                    c.execute(
                        "DELETE FROM compute_prelabelchunk WHERE run_id IN "
                        "(SELECT id FROM compute_prelabelrun WHERE project_id = %s)",
                        [fixture.project.pk],
                    )
                    for table in (
                        "compute_inferencecall",
                        "compute_prediction",
                        "compute_prelabelrun",
                        "compute_prompttemplate",
                    ):
                        c.execute(
                            f"DELETE FROM {table} WHERE project_id = %s",
                            [fixture.project.pk],
                        )
                fixture.cleanup()
            print(rows[-1], flush=True)
    print()
    _common.print_table(list(rows[0]), [list(r.values()) for r in rows])
    print(
        f"\nload average after: {_common.load_average()}; peak RSS of the parent "
        f"{_common.peak_rss_mib():.0f} MiB; pid {os.getpid()}"
    )


if __name__ == "__main__":
    main()
