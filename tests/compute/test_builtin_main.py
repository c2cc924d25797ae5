"""python -m compute.builtin serve: the Procfile's model process, whatever the environment.

uvicorn used to take WEB_CONCURRENCY (meant for gunicorn) as its worker count and
exit, and honcho then stopped every process of `make run`.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from compute.builtin.__main__ import parse_args, server_config

ROOT = Path(__file__).resolve().parents[2]

# Values, none of them the default, for the variables of README's table; any
# other variable of the table gets OTHER.
DOCUMENTED = {
    "DJANGO_SETTINGS_MODULE": "config.settings.production",
    "SECRET_KEY": "s" * 60,
    "ENCRYPTION_KEYS": "dG9rZW53b3Jrcy10ZXN0LWtleS1ub3Qtc2VjcmV0ISE=",
    "DEBUG": "false",
    "ALLOWED_HOSTS": "tokenworks.example.cn",
    "CSRF_TRUSTED_ORIGINS": "https://tokenworks.example.cn",
    "DATABASE_URL": "postgres://tw:pw@127.0.0.1:1/tw",
    "DATABASE_POOL_MIN_SIZE": "2",
    "DATABASE_POOL_MAX_SIZE": "3",
    "DATABASE_POOL_TIMEOUT": "3",
    "ALLOW_SQLITE_IN_PRODUCTION": "true",
    "CELERY_BROKER_URL": "redis://127.0.0.1:1/0",
    "CELERY_VISIBILITY_TIMEOUT": "60",
    "CELERY_RESULT_BACKEND": "redis://127.0.0.1:1/1",
    "CACHE_URL": "locmemcache://",
    "API_THROTTLE_ANON": "1/minute",
    "API_THROTTLE_USER": "2/minute",
    "WEBHOOK_ALLOW_HTTP": "false",
    "WEBHOOK_ALLOW_PRIVATE_ADDRESSES": "false",
    "BUILTIN_MODEL_URL": "http://127.0.0.1:1/v1",
    "MODEL_HOST": "127.0.0.1",
    "MODEL_PORT": "set per test",
    "BUILTIN_MODEL_API_KEY": "model-key",
    "COMPUTE_REQUEST_TIMEOUT": "1",
    "COMPUTE_MAX_RETRIES": "0",
    "COMPUTE_BACKOFF_BASE": "0.1",
    "KPI_TRAP_THRESHOLD": "0.5",
    "KPI_TRAP_MONTHS": "3",
    "METRICS_TOKEN": "metrics-token",
    "TIME_ZONE": "UTC",
    "VAR_DIR": "set per test",
    "LOG_LEVEL": "DEBUG",
    "LOG_FORMAT": "json",
    "SECURE_SSL_REDIRECT": "false",
    "SECURE_HSTS_SECONDS": "0",
    "WEB_BIND": "0.0.0.0:1",
    "WEB_CONCURRENCY": "3",
    "WORKER_CONCURRENCY": "3",
    "TEST_DATABASE_URL": "postgres://tw@127.0.0.1:1/tw",
    "TEST_REDIS_URL": "redis://127.0.0.1:1/15",
    "REQUIRE_SERVICES": "1",
    "CHROMIUM_PATH": "/nonexistent/chromium",
    "PYTEST_ARGS": "-x",
    "FORWARDED_ALLOW_IPS": "*",  # not ours, but uvicorn would read it too
}


OTHER = "3"


def documented_environment() -> dict[str, str]:
    """A value for every variable of README's table (and FORWARDED_ALLOW_IPS)."""
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Environment variables", 1)[1].split("\n## ", 1)[0]
    names = re.findall(r"^\| `([A-Z_]+)` \|", table, re.MULTILINE)
    assert "WEB_CONCURRENCY" in names, "README's table of variables moved"
    return {**{name: OTHER for name in names}, **DOCUMENTED}


def test_the_server_is_one_process_whatever_web_concurrency_says(monkeypatch, tmp_path):
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "*")
    config = server_config(parse_args(["serve", "--port", "0", "--data-dir", str(tmp_path)]))
    assert config.workers == 1
    assert config.proxy_headers is False


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_procfiles_model_process_serves_with_every_documented_variable_set(tmp_path):
    (command,) = [
        line.split(":", 1)[1].strip()
        for line in (ROOT / "Procfile").read_text().splitlines()
        if line.startswith("model:")
    ]
    port = _free_port()
    env = {
        **os.environ,
        **documented_environment(),
        "MODEL_PORT": str(port),
        "VAR_DIR": str(tmp_path),
        # As make run has it: the virtualenv's python first on PATH.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    process = subprocess.Popen(
        ["sh", "-c", f"exec {command}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                output = process.stdout.read().decode(errors="replace")
                pytest.fail(f"the model process exited ({process.returncode}):\n{output}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the model process never answered"
            time.sleep(0.2)
        models = httpx.get(
            f"http://127.0.0.1:{port}/v1/models",
            headers={"Authorization": "Bearer model-key"},
            timeout=5,
        )
        assert models.status_code == 200 and models.json()["data"]
    finally:
        process.terminate()
        process.wait(timeout=20)
