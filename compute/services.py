"""Writes for compute: backends, pre-labeling runs, metering, fine-tuning."""

import asyncio
import collections
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
from django.db import connection, transaction
from django.db.models import Max, Q
from django.utils import timezone

from annotation.job_sweep import JobKind, JobLease, JobStateConflict, LeaseLost, job_redispatcher
from annotation.models import Item, Project
from annotation.services import item_suggestions_apply, suggestion_priority
from annotation.token_estimate import estimate_tokens
from tenants.models import AuditEvent, Organization, User
from tenants.services import audit_changes, audit_event_record, audit_snapshot
from valuechain import postings

from . import metrics, permissions, rate_limits
from .api_key_cipher import api_key_decrypt, api_key_encrypt
from .backend_client import RETRYABLE_OUTCOMES, BackendClient, Outcome
from .models import (
    Backend,
    InferenceCall,
    Prediction,
    PrelabelChunk,
    PrelabelRun,
    PromptTemplate,
)
from .retry_policy import RetryPolicy
from .routing import CIRCUIT_COOLDOWN, backends_ranked
from .selectors import FEN, prelabel_run_items, run_failures, run_totals
from .structured import InvalidAnswer, answer_parse, prompt_fields, prompt_messages
from .structured import response_format as project_response_format

# Health checks (GET /models) of an idle backend: this many failures in a row open it.
CIRCUIT_FAILURE_THRESHOLD = 5
# Calls: the circuit opens when more than CIRCUIT_ERROR_SHARE of the backend's
# last CIRCUIT_WINDOW_CALLS calls within CIRCUIT_WINDOW failed (5xx, timeouts,
# connection errors, malformed replies; a 429 is neither an answer nor a
# failure here), once there are at least CIRCUIT_MIN_CALLS of them: a backend
# answering most requests stays in service.
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
        metrics.circuit_observed(backend)
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
        failed = sum(o in InferenceCall.CIRCUIT_FAILURES for o in outcomes)
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
    """Cut the run's unsettled items (no prediction, no recorded final failure) that
    no open chunk holds into chunks, one row each, and queue them. Safe to run twice:
    an item is in one open chunk at a time. A run with nothing left to send is
    refreshed, which finishes it."""
    from .tasks import prelabel_chunk_run_task

    with transaction.atomic():
        run = PrelabelRun.objects.select_for_update().get(pk=run_id)
        if run.status != PrelabelRun.Status.RUNNING:
            return 0
        held: set[int] = set()
        for ids in PrelabelChunk.objects.filter(
            run=run, status=PrelabelChunk.Status.PENDING
        ).values_list("item_ids", flat=True):
            held.update(ids)
        ids = (
            prelabel_run_items(run=run)
            .exclude(predictions__run=run)
            .exclude(pk__in=InferenceCall.objects.filter(run=run, final=True).values("item_id"))
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        now = timezone.now()
        chunks, batch = [], []
        for item_id in ids.iterator(chunk_size=5000):
            if item_id in held:
                continue
            batch.append(item_id)
            if len(batch) == chunk_size:
                chunks.append(PrelabelChunk(run=run, item_ids=batch, dispatched_at=now))
                batch = []
        if batch:
            chunks.append(PrelabelChunk(run=run, item_ids=batch, dispatched_at=now))
        created = PrelabelChunk.objects.bulk_create(chunks)
        chunk_ids = [chunk.pk for chunk in created]
        transaction.on_commit(lambda: [prelabel_chunk_run_task.delay(pk) for pk in chunk_ids])
    if not chunk_ids and not held:
        # Nothing left to send: the run ends now, even if items it counted at the
        # start were deleted since (it would otherwise wait for them for ever).
        prelabel_run_refresh(run_id=run.pk, nothing_left=True)
    logger.info(
        "pre-label run dispatched", extra={"prelabel_run_id": run.pk, "chunks": len(chunk_ids)}
    )
    return len(chunk_ids)


def _chunks_close(run_id: int) -> None:
    """The run ended: its open chunks are not run (a queued message finds them closed)."""
    PrelabelChunk.objects.filter(run_id=run_id, status=PrelabelChunk.Status.PENDING).update(
        status=PrelabelChunk.Status.CLOSED, finished_at=timezone.now()
    )


@transaction.atomic
def prelabel_run_cancel(*, run: PrelabelRun, user: User) -> PrelabelRun:
    """Stop a pending or running run: no new call starts (a chunk in flight stops
    within a second, metering what it called); items done keep their predictions.
    A run that already ended cannot be cancelled (JobStateConflict, 409)."""
    permissions.require_can_run_on_project(user, run.project)
    current = PrelabelRun.objects.select_for_update().get(pk=run.pk)
    if current.status not in (PrelabelRun.Status.PENDING, PrelabelRun.Status.RUNNING):
        raise JobStateConflict(
            f"The run has already ended ({current.status}); only a pending or running run "
            "can be cancelled."
        )
    PrelabelRun.objects.filter(pk=run.pk).update(
        status=PrelabelRun.Status.CANCELLED, finished_at=timezone.now()
    )
    _chunks_close(run.pk)
    run.refresh_from_db()
    logger.info("pre-label run cancelled", extra={"prelabel_run_id": run.pk, "user_id": user.pk})
    return run


@transaction.atomic
def prelabel_run_resume(*, run: PrelabelRun, user: User, now=None) -> PrelabelRun:
    """Go on with a run. A cancelled run sends its items without an outcome; a run
    that ended with failed items (partial, failed) sends those again too. A run
    still marked running is re-dispatched at once when it has stalled: no worker
    holds a chunk of it and no call was recorded for RUN_STALLED_AFTER (beat's sweep
    would do it too, within a couple of minutes). Anything else (a live run, a run
    that succeeded) is a JobStateConflict (409) saying why, so resuming twice never
    labels an item twice at once."""
    permissions.require_can_run_on_project(user, run.project)
    now = now or timezone.now()
    runs = PrelabelRun.objects.select_for_update().filter(pk=run.pk)
    current = runs.get()
    if current.status == PrelabelRun.Status.RUNNING:
        held = (
            PrelabelChunk.objects.filter(
                run=run, status=PrelabelChunk.Status.PENDING, lease_expires_at__gt=now
            )
            .exclude(claimed_by="")
            .exists()
        )
        last_call = (
            InferenceCall.objects.filter(run=run)
            .order_by("-created_at")
            .values_list("created_at", flat=True)
        ).first()
        last_activity = max(filter(None, [last_call, current.started_at]), default=None)
        if held or (last_activity is not None and last_activity > now - RUN_STALLED_AFTER):
            since = f" (last activity {last_activity.isoformat()})" if last_activity else ""
            raise JobStateConflict(
                f"The run is still making progress{since}; resume a run that has stopped."
            )
        # started_at moves on, so a second resume within RUN_STALLED_AFTER sees activity.
        runs.update(started_at=now, error="")
        # Chunks whose worker died go back to the queue at once (no lease is live).
        open_chunks = PrelabelChunk.objects.filter(run=run, status=PrelabelChunk.Status.PENDING)
        requeued = list(open_chunks.values_list("pk", flat=True))
        open_chunks.update(claimed_by="", lease_expires_at=None, dispatched_at=now)
        if requeued:
            from .tasks import prelabel_chunk_run_task

            transaction.on_commit(lambda: [prelabel_chunk_run_task.delay(pk) for pk in requeued])
    elif current.status == PrelabelRun.Status.SUCCEEDED:
        raise JobStateConflict("The run succeeded: every item has a prediction; nothing to resume.")
    elif current.status == PrelabelRun.Status.PENDING:
        raise JobStateConflict("The run has not started yet; it will start on its own.")
    else:
        if current.status in (PrelabelRun.Status.PARTIAL, PrelabelRun.Status.FAILED):
            # The failed items are tried again: their failures stay on record as
            # calls, no longer as the item's end.
            InferenceCall.objects.filter(run=run, final=True).update(final=False)
        runs.update(
            status=PrelabelRun.Status.RUNNING,
            finished_at=None,
            error="",
            failures={},
            started_at=now,
        )
    run.refresh_from_db()
    from .tasks import prelabel_run_dispatch_task

    prelabel_run_dispatch_task.delay_on_commit(run.pk)
    logger.info("pre-label run resumed", extra={"prelabel_run_id": run.pk, "user_id": user.pk})
    return run


def prelabel_run_fail(*, run_id: int, error: str) -> None:
    """A running run that cannot go on (no backend for too long); resume restarts it."""
    if PrelabelRun.objects.filter(pk=run_id, status=PrelabelRun.Status.RUNNING).update(
        status=PrelabelRun.Status.FAILED, error=error[:2000], finished_at=timezone.now()
    ):
        _chunks_close(run_id)
        logger.warning("pre-label run failed", extra={"prelabel_run_id": run_id, "error": error})


def _failure_summary(failures: dict, failed: int, total: int) -> str:
    if not failed:
        return ""
    parts = [
        f"{entry['items']} {outcome}" + (f" ({entry['example']})" if entry["example"] else "")
        for outcome, entry in sorted(failures.items(), key=lambda kv: -kv[1]["items"])
    ]
    return f"{failed} of {total} items failed: " + "; ".join(parts)


def prelabel_run_refresh(*, run_id: int, nothing_left: bool = False) -> PrelabelRun:
    """Store the run's totals; finish it when every item has an outcome (or, with
    nothing_left, when no item is left to send).

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
    if nothing_left or done + failed >= run.total_items:
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
            _chunks_close(run.pk)
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
    kind: str = ""  # and organization_id: how /metrics names the backend
    organization_id: int | None = None
    # Its circuit is open and its cool-down over: calls to it are probes.
    half_open: bool = False


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
    call_id: int | None = None  # its row, written ahead of the request
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
        kind=backend.kind,
        organization_id=backend.organization_id,
        half_open=backend.circuit == Backend.Circuit.OPEN,
    )


async def _label_items(
    project: Project,
    response_format: dict,
    plans: list[_BackendPlan],
    work: list[tuple[int, list[dict], dict, int]],
    *,
    policy: RetryPolicy,
    emit,
    write_ahead,
    stop: threading.Event,
    circuit_open: set[int],
    run_id: int,
    waiting: list[int],
) -> None:
    """Send every item, many in flight, each under the run's retry policy, failing
    over between backends. Each attempt is recorded (`await write_ahead(record)`)
    once it holds a concurrency slot and before it is sent, and handed to `emit`
    as it returns; `("final", record)` follows when an item ends without an answer.

    While the circuit of every backend is open, a failed call is not its item's
    end: items go one at a time, each a half-open probe, and when a probe fails
    too the chunk stops sending; the items left (`waiting`) go again after the
    cool-down, so an outage of the only backend costs no item."""
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
    probe = asyncio.Semaphore(1)
    paused = asyncio.Event()

    def all_open() -> bool:
        return all(plan.id in circuit_open for plan in plans)

    # The breaker's rule on this chunk's own calls, as they return: a backend that
    # fails fast would otherwise spend every item's attempts before the metered
    # calls (written a second later) open its circuit. The database's circuit,
    # every worker's calls, stays the authority: the meter closes it again here.
    recent: dict[int, collections.deque] = {
        plan.id: collections.deque(maxlen=CIRCUIT_WINDOW_CALLS) for plan in plans
    }

    def observed(backend_id: int, *, failed: bool) -> None:
        window = recent[backend_id]
        if not failed and backend_id in circuit_open:
            window.clear()  # a probe answered: judge it afresh
        window.append(failed)
        if (
            failed
            and len(window) >= CIRCUIT_MIN_CALLS
            and sum(window) > CIRCUIT_ERROR_SHARE * len(window)
        ):
            circuit_open.add(backend_id)

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
            record = _CallRecord(
                item_id=item_id,
                attempt=state["attempt"],
                backend=plan,
                outcome=InferenceCall.Outcome.IN_FLIGHT,
                # What it is billed at if its answer is lost with its worker.
                prompt_tokens=sum(estimate_tokens(m["content"]) for m in conversation),
            )
            state["attempt"] += 1
            reply = await clients[plan.id].chat_attempt(
                model=plan.model,
                messages=conversation,
                response_format=response_format,
                request_id=f"inference:{run_id}:{item_id}:{record.attempt}",
                before_send=lambda: write_ahead(record),
            )
            record.outcome = reply.outcome
            record.http_status = reply.http_status
            record.prompt_tokens = reply.prompt_tokens
            record.completion_tokens = reply.completion_tokens
            record.latency_ms = reply.latency_ms
            record.error = reply.error
            if reply.outcome == Outcome.OK:
                observed(plan.id, failed=False)
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
                if reply.outcome in InferenceCall.CIRCUIT_FAILURES:
                    observed(plan.id, failed=True)
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
            retrying = policy.retrying(
                retry_result=lambda t: t.retry and not stop.is_set() and not all_open()
            )
            if all_open():
                async with probe:
                    if paused.is_set():
                        waiting.append(item_id)
                        return
                    last: _Try = await retrying(attempt)
            elif paused.is_set():
                waiting.append(item_id)
                return
            else:
                last = await retrying(attempt)
        if last.record.answer is None and not stop.is_set():
            if last.record.outcome in RETRYABLE_OUTCOMES and all_open():
                # The backends are down, not the item wrong: it waits for them.
                paused.set()
                waiting.append(item_id)
                return
            emit(("final", last.record))

    try:
        await asyncio.gather(*(one(*entry) for entry in work))
    finally:
        await asyncio.gather(*(client.__aexit__(None, None, None) for client in clients.values()))


class NoBackendAvailable(Exception):
    """No backend may take the run's calls now: the chunk waits, having sent nothing."""

    def __init__(self, message: str, *, retry_in: float, run_id: int | None = None):
        super().__init__(message)
        self.retry_in = retry_in
        self.run_id = run_id


# Calls are written as they return, every FLUSH_CALLS or COMPUTE_METER_FLUSH_SECONDS,
# whichever comes first; under load a batch takes whatever has queued meanwhile.
# At a backend's full speed the second bounds it: fewer, larger transactions.
FLUSH_CALLS = 200
# The circuit breaker is re-evaluated at most this often per backend and chunk.
CIRCUIT_EVALUATE_EVERY = 1.0
_DONE = object()


CHUNK_STOPPED_MESSAGE = (
    "A worker labelling part of this run stopped {attempts} times (killed, or out of "
    "memory), so the run stopped. Resume it to go on; if it stops again, tell support."
)


def _chunk_fail(chunk: PrelabelChunk, message: str) -> None:
    """A chunk whose runs kept dying fails its run, saying why (resume restarts it)."""
    PrelabelChunk.objects.filter(pk=chunk.pk).update(
        status=PrelabelChunk.Status.CLOSED,
        finished_at=timezone.now(),
        claimed_by="",
        lease_expires_at=None,
    )
    prelabel_run_fail(run_id=chunk.run_id, error=message)


CHUNKS = JobKind(
    model=PrelabelChunk,
    what="pre-labeling chunk",
    active=(PrelabelChunk.Status.PENDING,),
    ended=(PrelabelChunk.Status.DONE, PrelabelChunk.Status.CLOSED),
    fail=_chunk_fail,
    redispatch=job_redispatcher("compute.tasks.prelabel_chunk_run_task"),
    stopped_message=CHUNK_STOPPED_MESSAGE,
    log=logger,
    # A chunk of a run that ended is closed, never run again.
    scope=Q(run__status=PrelabelRun.Status.RUNNING),
)


def prelabel_chunk_run(*, chunk_id: int) -> dict:
    """Claim the chunk under a lease and label it. A chunk a live worker holds (a
    duplicate or re-delivered message) or one already done is left alone; one whose
    worker died is claimed again, and its items with an outcome are skipped."""
    lease = CHUNKS.claim(chunk_id)
    if lease is None:
        logger.info("pre-label chunk not claimed: held or ended", extra={"chunk_id": chunk_id})
        return {"skipped": True, "reason": "held or ended"}
    with lease:
        chunk = PrelabelChunk.objects.get(pk=chunk_id)
        try:
            summary = prelabel_chunk_process(
                run_id=chunk.run_id, item_ids=chunk.item_ids, lease=lease
            )
        except LeaseLost:
            # Another worker took the chunk over (ours stalled past its lease): it
            # finishes the chunk; what we called is metered and skipped there.
            logger.warning(
                "pre-label chunk lease lost", extra={"chunk_id": chunk_id, "run": chunk.run_id}
            )
            return {"skipped": True, "reason": "lease lost"}
        # Also when the run's end closed it meanwhile: this worker did its part.
        PrelabelChunk.objects.filter(pk=chunk_id, claimed_by=lease.token).update(
            status=PrelabelChunk.Status.CLOSED
            if "skipped" in summary
            else PrelabelChunk.Status.DONE,
            finished_at=timezone.now(),
        )
    if not PrelabelChunk.objects.filter(
        run_id=chunk.run_id, status=PrelabelChunk.Status.PENDING
    ).exists():
        # The run's last chunk: anything still unsettled (items added since) is cut
        # into new chunks, or, with nothing left, the run ends now.
        prelabel_run_dispatch(run_id=chunk.run_id)
    return summary


def prelabel_chunk_adopt(*, run_id: int, item_ids: list[int]) -> dict:
    """A message of the old chunk task (run id and item ids, queued before chunks were
    rows): its items not in an open chunk become one, claimed and run here."""
    with transaction.atomic():
        held: set[int] = set()
        for ids in PrelabelChunk.objects.filter(
            run_id=run_id, status=PrelabelChunk.Status.PENDING
        ).values_list("item_ids", flat=True):
            held.update(ids)
        free = [i for i in item_ids if i not in held]
        if not free:
            return {"skipped": len(item_ids), "reason": "in open chunks"}
        chunk = PrelabelChunk.objects.create(
            run_id=run_id, item_ids=free, dispatched_at=timezone.now()
        )
    return prelabel_chunk_run(chunk_id=chunk.pk)


def prelabel_runs_recover(*, now=None, limit: int = 100) -> int:
    """Beat's sweep for pre-labeling: re-dispatch chunks whose worker died (lease
    lapsed) or whose message was lost, fail the run of a chunk that stopped
    JOB_MAX_ATTEMPTS times, and dispatch again a running run that has no open chunk
    (its dispatch message was lost): that cuts new chunks or finishes it. Safe to
    run twice; nothing a live worker holds is touched."""
    now = now or timezone.now()
    recovered = CHUNKS.recover(now=now, limit=limit)
    quiet_since = now - timedelta(seconds=settings.JOB_PENDING_SECONDS)
    orphans = list(
        PrelabelRun.objects.filter(status=PrelabelRun.Status.RUNNING, started_at__lt=quiet_since)
        .exclude(chunks__status=PrelabelChunk.Status.PENDING)
        .exclude(chunks__finished_at__gte=quiet_since)
        .values_list("pk", flat=True)[:limit]
    )
    for run_id in orphans:
        logger.warning(
            "pre-label run without open chunks dispatched again", extra={"prelabel_run_id": run_id}
        )
        prelabel_run_dispatch(run_id=run_id)
    # A run that ended (cancelled, failed) while a dead worker had calls in flight:
    # no chunk of it will be claimed again, so the sweep marks them interrupted.
    held = (
        PrelabelChunk.objects.filter(lease_expires_at__gt=now)
        .exclude(claimed_by="")
        .values("run_id")
    )
    ended = (
        InferenceCall.objects.filter(outcome=InferenceCall.Outcome.IN_FLIGHT)
        .exclude(run__status=PrelabelRun.Status.RUNNING)
        .exclude(run_id__in=held)
        .values_list("run_id", flat=True)
        .order_by("run_id")  # not the model's ordering: DISTINCT would take it in
        .distinct()[:limit]
    )
    interrupted = sum(prelabel_calls_interrupt(run_id=run_id) for run_id in list(ended))
    return recovered + len(orphans) + interrupted


INTERRUPTED_ERROR = (
    "The worker sending this call stopped before it recorded the answer; billed at the "
    "prompt tokens counted locally, and the item is sent again."
)


def prelabel_calls_interrupt(*, run_id: int, item_ids: list[int] | None = None) -> int:
    """A takeover: the run's calls still in flight (of these items) were sent by a
    worker that is gone, so their outcome is unknown. They become `interrupted`,
    billed and posted to the ledger (same idempotency key as any call, so nothing
    is counted twice) at their write-ahead figures: the prompt tokens counted
    locally, no completion, no GPU time. Called by whoever claims the items' chunk
    next, and by the sweep for runs that ended with no live worker."""
    with transaction.atomic():
        rows = InferenceCall.objects.select_for_update().filter(
            run_id=run_id, outcome=InferenceCall.Outcome.IN_FLIGHT
        )
        if item_ids is not None:
            rows = rows.filter(item_id__in=item_ids)
        calls = list(rows)
        if not calls:
            return 0
        InferenceCall.objects.filter(pk__in=[c.pk for c in calls]).update(
            outcome=InferenceCall.Outcome.INTERRUPTED, error=INTERRUPTED_ERROR
        )
        for call in calls:
            call.outcome, call.error = InferenceCall.Outcome.INTERRUPTED, INTERRUPTED_ERROR
        run = PrelabelRun.objects.select_related("project__organization").get(pk=run_id)
        backends = Backend.objects.in_bulk({c.backend_id for c in calls if c.backend_id})
        postings.inference_calls_posted(run, calls, backends=backends)
        metrics.calls_observed(calls, backends)
    logger.warning(
        "calls of a stopped worker marked interrupted",
        extra={"prelabel_run_id": run_id, "calls": len(calls)},
    )
    return len(calls)


def prelabel_chunk_process(
    *, run_id: int, item_ids: list[int], lease: JobLease | None = None
) -> dict:
    """Pre-label one chunk. Safe to run twice: items with a prediction or a recorded
    final failure are skipped, and calls are keyed by (run, item, attempt), each
    written (and posted to the ledger) as it returns, so none is metered twice and
    a killed chunk has metered what it called."""
    run = PrelabelRun.objects.select_related("project", "prompt", "region").get(pk=run_id)
    if run.status != PrelabelRun.Status.RUNNING:
        return {"skipped": len(item_ids), "reason": run.status}
    # This run holds the chunk: what an earlier run of it left in flight is over.
    prelabel_calls_interrupt(run_id=run.pk, item_ids=item_ids)
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
        raise NoBackendAvailable(message, retry_in=CIRCUIT_COOLDOWN.total_seconds(), run_id=run.pk)
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
    summary = _label_and_meter(
        run, project_response_format(project), plans, work, policy, lease=lease
    )
    logger.info("pre-label chunk processed", extra={"prelabel_run_id": run.pk, **summary})
    if summary["waiting"]:
        message = (
            f"Every backend of the run is out of service (circuit open); {summary['waiting']} "
            "items wait for one to come back."
        )
        PrelabelRun.objects.filter(pk=run.pk).update(error=message)
        prelabel_run_refresh(run_id=run.pk)
        raise NoBackendAvailable(message, retry_in=_cooldown_left(plans), run_id=run.pk)
    prelabel_run_refresh(run_id=run.pk)
    return summary


def _cooldown_left(plans: list[_BackendPlan]) -> float:
    """Seconds until the first of these backends may be probed again (half-open)."""
    now = timezone.now()
    opened = Backend.objects.filter(
        pk__in=[p.id for p in plans], circuit=Backend.Circuit.OPEN
    ).values_list("circuit_opened_at", flat=True)
    due = min((o + CIRCUIT_COOLDOWN for o in opened if o), default=now + CIRCUIT_COOLDOWN)
    return max(1.0, (due - now).total_seconds() + 1.0)


def _label_and_meter(run, response_format, plans, work, policy, *, lease=None) -> dict:
    """HTTP in an event loop on its own thread; metering here, on the caller's thread
    (and database connection), in batches as calls return, so the event loop never
    waits for the database and the database never waits for the whole chunk.

    The one wait the event loop has is the write-ahead record: an attempt holding a
    concurrency slot is sent once its row is committed `in_flight`. Those rows are
    inserted a wave at a time on a thread (and connection) of their own, so a wave
    never queues behind a batch of completions; inside a caller's transaction
    (tests) or on SQLite (one writer at a time) they are written here, first."""
    events: queue.SimpleQueue = queue.SimpleQueue()
    stop = threading.Event()
    circuit_open: set[int] = {plan.id for plan in plans if plan.half_open}
    waiting: list[int] = []
    unsent: list[int] = []
    failure: list[BaseException] = []
    own_writer = connection.vendor == "postgresql" and not connection.in_atomic_block
    waves: queue.SimpleQueue = queue.SimpleQueue() if own_writer else events
    meter = _ChunkMeter(run, plans, circuit_open, lease)

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
                    write_ahead=_WriteAhead(waves.put, unsent),
                    stop=stop,
                    circuit_open=circuit_open,
                    run_id=run.pk,
                    waiting=waiting,
                )
            )
        except BaseException as exc:  # handed to the caller's thread
            failure.append(exc)
        finally:
            events.put(_DONE)

    writer = None
    if own_writer:
        writer = threading.Thread(
            target=_write_ahead_loop,
            args=(meter, waves),
            name=f"prelabel-ahead-{run.pk}",
            daemon=True,
        )
        writer.start()
    thread = threading.Thread(target=loop, name=f"prelabel-run-{run.pk}", daemon=True)
    thread.start()
    pending: list = []
    try:
        finished, deadline = False, None
        while not finished:
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                event = events.get(timeout=timeout)
            except queue.Empty:
                event = None
            finished = event is _DONE
            if isinstance(event, _Wave):
                meter.write_ahead(event)  # the requests wait for it: at once
            elif event is not None and not finished:
                pending.append(event)
                deadline = deadline or time.monotonic() + settings.COMPUTE_METER_FLUSH_SECONDS
            if not (
                finished
                or (pending and (time.monotonic() >= deadline or len(pending) >= FLUSH_CALLS))
            ):
                continue
            for _ in range(events.qsize()):  # whatever queued meanwhile
                event = events.get_nowait()
                if event is _DONE:
                    finished = True
                elif isinstance(event, _Wave):
                    meter.write_ahead(event)
                else:
                    pending.append(event)
            meter.write(pending)
            pending, deadline = [], None
            if not finished and meter.should_stop():
                # Cancelled, or the lease lost: no new attempt starts; those in
                # flight are metered.
                stop.set()
        thread.join()
    except BaseException:
        # A time limit or a database error: start nothing new, and meter what was
        # called (best effort: the chunk is retried, written calls are skipped, and
        # rows left in flight are marked interrupted when it is claimed again).
        stop.set()
        ends = time.monotonic() + 30
        while True:
            for _ in range(events.qsize()):
                event = events.get_nowait()
                if isinstance(event, _Wave):
                    event.settle(RuntimeError("metering stopped"))  # not sent
                elif event is not _DONE:
                    pending.append(event)
            if not thread.is_alive() or time.monotonic() > ends:
                break
            thread.join(0.1)
        try:
            meter.write(pending)
        except Exception:
            logger.exception(
                "could not meter a failed chunk's last calls", extra={"prelabel_run_id": run.pk}
            )
        raise
    finally:
        if writer is not None:
            waves.put(None)
            writer.join()
        if unsent:  # no request went out for these: no call to bill
            try:
                InferenceCall.objects.filter(
                    pk__in=unsent, outcome=InferenceCall.Outcome.IN_FLIGHT
                ).delete()
            except Exception:
                logger.exception(
                    "could not remove rows of calls never sent", extra={"prelabel_run_id": run.pk}
                )
    if failure:
        raise failure[0]
    meter.evaluate_circuits(force=True)
    if meter.lease_lost:
        raise LeaseLost(f"pre-label run {run.pk}")
    return {**meter.summary(), "waiting": len(waiting)}


@dataclass
class _Wave:
    """Attempts that got a concurrency slot in one turn of the event loop, each
    waiting (its future) for its write-ahead row before it is sent."""

    entries: list[tuple[_CallRecord, asyncio.Future]]
    loop: asyncio.AbstractEventLoop
    unsent: list[int]  # rows written for attempts that were never sent (the chunk stopped)

    @property
    def records(self) -> list[_CallRecord]:
        return [record for record, _ in self.entries]

    def settle(self, error: BaseException | None) -> None:
        """From the writing thread: the rows are committed (or not, with error)."""

        def wake() -> None:
            for record, future in self.entries:
                if future.done():  # cancelled: the chunk is stopping, it is not sent
                    if error is None:
                        self.unsent.append(record.call_id)
                elif error is None:
                    future.set_result(None)
                else:
                    future.set_exception(error)

        try:
            self.loop.call_soon_threadsafe(wake)
        except RuntimeError:  # the loop has closed: nobody waits, nothing is sent
            if error is None:
                self.unsent.extend(record.call_id for record in self.records)


class _WriteAhead:
    """The event loop's side of the write-ahead: awaited by an attempt just before it
    is sent. Attempts arriving in the same turn of the loop form one wave, handed to
    `submit` (the writing thread's queue) once that turn is over."""

    def __init__(self, submit, unsent: list[int]):
        self.submit = submit
        self.unsent = unsent
        self.entries: list[tuple[_CallRecord, asyncio.Future]] = []

    async def __call__(self, record: _CallRecord) -> None:
        loop = asyncio.get_running_loop()
        if not self.entries:
            loop.call_soon(self._hand_over, loop)
        future = loop.create_future()
        self.entries.append((record, future))
        await future

    def _hand_over(self, loop) -> None:
        entries, self.entries = self.entries, []
        self.submit(_Wave(entries, loop, self.unsent))


def _write_ahead_loop(meter: "_ChunkMeter", waves: queue.SimpleQueue) -> None:
    """The writing thread: the waves' rows, until None; waves that queued while one
    insert was under way go together in the next."""
    try:
        while (wave := waves.get()) is not None:
            batch = [wave]
            for _ in range(waves.qsize()):
                wave = waves.get_nowait()
                if wave is None:
                    waves.put(None)  # after this batch
                    break
                batch.append(wave)
            try:
                meter.write_ahead(*batch, wait_for_disk=False)
            except Exception:
                # Its attempts raise it (nothing was sent) and the chunk stops.
                logger.warning(
                    "write-ahead of calls failed",
                    exc_info=True,
                    extra={"prelabel_run_id": meter.run.pk},
                )
    finally:
        connection.close()  # this thread's own connection


class _ChunkMeter:
    """Writes a chunk's calls, ledger entries and predictions as they come."""

    def __init__(
        self,
        run: PrelabelRun,
        plans: list[_BackendPlan],
        circuit_open: set[int],
        lease: JobLease | None = None,
    ):
        self.run = run
        self.lease = lease
        self.lease_lost = False
        self.backends = {p.id: p for p in plans}
        self.circuit_open = circuit_open
        self.calls = self.predicted = self.failed = 0
        self.evaluated_at: dict[int, float] = {}
        self.pending: dict[int, list[_CallRecord]] = {}
        self.status_checked_at = time.monotonic()

    def write_ahead(self, *waves: _Wave, wait_for_disk: bool = True) -> None:
        """The waves' rows, in flight, in one insert; their attempts are sent once
        this returns."""
        try:
            _calls_write_ahead(
                self.run,
                [r for wave in waves for r in wave.records],
                wait_for_disk=wait_for_disk,
            )
        except BaseException as exc:
            for wave in waves:
                wave.settle(exc)
            raise
        for wave in waves:
            wave.settle(None)

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

    def should_stop(self) -> bool:
        """Asked at most once a second: a cancel takes effect within that, and so does
        a lost lease (the chunk was taken over; without a renewing thread the lease
        is renewed here)."""
        now = time.monotonic()
        if now - self.status_checked_at < CIRCUIT_EVALUATE_EVERY:
            return False
        self.status_checked_at = now
        if self.lease is not None:
            try:
                self.lease.check()
            except LeaseLost:
                self.lease_lost = True
                return True
        return not PrelabelRun.objects.filter(
            pk=self.run.pk, status=PrelabelRun.Status.RUNNING
        ).exists()

    def summary(self) -> dict:
        return {"predicted": self.predicted, "failed": self.failed, "calls": self.calls}


ANSWERED = (InferenceCall.Outcome.OK, InferenceCall.Outcome.INVALID)


def _calls_write_ahead(
    run: PrelabelRun, records: list[_CallRecord], *, wait_for_disk: bool = True
) -> None:
    """Rows for attempts about to be sent, in flight, priced as if interrupted (the
    prompt as counted locally, no completion): committed before any is sent, so a
    worker killed with calls in flight leaves a row for each.

    Without wait_for_disk (the writing thread, PostgreSQL) the commit returns once
    the server has it in memory, not on disk: 0.4 ms instead of 2.3 for a row at
    load 5.6, and the requests wait for it. It guards against the worker dying,
    which it still does; only a crash of the database server itself within a
    fraction of a second (3 × wal_writer_delay) could lose rows of calls sent."""
    rows = [
        _call_row(
            run,
            record,
            outcome=InferenceCall.Outcome.IN_FLIGHT,
            prompt_tokens=record.prompt_tokens,
            cost=call_cost(record.backend, record.prompt_tokens, 0, 0),
        )
        for record in records
    ]
    with transaction.atomic():
        if not wait_for_disk:
            with connection.cursor() as cursor:
                # This transaction only: the connection goes back to the pool.
                cursor.execute("SET LOCAL synchronous_commit = off")
        InferenceCall.objects.bulk_create(rows)
    for record, row in zip(records, rows, strict=True):
        record.call_id = row.pk


def _call_row(run: PrelabelRun, record: _CallRecord, **fields) -> InferenceCall:
    """The call row of one attempt: who made it, where, for which item; `fields`
    say how it went (in flight when written ahead, completed when it returns)."""
    return InferenceCall(
        run=run,
        project_id=run.project_id,
        item_id=record.item_id,
        attempt=record.attempt,
        backend_id=record.backend.id,
        backend_name=record.backend.name,
        model=record.backend.model,
        purpose=run.purpose,
        **fields,
    )


# The fields a returning call completes in place.
_COMPLETED = (
    "outcome",
    "http_status",
    "prompt_tokens",
    "completion_tokens",
    "cost",
    "latency_ms",
    "error",
    "final",
)


def _calls_complete(calls: list[InferenceCall]) -> dict:
    """Complete in-flight rows in place (pk and _COMPLETED set on each call); returns
    {pk: created_at} of those completed. A row no longer in flight (a takeover
    marked it interrupted and billed it) is left as it is."""
    if not calls:
        return {}
    if connection.vendor != "postgresql":
        live = dict(
            InferenceCall.objects.select_for_update()
            .filter(pk__in=[c.pk for c in calls], outcome=InferenceCall.Outcome.IN_FLIGHT)
            .values_list("pk", "created_at")
        )
        InferenceCall.objects.bulk_update([c for c in calls if c.pk in live], _COMPLETED)
        return live
    # One statement, one array a column: bulk_update's CASE per row and field costs
    # the meter thread more CPU than the calls it meters.
    fields = [InferenceCall._meta.get_field(name) for name in _COMPLETED]
    types = {
        "outcome": "text",
        "http_status": "int4",
        "prompt_tokens": "int8",
        "completion_tokens": "int8",
        "cost": "numeric",
        "latency_ms": "float8",
        "error": "text",
        "final": "bool",
    }
    table = InferenceCall._meta.db_table
    sets = ", ".join(f"{f.column} = v.{f.column}" for f in fields)
    arrays = ", ".join(f"%s::{types[f.name]}[]" for f in fields)
    columns = ", ".join(f.column for f in fields)
    sql = (
        f"UPDATE {table} AS c SET {sets} FROM unnest(%s::int8[], {arrays}) "  # noqa: S608 (names only)
        f"AS v(id, {columns}) WHERE c.id = v.id AND c.outcome = %s RETURNING c.id, c.created_at"
    )
    params = [[c.pk for c in calls]]
    params += [[getattr(c, f.attname) for c in calls] for f in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, InferenceCall.Outcome.IN_FLIGHT])
        return dict(cursor.fetchall())


@transaction.atomic
def _record_calls(
    run: PrelabelRun,
    records: list[_CallRecord],
    finals: list[_CallRecord],
    backends: dict[int, _BackendPlan],
) -> None:
    """One batch: its calls completed in place with their ledger entries, the final
    failures, the predictions."""
    calls = [
        _call_row(
            run,
            record,
            pk=record.call_id,
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
    completed = _calls_complete(calls)
    if len(completed) < len(calls):
        # This worker lost its chunk (stalled past its lease); the worker that took it
        # over billed these as interrupted and sends their items again.
        logger.warning(
            "calls answered after their chunk was taken over, left interrupted",
            extra={"prelabel_run_id": run.pk, "calls": len(calls) - len(completed)},
        )
        records = [r for r in records if r.call_id in completed]
        calls = [c for c in calls if c.pk in completed]
    for call in calls:
        call.created_at = completed[call.pk]
    postings.inference_calls_posted(run, calls, backends=backends)
    metrics.calls_observed(calls, backends)
    written = {id(r) for r in records}
    earlier = [r.call_id for r in finals if id(r) not in written]  # rows of an earlier batch
    if earlier:
        InferenceCall.objects.filter(pk__in=earlier).exclude(
            outcome__in=(InferenceCall.Outcome.IN_FLIGHT, InferenceCall.Outcome.INTERRUPTED)
        ).update(final=True)
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
