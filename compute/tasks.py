"""Celery tasks for compute: thin, id-taking, safe to run twice."""

from celery import shared_task
from django.db import InterfaceError, OperationalError

from . import selectors, services
from .backend_client import BackendUnavailable

# A chunk waits this many circuit cool-downs for a backend before the run fails.
NO_BACKEND_RETRIES = 10


@shared_task(name="compute.prelabel_run_dispatch", time_limit=600, soft_time_limit=540)
def prelabel_run_dispatch_task(run_id: int) -> int:
    return services.prelabel_run_dispatch(run_id=run_id)


# Celery retries only what is not a backend's answer: the database being away
# while the chunk is claimed or metered (rows written are skipped on the retry),
# and no backend being in service. Backend faults are retried per call by the
# run's retry policy, never here.
_CHUNK_TASK = {
    "bind": True,
    "time_limit": 900,
    "soft_time_limit": 840,
    "autoretry_for": (OperationalError, InterfaceError),
    "retry_backoff": 5,
    "retry_backoff_max": 120,
    "max_retries": 5,
}


@shared_task(name="compute.prelabel_chunk_run", **_CHUNK_TASK)
def prelabel_chunk_run_task(self, chunk_id: int) -> dict:
    try:
        return services.prelabel_chunk_run(chunk_id=chunk_id)
    except services.NoBackendAvailable as exc:
        return _no_backend(self, exc, run_id=exc.run_id)


@shared_task(name="compute.prelabel_chunk", **_CHUNK_TASK)
def prelabel_chunk_task(self, run_id: int, item_ids: list[int]) -> dict:
    """Messages queued before chunks were rows: adopted as a chunk, then run."""
    try:
        return services.prelabel_chunk_adopt(run_id=run_id, item_ids=item_ids)
    except services.NoBackendAvailable as exc:
        return _no_backend(self, exc, run_id=run_id)


def _no_backend(task, exc, *, run_id: int) -> dict:
    # Nothing was sent: wait for a circuit's cool-down (a half-open probe), then
    # claim the chunk again; in the end the run fails saying why.
    if task.request.retries >= NO_BACKEND_RETRIES:
        services.prelabel_run_fail(
            run_id=run_id,
            error=f"{exc} None came back within {NO_BACKEND_RETRIES} cool-downs; "
            "resume the run to go on.",
        )
        return {"skipped": True, "reason": "no backend"}
    raise task.retry(exc=exc, countdown=exc.retry_in, max_retries=NO_BACKEND_RETRIES) from exc


@shared_task(name="compute.prelabel_runs_sweep", time_limit=120, soft_time_limit=100)
def prelabel_runs_sweep_task() -> int:
    return services.prelabel_runs_recover()


@shared_task(name="compute.backends_health_check", time_limit=120, soft_time_limit=100)
def backends_health_check_task() -> int:
    backends = list(selectors.backends_due_for_health_check())
    for backend in backends:
        services.backend_health_check(backend=backend)
    return len(backends)


@shared_task(
    name="compute.finetune_run_submit",
    time_limit=900,
    soft_time_limit=840,
    autoretry_for=(BackendUnavailable,),
    retry_backoff=10,
    max_retries=10,
)
def finetune_run_submit_task(run_id: int) -> str:
    from .finetuning import finetune_run_submit

    return finetune_run_submit(run_id=run_id).status


@shared_task(name="compute.finetune_runs_poll", time_limit=300, soft_time_limit=270)
def finetune_runs_poll_task() -> int:
    from .finetuning import finetune_runs_poll_all

    return finetune_runs_poll_all()


@shared_task(name="compute.finetune_runs_sweep", time_limit=120, soft_time_limit=100)
def finetune_runs_sweep_task() -> int:
    from .finetuning import finetune_runs_recover

    return finetune_runs_recover()


@shared_task(name="compute.finetune_run_evaluate", time_limit=3600, soft_time_limit=3500)
def finetune_run_evaluate_task(run_id: int) -> str:
    from .finetuning import finetune_run_evaluate

    return finetune_run_evaluate(run_id=run_id).status


@shared_task(name="compute.model_retrains_run", time_limit=900, soft_time_limit=840)
def model_retrains_run_task() -> dict:
    from .retraining import model_retrains_run

    return model_retrains_run()
