"""Writes for compute: backends, pre-labeling runs, metering, fine-tuning."""

import asyncio
import logging
import time
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

import httpx
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from annotation.models import Item, Project
from annotation.services import item_suggestions_apply
from tenants.models import AuditEvent, Organization, User
from tenants.services import audit_changes, audit_event_record, audit_snapshot
from valuechain import postings

from . import permissions, rate_limits
from .api_key_cipher import api_key_decrypt, api_key_encrypt
from .backend_client import BackendClient, BackendRejected, BackendUnavailable, ChatResult
from .models import Backend, InferenceCall, Prediction, PrelabelRun, PromptTemplate
from .routing import backends_ranked
from .selectors import FEN, prelabel_run_items, run_totals
from .structured import InvalidAnswer, answer_parse, prompt_fields, prompt_messages
from .structured import response_format as project_response_format

CIRCUIT_FAILURE_THRESHOLD = 5
# Items per Celery chunk task: enough waves of concurrent requests that the
# tail of a chunk is small, few enough that cancelling takes effect quickly.
CHUNK_SIZE = 500

logger = logging.getLogger(__name__)


# --- backends ----------------------------------------------------------------------

BACKEND_FIELDS = {
    "name",
    "kind",
    "base_url",
    "models_served",
    "region",
    "gpu_kind",
    "gpu_count",
    "price_input_per_million",
    "price_output_per_million",
    "price_training_per_million",
    "electricity_price_kwh",
    "power_draw_kw",
    "max_concurrency",
    "rpm_limit",
    "tpm_limit",
    "is_active",
}


@transaction.atomic
def backend_save(
    *,
    user: User,
    organization: Organization | None,
    backend: Backend | None = None,
    api_key: str | None = None,
    **fields,
) -> Backend:
    """Create or change a backend. The API key is encrypted; None keeps the current one."""
    permissions.require_can_manage_backend(user, organization)
    unknown = set(fields) - BACKEND_FIELDS
    if unknown:
        raise ValidationError({name: ["Unknown field."] for name in sorted(unknown)})
    creating = backend is None
    backend = backend or Backend(organization=organization)
    before = {} if creating else audit_snapshot(backend, fields)
    # Rotating means replacing a key the backend had, or giving it a first one later.
    key_rotated = not creating and api_key is not None
    for name, value in fields.items():
        setattr(backend, name, value)
    if api_key is not None:
        backend.api_key_encrypted = api_key_encrypt(api_key)
    models = backend.models_served
    if not isinstance(models, list) or not all(isinstance(m, str) and m for m in models):
        raise ValidationError({"models_served": ["Expected a list of model names."]})
    backend.full_clean()
    backend.save()
    changes = audit_changes(before, audit_snapshot(backend, fields))
    audit = {"organization": backend.organization, "target": backend, "actor": user}
    if creating:
        audit_event_record(
            event_type=AuditEvent.EventType.BACKEND_CREATED,
            changes=changes,
            extra={"api_key_set": api_key is not None},
            **audit,
        )
        logger.info(
            "backend created",
            extra={"backend_id": backend.pk, "organization_id": backend.organization_id},
        )
    elif changes:
        audit_event_record(
            event_type=AuditEvent.EventType.BACKEND_UPDATED, changes=changes, **audit
        )
    if key_rotated:
        # Recorded as changed, never with a value: not even the ciphertext.
        audit_event_record(
            event_type=AuditEvent.EventType.BACKEND_KEY_ROTATED,
            changes=audit_changes({"api_key": 0}, {"api_key": 1}, redact={"api_key"}),
            **audit,
        )
        logger.info(
            "backend key rotated",
            extra={"backend_id": backend.pk, "organization_id": backend.organization_id},
        )
    return backend


@transaction.atomic
def backend_delete(*, backend: Backend, user: User) -> None:
    """Runs that used it fail over; its metered calls keep its name."""
    permissions.require_can_manage_backend(user, backend.organization)
    audit_event_record(
        event_type=AuditEvent.EventType.BACKEND_DELETED,
        organization=backend.organization,
        target=backend,
        actor=user,
        extra={"name": backend.name, "base_url": backend.base_url},
    )
    logger.info(
        "backend deleted",
        extra={"backend_id": backend.pk, "organization_id": backend.organization_id},
    )
    backend.delete()


def backend_record_outcome(
    *, backend_id: int, ok: bool, latency_ms: float | None = None, error: str = "", now=None
) -> None:
    """Circuit breaker: five failures in a row take a backend out; a success brings it back."""
    now = now or timezone.now()
    with transaction.atomic():
        backend = Backend.objects.select_for_update().filter(pk=backend_id).first()
        if backend is None:  # deleted while a run was using it
            return
        was = (backend.circuit, backend.health)
        if ok:
            backend.consecutive_failures = 0
            backend.circuit = Backend.Circuit.CLOSED
            backend.circuit_opened_at = None
            backend.health = Backend.Health.HEALTHY
            if latency_ms is not None:
                # Smoothed, so one slow call does not reorder routing.
                backend.last_latency_ms = (
                    latency_ms
                    if backend.last_latency_ms is None
                    else (0.8 * backend.last_latency_ms + 0.2 * latency_ms)
                )
        else:
            backend.consecutive_failures += 1
            backend.last_error = error[:1000]
            if backend.circuit == Backend.Circuit.OPEN or (
                backend.consecutive_failures >= CIRCUIT_FAILURE_THRESHOLD
            ):
                # Re-opening restarts the cool-down: a failed probe waits again.
                backend.circuit = Backend.Circuit.OPEN
                backend.circuit_opened_at = now
                backend.health = Backend.Health.UNHEALTHY
        backend.save(
            update_fields=[
                "consecutive_failures",
                "circuit",
                "circuit_opened_at",
                "health",
                "last_latency_ms",
                "last_error",
            ]
        )
    if (backend.circuit, backend.health) != was:
        # Transitions only: a steady state would log on every call.
        log = logger.warning if backend.circuit == Backend.Circuit.OPEN else logger.info
        log(
            "backend circuit %s, health %s",
            backend.circuit,
            backend.health,
            extra={
                "backend_id": backend.pk,
                "circuit_from": was[0],
                "circuit_to": backend.circuit,
                "health_from": was[1],
                "health_to": backend.health,
                "consecutive_failures": backend.consecutive_failures,
            },
        )


def backend_health_check(*, backend: Backend, timeout: float = 5.0) -> Backend:
    """GET /models, timed. Feeds the circuit breaker like any call."""
    headers = {}
    key = api_key_decrypt(backend.api_key_encrypted)
    if key:
        headers["Authorization"] = f"Bearer {key}"
    started = time.perf_counter()
    ok, error, models = False, "", None
    try:
        response = httpx.get(
            f"{backend.base_url.rstrip('/')}/models", headers=headers, timeout=timeout
        )
        response.raise_for_status()
        models = [m["id"] for m in response.json().get("data", []) if "id" in m]
        ok = True
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        error = f"{type(exc).__name__}: {exc}"[:500]
    latency = (time.perf_counter() - started) * 1000
    backend_record_outcome(
        backend_id=backend.pk, ok=ok, latency_ms=latency if ok else None, error=error
    )
    updates = {"last_checked_at": timezone.now()}
    if ok and backend.kind == Backend.Kind.BUILTIN and models:
        # The built-in backend grows models as it fine-tunes; keep the list current.
        updates["models_served"] = models
    Backend.objects.filter(pk=backend.pk).update(**updates)
    backend.refresh_from_db()
    return backend


# --- prompts and runs ------------------------------------------------------------------


@transaction.atomic
def prompt_template_create(
    *, project: Project, created_by: User, system: str = "", user: str = "{text}"
) -> PromptTemplate:
    permissions.require_can_run_on_project(created_by, project)
    from annotation.task_types import task_type_spec

    required = task_type_spec(project.task_type).item_required
    try:
        used = prompt_fields(user)
    except InvalidAnswer as exc:
        raise ValidationError({"user": [str(exc)]}) from exc
    if not used:
        raise ValidationError(
            {"user": [f"The template must use at least one item field, e.g. {{{required[0]}}}."]}
        )
    Project.objects.select_for_update().get(pk=project.pk)  # one version number at a time
    version = (
        PromptTemplate.objects.filter(project=project).aggregate(v=Max("version"))["v"] or 0
    ) + 1
    return PromptTemplate.objects.create(
        project=project, version=version, system=system, user=user, created_by=created_by
    )


@transaction.atomic
def prelabel_run_start(
    *,
    project: Project,
    created_by: User,
    prompt: PromptTemplate | None = None,
    model: str = "",
    policy: str = "cheapest",
    region=None,
    backend: Backend | None = None,
    item_filter: dict | None = None,
) -> PrelabelRun:
    permissions.require_can_run_on_project(created_by, project)
    if prompt is None:
        prompt = PromptTemplate.objects.filter(project=project).first() or prompt_template_create(
            project=project, created_by=created_by
        )
    elif prompt.project_id != project.pk:
        raise ValidationError({"prompt": ["That prompt belongs to another project."]})
    if policy == "region" and region is None:
        raise ValidationError({"region": ["The region policy needs a region."]})
    run = PrelabelRun(
        project=project,
        created_by=created_by,
        prompt=prompt,
        model=model,
        policy=policy,
        region=region,
        backend=backend,
        item_filter=item_filter or {},
    )
    run.full_clean(exclude=["project", "created_by", "prompt"])
    if not backends_ranked(run):
        raise ValidationError(
            {
                "backend": [
                    "No active backend can serve this run (model, "
                    "region and circuit state considered)."
                ]
            }
        )
    run.total_items = prelabel_run_items(run=run).count()
    run.status = PrelabelRun.Status.RUNNING
    run.started_at = timezone.now()
    run.save()
    from .tasks import prelabel_run_dispatch_task

    prelabel_run_dispatch_task.delay_on_commit(run.pk)
    logger.info(
        "pre-label run started",
        extra={"prelabel_run_id": run.pk, "project_id": project.pk, "items": run.total_items},
    )
    return run


def prelabel_run_dispatch(*, run_id: int, chunk_size: int = CHUNK_SIZE) -> int:
    """Queue the run's items in chunks. Items already predicted are skipped by the chunks."""
    from .tasks import prelabel_chunk_task

    run = PrelabelRun.objects.select_related("project").get(pk=run_id)
    if run.status != PrelabelRun.Status.RUNNING:
        return 0
    ids = (
        prelabel_run_items(run=run)
        .exclude(predictions__run=run)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    chunks, batch = 0, []
    for item_id in ids.iterator(chunk_size=5000):
        batch.append(item_id)
        if len(batch) == chunk_size:
            prelabel_chunk_task.delay(run.pk, batch)
            chunks, batch = chunks + 1, []
    if batch:
        prelabel_chunk_task.delay(run.pk, batch)
        chunks += 1
    if chunks == 0:
        prelabel_run_refresh(run_id=run.pk)
    logger.info("pre-label run dispatched", extra={"prelabel_run_id": run.pk, "chunks": chunks})
    return chunks


@transaction.atomic
def prelabel_run_cancel(*, run: PrelabelRun, user: User) -> PrelabelRun:
    permissions.require_can_run_on_project(user, run.project)
    PrelabelRun.objects.filter(
        pk=run.pk, status__in=[PrelabelRun.Status.PENDING, PrelabelRun.Status.RUNNING]
    ).update(status=PrelabelRun.Status.CANCELLED, finished_at=timezone.now())
    run.refresh_from_db()
    logger.info("pre-label run cancelled", extra={"prelabel_run_id": run.pk, "user_id": user.pk})
    return run


@transaction.atomic
def prelabel_run_resume(*, run: PrelabelRun, user: User) -> PrelabelRun:
    """Go on with a cancelled or failed run: items without a prediction are tried again."""
    permissions.require_can_run_on_project(user, run.project)
    updated = PrelabelRun.objects.filter(
        pk=run.pk,
        status__in=[
            PrelabelRun.Status.CANCELLED,
            PrelabelRun.Status.FAILED,
            PrelabelRun.Status.SUCCEEDED,
        ],
    ).update(status=PrelabelRun.Status.RUNNING, finished_at=None, error="")
    run.refresh_from_db()
    if updated:
        from .tasks import prelabel_run_dispatch_task

        prelabel_run_dispatch_task.delay_on_commit(run.pk)
        logger.info("pre-label run resumed", extra={"prelabel_run_id": run.pk, "user_id": user.pk})
    return run


def prelabel_run_refresh(*, run_id: int) -> PrelabelRun:
    """Store the run's totals; finish it when every item has an outcome."""
    run = PrelabelRun.objects.get(pk=run_id)
    totals = run_totals(run=run)
    fields = {
        k: totals[k]
        for k in ("done_items", "failed_items", "prompt_tokens", "completion_tokens", "cost")
    }
    PrelabelRun.objects.filter(pk=run.pk).update(**fields)
    if totals["done_items"] + totals["failed_items"] >= run.total_items and (
        PrelabelRun.objects.filter(pk=run.pk, status=PrelabelRun.Status.RUNNING).update(
            status=PrelabelRun.Status.SUCCEEDED, finished_at=timezone.now()
        )
    ):
        logger.info(
            "pre-label run finished",
            extra={
                "prelabel_run_id": run.pk,
                "done_items": totals["done_items"],
                "failed_items": totals["failed_items"],
                "calls": totals["calls"],
            },
        )
    run.refresh_from_db()
    return run


# --- the calls themselves ----------------------------------------------------------------


@dataclass
class _BackendPlan:
    id: int
    name: str
    base_url: str
    api_key: str
    model: str
    max_concurrency: int
    rpm: int | None
    tpm: int | None
    price_in: Decimal
    price_out: Decimal
    electricity: Decimal | None
    power_kw: Decimal | None
    region_id: int | None = None


@dataclass
class _CallRecord:
    item_id: int
    attempt: int
    backend: _BackendPlan
    outcome: str
    http_status: int | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: float = 0.0
    error: str = ""


@dataclass
class _ItemOutcome:
    item_id: int
    calls: list[_CallRecord] = field(default_factory=list)
    answer: dict | None = None
    confidence: float | None = None
    backend: _BackendPlan | None = None
    model: str = ""


def call_cost(
    plan: _BackendPlan, prompt_tokens: int, completion_tokens: int, latency_ms: float
) -> Decimal:
    """What a call cost: the backend's token prices, or for a self-hosted cluster
    priced by energy, its power draw over the call's share of the cluster's time."""
    if plan.price_in or plan.price_out:
        cost = (
            Decimal(prompt_tokens) * plan.price_in + Decimal(completion_tokens) * plan.price_out
        ) / Decimal(1_000_000)
    elif plan.electricity and plan.power_kw:
        hours = Decimal(str(latency_ms)) / Decimal(3_600_000)
        cost = plan.power_kw * hours * plan.electricity / Decimal(max(plan.max_concurrency, 1))
    else:
        cost = Decimal(0)
    return cost.quantize(FEN, rounding=ROUND_HALF_UP)


def _plan(backend: Backend, run_model: str) -> _BackendPlan:
    model = run_model or (backend.models_served[0] if backend.models_served else "default")
    return _BackendPlan(
        id=backend.pk,
        name=backend.name,
        base_url=backend.base_url,
        api_key=api_key_decrypt(backend.api_key_encrypted),
        model=model,
        max_concurrency=backend.max_concurrency,
        rpm=backend.rpm_limit,
        tpm=backend.tpm_limit,
        price_in=backend.price_input_per_million,
        price_out=backend.price_output_per_million,
        electricity=backend.electricity_price_kwh,
        power_kw=backend.power_draw_kw,
        region_id=backend.region_id,
    )


async def _label_items(
    project: Project,
    response_format: dict,
    plans: list[_BackendPlan],
    work: list[tuple[int, list[dict], dict, int]],
) -> list[_ItemOutcome]:
    """Send every item, many in flight, failing over between backends."""
    clients = {
        plan.id: BackendClient(
            plan.base_url,
            api_key=plan.api_key,
            max_concurrency=plan.max_concurrency,
            timeout=httpx.Timeout(settings.COMPUTE_REQUEST_TIMEOUT, connect=5.0),
            max_retries=settings.COMPUTE_MAX_RETRIES,
            backoff_base=settings.COMPUTE_BACKOFF_BASE,
        )
        for plan in plans
    }

    async def one(item_id: int, messages: list[dict], data: dict, first_attempt: int):
        outcome = _ItemOutcome(item_id=item_id)
        attempt = first_attempt
        for plan in plans:
            client = clients[plan.id]
            conversation = list(messages)
            for retry_on_invalid in (True, False):
                estimate = sum(len(m["content"]) for m in conversation) + 64
                await rate_limits.acquire(
                    backend_id=plan.id, rpm=plan.rpm, tpm=plan.tpm, tokens=estimate
                )
                record = _CallRecord(
                    item_id=item_id,
                    attempt=attempt,
                    backend=plan,
                    outcome=InferenceCall.Outcome.ERROR,
                )
                attempt += 1
                outcome.calls.append(record)
                try:
                    result: ChatResult = await client.chat(
                        model=plan.model, messages=conversation, response_format=response_format
                    )
                except BackendRejected as exc:
                    record.http_status, record.error = exc.status, str(exc)[:1000]
                    return outcome  # the request itself is wrong: no backend will take it
                except BackendUnavailable as exc:
                    record.http_status, record.error = exc.status, str(exc)[:1000]
                    break  # fail over to the next backend
                record.http_status = result.http_status
                record.prompt_tokens = result.prompt_tokens
                record.completion_tokens = result.completion_tokens
                record.latency_ms = result.latency_ms
                try:
                    answer = answer_parse(project, result.content, data)
                except InvalidAnswer as exc:
                    record.outcome = InferenceCall.Outcome.INVALID
                    record.error = f"invalid answer: {exc}"[:1000]
                    if not retry_on_invalid:
                        return outcome  # recorded failure, never an invalid suggestion
                    conversation = [
                        *conversation,
                        {"role": "assistant", "content": result.content},
                        {
                            "role": "user",
                            "content": f"That answer is invalid: {exc}. Reply again with JSON "
                            f"that matches the schema exactly.",
                        },
                    ]
                    continue
                record.outcome = InferenceCall.Outcome.OK
                outcome.answer = answer
                outcome.confidence = result.confidence if result.confidence is not None else 0.5
                outcome.backend, outcome.model = plan, result.model or plan.model
                return outcome
        return outcome

    try:
        return await asyncio.gather(*(one(*entry) for entry in work))
    finally:
        await asyncio.gather(*(client.__aexit__(None, None, None) for client in clients.values()))


def prelabel_chunk_process(*, run_id: int, item_ids: list[int]) -> dict:
    """Pre-label one chunk. Safe to run twice: predicted items are skipped, and
    calls are keyed by (run, item, attempt) so none is metered twice."""
    run = PrelabelRun.objects.select_related("project", "prompt", "region").get(pk=run_id)
    if run.status != PrelabelRun.Status.RUNNING:
        return {"skipped": len(item_ids), "reason": run.status}
    project = run.project
    predicted = set(
        Prediction.objects.filter(run=run, item_id__in=item_ids).values_list("item_id", flat=True)
    )
    items = list(
        Item.objects.filter(pk__in=item_ids).exclude(pk__in=predicted).values_list("pk", "data")
    )
    if not items:
        prelabel_run_refresh(run_id=run.pk)
        return {"predicted": 0, "failed": 0}
    last_attempt = dict(
        InferenceCall.objects.filter(run=run, item_id__in=[i for i, _ in items])
        .values_list("item_id")
        .annotate(Max("attempt"))
    )
    plans = [_plan(b, run.model) for b in backends_ranked(run)]
    if not plans:
        PrelabelRun.objects.filter(pk=run.pk).update(
            error="No active backend could serve the run; resume it when one is back."
        )
        logger.warning("pre-label chunk found no backend", extra={"prelabel_run_id": run.pk})
        raise BackendUnavailable("no backend available for the run", retryable=True)
    work = [
        (
            item_id,
            prompt_messages(run.prompt, project, data),
            data,
            last_attempt.get(item_id, 0) + 1,
        )
        for item_id, data in items
    ]
    outcomes = asyncio.run(_label_items(project, project_response_format(project), plans, work))
    summary = _record_outcomes(run, outcomes)
    logger.info("pre-label chunk processed", extra={"prelabel_run_id": run.pk, **summary})
    prelabel_run_refresh(run_id=run.pk)
    return summary


@transaction.atomic
def _record_outcomes(run: PrelabelRun, outcomes: list[_ItemOutcome]) -> dict:
    calls, predictions = [], []
    per_backend: dict[int, list[_CallRecord]] = {}
    for outcome in outcomes:
        for record in outcome.calls:
            cost = call_cost(
                record.backend, record.prompt_tokens, record.completion_tokens, record.latency_ms
            )
            calls.append(
                InferenceCall(
                    run=run,
                    project_id=run.project_id,
                    item_id=record.item_id,
                    attempt=record.attempt,
                    backend_id=record.backend.id,
                    backend_name=record.backend.name,
                    model=record.backend.model,
                    purpose=run.purpose,
                    outcome=record.outcome,
                    http_status=record.http_status,
                    prompt_tokens=record.prompt_tokens,
                    completion_tokens=record.completion_tokens,
                    cost=cost,
                    latency_ms=record.latency_ms,
                    error=record.error,
                )
            )
            per_backend.setdefault(record.backend.id, []).append(record)
        if outcome.answer is not None:
            ok_calls = [c for c in outcome.calls if c.backend is outcome.backend]
            predictions.append(
                Prediction(
                    run=run,
                    project_id=run.project_id,
                    item_id=outcome.item_id,
                    answer=outcome.answer,
                    confidence=outcome.confidence,
                    model=outcome.model,
                    backend_id=outcome.backend.id,
                    prompt_version=run.prompt.version,
                    prompt_tokens=sum(c.prompt_tokens for c in ok_calls),
                    completion_tokens=sum(c.completion_tokens for c in ok_calls),
                    cost=sum(
                        (
                            call_cost(c.backend, c.prompt_tokens, c.completion_tokens, c.latency_ms)
                            for c in ok_calls
                        ),
                        Decimal(0),
                    ),
                )
            )
    # A chunk processed twice at once (a redelivered message) collides on the
    # unique keys; ignoring the duplicates is what keeps metering exact.
    InferenceCall.objects.bulk_create(calls, ignore_conflicts=True, batch_size=1000)
    postings.inference_calls_posted(
        run,
        calls,
        backends={r.backend.id: r.backend for o in outcomes for r in o.calls},
    )
    Prediction.objects.bulk_create(predictions, ignore_conflicts=True, batch_size=1000)
    if run.purpose == "prelabel":
        # Annotators see the suggestion, and the least certain items are served first.
        item_suggestions_apply(
            suggestions={
                p.item_id: (
                    {
                        "answer": p.answer,
                        "confidence": round(p.confidence, 4),
                        "model": p.model,
                        "prompt_version": p.prompt_version,
                    },
                    round(1.0 - p.confidence, 6),
                )
                for p in predictions
            }
        )
    for backend_id, records in per_backend.items():
        transport_ok = [r for r in records if r.outcome != InferenceCall.Outcome.ERROR]
        failures = [
            r
            for r in records
            if r.outcome == InferenceCall.Outcome.ERROR
            and (r.http_status is None or r.http_status >= 500 or r.http_status == 429)
        ]
        if transport_ok:
            latency = sum(r.latency_ms for r in transport_ok) / len(transport_ok)
            backend_record_outcome(backend_id=backend_id, ok=True, latency_ms=latency)
        for record in failures[-CIRCUIT_FAILURE_THRESHOLD:]:
            backend_record_outcome(backend_id=backend_id, ok=False, error=record.error)
    return {
        "predicted": len(predictions),
        "failed": len(outcomes) - len(predictions),
        "calls": len(calls),
    }
