"""Automatic retraining: the project's model keeps learning from the labels as they are decided.

For an active project with `retrain_every` > 0, once the approved results have
grown enough since the last automatic retrain (first after RETRAIN_FIRST, then
each time they double, then every `retrain_every`: retrain_step) and no
fine-tuning or pre-labeling run of the project is in flight, a retrain:

1. freezes a dataset version of the approved answers (seed 0, 10 % held out:
   the same items stay held out as the set grows, so evaluations compare);
2. fine-tunes, on the backend the project last pre-labeled with, the base model
   of the model it pre-labeled with (a fine-tuned model is traced back to the
   model it was tuned from: every retrain starts from the base on all the
   labels, which is also all the built-in server accepts);
3. when that run has succeeded (its model registered and evaluated), pre-labels
   the project's open items, gold included and annotated or not, with the new
   model: the quality engine calibrates the model per name on gold, so every
   open item must carry the new model's prediction;
4. when that is done, queues the engine's quality refresh (adaptive projects
   whose model votes), which measures the new model on gold.

It acts for the project's creator (who may freeze datasets and run models); if
they no longer may, the retrain fails saying so. Every step is idempotent and
looks before it writes; a failure is recorded on the ModelRetrain row and the
next retrain waits for the next step of approvals, so nothing loops.
Celery beat drives it (compute.model_retrains_run); the bench calls the same
functions synchronously.
"""

import logging
from datetime import timedelta
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from annotation.exports import dataset_version_create
from annotation.models import Item, Project
from tenants.models import AuditEvent
from tenants.services import audit_event_record

from . import services
from .finetuning import finetune_run_start
from .models import FineTuneRun, ModelRetrain, Prediction, PrelabelRun
from .selectors import approved_results_count

logger = logging.getLogger(__name__)

ACTOR_LABEL = "system:model-retrain"
DATASET_SEED = 0
VALIDATION_RATIO = Decimal("0.1")
# A retrain whose run has not finished by then is failed, so a job lost at the
# backend does not block the project's retraining for ever.
RETRAIN_TIMEOUT = timedelta(hours=6)
# The first automatic retrain waits for this many approved results (or the
# project's `retrain_every`, when smaller); see retrain_step.
RETRAIN_FIRST = 30
FINETUNE_IN_FLIGHT = (
    FineTuneRun.Status.PENDING,
    FineTuneRun.Status.UPLOADING,
    FineTuneRun.Status.QUEUED,
    FineTuneRun.Status.RUNNING,
    FineTuneRun.Status.EVALUATING,
)
PRELABEL_IN_FLIGHT = (PrelabelRun.Status.PENDING, PrelabelRun.Status.RUNNING)
# What the new model predicts: every open item, gold included, answered or not.
OPEN_ITEMS = {"status": [Item.Status.OPEN], "only_unlabeled": False, "include_gold": True}


class RetrainRefused(Exception):
    """A retrain cannot start: the reason is recorded on its row."""


def _source(project: Project):
    """The backend and base model to fine-tune: those of the last pre-labeling."""
    run = (
        PrelabelRun.objects.filter(project=project, purpose="prelabel", done_items__gt=0)
        .order_by("-created_at", "-pk")
        .first()
    )
    prediction = (
        Prediction.objects.filter(run=run, backend__isnull=False)
        .select_related("backend")
        .order_by("pk")
        .first()
        if run
        else None
    )
    if prediction is None:
        raise RetrainRefused(
            "The project has no pre-labeling run with predictions to take the backend and the "
            "model from; pre-label it once first."
        )
    base_model = (
        FineTuneRun.objects.filter(backend=prediction.backend, fine_tuned_model=prediction.model)
        .values_list("base_model", flat=True)
        .first()
    ) or prediction.model
    return prediction.backend, base_model


def _busy(project: Project) -> str:
    if ModelRetrain.objects.filter(project=project, status__in=ModelRetrain.UNFINISHED).exists():
        return "retrain"
    if FineTuneRun.objects.filter(project=project, status__in=FINETUNE_IN_FLIGHT).exists():
        return "fine-tuning run"
    if PrelabelRun.objects.filter(project=project, status__in=PRELABEL_IN_FLIGHT).exists():
        return "pre-labeling run"
    return ""


def project_model_retrain_due(*, project: Project) -> tuple[bool, int, int]:
    """(due, approved results now, the count the last retrain started at)."""
    approved = approved_results_count(project=project)
    last = ModelRetrain.objects.filter(project=project).order_by("-created_at", "-pk").first()
    baseline = last.approved_results if last else 0
    every = project.retrain_every
    due = (
        project.status == Project.Status.ACTIVE
        and every > 0
        and approved - baseline >= retrain_step(every=every, baseline=baseline)
    )
    return due, approved, baseline


def retrain_step(*, every: int, baseline: int) -> int:
    """How many new approved results the next retrain waits for.

    Geometric until the step reaches `every`: the first model comes after
    RETRAIN_FIRST labels and each retrain waits for the labels to double. Items
    decided before a model can vote cost several answers each, and a model
    trained on the first few dozen labels already votes on the easy items;
    after that every retrain costs a fine-tune and a re-prediction of the open
    items, so the step grows to the project's `every` and stays there.
    """
    return max(1, min(every, max(RETRAIN_FIRST, baseline)))


def _audit(retrain: ModelRetrain, event_type: str) -> None:
    audit_event_record(
        event_type=event_type,
        organization=retrain.project.organization,
        target=retrain,
        actor=None,
        actor_label=ACTOR_LABEL,
        extra={
            "project_id": retrain.project_id,
            "status": retrain.status,
            "approved_results": retrain.approved_results,
            "finetune_run_id": retrain.finetune_run_id,
            "prelabel_run_id": retrain.prelabel_run_id,
            "error": retrain.error,
        },
    )


def _log_extra(retrain: ModelRetrain) -> dict:
    return {
        "model_retrain_id": retrain.pk,
        "project_id": retrain.project_id,
        "status": retrain.status,
        "finetune_run_id": retrain.finetune_run_id,
        "prelabel_run_id": retrain.prelabel_run_id,
    }


def project_model_retrain_if_due(*, project: Project) -> ModelRetrain | None:
    """Start a retrain if one is due and nothing of the project's is in flight.

    Safe to run twice at once: the project row is locked while deciding, and a
    unique constraint allows one unfinished retrain per project. Returns the
    retrain started (possibly already failed, with the reason), or None.
    """
    with transaction.atomic():
        project = (
            Project.objects.select_for_update()
            .select_related("organization", "created_by")
            .get(pk=project.pk)
        )
        due, approved, baseline = project_model_retrain_due(project=project)
        if not due:
            return None
        busy = _busy(project)
        if busy:
            logger.info(
                "model retrain due, waiting for a %s",
                busy,
                extra={"project_id": project.pk, "approved_results": approved},
            )
            return None
        retrain = ModelRetrain.objects.create(project=project, approved_results=approved)
        try:
            with transaction.atomic():  # a failed step leaves only the failure recorded
                backend, base_model = _source(project)
                dataset = dataset_version_create(
                    project=project,
                    created_by=project.created_by,
                    seed=DATASET_SEED,
                    validation_ratio=VALIDATION_RATIO,
                )
                run = finetune_run_start(
                    dataset=dataset,
                    backend=backend,
                    created_by=project.created_by,
                    base_model=base_model,
                    review_disagreements=False,
                )
        except Exception as exc:
            retrain.status = ModelRetrain.Status.FAILED
            retrain.error = _message(exc)
            retrain.finished_at = timezone.now()
            retrain.save(update_fields=["status", "error", "finished_at"])
            _audit(retrain, AuditEvent.EventType.MODEL_RETRAIN_STARTED)
            _audit(retrain, AuditEvent.EventType.MODEL_RETRAIN_FINISHED)
            log = logger.warning if isinstance(exc, RetrainRefused) else logger.exception
            log("model retrain could not start: %s", retrain.error, extra=_log_extra(retrain))
            return retrain
        retrain.backend, retrain.base_model = backend, base_model
        retrain.dataset, retrain.finetune_run = dataset, run
        retrain.save(update_fields=["backend", "base_model", "dataset", "finetune_run"])
        _audit(retrain, AuditEvent.EventType.MODEL_RETRAIN_STARTED)
    logger.info(
        "model retrain started",
        extra={
            **_log_extra(retrain),
            "approved_results": approved,
            "since_last": approved - baseline,
            "dataset_id": dataset.pk,
            "backend_id": backend.pk,
            "base_model": base_model,
        },
    )
    return retrain


def _message(exc: Exception) -> str:
    messages = getattr(exc, "message_dict", None)
    if messages:
        text = "; ".join(f"{k}: {' '.join(v)}" for k, v in messages.items())
    else:
        text = str(exc) or type(exc).__name__
    return text[:2000]


def model_retrain_advance(*, retrain_id: int, now=None) -> ModelRetrain:
    """Move an unfinished retrain on from what its runs have done. Idempotent."""
    now = now or timezone.now()
    with transaction.atomic():
        retrain = (
            ModelRetrain.objects.select_for_update()
            .select_related("project__organization", "project__created_by")
            .get(pk=retrain_id)
        )
        if retrain.status not in ModelRetrain.UNFINISHED:
            return retrain
        previous = retrain.status
        finetune = (
            FineTuneRun.objects.filter(pk=retrain.finetune_run_id).first()
            if retrain.finetune_run_id
            else None
        )
        prelabel = (
            PrelabelRun.objects.filter(pk=retrain.prelabel_run_id).first()
            if retrain.prelabel_run_id
            else None
        )
        error = ""
        if retrain.status == ModelRetrain.Status.TRAINING:
            if finetune is None:
                error = "The fine-tuning run was deleted."
            elif finetune.status == FineTuneRun.Status.SUCCEEDED and _worse_than_current(
                retrain.project, finetune
            ):
                # Keep the model the open items carry: a retrain on few labels can
                # score under the model it would replace (the base model on a
                # sentiment task), and the engine would lose a useful vote.
                retrain.status = ModelRetrain.Status.SUCCEEDED
                logger.info(
                    "retrained model kept out: worse than the current one",
                    extra={**_log_extra(retrain), "evaluation": finetune.evaluation},
                )
            elif finetune.status == FineTuneRun.Status.SUCCEEDED:
                try:
                    with transaction.atomic():
                        prelabel = services.prelabel_run_start(
                            project=retrain.project,
                            created_by=retrain.project.created_by,
                            model=finetune.fine_tuned_model,
                            backend=finetune.backend,
                            item_filter=OPEN_ITEMS,
                        )
                except Exception as exc:
                    error = f"Pre-labeling with {finetune.fine_tuned_model} did not start: " + (
                        _message(exc)
                    )
                    if not hasattr(exc, "message_dict"):
                        logger.exception(error, extra=_log_extra(retrain))
                else:
                    retrain.prelabel_run = prelabel
                    retrain.status = ModelRetrain.Status.PRELABELING
            elif finetune.status in (FineTuneRun.Status.FAILED, FineTuneRun.Status.CANCELLED):
                error = f"Fine-tuning run {finetune.pk} {finetune.status}: {finetune.error}"
        elif prelabel is None:
            error = "The pre-labeling run was deleted."
        elif prelabel.status in (PrelabelRun.Status.SUCCEEDED, PrelabelRun.Status.PARTIAL):
            retrain.status = ModelRetrain.Status.SUCCEEDED
        elif prelabel.status in (PrelabelRun.Status.FAILED, PrelabelRun.Status.CANCELLED):
            error = f"Pre-labeling run {prelabel.pk} {prelabel.status}: {prelabel.error}"
        if not error and retrain.status == previous and now - retrain.created_at > RETRAIN_TIMEOUT:
            error = f"Still {retrain.status} after {RETRAIN_TIMEOUT}; given up."
        if error:
            retrain.status = ModelRetrain.Status.FAILED
            retrain.error = error[:2000]
        if retrain.status == previous:
            return retrain
        if retrain.status not in ModelRetrain.UNFINISHED:
            retrain.finished_at = now
        retrain.save(update_fields=["status", "error", "prelabel_run", "finished_at"])
        if retrain.status not in ModelRetrain.UNFINISHED:
            _audit(retrain, AuditEvent.EventType.MODEL_RETRAIN_FINISHED)
        project = retrain.project
        if (
            retrain.status == ModelRetrain.Status.SUCCEEDED
            and project.decision == Project.Decision.ADAPTIVE
            and project.model_votes
        ):
            # The engine weighs the model by name: re-measure the new one on gold
            # now rather than at the next beat, so its vote counts sooner.
            from annotation.tasks import project_quality_refresh_task

            transaction.on_commit(lambda: project_quality_refresh_task.delay(project.pk))
    log = logger.warning if retrain.status == ModelRetrain.Status.FAILED else logger.info
    log(
        "model retrain %s -> %s",
        previous,
        retrain.status,
        extra={**_log_extra(retrain), "status_from": previous, "error": retrain.error},
    )
    return retrain


def _worse_than_current(project: Project, finetune: FineTuneRun) -> bool:
    """Whether the new model scored under what the current one measured: its
    held-out accuracy against the current model's accuracy on gold (the quality
    engine's measure), when both are known."""
    from annotation.models import ProjectQuality

    accuracy = (finetune.evaluation or {}).get("accuracy")
    current = (
        ProjectQuality.objects.filter(project=project)
        .values_list("model_accuracy", "model_checked")
        .first()
    )
    if accuracy is None or current is None or current[0] is None or current[1] < 20:
        return False
    return float(accuracy) < float(current[0])


def model_retrains_run() -> dict:
    """Celery beat: advance the unfinished retrains, then start those now due."""
    advanced = 0
    for retrain_id in ModelRetrain.objects.filter(status__in=ModelRetrain.UNFINISHED).values_list(
        "pk", flat=True
    ):
        model_retrain_advance(retrain_id=retrain_id)
        advanced += 1
    started = 0
    for project in Project.objects.filter(status=Project.Status.ACTIVE, retrain_every__gt=0):
        started += project_model_retrain_if_due(project=project) is not None
    return {"advanced": advanced, "started": started}
