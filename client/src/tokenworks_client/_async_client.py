"""The Tokenworks API over httpx: resources, pagination, streaming, retries and waits."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Mapping
from time import monotonic
from typing import IO, Any

import httpx

from . import errors
from ._common import (
    JOB_ENDS,
    JSON,
    USER_AGENT,
    JobCallback,
    ProgressCallback,
    ProgressReader,
    api_base,
    check_arguments,
    clean_query,
    operation,
)
from ._models import (
    Annotation,
    ApiToken,
    ApiTokenCreated,
    Backend,
    DatasetVersion,
    ExportJob,
    FineTuneRun,
    ImportJob,
    Item,
    ItemResult,
    Lease,
    Me,
    Prediction,
    PrelabelRun,
    Project,
    ProjectQuality,
    ProjectStatement,
    PromptTemplate,
    ReportRegion,
    Review,
    ReviewLease,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEndpointCreated,
    WorkspaceProject,
)
from ._retry import RETRY_STATUSES, RetryPolicy, parse_retry_after
from .config import load_config

Destination = str | os.PathLike[str] | IO[bytes]


class _AsyncCore:
    """Sends declared operations: checks their arguments, retries 429 and 503 within
    the policy's bounds, and raises the API's error body as typed exceptions."""

    def __init__(
        self,
        base_url: str | None,
        token: str | None,
        *,
        profile: str | None,
        timeout: float,
        retry: RetryPolicy,
        http_client: httpx.AsyncClient | None,
    ) -> None:
        if http_client is None or base_url is None:
            config = load_config(url=base_url, token=token, profile=profile)
            base_url, token = config.url, config.token
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if http_client is None:
            http_client = httpx.AsyncClient(timeout=timeout)
        http_client.base_url = httpx.URL(api_base(base_url))
        http_client.headers.update(headers)
        self.http = http_client
        self.retry = retry

    async def send(
        self,
        name: str,
        *,
        path: Mapping[str, Any] | None = None,
        query: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
        upload: ProgressReader | None = None,
        url: str | None = None,
        stream: bool = False,
    ) -> httpx.Response:
        op = operation(name)
        check_arguments(name, op, query, body)
        attempt = 0
        while True:
            if op.multipart:
                files = {"file": (upload.name, upload)} if upload is not None else None
                request = self.http.build_request(
                    op.method,
                    url or op.url(**(path or {})),
                    params=clean_query(query),
                    data={k: v for k, v in (body or {}).items() if v is not None and k != "file"},
                    files=files,
                )
            else:
                request = self.http.build_request(
                    op.method,
                    url or op.url(**(path or {})),
                    params=None if url else clean_query(query),
                    json=body if body is not None else None,
                )
            try:
                response = await self.http.send(request, stream=stream)
            except httpx.TransportError as exc:
                raise errors.ConnectionFailed(f"{op.method} {request.url}: {exc}") from exc
            if response.status_code < 400:
                return response
            await response.aread()
            await response.aclose()
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if response.status_code in RETRY_STATUSES:
                delay = self.retry.delay(attempt, retry_after)
                if delay is not None:
                    attempt += 1
                    await asyncio.sleep(delay)
                    continue
            raise errors.error_from_response(response, retry_after=retry_after)

    async def json(self, name: str, **kwargs: Any) -> Any:
        response = await self.send(name, **kwargs)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    async def paginate(
        self, name: str, *, path: Mapping[str, Any] | None = None, query: Mapping[str, Any]
    ) -> AsyncIterator[Any]:
        """Every row of a list, following its ``next`` links (page numbers or cursors)."""
        response = await self.send(name, path=path, query=query)
        while True:
            page = response.json()
            if isinstance(page, list):  # an unpaginated list
                for row in page:
                    yield row
                return
            for row in page["results"]:
                yield row
            if not page.get("next"):
                return
            response = await self.send(name, url=page["next"])

    async def stream(
        self,
        name: str,
        *,
        path: Mapping[str, Any] | None = None,
        query: Mapping[str, Any] | None = None,
    ) -> AsyncIterator[bytes]:
        response = await self.send(name, path=path, query=query, stream=True)
        try:
            async for chunk in response.aiter_bytes():
                yield chunk
        finally:
            await response.aclose()

    async def lines(
        self,
        name: str,
        *,
        path: Mapping[str, Any] | None = None,
        query: Mapping[str, Any] | None = None,
    ) -> AsyncIterator[str]:
        response = await self.send(name, path=path, query=query, stream=True)
        try:
            async for line in response.aiter_lines():
                if line:
                    yield line
        finally:
            await response.aclose()

    async def download(
        self,
        name: str,
        destination: Destination,
        *,
        path: Mapping[str, Any] | None = None,
        query: Mapping[str, Any] | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> int:
        """Stream a file to destination (a path or a binary file); returns the bytes written."""
        response = await self.send(name, path=path, query=query, stream=True)
        total = response.headers.get("Content-Length")
        size = int(total) if total and total.isdigit() else None
        written = 0
        owned = not hasattr(destination, "write")
        out: Any = (
            open(destination, "wb")  # noqa: SIM115 - closed below
            if owned
            else destination
        )
        try:
            async for chunk in response.aiter_bytes():
                out.write(chunk)
                written += len(chunk)
                if on_progress is not None:
                    on_progress(written, size)
        finally:
            await response.aclose()
            if owned:
                out.close()
        return written

    async def wait(
        self,
        kind: str,
        get: str,
        job_id: int | str,
        *,
        timeout: float | None,
        poll_interval: float,
        on_progress: JobCallback | None,
    ) -> Any:
        succeeded, failed = JOB_ENDS[kind]
        started = monotonic()
        while True:
            job = await self.json(get, path={"id": job_id})
            if on_progress is not None:
                on_progress(job)
            if job["status"] in succeeded:
                return job
            if job["status"] in failed:
                raise errors.JobFailed(kind, job)
            if timeout is not None and monotonic() - started + poll_interval > timeout:
                raise errors.WaitTimeout(kind, job, timeout)
            await asyncio.sleep(poll_interval)


class _AsyncResource:
    def __init__(self, core: _AsyncCore) -> None:
        self._core = core


class AsyncProjects(_AsyncResource):
    def list(self, **filters: Any) -> AsyncIterator[Project]:
        """Your projects; filters: status, task_type, kind, organization, ordering."""
        return self._core.paginate("projects.list", query=filters)

    async def get(self, project: int) -> Project:
        return await self._core.json("projects.get", path={"id": project})

    async def create(self, **fields: Any) -> Project:
        """name, task_type, label_schema, workforce, ... (see the API docs); a draft unless
        status="active"."""
        return await self._core.json("projects.create", body=fields)

    async def update(self, project: int, **fields: Any) -> Project:
        return await self._core.json("projects.update", path={"id": project}, body=fields)

    async def activate(self, project: int) -> Project:
        return await self.update(project, status="active")

    async def pause(self, project: int) -> Project:
        return await self.update(project, status="paused")

    async def archive(self, project: int) -> None:
        await self._core.json("projects.archive", path={"id": project})

    async def stats(self, project: int) -> JSON:
        return await self._core.json("projects.stats", path={"id": project})

    async def agreement(self, project: int) -> JSON:
        return await self._core.json("projects.agreement", path={"id": project})

    async def quality(self, project: int) -> ProjectQuality:
        return await self._core.json("projects.quality", path={"id": project})

    async def statement(self, project: int, month: str) -> ProjectStatement:
        """What the month (YYYY-MM) was charged, by kind and tier."""
        return await self._core.json(
            "projects.statement", path={"id": project}, query={"month": month}
        )

    async def statement_csv(self, project: int, month: str) -> str:
        response = await self._core.send(
            "projects.statement", path={"id": project}, query={"month": month, "format": "csv"}
        )
        return response.text

    def export(
        self, project: int, format: str, *, approved_only: bool = True
    ) -> AsyncIterator[str]:
        """The export's lines as they stream in (JSONL formats: one record a line)."""
        query = {"format": format, "approved_only": approved_only}
        return self._core.lines("projects.export", path={"id": project}, query=query)

    async def export_to(
        self,
        project: int,
        destination: Destination,
        format: str,
        *,
        approved_only: bool = True,
        on_progress: ProgressCallback | None = None,
    ) -> int:
        """Stream the export into a file; returns the bytes written."""
        query = {"format": format, "approved_only": approved_only}
        return await self._core.download(
            "projects.export",
            destination,
            path={"id": project},
            query=query,
            on_progress=on_progress,
        )


class AsyncImports(_AsyncResource):
    async def upload(
        self,
        project: int,
        file: str | os.PathLike[str] | IO[bytes],
        *,
        format: str | None = None,
        encoding: str | None = None,
        on_conflict: str | None = None,
        on_error: str | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> ImportJob:
        """Upload a JSONL, JSON, CSV or Label Studio file (streamed); returns the import job."""
        body = {
            "format": format,
            "encoding": encoding,
            "on_conflict": on_conflict,
            "on_error": on_error,
        }
        owned = not hasattr(file, "read")
        handle: Any = open(file, "rb") if owned else file  # noqa: SIM115 - closed below
        try:
            reader = ProgressReader(handle, on_progress)
            return await self._core.json(
                "imports.create", path={"id": project}, body=body, upload=reader
            )
        finally:
            if owned:
                handle.close()

    async def get(self, job: str) -> ImportJob:
        return await self._core.json("imports.get", path={"id": job})

    def list(self, **filters: Any) -> AsyncIterator[ImportJob]:
        return self._core.paginate("imports.list", query=filters)

    async def wait(
        self,
        job: str,
        *,
        timeout: float | None = None,
        poll_interval: float = 1.0,
        on_progress: JobCallback | None = None,
    ) -> ImportJob:
        """Poll until the import ends; JobFailed (with its row errors) if it failed."""
        return await self._core.wait(
            "import",
            "imports.get",
            job,
            timeout=timeout,
            poll_interval=poll_interval,
            on_progress=on_progress,
        )


class AsyncItems(_AsyncResource):
    def list(self, **filters: Any) -> AsyncIterator[Item]:
        """filters: project, status, is_gold, external_id, ordering."""
        return self._core.paginate("items.list", query=filters)

    async def get(self, item: int) -> Item:
        return await self._core.json("items.get", path={"id": item})


class AsyncResults(_AsyncResource):
    def list(self, **filters: Any) -> AsyncIterator[ItemResult]:
        """Final answers; filters: project, approved, method."""
        return self._core.paginate("results.list", query=filters)

    async def get(self, result: int) -> ItemResult:
        return await self._core.json("results.get", path={"id": result})


class AsyncExports(_AsyncResource):
    async def create(self, project: int, format: str, *, approved_only: bool = True) -> ExportJob:
        """Export to a file in the background; wait() for it, then download()."""
        body = {"project": project, "format": format, "approved_only": approved_only}
        return await self._core.json("exports.create", body=body)

    async def get(self, job: str) -> ExportJob:
        return await self._core.json("exports.get", path={"id": job})

    def list(self, **filters: Any) -> AsyncIterator[ExportJob]:
        return self._core.paginate("exports.list", query=filters)

    async def wait(
        self,
        job: str,
        *,
        timeout: float | None = None,
        poll_interval: float = 1.0,
        on_progress: JobCallback | None = None,
    ) -> ExportJob:
        return await self._core.wait(
            "export",
            "exports.get",
            job,
            timeout=timeout,
            poll_interval=poll_interval,
            on_progress=on_progress,
        )

    async def download(
        self, job: str, destination: Destination, *, on_progress: ProgressCallback | None = None
    ) -> int:
        return await self._core.download(
            "exports.download", destination, path={"id": job}, on_progress=on_progress
        )


class AsyncDatasets(_AsyncResource):
    async def create(self, project: int, **options: Any) -> DatasetVersion:
        """Freeze the approved answers; options: format, seed, validation_ratio."""
        return await self._core.json("datasets.create", body={"project": project, **options})

    async def get(self, dataset: int) -> DatasetVersion:
        return await self._core.json("datasets.get", path={"id": dataset})

    def list(self, **filters: Any) -> AsyncIterator[DatasetVersion]:
        return self._core.paginate("datasets.list", query=filters)

    async def download(
        self,
        dataset: int,
        destination: Destination,
        *,
        split: str = "train",
        on_progress: ProgressCallback | None = None,
    ) -> int:
        return await self._core.download(
            "datasets.download",
            destination,
            path={"id": dataset},
            query={"split": split},
            on_progress=on_progress,
        )


class AsyncPrelabelRuns(_AsyncResource):
    async def start(self, project: int, **options: Any) -> PrelabelRun:
        """options: model, prompt, policy, region, backend, item_filter."""
        return await self._core.json("prelabel.create", body={"project": project, **options})

    async def get(self, run: int) -> PrelabelRun:
        return await self._core.json("prelabel.get", path={"id": run})

    def list(self, **filters: Any) -> AsyncIterator[PrelabelRun]:
        return self._core.paginate("prelabel.list", query=filters)

    async def cancel(self, run: int) -> PrelabelRun:
        return await self._core.json("prelabel.cancel", path={"id": run})

    async def resume(self, run: int) -> PrelabelRun:
        return await self._core.json("prelabel.resume", path={"id": run})

    async def wait(
        self,
        run: int,
        *,
        timeout: float | None = None,
        poll_interval: float = 1.0,
        on_progress: JobCallback | None = None,
    ) -> PrelabelRun:
        """Until the run ends: returns it succeeded or partial, raises JobFailed otherwise."""
        return await self._core.wait(
            "prelabel",
            "prelabel.get",
            run,
            timeout=timeout,
            poll_interval=poll_interval,
            on_progress=on_progress,
        )

    def predictions(self, **filters: Any) -> AsyncIterator[Prediction]:
        """filters: project, run, item, model."""
        return self._core.paginate("predictions.list", query=filters)

    async def acceptance(self, project: int) -> JSON:
        return await self._core.json("predictions.acceptance", query={"project": project})


class AsyncFineTuneRuns(_AsyncResource):
    async def start(self, dataset: int, backend: int, **options: Any) -> FineTuneRun:
        """options: base_model, method."""
        body = {"dataset": dataset, "backend": backend, **options}
        return await self._core.json("finetune.create", body=body)

    async def get(self, run: int) -> FineTuneRun:
        return await self._core.json("finetune.get", path={"id": run})

    def list(self, **filters: Any) -> AsyncIterator[FineTuneRun]:
        return self._core.paginate("finetune.list", query=filters)

    async def wait(
        self,
        run: int,
        *,
        timeout: float | None = None,
        poll_interval: float = 2.0,
        on_progress: JobCallback | None = None,
    ) -> FineTuneRun:
        return await self._core.wait(
            "finetune",
            "finetune.get",
            run,
            timeout=timeout,
            poll_interval=poll_interval,
            on_progress=on_progress,
        )


class AsyncBackends(_AsyncResource):
    def list(self, **filters: Any) -> AsyncIterator[Backend]:
        return self._core.paginate("backends.list", query=filters)

    async def get(self, backend: int) -> Backend:
        return await self._core.json("backends.get", path={"id": backend})


class AsyncPrompts(_AsyncResource):
    async def create(
        self, project: int, *, system: str = "", user: str = "{text}"
    ) -> PromptTemplate:
        body = {"project": project, "system": system, "user": user}
        return await self._core.json("prompts.create", body=body)

    def list(self, **filters: Any) -> AsyncIterator[PromptTemplate]:
        return self._core.paginate("prompts.list", query=filters)


class AsyncWebhooks(_AsyncResource):
    async def create(
        self, organization: int, url: str, events: list[str] | None = None
    ) -> WebhookEndpointCreated:
        """The response holds the signing secret (whsec_…), once."""
        body: JSON = {"organization": organization, "url": url}
        if events is not None:
            body["events"] = events
        return await self._core.json("webhooks.create", body=body)

    def list(self) -> AsyncIterator[WebhookEndpoint]:
        return self._core.paginate("webhooks.list", query={})

    async def get(self, endpoint: int) -> WebhookEndpoint:
        return await self._core.json("webhooks.get", path={"id": endpoint})

    async def update(self, endpoint: int, **fields: Any) -> WebhookEndpoint:
        """fields: url, events, is_active."""
        return await self._core.json("webhooks.update", path={"id": endpoint}, body=fields)

    async def delete(self, endpoint: int) -> None:
        await self._core.json("webhooks.delete", path={"id": endpoint})

    def deliveries(self, **filters: Any) -> AsyncIterator[WebhookDelivery]:
        """filters: endpoint, status, event."""
        return self._core.paginate("webhooks.deliveries", query=filters)

    async def redeliver(self, delivery: str) -> WebhookDelivery:
        return await self._core.json("webhooks.redeliver", path={"id": delivery})


class AsyncTokens(_AsyncResource):
    def list(self, **filters: Any) -> AsyncIterator[ApiToken]:
        return self._core.paginate("tokens.list", query=filters)

    async def get(self, token: int) -> ApiToken:
        return await self._core.json("tokens.get", path={"id": token})

    async def create(
        self,
        name: str,
        roles: list[str],
        *,
        organization: int | None = None,
        expires_at: str | None = None,
    ) -> ApiTokenCreated:
        """Only people signed in make tokens (a token asking gets PermissionDenied)."""
        body: JSON = {"name": name, "roles": roles}
        if organization is not None:
            body["organization"] = organization
        if expires_at is not None:
            body["expires_at"] = expires_at
        return await self._core.json("tokens.create", body=body)

    async def revoke(self, token: int) -> None:
        await self._core.json("tokens.revoke", path={"id": token})


class AsyncWorkspace(_AsyncResource):
    """An annotator's or reviewer's work, for centres driving it from their own tools."""

    def projects(self) -> AsyncIterator[WorkspaceProject]:
        return self._core.paginate("workspace.projects", query={})

    async def next(self, project: int, *, holding: list[int] | None = None) -> Lease | None:
        """Lease the next task (None: nothing left for you)."""
        return await self._core.json(
            "workspace.next", path={"id": project}, body={"holding": holding or []}
        )

    async def submit(self, assignment: int, answer: JSON, *, time_spent_ms: int = 0) -> Annotation:
        body = {"answer": answer, "time_spent_ms": time_spent_ms}
        return await self._core.json("workspace.submit", path={"id": assignment}, body=body)

    async def skip(self, assignment: int) -> Lease:
        return await self._core.json("workspace.skip", path={"id": assignment})

    async def review_next(self, project: int) -> ReviewLease | None:
        return await self._core.json("workspace.review_next", path={"id": project})

    async def review(self, item: int, verdict: str, **fields: Any) -> Review:
        """verdict: accept, reject (reason, annotation) or correct (corrected_answer)."""
        body = {"verdict": verdict, **fields}
        return await self._core.json("workspace.review", path={"id": item}, body=body)


class AsyncReports(_AsyncResource):
    """Officials' KPI reports for the regions in their office's jurisdiction."""

    async def regions(self) -> list[ReportRegion]:
        return await self._core.json("reports.regions")

    async def get(self, region: str, **query: Any) -> JSON:
        """query: start, end (YYYY-MM), compare, kind, tier, trap_threshold, trap_months."""
        return await self._core.json("reports.get", path={"code": region}, query=query)

    async def download(
        self, region: str, destination: Destination, *, format: str = "csv", **query: Any
    ) -> int:
        """The report as a file (csv, xlsx or pdf), as the dashboard offers it."""
        return await self._core.download(
            "reports.get", destination, path={"code": region}, query={**query, "format": format}
        )


class AsyncClient:
    """``AsyncClient(url, token)``, or from TOKENWORKS_URL/TOKENWORKS_TOKEN or the config
    file when left out (see tokenworks_client.config)."""

    def __init__(
        self,
        base_url: str | None = None,
        token: str | None = None,
        *,
        profile: str | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self._core = _AsyncCore(
            base_url,
            token,
            profile=profile,
            timeout=timeout,
            retry=retry or RetryPolicy(),
            http_client=http_client,
        )
        self.projects = AsyncProjects(self._core)
        self.imports = AsyncImports(self._core)
        self.items = AsyncItems(self._core)
        self.results = AsyncResults(self._core)
        self.exports = AsyncExports(self._core)
        self.datasets = AsyncDatasets(self._core)
        self.prelabel = AsyncPrelabelRuns(self._core)
        self.finetune = AsyncFineTuneRuns(self._core)
        self.backends = AsyncBackends(self._core)
        self.prompts = AsyncPrompts(self._core)
        self.webhooks = AsyncWebhooks(self._core)
        self.tokens = AsyncTokens(self._core)
        self.workspace = AsyncWorkspace(self._core)
        self.reports = AsyncReports(self._core)

    async def me(self) -> Me:
        """Who the token is: its organization and roles."""
        return await self._core.json("me")

    async def aclose(self) -> None:
        await self._core.http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
