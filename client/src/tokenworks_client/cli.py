"""The ``tokenworks`` command: the client's loop from a shell.

Results go to standard output (JSON, one object or one per line for lists);
progress bars and messages to standard error, and bars only on a terminal.

Exit codes (scripts may rely on them):

    0  done
    1  the API refused or failed (an error response, e.g. a 400 naming the field)
    2  usage: a wrong command line or missing configuration
    3  a job or run waited for ended failed or cancelled, or the wait timed out
    4  authentication or permission: no token, a revoked or expired one, or a 403
    5  the server could not be reached (or kept answering 429/503 past the retries)
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
from tqdm import tqdm

from . import errors
from ._retry import RetryPolicy
from ._sync_client import Client
from .config import ConfigError

EXIT_OK = 0
EXIT_API = 1
EXIT_USAGE = 2
EXIT_JOB_FAILED = 3
EXIT_AUTH = 4
EXIT_UNAVAILABLE = 5

F = TypeVar("F", bound=Callable[..., Any])


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"tokenworks: {message}", err=True)
    sys.exit(code)


def _print_json(value: Any) -> None:
    click.echo(json.dumps(value, ensure_ascii=False, indent=2, default=str))


def _print_rows(rows: Iterable[dict[str, Any]]) -> None:
    for row in rows:
        click.echo(json.dumps(row, ensure_ascii=False, default=str))


def _bar(**kwargs: Any) -> tqdm:
    # disable=None: tqdm turns itself off when stderr is not a terminal.
    return tqdm(file=sys.stderr, disable=None, leave=False, dynamic_ncols=True, **kwargs)


def _byte_progress(description: str) -> tuple[tqdm, Callable[[int, int | None], None]]:
    bar = _bar(desc=description, unit="B", unit_scale=True, unit_divisor=1024)

    def update(done: int, total: int | None) -> None:
        if total is not None and bar.total != total:
            bar.total = total
        bar.update(done - bar.n)

    return bar, update


def _job_progress(description: str) -> tuple[tqdm, Callable[[dict[str, Any]], None]]:
    bar = _bar(desc=description, total=100, unit="%", bar_format="{l_bar}{bar}| {postfix}")

    def update(job: dict[str, Any]) -> None:
        progress = job.get("progress")
        if progress is not None:
            bar.update(round(float(progress) * 100) - bar.n)
        bar.set_postfix_str(str(job.get("status")))

    return bar, update


def _client(ctx: click.Context) -> Client:
    if ctx.obj is None:
        options = ctx.find_root().params
        try:
            ctx.obj = Client(
                options.get("url"),
                options.get("token"),
                profile=options.get("profile"),
                timeout=options.get("timeout") or 30.0,
                retry=RetryPolicy(max_retries=options.get("retries", 3)),
            )
        except ConfigError as exc:
            _fail(str(exc), EXIT_USAGE)
        ctx.call_on_close(ctx.obj.close)
    return ctx.obj


class _Group(click.Group):
    """Maps the client's exceptions to the documented exit codes."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (errors.AuthenticationError, errors.PermissionDenied) as exc:
            _fail(str(exc), EXIT_AUTH)
        except (errors.RateLimited, errors.ConnectionFailed) as exc:
            _fail(str(exc), EXIT_UNAVAILABLE)
        except errors.ServerError as exc:
            code = EXIT_UNAVAILABLE if exc.status_code == 503 else EXIT_API
            _fail(str(exc), code)
        except errors.APIError as exc:
            _fail(str(exc), EXIT_API)
        except (errors.JobFailed, errors.WaitTimeout) as exc:
            _fail(str(exc), EXIT_JOB_FAILED)
        except ConfigError as exc:
            _fail(str(exc), EXIT_USAGE)


def _json_option(value: str | None) -> Any:
    """A JSON value given inline or as @file."""
    if value is None:
        return None
    text = Path(value[1:]).read_text(encoding="utf-8") if value.startswith("@") else value
    try:
        return json.loads(text)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}") from exc


@click.group(cls=_Group)
@click.option("--url", envvar="TOKENWORKS_URL", help="Server address (or TOKENWORKS_URL).")
@click.option("--token", envvar="TOKENWORKS_TOKEN", help="API token (or TOKENWORKS_TOKEN).")
@click.option("--profile", envvar="TOKENWORKS_PROFILE", help="A [profiles.NAME] of the config.")
@click.option("--timeout", type=float, default=30.0, show_default=True, help="Seconds a request.")
@click.option(
    "--retries", type=click.IntRange(0, 10), default=3, show_default=True, help="On 429/503."
)
@click.version_option(package_name="tokenworks-client")
def cli(**_options: Any) -> None:
    """Tokenworks from the command line. Configuration: --url/--token, TOKENWORKS_URL and
    TOKENWORKS_TOKEN, or ~/.config/tokenworks/config.toml (url = "...", token = "...")."""


@cli.command()
@click.pass_context
def whoami(ctx: click.Context) -> None:
    """The token's organization and roles."""
    _print_json(_client(ctx).me())


# --- projects --------------------------------------------------------------------------


@cli.group()
def projects() -> None:
    """List, create, change and activate projects."""


@projects.command("list")
@click.option("--status")
@click.option("--task-type")
@click.pass_context
def projects_list(ctx: click.Context, status: str | None, task_type: str | None) -> None:
    _print_rows(_client(ctx).projects.list(status=status, task_type=task_type))


@projects.command("get")
@click.argument("project", type=int)
@click.pass_context
def projects_get(ctx: click.Context, project: int) -> None:
    _print_json(_client(ctx).projects.get(project))


@projects.command("create")
@click.option("--name", required=True)
@click.option("--task-type", required=True)
@click.option("--label-schema", help="JSON, or @file.json.")
@click.option("--workforce", type=int, help="The annotation centre's id.")
@click.option("--instructions")
@click.option("--set", "extra", multiple=True, metavar="FIELD=JSON", help="Any other field.")
@click.pass_context
def projects_create(ctx: click.Context, **options: Any) -> None:
    fields = _fields(options)
    _print_json(_client(ctx).projects.create(**fields))


@projects.command("update")
@click.argument("project", type=int)
@click.option("--name")
@click.option("--instructions")
@click.option("--label-schema", help="JSON, or @file.json.")
@click.option("--set", "extra", multiple=True, metavar="FIELD=JSON", help="Any other field.")
@click.pass_context
def projects_update(ctx: click.Context, project: int, **options: Any) -> None:
    _print_json(_client(ctx).projects.update(project, **_fields(options)))


@projects.command("activate")
@click.argument("project", type=int)
@click.pass_context
def projects_activate(ctx: click.Context, project: int) -> None:
    _print_json(_client(ctx).projects.activate(project))


@projects.command("stats")
@click.argument("project", type=int)
@click.pass_context
def projects_stats(ctx: click.Context, project: int) -> None:
    _print_json(_client(ctx).projects.stats(project))


def _fields(options: dict[str, Any]) -> dict[str, Any]:
    extra = options.pop("extra", ())
    fields = {k: v for k, v in options.items() if v is not None}
    if "label_schema" in fields:
        fields["label_schema"] = _json_option(fields["label_schema"])
    for pair in extra:
        name, sep, raw = pair.partition("=")
        if not sep:
            raise click.BadParameter(f"{pair!r}: expected FIELD=JSON", param_hint="--set")
        try:
            fields[name] = json.loads(raw)
        except ValueError:
            fields[name] = raw  # a bare string
    return fields


# --- imports and exports ---------------------------------------------------------------


@cli.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--project", type=int, required=True)
@click.option("--format", "format_", help="jsonl, json, csv, label_studio (default: detected).")
@click.option("--encoding", help="Default: detected (UTF-8 or GBK).")
@click.option("--on-conflict", type=click.Choice(["update", "skip"]))
@click.option("--on-error", type=click.Choice(["reject", "skip"]))
@click.option("--wait/--no-wait", default=False, help="Wait for the import to finish.")
@click.option("--timeout", "wait_timeout", type=float, help="Seconds to wait at most.")
@click.pass_context
def import_(
    ctx: click.Context,
    file: Path,
    project: int,
    format_: str | None,
    encoding: str | None,
    on_conflict: str | None,
    on_error: str | None,
    wait: bool,
    wait_timeout: float | None,
) -> None:
    """Upload FILE into a project (streamed); exit 3 if the import fails (with --wait)."""
    client = _client(ctx)
    bar, update = _byte_progress(f"uploading {file.name}")
    with bar:
        job = client.imports.upload(
            project,
            file,
            format=format_,
            encoding=encoding,
            on_conflict=on_conflict,
            on_error=on_error,
            on_progress=update,
        )
    if wait:
        bar, on_job = _job_progress(f"import {job['id']}")
        with bar:
            job = client.imports.wait(job["id"], timeout=wait_timeout, on_progress=on_job)
    _print_json(job)


@cli.command()
@click.option("--project", type=int, required=True)
@click.option("--format", "format_", required=True, help="results_jsonl, results_csv, ...")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--all", "all_items", is_flag=True, help="Not only approved answers.")
@click.pass_context
def export(ctx: click.Context, project: int, format_: str, output: Path, all_items: bool) -> None:
    """Stream a project's export into a file (flat memory, any size)."""
    bar, update = _byte_progress(f"exporting {output.name}")
    with bar:
        written = _client(ctx).projects.export_to(
            project, output, format_, approved_only=not all_items, on_progress=update
        )
    click.echo(f"{output}: {written} bytes", err=True)


@cli.command()
@click.option("--project", type=int, required=True)
@click.option("--all", "all_results", is_flag=True, help="Not only approved answers.")
@click.pass_context
def results(ctx: click.Context, project: int, all_results: bool) -> None:
    """A project's final answers, one JSON object a line (every page)."""
    approved = None if all_results else True
    _print_rows(_client(ctx).results.list(project=project, approved=approved))


# --- runs ------------------------------------------------------------------------------


@cli.group()
def prelabel() -> None:
    """Pre-label a project's open items with a model."""


@prelabel.command("start")
@click.option("--project", type=int, required=True)
@click.option("--model", help="Default: the routed backend's first model.")
@click.option("--policy", type=click.Choice(["cheapest", "lowest_latency", "region"]))
@click.option("--region", help="Region code, with --policy region.")
@click.option("--backend", type=int)
@click.option("--prompt", type=int, help="A prompt version's id.")
@click.option("--include-gold", is_flag=True, help="Gold items too (to weigh the model).")
@click.option("--all-open", is_flag=True, help="Items already labelled too.")
@click.option("--watch", is_flag=True, help="Follow the run until it ends.")
@click.pass_context
def prelabel_start(ctx: click.Context, project: int, watch: bool, **options: Any) -> None:
    client = _client(ctx)
    item_filter = {}
    if options.pop("include_gold"):
        item_filter["include_gold"] = True
    if options.pop("all_open"):
        item_filter["only_unlabeled"] = False
    fields = {k: v for k, v in options.items() if v is not None}
    if item_filter:
        fields["item_filter"] = item_filter
    run = client.prelabel.start(project, **fields)
    if watch:
        run = _watch(client, "prelabel", run["id"])
    _print_json(run)


@cli.group()
def finetune() -> None:
    """Fine-tune a model on a dataset version."""


@finetune.command("start")
@click.option("--dataset", type=int, required=True)
@click.option("--backend", type=int, required=True)
@click.option("--base-model")
@click.option("--method")
@click.option("--watch", is_flag=True, help="Follow the run until it ends.")
@click.pass_context
def finetune_start(
    ctx: click.Context, dataset: int, backend: int, watch: bool, **options: Any
) -> None:
    client = _client(ctx)
    fields = {k: v for k, v in options.items() if v is not None}
    run = client.finetune.start(dataset, backend, **fields)
    if watch:
        run = _watch(client, "finetune", run["id"])
    _print_json(run)


RUN_KINDS = click.Choice(["prelabel", "finetune"])


@cli.group()
def runs() -> None:
    """Follow, cancel and resume pre-labeling and fine-tuning runs."""


def _watch(client: Client, kind: str, run: int, timeout: float | None = None) -> dict[str, Any]:
    bar, update = _job_progress(f"{kind} run {run}")
    with bar:
        if kind == "prelabel":
            done = client.prelabel.wait(run, timeout=timeout, on_progress=update)
        else:
            done = client.finetune.wait(run, timeout=timeout, on_progress=update)
    if done.get("status") == "partial":
        click.echo(
            f"tokenworks: run {run} finished with {done.get('failed_items')} failed items",
            err=True,
        )
    return done


@runs.command("watch")
@click.argument("run", type=int)
@click.option("--kind", type=RUN_KINDS, default="prelabel", show_default=True)
@click.option("--timeout", "wait_timeout", type=float, help="Seconds to wait at most.")
@click.pass_context
def runs_watch(ctx: click.Context, run: int, kind: str, wait_timeout: float | None) -> None:
    """Follow RUN until it ends: exit 0 succeeded (or partial), 3 failed or cancelled."""
    _print_json(_watch(_client(ctx), kind, run, wait_timeout))


@runs.command("list")
@click.option("--project", type=int)
@click.option("--kind", type=RUN_KINDS, default="prelabel", show_default=True)
@click.pass_context
def runs_list(ctx: click.Context, project: int | None, kind: str) -> None:
    client = _client(ctx)
    resource = client.prelabel if kind == "prelabel" else client.finetune
    _print_rows(resource.list(project=project))


@runs.command("cancel")
@click.argument("run", type=int)
@click.pass_context
def runs_cancel(ctx: click.Context, run: int) -> None:
    """Cancel a pre-labeling run (finished items keep their predictions)."""
    _print_json(_client(ctx).prelabel.cancel(run))


@runs.command("resume")
@click.argument("run", type=int)
@click.pass_context
def runs_resume(ctx: click.Context, run: int) -> None:
    """Resume a cancelled, partial or stalled pre-labeling run."""
    _print_json(_client(ctx).prelabel.resume(run))


# --- datasets, statements, reports ------------------------------------------------------


@cli.group()
def datasets() -> None:
    """Freeze approved answers into dataset versions and download them."""


@datasets.command("create")
@click.option("--project", type=int, required=True)
@click.option("--format", "format_")
@click.option("--seed", type=int)
@click.option("--validation-ratio")
@click.pass_context
def datasets_create(ctx: click.Context, project: int, format_: str | None, **options: Any) -> None:
    fields = {k: v for k, v in options.items() if v is not None}
    if format_:
        fields["format"] = format_
    _print_json(_client(ctx).datasets.create(project, **fields))


@datasets.command("download")
@click.argument("dataset", type=int)
@click.option("--split", type=click.Choice(["train", "validation"]), default="train")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.pass_context
def datasets_download(ctx: click.Context, dataset: int, split: str, output: Path) -> None:
    bar, update = _byte_progress(f"downloading {output.name}")
    with bar:
        written = _client(ctx).datasets.download(dataset, output, split=split, on_progress=update)
    click.echo(f"{output}: {written} bytes", err=True)


@cli.command()
@click.option("--project", type=int, required=True)
@click.option("--month", required=True, help="YYYY-MM")
@click.option("--format", "format_", type=click.Choice(["json", "csv"]), default="json")
@click.pass_context
def statement(ctx: click.Context, project: int, month: str, format_: str) -> None:
    """What a month's work on a project was charged, by kind and tier."""
    client = _client(ctx)
    if format_ == "csv":
        click.echo(client.projects.statement_csv(project, month), nl=False)
    else:
        _print_json(client.projects.statement(project, month))


@cli.command()
@click.argument("region")
@click.option("--start", help="First month, YYYY-MM.")
@click.option("--end", help="Last month, YYYY-MM.")
@click.option("--compare", type=click.Choice(["none", "previous", "year"]))
@click.option("--kind", type=click.Choice(["human", "machine"]))
@click.option("--tier", type=click.IntRange(0, 5))
@click.option(
    "--format", "format_", type=click.Choice(["json", "csv", "xlsx", "pdf"]), default="json"
)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_context
def report(
    ctx: click.Context, region: str, format_: str, output: Path | None, **query: Any
) -> None:
    """A region's KPI report (officials' tokens): JSON, or a CSV/XLSX/PDF file."""
    client = _client(ctx)
    query = {k: v for k, v in query.items() if v is not None}
    if format_ == "json":
        data = client.reports.get(region, **query)
        if output:
            output.write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")
        else:
            _print_json(data)
        return
    if output is None:
        if format_ != "csv":
            raise click.UsageError(f"--format {format_} needs -o FILE")
        client.reports.download(region, sys.stdout.buffer, format=format_, **query)
        return
    client.reports.download(region, output, format=format_, **query)
    click.echo(f"{output}: written", err=True)


# --- webhooks and tokens ----------------------------------------------------------------


@cli.group()
def webhooks() -> None:
    """Webhook endpoints (the secret is shown once, on create)."""


@webhooks.command("list")
@click.pass_context
def webhooks_list(ctx: click.Context) -> None:
    _print_rows(_client(ctx).webhooks.list())


@webhooks.command("create")
@click.option("--organization", type=int, required=True)
@click.option("--url", "endpoint_url", required=True)
@click.option("--event", "events", multiple=True, help="Repeat; default: every event.")
@click.pass_context
def webhooks_create(
    ctx: click.Context, organization: int, endpoint_url: str, events: tuple[str, ...]
) -> None:
    _print_json(
        _client(ctx).webhooks.create(organization, endpoint_url, list(events) if events else None)
    )


@webhooks.command("delete")
@click.argument("endpoint", type=int)
@click.pass_context
def webhooks_delete(ctx: click.Context, endpoint: int) -> None:
    _client(ctx).webhooks.delete(endpoint)


@cli.group()
def tokens() -> None:
    """Your organization's API tokens (made by people signed in, at /tokens/)."""


@tokens.command("list")
@click.pass_context
def tokens_list(ctx: click.Context) -> None:
    _print_rows(_client(ctx).tokens.list())


@tokens.command("revoke")
@click.argument("token_id", type=int)
@click.pass_context
def tokens_revoke(ctx: click.Context, token_id: int) -> None:
    _client(ctx).tokens.revoke(token_id)


def main(argv: list[str] | None = None) -> None:
    cli.main(args=argv, prog_name="tokenworks")
