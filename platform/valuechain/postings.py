"""What each kind of work posts to the ledger. Called inside the work's own transaction.

Human work is priced from the project (revenue: the client's price per 1,000
tokens) and the annotator's tier (cost: the tier's pay). Machine work is
passed through at cost until clients are billed a separate compute price.
Gold items are quality control: the annotator is paid, the client is not
charged.
"""

from decimal import Decimal

from django.db import connection

from .models import LedgerEntry, SkillTier
from .services import ledger_post, ledger_post_many, ledger_reverse

REVIEW_TIER = 3
FINE_TUNING_TIER = 5


def _per_thousand(rate: Decimal, tokens: int) -> Decimal:
    return rate * Decimal(tokens) / Decimal(1000)


# Read on every submit: one hand-written statement (through the ORM, building
# the query cost more CPU than the rest of the posting).
_PAY_RATE_SQL = f"SELECT pay_per_1k_tokens FROM {SkillTier._meta.db_table} WHERE level = %s"  # noqa: S608


def _pay_rate(level: int) -> Decimal:
    with connection.cursor() as cursor:
        cursor.execute(_PAY_RATE_SQL, [level])
        row = cursor.fetchone()
    if row is None:
        return Decimal(0)
    # PostgreSQL hands numeric over as Decimal; SQLite (make run) as a number.
    return row[0] if isinstance(row[0], Decimal) else Decimal(str(row[0]))


def _human_region(project) -> int:
    if project.workforce_id and project.workforce.region_id:
        return project.workforce.region_id
    return project.organization.region_id


def annotation_posted(annotation) -> None:
    project = annotation.project
    tokens = annotation.item_tokens + annotation.answer_tokens
    tier = annotation.annotator.skill_tier
    is_gold = annotation.gold_correct is not None
    ledger_post(
        idempotency_key=f"annotation:{annotation.pk}",
        kind=LedgerEntry.Kind.ANNOTATION,
        occurred_at=annotation.created_at,
        region_id=_human_region(project),
        client_id=project.organization_id,
        workforce_id=project.workforce_id,
        project_id=project.pk,
        worker_id=annotation.annotator_id,
        skill_tier=tier,
        tokens_input=annotation.item_tokens,
        tokens_output=annotation.answer_tokens,
        revenue=Decimal(0) if is_gold else _per_thousand(project.price_per_1k_tokens, tokens),
        cost=_per_thousand(_pay_rate(tier), tokens),
    )


def annotation_rejected(annotation, *, review_id: int) -> None:
    """Rejected work is neither charged nor paid: its entry is reversed."""
    entry = LedgerEntry.objects.filter(idempotency_key=f"annotation:{annotation.pk}").first()
    if entry is not None:
        ledger_reverse(entry=entry, reason_key=f"review:{review_id}")


def review_posted(review, item) -> None:
    project = review.project
    ledger_post(
        idempotency_key=f"review:{review.pk}",
        kind=LedgerEntry.Kind.REVIEW,
        occurred_at=review.created_at,
        region_id=_human_region(project),
        client_id=project.organization_id,
        workforce_id=project.workforce_id,
        project_id=project.pk,
        worker_id=review.reviewer_id,
        skill_tier=REVIEW_TIER,
        tokens_input=item.token_count,
        tokens_output=0,
        revenue=Decimal(0),
        cost=_per_thousand(_pay_rate(REVIEW_TIER), item.token_count),
    )


def _gpu_ms(wall_ms: float, gpus: int, concurrency: int) -> int:
    """GPU time one call held: its wall time on the backend's GPUs, shared among
    the calls the backend serves at once."""
    return round(wall_ms * gpus / max(concurrency, 1))


def inference_calls_posted(run, calls, *, backends: dict) -> int:
    """`backends`: id -> the Backend each call went to (for region and GPU share)."""
    project = run.project
    entries = [
        {
            "idempotency_key": f"inference:{run.pk}:{call.item_id}:{call.attempt}",
            "kind": LedgerEntry.Kind.INFERENCE,
            "occurred_at": call.created_at or run.started_at,
            "region_id": getattr(backends.get(call.backend_id), "region_id", None)
            or project.organization.region_id,
            "client_id": project.organization_id,
            "workforce_id": project.workforce_id,
            "project_id": project.pk,
            "backend_id": call.backend_id,
            "skill_tier": None,
            "tokens_input": call.prompt_tokens,
            "tokens_output": call.completion_tokens,
            "gpu_ms": _gpu_ms(
                call.latency_ms,
                getattr(backends.get(call.backend_id), "gpu_count", 0),
                getattr(backends.get(call.backend_id), "max_concurrency", 1),
            ),
            "revenue": call.cost,
            "cost": call.cost,
        }
        for call in calls
    ]
    return ledger_post_many(entries)


def _fine_tuning_gpu_ms(run) -> int:
    if not (run.backend_id and run.finished_at):
        return 0
    wall_ms = (run.finished_at - run.created_at).total_seconds() * 1000
    return _gpu_ms(wall_ms, run.backend.gpu_count, 1)


def fine_tuning_posted(run) -> None:
    project = run.project
    region = (
        run.backend.region_id
        if run.backend_id and run.backend.region_id
        else project.organization.region_id
    )
    ledger_post(
        idempotency_key=f"finetune:{run.pk}",
        kind=LedgerEntry.Kind.FINE_TUNING,
        occurred_at=run.finished_at or run.created_at,
        region_id=region,
        client_id=project.organization_id,
        workforce_id=project.workforce_id,
        project_id=project.pk,
        backend_id=run.backend_id,
        skill_tier=FINE_TUNING_TIER,
        tokens_input=run.trained_tokens,
        tokens_output=0,
        gpu_ms=_fine_tuning_gpu_ms(run),
        revenue=run.cost,
        cost=run.cost,
    )
