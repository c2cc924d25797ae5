"""Shared set-up for the benchmarks in bench/: environment, machine facts, data.

Not a test module and not imported by the application. Every benchmark runs
against its own database (tokenworks_bench by default) and refuses to run
against the development database or a test database.
"""

from __future__ import annotations

import csv
import os
import platform as _platform_module  # noqa: F401  (stdlib, imported before sys.path changes)
import random
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

REPO = Path(__file__).resolve().parents[1]
WAIMAI = REPO.parent / "shared" / "data" / "waimai_10k.csv"

BENCH_ENV = {
    "DJANGO_SETTINGS_MODULE": "config.settings.development",
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/tokenworks_bench",
    "VAR_DIR": "/tmp/twbench-var",
    "DEBUG": "false",
    "SECRET_KEY": "bench-only-" + "x" * 50,
    # Benchmarks drive the API far beyond one human's rate; the throttle would
    # only measure itself.
    "API_THROTTLE_USER": "1000000/minute",
    "LOG_LEVEL": "WARNING",
}


def bench_env() -> dict:
    """os.environ with the bench defaults filled in (explicit values win)."""
    env = dict(os.environ)
    for key, value in BENCH_ENV.items():
        env.setdefault(key, value)
    name = urlparse(env["DATABASE_URL"]).path.lstrip("/")
    if name == "tokenworks" or name.startswith("test"):
        sys.exit(f"refusing to benchmark against database {name!r}: use tokenworks_bench")
    return env


def django_setup() -> None:
    os.environ.update(bench_env())
    for path in (str(REPO), str(REPO / "platform")):
        if path not in sys.path:
            sys.path.insert(0, path)
    import django

    django.setup()


def command_line() -> str:
    return ".venv/bin/python " + " ".join(shlex.quote(a) for a in sys.argv)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def machine() -> dict:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    try:
        pg = subprocess.run(
            ["psql", bench_env()["DATABASE_URL"], "-Atc", "SHOW server_version"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except Exception:
        pg = "?"
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "ram_gib": round(mem_kib / 1024 / 1024, 1),
        "postgresql": pg,
        "python": sys.version.split()[0],
    }


def print_header(title: str) -> None:
    m = machine()
    print(f"# {title}")
    print(f"command: {command_line()}")
    print(
        f"machine: {m['nproc']} cores, {m['cpu']}, {m['ram_gib']} GiB RAM, "
        f"PostgreSQL {m['postgresql']}, Python {m['python']}"
    )
    print(f"load average before the run: {load_average()}")
    print(f"database: {bench_env()['DATABASE_URL']}")
    sys.stdout.flush()


def print_table(headers: list[str], rows: list[list]) -> None:
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |")
    print("| " + " | ".join("-" * w for w in widths) + " |")
    for row in cells:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
    sys.stdout.flush()


def texts(seed: int = 1, count: int = 10_000) -> list[str]:
    """Real reviews from ../shared/data/waimai_10k.csv when present, else Chinese-like text."""
    if WAIMAI.exists():
        with WAIMAI.open(encoding="utf-8", newline="") as f:
            found = [row["review"].strip() for row in csv.DictReader(f) if row["review"].strip()]
        if found:
            return found
    rng = random.Random(seed)
    chars = "很好吃快送餐味道不错量大服务态度差慢凉了还会再来点辣咸甜香外卖骑手准时包装"
    return [
        "".join(rng.choice(chars) for _ in range(rng.randint(8, 60))) + rng.choice("。！？")
        for _ in range(count)
    ]


def text_source() -> str:
    return str(WAIMAI.relative_to(REPO.parent)) if WAIMAI.exists() else "generated"


class Fixture:
    """A client organization, a workforce centre, an owner and a project: bench-only rows."""

    def __init__(self, tag: str, *, overlap: int = 1, annotators: int = 0):
        from annotation import services
        from tenants.models import Membership, Organization, Region, User

        self.tag = f"bench-{tag}-{int(time.time() * 1000)}"
        region = Region.objects.filter(level=Region.Level.CITY).order_by("code").first()
        self.client = Organization.objects.create(
            name=f"{self.tag} client", slug=f"{self.tag}-c", kind="client", region=region
        )
        self.workforce = Organization.objects.create(
            name=f"{self.tag} centre", slug=f"{self.tag}-w", kind="workforce", region=region
        )
        self.owner = User.objects.create(username=f"{self.tag}-owner")
        Membership.objects.create(
            user=self.owner, organization=self.client, role=Membership.Role.CLIENT_DEVELOPER
        )
        self.project = services.project_create(
            organization=self.client,
            created_by=self.owner,
            name=f"{self.tag} project",
            task_type="classification",
            label_schema={
                "labels": [
                    {"value": "positive", "title": "正面"},
                    {"value": "negative", "title": "负面"},
                ]
            },
            workforce=self.workforce,
            status="active",
            overlap=overlap,
        )
        self.annotators = []
        for n in range(annotators):
            user = User.objects.create(
                username=f"{self.tag}-a{n:02d}", skill_tier=self.project.required_tier
            )
            Membership.objects.create(
                user=user, organization=self.workforce, role=Membership.Role.ANNOTATOR
            )
            self.annotators.append(user)

    def cleanup(self) -> None:
        """Delete everything the fixture made, in bulk SQL (a cascade through the
        ORM would load a million rows)."""
        from django.db import connection, transaction

        p = self.project.pk
        users = [self.owner.pk, *(u.pk for u in self.annotators)]
        orgs = [self.client.pk, self.workforce.pk]
        with transaction.atomic(), connection.cursor() as c:
            # Bench-only: the ledger is append-only (a trigger); a superuser's
            # replica role skips user triggers for this transaction alone.
            c.execute("SET LOCAL session_replication_role = replica")
            c.execute("DELETE FROM valuechain_ledgerentry WHERE client_id = %s", [self.client.pk])
            c.execute("DELETE FROM valuechain_ledgerrollup WHERE client_id = %s", [self.client.pk])
            for sql in (
                "DELETE FROM annotation_review WHERE project_id = %s",
                "DELETE FROM annotation_itemresult WHERE project_id = %s",
                "DELETE FROM annotation_annotation WHERE project_id = %s",
                "DELETE FROM annotation_assignment WHERE project_id = %s",
                "DELETE FROM annotation_importstagingrow WHERE job_id IN "
                "(SELECT id FROM annotation_importjob WHERE project_id = %s)",
                "DELETE FROM annotation_importjob WHERE project_id = %s",
                "DELETE FROM annotation_exportjob WHERE project_id = %s",
                "DELETE FROM annotation_item WHERE project_id = %s",
                "DELETE FROM annotation_project WHERE id = %s",
            ):
                c.execute(sql, [p])
            c.execute("DELETE FROM tenants_membership WHERE user_id = ANY(%s)", [users])
            c.execute("DELETE FROM tenants_user WHERE id = ANY(%s)", [users])
            c.execute("DELETE FROM tenants_organization WHERE id = ANY(%s)", [orgs])


def vacuum_analyze(*tables: str) -> None:
    from django.db import connection

    with connection.cursor() as c:
        for table in tables:
            c.execute(f"VACUUM ANALYZE {table}")


def gunicorn_start(port: int, *, workers: int, options: tuple[str, ...] = ()) -> subprocess.Popen:
    """The production server on 127.0.0.1:port with the bench settings, once it answers."""
    import httpx

    env = bench_env()
    # As in docker/Dockerfile: both source roots on the path (the editable
    # install's package list can lag behind new apps).
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO), str(REPO / "platform"), env.get("PYTHONPATH", "")]
    ).rstrip(os.pathsep)
    command = [
        str(REPO / ".venv/bin/gunicorn"),
        "config.wsgi",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        *options,
    ]
    server = subprocess.Popen(command, cwd=REPO, env=env)
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
