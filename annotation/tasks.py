"""Celery tasks: thin wrappers that load by id and call one service each.

Every task is safe to run twice (acks are late, so a task whose worker died
runs again): the services look before they write.
"""

import logging

from celery import shared_task
from django.conf import settings
from django.db.models import Q

from . import services
from .imports import import_job_run, import_jobs_recover
from .models import Project

logger = logging.getLogger(__name__)


@shared_task(name="annotation.import_job_run", time_limit=4 * 3600, soft_time_limit=4 * 3600 - 60)
def import_job_run_task(job_id: str) -> str:
    return import_job_run(job_id=job_id).status


@shared_task(name="annotation.jobs_sweep", time_limit=120, soft_time_limit=100)
def jobs_sweep_task() -> int:
    """Re-dispatch import and export jobs whose worker stopped or whose message was
    lost (or fail them, after JOB_MAX_ATTEMPTS), so none stays running or pending."""
    from .exports import export_jobs_recover

    return import_jobs_recover() + export_jobs_recover()


@shared_task(name="annotation.assignment_expire_stale", time_limit=120, soft_time_limit=100)
def assignment_expire_stale_task() -> int:
    """Annotators' and reviewers' lapsed leases both go back to the pool."""
    return services.assignment_expire_stale() + services.review_lease_expire_stale()


@shared_task(
    name="annotation.project_results_infer",
    time_limit=settings.CELERY_TASK_TIME_LIMIT,
    soft_time_limit=settings.CELERY_TASK_SOFT_TIME_LIMIT,
)
def project_results_infer_task(project_id: int) -> dict:
    project = Project.objects.filter(pk=project_id).first()
    if project is None:  # deleted since it was queued
        return {}
    try:
        return services.project_results_infer(project=project)
    except Exception:
        logger.exception("results inference failed", extra={"project_id": project_id})
        raise


@shared_task(name="annotation.export_job_run", time_limit=4 * 3600, soft_time_limit=4 * 3600 - 60)
def export_job_run_task(job_id: str) -> str:
    from .exports import export_job_run

    return export_job_run(job_id=job_id).status


@shared_task(name="annotation.results_infer_active", time_limit=120, soft_time_limit=100)
def results_infer_active_task() -> int:
    """Queue Dawid–Skene for every active project where it can change an answer.

    One project's failure (raised here when tasks run eagerly, or a broker
    error) is logged with its id and the other projects still get their run.
    Returns how many were queued.
    """
    project_ids = list(
        Project.objects.filter(
            status=Project.Status.ACTIVE,
            # Adaptive projects are decided by the quality engine's refresh.
            decision=Project.Decision.FIXED,
            overlap__gt=1,
            task_type__in=services.VOTABLE_TYPES,
        ).values_list("pk", flat=True)
    )
    queued = 0
    for project_id in project_ids:
        try:
            project_results_infer_task.delay(project_id)
        except Exception:
            logger.exception("results inference not run", extra={"project_id": project_id})
        else:
            queued += 1
    return queued


@shared_task(
    name="annotation.project_quality_refresh",
    time_limit=settings.CELERY_TASK_TIME_LIMIT,
    soft_time_limit=settings.CELERY_TASK_SOFT_TIME_LIMIT,
)
def project_quality_refresh_task(project_id: int) -> dict:
    project = Project.objects.filter(pk=project_id).first()
    if project is None:  # deleted since it was queued
        return {}
    summary = services.project_quality_refresh(project=project)
    return {k: v for k, v in summary.items() if not isinstance(v, list)}


@shared_task(name="annotation.quality_refresh_active", time_limit=120, soft_time_limit=100)
def quality_refresh_active_task() -> int:
    """Queue a quality refresh for every active project with something to estimate:
    adaptive ones (their decisions follow it) and fixed ones with gold and a
    quarantine bar (quarantine still applies). One project's failure is logged
    with its id and the others still get theirs. Returns how many were queued."""
    project_ids = list(
        Project.objects.filter(status=Project.Status.ACTIVE, task_type__in=services.VOTABLE_TYPES)
        .filter(Q(decision=Project.Decision.ADAPTIVE) | Q(gold_ratio__gt=0, quarantine_below__gt=0))
        .values_list("pk", flat=True)
    )
    queued = 0
    for project_id in project_ids:
        try:
            project_quality_refresh_task.delay(project_id)
        except Exception:
            logger.exception("quality refresh not queued", extra={"project_id": project_id})
        else:
            queued += 1
    return queued
