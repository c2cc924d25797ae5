"""Benchmark: officials' dashboard and KPI API latency over a large ledger.

    .venv/bin/python bench/ledger_scale.py --skip-posting   # first: 10M ledger rows
    .venv/bin/python bench/kpi_latency.py [--requests 200] [--workers 2]

Runs against tokenworks_bench as bench/ledger_scale.py left it (10,000,000
ledger rows with their rollups). Starts gunicorn (the production server) with
the bench settings, logs in over real HTTP as a province official, a city
official and platform staff, and times sequential requests from a client in
this process: the dashboard page, the REST report (bearer token) and the
CSV/XLSX/PDF files, each for a 12-month period with a comparison period (so
24 months of rollups are read), after a warm-up. Reports p50/p95/p99/max.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

PASSWORD = "bench-only-password"  # noqa: S105 (the bench database only)
PORT = 8123


def ensure_people() -> dict:
    """Offices for Guizhou and Guiyang, their officials, a token, and platform staff."""
    from tenants.models import Membership, Organization, Region, User
    from tenants.services import api_token_create

    people = {}
    offices = {}
    for slug, code in (("bench-guizhou-office", "520000"), ("bench-guiyang-office", "520100")):
        offices[code], _ = Organization.objects.get_or_create(
            slug=slug,
            defaults={
                "name": slug,
                "kind": Organization.Kind.GOVERNMENT,
                "region": Region.objects.get(code=code),
            },
        )
    for username, code, staff in (
        ("bench-official-province", "520000", False),
        ("bench-official-city", "520100", False),
        ("bench-staff", None, True),
    ):
        user = User.objects.filter(username=username).first()
        if user is None:
            user = User.objects.create_user(
                username=username, password=PASSWORD, is_staff=staff, is_superuser=staff
            )
        if code:
            Membership.objects.get_or_create(
                user=user, organization=offices[code], role=Membership.Role.OFFICIAL
            )
        people[username] = user
    # The official makes the office's token, as on /tokens/: it may act as an
    # official there and nothing more.
    _, secret = api_token_create(
        organization=offices["520000"],
        created_by=people["bench-official-province"],
        name=f"bench {time.time():.0f}",
        roles=[Membership.Role.OFFICIAL],
    )
    people["token"] = secret
    return people


def data_period() -> tuple[str, str]:
    from django.db.models import Max, Min

    from valuechain.models import RegionMonthRollup

    span = RegionMonthRollup.objects.aggregate(first=Min("month"), last=Max("month"))
    if span["last"] is None:
        sys.exit("the bench ledger is empty: run bench/ledger_scale.py first")
    last = span["last"]
    from valuechain.selectors import month_add

    return f"{month_add(last, -11):%Y-%m}", f"{last:%Y-%m}"


def start_server(workers: int) -> subprocess.Popen:
    # Pages name their static files through the manifest, as in production.
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"],
        cwd=_common.REPO,
        env=_common.bench_env(),
        check=True,
    )
    return _common.gunicorn_start(PORT, workers=workers, options=("--log-level", "warning"))


def session(username: str) -> httpx.Client:
    client = httpx.Client(base_url=f"http://127.0.0.1:{PORT}", timeout=60)
    client.get("/accounts/login/")
    response = client.post(
        "/accounts/login/",
        data={
            "username": username,
            "password": PASSWORD,
            "csrfmiddlewaretoken": client.cookies["csrftoken"],
        },
        headers={"Referer": f"http://127.0.0.1:{PORT}/accounts/login/"},
    )
    if "sessionid" not in client.cookies:
        sys.exit(f"could not log in as {username}: {response.status_code}")
    return client


def timed(client: httpx.Client, url: str, requests: int, warmup: int) -> dict:
    for _ in range(warmup):
        client.get(url).raise_for_status()
    samples = []
    for _ in range(requests):
        started = time.perf_counter()
        response = client.get(url)
        samples.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
    samples.sort()
    return {
        "p50": statistics.median(samples),
        "p95": samples[int(0.95 * (len(samples) - 1))],
        "p99": samples[int(0.99 * (len(samples) - 1))],
        "max": samples[-1],
        "bytes": len(response.content),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--file-requests", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    _common.django_setup()
    from valuechain.models import LedgerEntry, RegionMonthRollup

    people = ensure_people()
    start, end = data_period()
    ledger_rows = LedgerEntry.objects.count()
    rollup_rows = RegionMonthRollup.objects.count()
    query = f"start={start}&end={end}&compare=previous"

    server = start_server(args.workers)
    try:
        province = session("bench-official-province")
        city = session("bench-official-city")
        staff = session("bench-staff")
        api = httpx.Client(
            base_url=f"http://127.0.0.1:{PORT}",
            headers={"Authorization": f"Bearer {people['token']}"},
            timeout=60,
        )
        scenarios = [
            ("dashboard, province (Guizhou)", province, f"/reports/520000/?{query}", False),
            ("dashboard, city (Guiyang)", city, f"/reports/520100/?{query}", False),
            ("dashboard, country (staff)", staff, f"/reports/CN/?{query}", False),
            (
                "REST report, province (token)",
                api,
                f"/api/v1/reports/regions/520000/?{query}",
                False,
            ),
            ("REST report, city (token)", api, f"/api/v1/reports/regions/520100/?{query}", False),
            ("REST regions list (token)", api, "/api/v1/reports/regions/", False),
            ("CSV, province", province, f"/reports/520000/report.csv?{query}", True),
            ("XLSX, province", province, f"/reports/520000/report.xlsx?{query}", True),
            ("PDF, province", province, f"/reports/520000/report.pdf?{query}", True),
        ]
        rows = []
        for name, client, url, is_file in scenarios:
            count = args.file_requests if is_file else args.requests
            figures = timed(client, url, count, args.warmup)
            rows.append(
                [
                    name,
                    count,
                    f"{figures['p50']:.1f}",
                    f"{figures['p95']:.1f}",
                    f"{figures['p99']:.1f}",
                    f"{figures['max']:.1f}",
                    f"{figures['bytes']:,}",
                ]
            )
    finally:
        server.terminate()
        server.wait(timeout=10)

    _common.print_header("KPI dashboard and API latency")
    print(
        f"ledger rows: {ledger_rows:,}; region-month rollup rows: {rollup_rows:,}; "
        f"period {start} to {end} compared with the previous 12 months; "
        f"gunicorn workers: {args.workers}; client: sequential, same machine"
    )
    _common.print_table(["request", "n", "p50 ms", "p95 ms", "p99 ms", "max ms", "bytes"], rows)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
