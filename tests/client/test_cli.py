"""The `tokenworks` command against a live server (PostgreSQL, a real worker): the
loop in a few commands, configuration from the environment or the file, and the
exit codes scripts rely on."""

import json

import pytest
from click.testing import CliRunner
from django.utils import timezone
from tokenworks_client import Client
from tokenworks_client.cli import (
    EXIT_API,
    EXIT_AUTH,
    EXIT_JOB_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    cli,
)

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

SCHEMA = {"labels": [{"value": "positive"}, {"value": "negative"}]}


@pytest.fixture
def run(live_loop, tmp_path):
    """run(*args, token=...) -> click Result, configured by the environment only."""
    runner = CliRunner()

    def invoke(*args, token=live_loop.client_token, url=live_loop.url, **env):
        environment = {
            "TOKENWORKS_URL": url,
            "TOKENWORKS_TOKEN": token,
            "TOKENWORKS_CONFIG": str(tmp_path / "absent.toml"),
            "TOKENWORKS_PROFILE": None,
            **env,
        }
        return runner.invoke(cli, [str(a) for a in args], env=environment, catch_exceptions=False)

    return invoke


def test_the_loop_in_five_commands(run, live_loop, tmp_path):
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps(SCHEMA), encoding="utf-8")
    made = run(
        "projects", "create", "--name", "reviews", "--task-type", "classification",
        "--label-schema", f"@{schema}", "--workforce", live_loop.workforce.pk,
        "--set", "status=active",
    )  # fmt: skip
    assert made.exit_code == EXIT_OK, made.output
    project = json.loads(made.stdout)["id"]
    listed = run("projects", "list")
    assert [json.loads(line)["id"] for line in listed.stdout.splitlines()] == [project]

    data = tmp_path / "reviews.jsonl"
    data.write_text('{"text": "很好吃"}\n{"text": "太慢了"}\n', encoding="utf-8")
    imported = run("import", data, "--project", project, "--wait")
    assert imported.exit_code == EXIT_OK, imported.output
    assert json.loads(imported.stdout)["created_count"] == 2

    live_loop.fake.set_latency(1.0)  # the run cannot end before it is cancelled
    started = run("prelabel", "start", "--project", project, "--model", "fake-model")
    assert started.exit_code == EXIT_OK, started.output
    prelabel_run = json.loads(started.stdout)["id"]
    cancelled = run("runs", "cancel", prelabel_run)
    assert json.loads(cancelled.stdout)["status"] == "cancelled", cancelled.output
    assert run("runs", "watch", prelabel_run).exit_code == EXIT_JOB_FAILED
    live_loop.fake.set_latency(0)
    assert run("runs", "resume", prelabel_run).exit_code == EXIT_OK
    watched = run("runs", "watch", prelabel_run)
    assert watched.exit_code == EXIT_OK, watched.output
    assert json.loads(watched.stdout)["status"] == "succeeded"

    annotator = Client(live_loop.url, live_loop.annotator_token)
    while (lease := annotator.workspace.next(project)) is not None:
        annotator.workspace.submit(lease["id"], {"label": "positive"})

    out = tmp_path / "results.jsonl"
    exported = run("export", "--project", project, "--format", "results_jsonl", "-o", out)
    assert exported.exit_code == EXIT_OK, exported.output
    assert len(out.read_text(encoding="utf-8").splitlines()) == 2

    month = timezone.localdate().strftime("%Y-%m")
    statement = run("statement", "--project", project, "--month", month, "--format", "csv")
    assert statement.exit_code == EXIT_OK and statement.stdout.startswith("kind,")
    report = run(
        "report", "520000", "--start", month, "--end", month, "--format", "csv",
        token=live_loop.official_token,
    )  # fmt: skip
    assert report.exit_code == EXIT_OK, report.output
    assert "Guizhou" in report.stdout


def test_exit_codes(run, live_loop, tmp_path):
    bad_request = run("projects", "create", "--name", "", "--task-type", "nonsense")
    assert bad_request.exit_code == EXIT_API
    assert "task_type" in bad_request.stderr and "name" in bad_request.stderr

    assert run("whoami", token="tw_" + "0" * 43).exit_code == EXIT_AUTH
    assert run("report", "520000").exit_code == EXIT_AUTH  # a client's token: 403
    assert run("whoami", url="").exit_code == EXIT_USAGE
    assert run("import", tmp_path / "missing.jsonl", "--project", 1).exit_code == EXIT_USAGE

    made = run(
        "projects", "create", "--name", "p", "--task-type", "classification",
        "--label-schema", json.dumps(SCHEMA), "--workforce", live_loop.workforce.pk,
        "--set", "status=active",
    )  # fmt: skip
    broken = tmp_path / "broken.jsonl"
    broken.write_bytes(b'{"text": "ok"}\n{not json\n')
    failed = run("import", broken, "--project", json.loads(made.stdout)["id"], "--wait")
    assert failed.exit_code == EXIT_JOB_FAILED, failed.output
    assert "row 2" in failed.stderr


def test_configuration_from_the_file_with_profiles(run, live_loop, tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(
        f'url = "{live_loop.url}"\ntoken = "{live_loop.client_token}"\n\n'
        f'[profiles.office]\nurl = "{live_loop.url}"\ntoken = "{live_loop.official_token}"\n',
        encoding="utf-8",
    )
    env = {"TOKENWORKS_CONFIG": str(config), "TOKENWORKS_URL": None, "TOKENWORKS_TOKEN": None}
    me = run("whoami", **env)
    assert me.exit_code == EXIT_OK, me.output
    assert json.loads(me.stdout)["token"]["roles"] == ["client_developer"]
    office = run("--profile", "office", "whoami", **env)
    assert json.loads(office.stdout)["token"]["roles"] == ["official"]
    assert run("--profile", "nobody", "whoami", **env).exit_code == EXIT_USAGE
