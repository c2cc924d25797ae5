"""Settings modes, each in a fresh interpreter as a deployment would start it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from config.settings.base import PRODUCTION_REQUIRED

REPO = Path(__file__).resolve().parents[2]
GOOD_SECRET = "p7Qv-3xZk_9LmNw2Rt8YbHc4Jd6Fs1GaUe5Io0PlKjMnBvCxZq"


def manage(*args, env: dict, tmp_path: Path) -> subprocess.CompletedProcess:
    base = {
        k: v
        for k, v in os.environ.items()
        if k
        not in {
            *PRODUCTION_REQUIRED,
            "DATABASE_URL",
            "CELERY_BROKER_URL",
            "ALLOWED_HOSTS",
            "DEBUG",
            "DJANGO_SETTINGS_MODULE",
            "LOG_FORMAT",
        }
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env={**base, "VAR_DIR": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def production_env(**overrides) -> dict:
    env = {
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "SECRET_KEY": GOOD_SECRET,
        "ENCRYPTION_KEYS": "dG9rZW53b3Jrcy10ZXN0LWtleS1ub3Qtc2VjcmV0ISE=",
        "DATABASE_URL": "postgres://tokenworks@db.internal:5432/tokenworks",
        "CELERY_BROKER_URL": "redis://redis.internal:6379/0",
        "ALLOWED_HOSTS": "tokenworks.example.cn",
        "METRICS_TOKEN": "m3tr1cs-scrape-Token-not-a-real-one-0123",
    }
    env.update(overrides)
    return {k: v for k, v in env.items() if v is not None}


def test_production_passes_the_deploy_checks(tmp_path):
    result = manage(
        "check", "--deploy", "--fail-level", "WARNING", env=production_env(), tmp_path=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize("variable", PRODUCTION_REQUIRED)
def test_production_refuses_to_start_without_a_required_variable(tmp_path, variable):
    result = manage("check", env=production_env(**{variable: None}), tmp_path=tmp_path)
    assert result.returncode != 0
    assert f"Set the {variable} environment variable" in result.stderr


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"SECRET_KEY": "short"}, "SECRET_KEY"),
        ({"SECRET_KEY": "django-insecure-" + "a1b2c3d4e5" * 5}, "SECRET_KEY"),
        ({"DEBUG": "true"}, "DEBUG"),
        ({"DATABASE_URL": "sqlite:////tmp/db.sqlite3"}, "DATABASE_URL"),
        ({"LOG_FORMAT": "yaml"}, "LOG_FORMAT"),
        ({"ENCRYPTION_KEYS": "not-a-fernet-key"}, "ENCRYPTION_KEYS"),
        ({"METRICS_TOKEN": "scrape"}, "METRICS_TOKEN"),
    ],
)
def test_production_refuses_insecure_settings_naming_the_variable(tmp_path, overrides, named):
    result = manage("check", env=production_env(**overrides), tmp_path=tmp_path)
    assert result.returncode != 0
    assert named in result.stderr.splitlines()[-1]


def test_production_logs_one_json_object_per_line(tmp_path):
    result = manage(
        "shell",
        "-c",
        "import logging; logging.getLogger('tokenworks').warning('ledger %s', 42)",
        env=production_env(),
        tmp_path=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    record = json.loads(lines[-1])
    assert record["message"] == "ledger 42"
    assert record["level"] == "WARNING" and record["logger"] == "tokenworks"


def test_development_generates_its_secret_key_once(tmp_path):
    env = {"DJANGO_SETTINGS_MODULE": "config.settings.development"}
    show = ["shell", "-c", "from django.conf import settings; print(settings.SECRET_KEY)"]
    first = manage(*show, env=env, tmp_path=tmp_path)
    second = manage(*show, env=env, tmp_path=tmp_path)
    assert first.returncode == 0, first.stderr
    key = first.stdout.splitlines()[-1]
    assert key == second.stdout.splitlines()[-1] and len(key) >= 50
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_development_defaults_need_no_services(tmp_path):
    code = (
        "from django.conf import settings; "
        "print(settings.DATABASES['default']['ENGINE'], settings.CELERY_BROKER_URL)"
    )
    result = manage(
        "shell",
        "-c",
        code,
        env={"DJANGO_SETTINGS_MODULE": "config.settings.development"},
        tmp_path=tmp_path,
    )
    assert result.stdout.splitlines()[-1].split() == ["django.db.backends.sqlite3", "filesystem://"]


def test_postgres_urls_use_psycopg_with_the_connection_pool():
    from config.settings.base import database_from_url

    config = database_from_url("postgres://u:p@db:5432/tokenworks")
    assert config["ENGINE"] == "django.db.backends.postgresql"
    assert config["OPTIONS"]["pool"]["max_size"] >= 1
    assert config["CONN_MAX_AGE"] == 0


@pytest.mark.postgres
@pytest.mark.django_db
def test_the_suite_runs_on_postgresql_through_the_connection_pool():
    from django.db import connection

    assert connection.vendor == "postgresql"
    assert connection.pool is not None
    assert connection.settings_dict["NAME"].startswith("test_")


def test_production_logs_the_apps_info_lines_with_their_ids_as_fields(tmp_path):
    result = manage(
        "shell",
        "-c",
        "import logging; logging.getLogger('annotation.imports').info("
        "'import finished', extra={'import_job_id': 'j1', 'project_id': 7})",
        env=production_env(),
        tmp_path=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    record = json.loads([line for line in result.stderr.splitlines() if line.strip()][-1])
    assert (record["level"], record["logger"], record["message"]) == (
        "INFO",
        "annotation.imports",
        "import finished",
    )
    assert (record["import_job_id"], record["project_id"]) == ("j1", 7)
