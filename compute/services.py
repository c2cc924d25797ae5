"""Writes for compute: backends, pre-labeling runs, metering, fine-tuning."""

import asyncio
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal

import httpx
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone

from annotation.models import Item, Project
from annotation.services import item_suggestions_apply, suggestion_priority
from tenants.models import AuditEvent, Organization, User
from tenants.services import audit_changes, audit_event_record, audit_snapshot
from valuechain import postings

from . import permissions, rate_limits
from .api_key_cipher import api_key_decrypt, api_key_encrypt
from .backend_client import RETRYABLE_OUTCOMES, BackendClient, Outcome
from .models import Backend, InferenceCall, Prediction, PrelabelRun, PromptTemplate
from .retry_policy import RetryPolicy
from .routing import CIRCUIT_COOLDOWN, backends_ranked
from .selectors import FEN, prelabel_run_items, run_failures, run_totals
from .structured import InvalidAnswer, answer_parse, prompt_fields, prompt_messages
from .structured import response_format as project_response_format

# Health checks (GET /models) of an idle backend: this many failures in a row open it.
CIRCUIT_FAILURE_THRESHOLD = 5
# Calls: the circuit opens when more than CIRCUIT_ERROR_SHARE of the backend's
# last CIRCUIT_WINDOW_CALLS calls within CIRCUIT_WINDOW failed (429, 5xx,
# timeouts, connection errors, malformed replies), once there are at least
# CIRCUIT_MIN_CALLS of them: a backend answering most requests stays in service.
CIRCUIT_WINDOW = timedelta(seconds=60)
CIRCUIT_WINDOW_CALLS = 100
CIRCUIT_MIN_CALLS = 20
CIRCUIT_ERROR_SHARE = 0.5
# A running run with no call recorded for this long has lost its workers: resume re-dispatches it.
RUN_STALLED_AFTER = timedelta(minutes=2)
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


def _circuit_logged(backend: Backend, was: tuple, **fields) -> None:
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
                **fields,
            },
        )


def _circuit_set(backend: Backend, circuit: str, now) -> None:
    backend.circuit = circuit
    if circuit == Backend.Circuit.CLOSED:
        backend.circuit_opened_at = None
        backend.health = Backend.Health.HEALTHY
    else:
        # (Re-)opening restarts the cool-down: a failed probe waits again.
        backend.circuit_opened_at = now
        backend.health = Backend.Health.UNHEALTHY


def _smoothed(previous: float | None, latency_ms: float) -> float:
    # Smoothed, so one slow call does not reorder routing.
    return latency_ms if previous is None else 0.8 * previous + 0.2 * latency_ms


def backend_record_outcome(
    *, backend_id: int, ok: bool, latency_ms: float | None = None, error: str = "", now=None
) -> None:
    """A health check's result. Five failures in a row take an idle backend out; a
    success brings an open one back once its cool-down has passed (a half-open probe)."""
    now = now or timezone.now()
    with transaction.atomic():
        backend = Backend.objects.select_for_update().filter(pk=backend_id).first()
        if backend is None:  # deleted while a run was using it
            return
        was = (backend.circuit, backend.health)
        cooled = backend.circuit_opened_at is None or (
            now - backend.circuit_opened_at >= CIRCUIT_COOLDOWN
        )
        if ok:
            backend.consecutive_failures = 0
            if backend.circuit == Backend.Circuit.CLOSED or cooled:
                _circuit_set(backend, Backend.Circuit.CLOSED, now)
            if latency_ms is not None:
                backend.last_latency_ms = _smoothed(backend.last_latency_ms, latency_ms)
        else:
            backend.consecutive_failures += 1
            backend.last_error = error[:1000]
            if (backend.circuit != Backend.Circuit.CLOSED and cooled) or (
                backend.circuit == Backend.Circuit.CLOSED
                and backend.consecutive_failures >= CIRCUIT_FAILURE_THRESHOLD
            ):
                _circuit_set(backend, Backend.Circuit.OPEN, now)
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
    _circuit_logged(backend, was, consecutive_failures=backend.consecutive_failures)


def backend_circuit_evaluate(
    *, backend_id: int, latency_ms: float | None = None, error: str = "", now=None
) -> str | None:
    """The circuit breaker, from the backend's metered calls (every worker's).

    Closed: opens when more than half of the last calls in the window failed,
    given enough of them. Open: after the cool-down routing lets calls through
    again (half-open); when the calls since it opened were answered at least as
    often as not it closes, when they mostly failed it opens again for another
    cool-down. Returns the circuit, or None if the backend is gone.
    """
    now = now or timezone.now()
    with transaction.atomic():
        backend = Backend.objects.select_for_update().filter(pk=backend_id).first()
        if backend is None:
            return None
        was = (backend.circuit, backend.health)
        calls = InferenceCall.objects.filter(
            backend_id=backend_id, created_at__gte=now - CIRCUIT_WINDOW
        )
        if backend.circuit != Backend.Circuit.CLOSED and backend.circuit_opened_at:
            calls = calls.filter(created_at__gte=backend.circuit_opened_at)  # the probes
        outcomes = list(
            calls.order_by("-created_at", "-pk").values_list("outcome", flat=True)[
                :CIRCUIT_WINDOW_CALLS
            ]
        )
        answered = sum(o in ("ok", "invalid") for o in outcomes)
        failed = sum(o in InferenceCall.BACKEND_ERRORS for o in outcomes)
        if backend.circuit == Backend.Circuit.CLOSED:
            if answered + failed >= CIRCUIT_MIN_CALLS and failed > CIRCUIT_ERROR_SHARE * (
                answered + failed
            ):
                _circuit_set(backend, Backend.Circuit.OPEN, now)
            elif answered:
                backend.health = Backend.Health.HEALTHY
        elif answered and answered >= failed:
            _circuit_set(backend, Backend.Circuit.CLOSED, now)
        elif failed and now - (backend.circuit_opened_at or now) >= CIRCUIT_COOLDOWN:
            _circuit_set(backend, Backend.Circuit.OPEN, now)
        if latency_ms is not None:
            backend.last_latency_ms = _smoothed(backend.last_latency_ms, latency_ms)
        if error:
            backend.last_error = error[:1000]
        backend.save(
            update_fields=[
                "circuit",
                "circuit_opened_at",
                "health",
                "last_latency_ms",
                "last_error",
            ]
        )
    _circuit_logged(backend, was, window_calls=answered + failed, window_errors=failed)
    return backend.circuit


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
    run.retry_policy = RetryPolicy.from_settings().as_dict()
    run.save()
    from .tasks import prelabel_run_dispatch_task

    prelabel_run_dispatch_task.delay_on_commit(run.pk)
    logger.info(
        "pre-label run started",
        extra={"prelabel_run_id": run.pk, "project_id": project.pk, "items": run.total_items},
    )
    return run


def prelabel_run_dispatch(*, run_id: int, chunk_size: int = CHUNK_SIZE) -> int:
    """Queue the run's unsettled items (no prediction, no recorded final failure) in chunks."""
    from .tasks import prelabel_chunk_task

    run = PrelabelRun.objects.select_related("project").get(pk=run_id)
    if run.status != PrelabelRun.Status.RUNNING:
        return 0
    ids = (
        prelabel_run_items(run=run)
        .exclude(predictions__run=run)
        .exclude(pk__in=InferenceCall.objects.filter(run=run, final=True).values("item_id"))
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
def prelabel_run_resume(*, run: PrelabelRun, user: User, now=None) -> PrelabelRun:
    """Go on with a run: items without a prediction or a recorded final failure are
    sent again. A cancelled, failed or finished run restarts; a run still marked
    running is re-dispatched only when it has stalled (its workers died: no call
    recorded for RUN_STALLED_AFTER), and a second resume within that time does
    nothing, so resuming twice never labels an item twice at once."""
    permissions.require_can_run_on_project(user, run.project)
    now = now or timezone.now()
    stale = now - RUN_STALLED_AFTER
    runs = PrelabelRun.objects.select_for_update().filter(pk=run.pk)
    current = runs.get()
    if current.status == PrelabelRun.Status.RUNNING:
        last_call = (
            InferenceCall.objects.filter(run=run)
            .order_by("-created_at")
            .values_list("created_at", flat=True)
        ).first()
        last_activity = max(filter(None, [last_call, current.started_at]), default=None)
        if last_activity is not None and last_activity > stale:
            raise ValidationError(
                {
                    "status": [
                        "The run is still making progress (last activity "
                        f"{last_activity.isoformat()}); resume a run that has stopped."
                    ]
                }
            )
        # started_at moves on, so a second resume within RUN_STALLED_AFTER sees activity.
        updated = runs.update(started_at=now, error="")
    else:
        updated = runs.filter(
            status__in=[
                PrelabelRun.Status.CANCELLED,
                PrelabelRun.Status.FAILED,
                PrelabelRun.Status.PARTIAL,
                PrelabelRun.Status.SUCCEEDED,
            ]
        ).update(status=PrelabelRun.Status.RUNNING, finished_at=None, error="")
    run.refresh_from_db()
    if updated:
        from .tasks import prelabel_run_dispatch_task

        prelabel_run_dispatch_task.delay_on_commit(run.pk)
        logger.info("pre-label run resumed", extra={"prelabel_run_id": run.pk, "user_id": user.pk})
    return run


def prelabel_run_fail(*, run_id: int, error: str) -> None:
    """A running run that cannot go on (no backend for too long); resume restarts it."""
    if PrelabelRun.objects.filter(pk=run_id, status=PrelabelRun.Status.RUNNING).update(
        status=PrelabelRun.Status.FAILED, error=error[:2000], finished_at=timezone.now()
    ):
        logger.warning("pre-label run failed", extra={"prelabel_run_id": run_id, "error": error})


def _failure_summary(failures: dict, failed: int, total: int) -> str:
    if not failed:
        return ""
    parts = [
        f"{entry['items']} {outcome}" + (f" ({entry['example']})" if entry["example"] else "")
        for outcome, entry in sorted(failures.items(), key=lambda kv: -kv[1]["items"])
    ]
    return f"{failed} of {total} items failed: " + "; ".join(parts)


def prelabel_run_refresh(*, run_id: int) -> PrelabelRun:
    """Store the run's totals; finish it when every item has an outcome.

    Finished, it says how it went: succeeded (every item answered), partial
    (some items failed) or failed (none answered), with the failed items
    counted by the outcome of their last call and an example of each.
    """
    run = PrelabelRun.objects.get(pk=run_id)
    totals = run_totals(run=run)
    fields = {
        k: totals[k]
        for k in ("done_items", "failed_items", "prompt_tokens", "completion_tokens", "cost")
    }
    PrelabelRun.objects.filter(pk=run.pk).update(**fields)
    done, failed = totals["done_items"], totals["failed_items"]
    if done + failed >= run.total_items:
        failures = run_failures(run=run) if failed else {}
        if not failed:
            status = PrelabelRun.Status.SUCCEEDED
        elif done:
            status = PrelabelRun.Status.PARTIAL
        else:
            status = PrelabelRun.Status.FAILED
        finished = PrelabelRun.objects.filter(pk=run.pk, status=PrelabelRun.Status.RUNNING).update(
            status=status,
            finished_at=timezone.now(),
            failures={k: v["items"] for k, v in failures.items()},
            error=_failure_summary(failures, failed, run.total_items),
        )
        if finished:
            logger.info(
                "pre-label run finished",
                extra={
                    "prelabel_run_id": run.pk,
                    "status": status,
                    "done_items": done,
                    "failed_items": failed,
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
    gpu_count: int = 0


@dataclass
class _CallRecord:
    """One HTTP attempt, as it returned; the row it becomes in InferenceCall."""

    item_id: int
    attempt: int
    backend: _BackendPlan
    outcome: str
    http_status: int | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: float = 0.0
    error: str = ""
    final: bool = False  # the item ends here without an answer
    # The attempt that answered carries the prediction it gives.
    answer: dict | None = None
    confidence: float | None = None
    model: str = ""
    prediction_calls: list["_CallRecord"] = field(default_factory=list, repr=False)


@dataclass
class _Try:
    """What the retry policy sees of an attempt (compute.retry_policy reads the flags)."""

    record: _CallRecord
    retry: bool = False
    failover: bool = False  # the next attempt goes to another backend
    retry_now: bool = False  # re-ask at once (an invalid answer)
    retry_after: float | None = None


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
        gpu_count=backend.gpu_count,
    )


async def _label_items(
    project: Project,
    response_format: dict,
    plans: list[_BackendPlan],
    work: list[tuple[int, list[dict], dict, int]],
    *,
    policy: RetryPolicy,
    emit,
    stop: threading.Event,
    circuit_open: set[int],
) -> None:
    """Send every item, many in flight, each under the run's retry policy, failing
    over between backends. Every attempt is handed to `emit` as it returns;
    `("final", record)` follows when an item ends without an answer."""
    clients = {
        plan.id: BackendClient(
            plan.base_url,
            api_key=plan.api_key,
            max_concurrency=plan.max_concurrency,
            timeout=httpx.Timeout(settings.COMPUTE_REQUEST_TIMEOUT, connect=5.0),
            policy=policy,
        )
        for plan in plans
    }
    # Items are admitted a few per concurrency slot, so an item's time budget
    # starts when it is about to be sent, not while hundreds queue before it.
    admission = asyncio.Semaphore(2 * max(p.max_concurrency for p in plans))

    def next_plan(index: int) -> int:
        """The next backend after `index` whose circuit is not open (itself if none)."""
        for step in range(1, len(plans) + 1):
            candidate = (index + step) % len(plans)
            if plans[candidate].id not in circuit_open:
                return candidate
        return index

    async def one(item_id: int, messages: list[dict], data: dict, first_attempt: int):
        if stop.is_set():
            return
        state = {"plan": 0, "attempt": first_attempt, "conversation": list(messages), "invalid": 0}
        if plans[0].id in circuit_open:
            state["plan"] = next_plan(0)
        records: list[_CallRecord] = []

        async def attempt() -> _Try:
            plan = plans[state["plan"]]
            conversation = state["conversation"]
            estimate = sum(len(m["content"]) for m in conversation) + 64
            await rate_limits.acquire(
                backend_id=plan.id, rpm=plan.rpm, tpm=plan.tpm, tokens=estimate
            )
            reply = await clients[plan.id].chat_attempt(
                model=plan.model, messages=conversation, response_format=response_format
            )
            record = _CallRecord(
                item_id=item_id,
                attempt=state["attempt"],
                backend=plan,
                outcome=reply.outcome,
                http_status=reply.http_status,
                prompt_tokens=reply.prompt_tokens,
                completion_tokens=reply.completion_tokens,
                latency_ms=reply.latency_ms,
                error=reply.error,
            )
            state["attempt"] += 1
            records.append(record)
            result = _Try(record=record)
            if reply.outcome == Outcome.OK:
                try:
                    answer = answer_parse(project, reply.content, data)
                except InvalidAnswer as exc:
                    record.outcome = InferenceCall.Outcome.INVALID
                    record.error = f"invalid answer: {exc}"[:1000]
                    if state["invalid"] < policy.invalid_retries:
                        # Re-asked once with the error; a second invalid answer is
                        # a recorded failure, never an invalid suggestion.
                        state["invalid"] += 1
                        state["conversation"] = [
                            *conversation,
                            {"role": "assistant", "content": reply.content},
                            {
                                "role": "user",
                                "content": f"That answer is invalid: {exc}. Reply again with "
                                f"JSON that matches the schema exactly.",
                            },
                        ]
                        result.retry = result.retry_now = True
                else:
                    record.answer = answer
                    record.confidence = reply.confidence if reply.confidence is not None else 0.5
                    record.model = reply.model or plan.model
                    record.prediction_calls = [r for r in records if r.backend is plan]
            elif reply.outcome in RETRYABLE_OUTCOMES:
                result.retry = True
                result.retry_after = reply.retry_after
                following = next_plan(state["plan"])
                if following != state["plan"]:
                    state.update(plan=following, conversation=list(messages))
                    result.failover = True
            # Anything else (a rejected request) no backend will take: the item ends.
            emit(record)
            return result

        async with admission:
            if stop.is_set():
                return
            retrying = policy.retrying(retry_result=lambda t: t.retry and not stop.is_set())
            last: _Try = await retrying(attempt)
        if last.record.answer is None and not stop.is_set():
            emit(("final", last.record))

    try:
        await asyncio.gather(*(one(*entry) for entry in work))
    finally:
        await asyncio.gather(*(client.__aexit__(None, None, None) for client in clients.values()))


class NoBackendAvailable(Exception):
    """No backend may take the run's calls now: the chunk waits, having sent nothing."""

    def __init__(self, message: str, *, retry_in: float):
        super().__init__(message)
        self.retry_in = retry_in


# Calls are written as they return, every FLUSH_CALLS or COMPUTE_METER_FLUSH_SECONDS,
# whichever comes first; under load a batch takes whatever has queued meanwhile.
# At a backend's full speed the second bounds it: fewer, larger transactions.
FLUSH_CALLS = 200
# The circuit breaker is re-evaluated at most this often per backend and chunk.
CIRCUIT_EVALUATE_EVERY = 1.0
_DONE = object()


def prelabel_chunk_process(*, run_id: int, item_ids: list[int]) -> dict:
    """Pre-label one chunk. Safe to run twice: items with a prediction or a recorded
    final failure are skipped, and calls are keyed by (run, item, attempt), each
    written (and posted to the ledger) as it returns, so none is metered twice and
    a killed chunk has metered what it called."""
    run = PrelabelRun.objects.select_related("project", "prompt", "region").get(pk=run_id)
    if run.status != PrelabelRun.Status.RUNNING:
        return {"skipped": len(item_ids), "reason": run.status}
    project = run.project
    settled = set(
        Prediction.objects.filter(run=run, item_id__in=item_ids).values_list("item_id", flat=True)
    ) | set(
        InferenceCall.objects.filter(run=run, item_id__in=item_ids, final=True).values_list(
            "item_id", flat=True
        )
    )
    items = list(
        Item.objects.filter(pk__in=item_ids).exclude(pk__in=settled).values_list("pk", "data")
    )
    if not items:
        prelabel_run_refresh(run_id=run.pk)
        return {"predicted": 0, "failed": 0, "calls": 0}
    last_attempt = dict(
        InferenceCall.objects.filter(run=run, item_id__in=[i for i, _ in items])
        .values_list("item_id")
        .annotate(Max("attempt"))
    )
    plans = [_plan(b, run.model) for b in backends_ranked(run)]
    if not plans:
        message = "No active backend could serve the run; it goes on when one is back."
        PrelabelRun.objects.filter(pk=run.pk).update(error=message)
        logger.warning("pre-label chunk found no backend", extra={"prelabel_run_id": run.pk})
        raise NoBackendAvailable(message, retry_in=CIRCUIT_COOLDOWN.total_seconds())
    work = [
        (
            item_id,
            prompt_messages(run.prompt, project, data),
            data,
            last_attempt.get(item_id, 0) + 1,
        )
        for item_id, data in items
    ]
    policy = RetryPolicy.from_dict(run.retry_policy)
    summary = _label_and_meter(run, project_response_format(project), plans, work, policy)
    logger.info("pre-label chunk processed", extra={"prelabel_run_id": run.pk, **summary})
    prelabel_run_refresh(run_id=run.pk)
    return summary


def _label_and_meter(run, response_format, plans, work, policy) -> dict:
    """HTTP in an event loop on its own thread; metering here, on the caller's thread
    (and database connection), in batches as calls return, so the event loop never
    waits for the database and the database never waits for the whole chunk."""
    events: queue.SimpleQueue = queue.SimpleQueue()
    stop = threading.Event()
    circuit_open: set[int] = set()
    failure: list[BaseException] = []

    def loop() -> None:
        try:
            asyncio.run(
                _label_items(
                    run.project,
                    response_format,
                    plans,
                    work,
                    policy=policy,
                    emit=events.put,
                    stop=stop,
                    circuit_open=circuit_open,
                )
            )
        except BaseException as exc:  # handed to the caller's thread
            failure.append(exc)
        finally:
            events.put(_DONE)

    meter = _ChunkMeter(run, plans, circuit_open)
    thread = threading.Thread(target=loop, name=f"prelabel-run-{run.pk}", daemon=True)
    thread.start()
    finished, batch = False, []
    try:
        while not finished:
            batch = [events.get()]
            deadline = time.monotonic() + settings.COMPUTE_METER_FLUSH_SECONDS
            while batch[-1] is not _DONE and len(batch) < FLUSH_CALLS:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    batch.append(events.get(timeout=left))
                except queue.Empty:
                    break
            while batch[-1] is not _DONE:  # whatever queued while the last batch was written
                try:
                    batch.append(events.get_nowait())
                except queue.Empty:
                    break
            finished = batch[-1] is _DONE
            meter.write([e for e in batch if e is not _DONE])
            batch = []
            if not finished and meter.run_cancelled():
                stop.set()  # cancelled: no new attempt starts; those in flight are metered
    except BaseException:
        # A time limit or a database error: start nothing new, and meter what was
        # called (best effort: the chunk is retried, and written calls are skipped).
        stop.set()
        thread.join(timeout=30)
        leftover = [e for e in batch if e is not _DONE]
        while True:
            try:
                event = events.get_nowait()
            except queue.Empty:
                break
            if event is not _DONE:
                leftover.append(event)
        try:
            meter.write(leftover)
        except Exception:
            logger.exception(
                "could not meter a failed chunk's last calls", extra={"prelabel_run_id": run.pk}
            )
        raise
    thread.join()
    if failure:
        raise failure[0]
    meter.evaluate_circuits(force=True)
    return meter.summary()


class _ChunkMeter:
    """Writes a chunk's calls, ledger entries and predictions as they come."""

    def __init__(self, run: PrelabelRun, plans: list[_BackendPlan], circuit_open: set[int]):
        self.run = run
        self.backends = {p.id: p for p in plans}
        self.circuit_open = circuit_open
        self.calls = self.predicted = self.failed = 0
        self.evaluated_at: dict[int, float] = {}
        self.pending: dict[int, list[_CallRecord]] = {}
        self.status_checked_at = time.monotonic()

    def write(self, events: list) -> None:
        records = [e for e in events if isinstance(e, _CallRecord)]
        finals = [e[1] for e in events if isinstance(e, tuple)]
        for record in finals:
            record.final = True  # if its row is in this batch, it is written so
        if not (records or finals):
            return
        _record_calls(self.run, records, finals, self.backends)
        self.calls += len(records)
        self.predicted += sum(r.answer is not None for r in records)
        self.failed += len(finals)
        for record in records:
            self.pending.setdefault(record.backend.id, []).append(record)
        self.evaluate_circuits()

    def evaluate_circuits(self, *, force: bool = False) -> None:
        now = time.monotonic()
        for backend_id, records in list(self.pending.items()):
            if not force and now - self.evaluated_at.get(backend_id, 0.0) < CIRCUIT_EVALUATE_EVERY:
                continue
            answered = [r.latency_ms for r in records if r.outcome in ANSWERED]
            errors = [r.error for r in records if r.outcome in InferenceCall.BACKEND_ERRORS]
            circuit = backend_circuit_evaluate(
                backend_id=backend_id,
                latency_ms=sum(answered) / len(answered) if answered else None,
                error=errors[-1] if errors else "",
            )
            if circuit == Backend.Circuit.OPEN:
                self.circuit_open.add(backend_id)
            else:
                self.circuit_open.discard(backend_id)
            self.evaluated_at[backend_id] = now
            del self.pending[backend_id]

    def run_cancelled(self) -> bool:
        """Asked at most once a second: a cancel takes effect within that."""
        now = time.monotonic()
        if now - self.status_checked_at < CIRCUIT_EVALUATE_EVERY:
            return False
        self.status_checked_at = now
        return not PrelabelRun.objects.filter(
            pk=self.run.pk, status=PrelabelRun.Status.RUNNING
        ).exists()

    def summary(self) -> dict:
        return {"predicted": self.predicted, "failed": self.failed, "calls": self.calls}


ANSWERED = (InferenceCall.Outcome.OK, InferenceCall.Outcome.INVALID)


@transaction.atomic
def _record_calls(
    run: PrelabelRun,
    records: list[_CallRecord],
    finals: list[_CallRecord],
    backends: dict[int, _BackendPlan],
) -> None:
    """One batch: its calls and their ledger entries, the final failures, the predictions."""
    calls = [
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
            cost=call_cost(
                record.backend, record.prompt_tokens, record.completion_tokens, record.latency_ms
            ),
            latency_ms=record.latency_ms,
            error=record.error,
            final=record.final,
        )
        for record in records
    ]
    # A chunk processed twice at once (a redelivered message) collides on the
    # unique keys; ignoring the duplicates is what keeps metering exact.
    InferenceCall.objects.bulk_create(calls, ignore_conflicts=True, batch_size=1000)
    postings.inference_calls_posted(run, calls, backends=backends)
    written = {id(r) for r in records}
    earlier = [r for r in finals if id(r) not in written]  # rows of an earlier batch
    if earlier:
        keys = Q()
        for record in earlier:
            keys |= Q(item_id=record.item_id, attempt=record.attempt)
        InferenceCall.objects.filter(keys, run=run).update(final=True)
    predictions = [
        Prediction(
            run=run,
            project_id=run.project_id,
            item_id=record.item_id,
            answer=record.answer,
            confidence=record.confidence,
            model=record.model,
            backend_id=record.backend.id,
            prompt_version=run.prompt.version,
            prompt_tokens=sum(c.prompt_tokens for c in record.prediction_calls),
            completion_tokens=sum(c.completion_tokens for c in record.prediction_calls),
            cost=sum(
                (
                    call_cost(c.backend, c.prompt_tokens, c.completion_tokens, c.latency_ms)
                    for c in record.prediction_calls
                ),
                Decimal(0),
            ),
        )
        for record in records
        if record.answer is not None
    ]
    Prediction.objects.bulk_create(predictions, ignore_conflicts=True, batch_size=1000)
    if run.purpose == "prelabel":
        # Annotators see the suggestion; suggestion_priority orders the items.
        item_suggestions_apply(
            suggestions={
                p.item_id: (
                    {
                        "answer": p.answer,
                        "confidence": round(p.confidence, 4),
                        "model": p.model,
                        "prompt_version": p.prompt_version,
                    },
                    suggestion_priority(
                        project=run.project, item_id=p.item_id, confidence=p.confidence
                    ),
                )
                for p in predictions
            }
        )
