"""Fine-tuning runs: upload a dataset version, train at the backend, register and evaluate.

The backend speaks OpenAI's API: POST /files (purpose fine-tune), POST
/fine_tuning/jobs, then GET /fine_tuning/jobs/{id} and its events, polled
from Celery beat. A finished model is registered on its backend for
pre-labeling, then scored on held-out human answers; its disagreements with
the humans go to review.

Submitting and evaluating run on a worker under a lease (annotation/job_sweep.py):
if the worker dies, beat re-dispatches the step within about a minute, and both
are safe to redo (uploads and the remote job already made are kept; evaluation
goes on with the same evaluation run, skipping items already predicted). The
remote training itself is followed by polling, which needs no worker of its own.
"""

import asyncio
import logging
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from annotation.exports import split_is_validation
from annotation.job_sweep import JobKind, JobLease
from annotation.models import DatasetVersion, ExportFormat, Item, ItemResult
from annotation.schemas import answer_key
from annotation.services import item_results_send_to_review
from tenants.models import User
from valuechain import postings

from . import services
from .api_key_cipher import api_key_decrypt
from .backend_client import BackendClient, BackendRejected, BackendUnavailable
from .models import Backend, FineTuneRun, Prediction, PrelabelRun
from .permissions import require_can_run_on_project
from .routing import backends_for_project
from .selectors import FEN

logger = logging.getLogger(__name__)

METHOD_FORMATS = {
    FineTuneRun.Method.SUPERVISED: {ExportFormat.OPENAI_CHAT},
    FineTuneRun.Method.DPO: {ExportFormat.OPENAI_PREFERENCE, ExportFormat.DPO},
}
REMOTE_STATUS = {
    "validating_files": FineTuneRun.Status.QUEUED,
    "queued": FineTuneRun.Status.QUEUED,
    "running": FineTuneRun.Status.RUNNING,
}
KEEP_EVENTS = 50


def _client(backend: Backend) -> BackendClient:
    return BackendClient(
        backend.base_url, api_key=api_key_decrypt(backend.api_key_encrypted), max_concurrency=2
    )


@transaction.atomic
def finetune_run_start(
    *,
    dataset: DatasetVersion,
    backend: Backend,
    created_by: User,
    base_model: str = "",
    method: str = FineTuneRun.Method.SUPERVISED,
    review_disagreements: bool = True,
) -> FineTuneRun:
    project = dataset.project
    require_can_run_on_project(created_by, project)
    if method not in FineTuneRun.Method.values:
        raise ValidationError({"method": [f"Expected one of {FineTuneRun.Method.values}."]})
    if dataset.format not in METHOD_FORMATS[method]:
        raise ValidationError(
            {
                "dataset": [
                    f"A {method} run needs a dataset in "
                    f"{' or '.join(sorted(METHOD_FORMATS[method]))} format; this one is "
                    f"{dataset.format}."
                ]
            }
        )
    if not backends_for_project(project).filter(pk=backend.pk).exists():
        raise ValidationError({"backend": ["That backend is not available to this project."]})
    base_model = base_model or (backend.models_served[0] if backend.models_served else "")
    if not base_model:
        raise ValidationError({"base_model": ["Name the model to fine-tune."]})
    run = FineTuneRun.objects.create(
        project=project,
        dataset=dataset,
        backend=backend,
        base_model=base_model,
        method=method,
        review_disagreements=review_disagreements,
        created_by=created_by,
    )
    from .tasks import finetune_run_submit_task

    finetune_run_submit_task.delay_on_commit(run.pk)
    logger.info(
        "fine-tune run started",
        extra={"finetune_run_id": run.pk, "project_id": project.pk, "backend_id": backend.pk},
    )
    return run


def _fail(run: FineTuneRun, message: str) -> FineTuneRun:
    FineTuneRun.objects.filter(pk=run.pk).update(
        status=FineTuneRun.Status.FAILED, error=message[:2000], finished_at=timezone.now()
    )
    run.refresh_from_db()
    logger.warning("fine-tune run failed", extra={"finetune_run_id": run.pk, "error": message})
    return run


_SUBMITTING = (FineTuneRun.Status.PENDING, FineTuneRun.Status.UPLOADING)
STOPPED_MESSAGE = (
    "The worker running this fine-tuning step stopped {attempts} times. Start the run "
    "again; if it stops again, tell support."
)


def finetune_run_submit(*, run_id: int) -> FineTuneRun:
    """Upload the files and create the job. Safe to run twice: steps done are kept,
    and a run that a live worker is submitting is left to it."""
    lease = FINETUNING.claim(run_id, statuses=_SUBMITTING)
    if lease is None:
        return FineTuneRun.objects.get(pk=run_id)
    with lease:
        return _submit(run_id)


def _submit(run_id: int) -> FineTuneRun:
    run = FineTuneRun.objects.select_related("dataset", "backend").get(pk=run_id)
    if run.backend is None:
        return _fail(run, "The backend was deleted before the run started.")
    FineTuneRun.objects.filter(pk=run.pk).update(status=FineTuneRun.Status.UPLOADING)
    dataset = run.dataset

    stem = f"tokenworks-p{dataset.project_id}-v{dataset.version}"

    def call(method, *args, **kwargs):
        # One short event loop per request, so the ORM work between requests
        # stays plain synchronous code.
        async def go():
            async with _client(run.backend) as client:
                return await getattr(client, method)(*args, **kwargs)

        return asyncio.run(go())

    try:
        if not run.remote_training_file:
            with dataset.train_file.open("rb") as handle:
                uploaded = call(
                    "upload_file", filename=f"{stem}-train.jsonl", content=handle.read()
                )
            run.remote_training_file = uploaded["id"]
            FineTuneRun.objects.filter(pk=run.pk).update(remote_training_file=uploaded["id"])
        if not run.remote_validation_file and dataset.validation_file:
            with dataset.validation_file.open("rb") as handle:
                uploaded = call(
                    "upload_file", filename=f"{stem}-validation.jsonl", content=handle.read()
                )
            run.remote_validation_file = uploaded["id"]
            FineTuneRun.objects.filter(pk=run.pk).update(remote_validation_file=uploaded["id"])
        payload = {
            "model": run.base_model,
            "training_file": run.remote_training_file,
            "suffix": f"tw-p{dataset.project_id}-v{dataset.version}",
            "seed": dataset.seed,
            "method": {"type": run.method},
        }
        if run.remote_validation_file:
            payload["validation_file"] = run.remote_validation_file
        job = call("create_fine_tuning_job", payload)
    except BackendRejected as exc:
        return _fail(run, f"The backend refused the job: {exc}")
    FineTuneRun.objects.filter(pk=run.pk).update(
        remote_job=job["id"], status=FineTuneRun.Status.QUEUED
    )
    run.refresh_from_db()
    logger.info(
        "fine-tune run submitted",
        extra={"finetune_run_id": run.pk, "remote_job": run.remote_job, "status": run.status},
    )
    return run


def finetune_run_poll(*, run_id: int) -> FineTuneRun:
    """Follow the remote job; on success register the model and start the evaluation."""
    run = FineTuneRun.objects.select_related("backend").get(pk=run_id)
    if run.status not in (FineTuneRun.Status.QUEUED, FineTuneRun.Status.RUNNING):
        return run
    if run.backend is None:
        return _fail(run, "The backend was deleted while the job ran.")

    async def fetch():
        async with _client(run.backend) as client:
            return (
                await client.fine_tuning_job(run.remote_job),
                await client.fine_tuning_events(run.remote_job),
            )

    try:
        job, events = asyncio.run(fetch())
    except BackendRejected as exc:
        return _fail(run, f"The backend no longer knows the job: {exc}")
    except BackendUnavailable:
        return run  # try again at the next poll
    remote = job.get("status")
    previous = run.status
    updates = {"events": events[:KEEP_EVENTS]}
    if remote in REMOTE_STATUS:
        updates["status"] = REMOTE_STATUS[remote]
    elif remote == "succeeded":
        trained = int(job.get("trained_tokens") or 0)
        updates.update(
            status=FineTuneRun.Status.EVALUATING,
            fine_tuned_model=job.get("fine_tuned_model") or "",
            trained_tokens=trained,
            cost=(
                Decimal(trained) * run.backend.price_training_per_million / Decimal(1_000_000)
            ).quantize(FEN),
        )
    elif remote in ("failed", "cancelled"):
        error = job.get("error") or {}
        message = error.get("message") if isinstance(error, dict) else str(error)
        updates.update(
            status=FineTuneRun.Status.FAILED
            if remote == "failed"
            else FineTuneRun.Status.CANCELLED,
            error=message or f"The job was {remote}.",
            finished_at=timezone.now(),
        )
    if updates.get("status") == FineTuneRun.Status.EVALUATING:
        # A new step with a fresh count of stopped runs; the sweep re-sends its
        # message if no worker takes it within JOB_PENDING_SECONDS.
        updates.update(claimed_by="", attempts=0, dispatched_at=timezone.now())
    with transaction.atomic():
        FineTuneRun.objects.filter(pk=run.pk).update(**updates)
        if updates.get("status") == FineTuneRun.Status.EVALUATING:
            _register_model(run.backend_id, updates["fine_tuned_model"])
            run.refresh_from_db()
            postings.fine_tuning_posted(run)
            from .tasks import finetune_run_evaluate_task

            finetune_run_evaluate_task.delay_on_commit(run.pk)
    run.refresh_from_db()
    if run.status != previous:
        logger.info(
            "fine-tune run %s -> %s",
            previous,
            run.status,
            extra={
                "finetune_run_id": run.pk,
                "status_from": previous,
                "status_to": run.status,
                "remote_status": remote,
            },
        )
    return run


def _register_model(backend_id: int, model: str) -> None:
    backend = Backend.objects.select_for_update().get(pk=backend_id)
    if model and model not in backend.models_served:
        backend.models_served = [*backend.models_served, model]
        backend.save(update_fields=["models_served"])


def finetune_run_evaluate(*, run_id: int) -> FineTuneRun:
    """Label the held-out human answers with the new model and compare. Safe to run
    twice: a run evaluated already, or being evaluated by a live worker, is left."""
    lease = FINETUNING.claim(run_id, statuses=(FineTuneRun.Status.EVALUATING,))
    if lease is None:
        return FineTuneRun.objects.get(pk=run_id)
    with lease:
        return _evaluate(run_id, lease)


def _evaluate(run_id: int, lease: JobLease) -> FineTuneRun:
    run = FineTuneRun.objects.select_related("dataset", "project", "backend").get(pk=run_id)
    dataset, project = run.dataset, run.project
    held_out = [
        result
        for result in ItemResult.objects.filter(project=project, approved=True)
        .select_related("item")
        .order_by("item_id")
        if split_is_validation(dataset.seed, result.item_id, dataset.validation_ratio)
    ]
    evaluation: dict = {"items": len(held_out), "model": run.fine_tuned_model}
    # A re-dispatched evaluation goes on with the run its stopped worker made.
    eval_run = (
        PrelabelRun.objects.filter(
            project=project, purpose="evaluation", model=run.fine_tuned_model, backend=run.backend
        )
        .order_by("-pk")
        .first()
        if run.backend is not None
        else None
    )
    if held_out and run.backend is not None and eval_run is None:
        eval_run = PrelabelRun.objects.create(
            project=project,
            created_by=run.created_by,
            purpose="evaluation",
            prompt=services.prompt_template_create(project=project, created_by=run.created_by)
            if not project.prompts.exists()
            else project.prompts.first(),
            model=run.fine_tuned_model,
            backend=run.backend,
            item_filter={
                "item_ids": [r.item_id for r in held_out],
                "status": [Item.Status.DONE, Item.Status.IN_REVIEW],
                "only_unlabeled": False,
            },
            status=PrelabelRun.Status.RUNNING,
            total_items=len(held_out),
            started_at=timezone.now(),
        )
    if held_out and eval_run is not None:
        ids = [r.item_id for r in held_out]
        for start in range(0, len(ids), services.CHUNK_SIZE):
            lease.check()
            services.prelabel_chunk_process(
                run_id=eval_run.pk, item_ids=ids[start : start + services.CHUNK_SIZE]
            )
        predictions = {p.item_id: p for p in Prediction.objects.filter(run=eval_run)}
        truth = {r.item_id: answer_key(project.task_type, r.answer) for r in held_out}
        guess = {i: answer_key(project.task_type, p.answer) for i, p in predictions.items()}
        evaluation.update(_scores(truth, guess))
        evaluation["evaluation_run"] = eval_run.pk
        disagreements = [i for i in truth if i in guess and guess[i] != truth[i]]
        evaluation["disagreements"] = len(disagreements)
        if run.review_disagreements:
            # Where the model and the humans disagree, a reviewer decides.
            item_results_send_to_review(item_ids=disagreements)
    with transaction.atomic():
        current = FineTuneRun.objects.select_for_update().get(pk=run.pk)
        if current.status != FineTuneRun.Status.EVALUATING or not lease.holds(current):
            return current  # another run took it over after this one's lease lapsed
        FineTuneRun.objects.filter(pk=run.pk).update(
            status=FineTuneRun.Status.SUCCEEDED, evaluation=evaluation, finished_at=timezone.now()
        )
    run.refresh_from_db()
    logger.info(
        "fine-tune run evaluated",
        extra={
            "finetune_run_id": run.pk,
            "items": evaluation["items"],
            "disagreements": evaluation.get("disagreements", 0),
        },
    )
    return run


def _scores(truth: dict, guess: dict) -> dict:
    """Accuracy over all held-out items (a missing prediction counts as wrong) and macro F1."""
    labels = sorted({*truth.values(), *guess.values()}, key=repr)
    correct = sum(guess.get(i) == t for i, t in truth.items())
    f1s = []
    for label in labels:
        tp = sum(guess.get(i) == label and t == label for i, t in truth.items())
        fp = sum(guess.get(i) == label and t != label for i, t in truth.items())
        fn = sum(guess.get(i) != label and t == label for i, t in truth.items())
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1s.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    return {
        "predicted": len(guess),
        "accuracy": round(correct / len(truth), 4) if truth else None,
        "macro_f1": round(sum(f1s) / len(f1s), 4) if f1s else None,
    }


def finetune_runs_poll_all() -> int:
    ids = list(
        FineTuneRun.objects.filter(
            status__in=[FineTuneRun.Status.QUEUED, FineTuneRun.Status.RUNNING]
        ).values_list("pk", flat=True)
    )
    for run_id in ids:
        finetune_run_poll(run_id=run_id)
    return len(ids)


def _redispatch(run: FineTuneRun):
    """The step the run's stopped worker was on, queued again."""
    from .tasks import finetune_run_evaluate_task, finetune_run_submit_task

    task = (
        finetune_run_evaluate_task
        if run.status == FineTuneRun.Status.EVALUATING
        else finetune_run_submit_task
    )
    run_id = run.pk
    return lambda: task.delay(run_id)


def finetune_runs_recover(*, now=None, limit: int = 100) -> int:
    """Submit or evaluate runs again whose worker died or whose message was lost;
    fail those whose step stopped JOB_MAX_ATTEMPTS times. Run from beat."""
    return FINETUNING.recover(now=now, limit=limit)


FINETUNING = JobKind(
    model=FineTuneRun,
    what="fine-tuning run",
    active=(*_SUBMITTING, FineTuneRun.Status.EVALUATING),
    ended=(FineTuneRun.Status.SUCCEEDED, FineTuneRun.Status.FAILED, FineTuneRun.Status.CANCELLED),
    fail=_fail,
    redispatch=_redispatch,
    stopped_message=STOPPED_MESSAGE,
    log=logger,
)
