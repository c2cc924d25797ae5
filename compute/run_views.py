"""Web pages for running models on a project: pre-labeling and fine-tuning runs.

The project pages live in annotation; these sit under the same /projects/<id>/
address and are found through annotation's selector of the projects the caller
runs, then compute's own rule (can_run_on_project). Writes go through the same
services as the REST API.
"""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from annotation.forms import service_errors_onto
from annotation.models import DatasetVersion, Project
from annotation.selectors import projects_managed

from . import selectors, services
from .finetuning import finetune_run_start
from .models import FineTuneRun, PrelabelRun
from .permissions import require_can_run_on_project
from .routing import backends_for_project

RUN_ENDED = {
    PrelabelRun.Status.CANCELLED,
    PrelabelRun.Status.SUCCEEDED,
    PrelabelRun.Status.PARTIAL,
    PrelabelRun.Status.FAILED,
}
FINETUNE_ENDED = {
    FineTuneRun.Status.SUCCEEDED,
    FineTuneRun.Status.FAILED,
    FineTuneRun.Status.CANCELLED,
}


class PrelabelForm(forms.Form):
    model = forms.ChoiceField(label=gettext_lazy("Model"), required=False)
    policy = forms.ChoiceField(
        label=gettext_lazy("Choose the backend by"),
        choices=[
            ("cheapest", gettext_lazy("Lowest price")),
            ("lowest_latency", gettext_lazy("Fastest answers")),
        ],
    )
    everything = forms.BooleanField(
        label=gettext_lazy("Also label gold items and items that already have answers"),
        required=False,
        help_text=gettext_lazy("What the quality engine needs to weigh the model's votes."),
    )

    def __init__(self, *args, models=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["model"].choices = [("", _("Any model the backends serve"))] + [
            (m, m) for m in models
        ]


class FineTuneForm(forms.Form):
    dataset = forms.ModelChoiceField(
        label=gettext_lazy("Dataset version"), queryset=None, empty_label=None
    )
    backend = forms.ModelChoiceField(label=gettext_lazy("Backend"), queryset=None, empty_label=None)

    def __init__(self, *args, datasets, backends, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["dataset"].queryset = datasets
        self.fields["backend"].queryset = backends


def _project(user, pk: int) -> Project:
    project = get_object_or_404(projects_managed(user=user), pk=pk)
    require_can_run_on_project(user, project)
    return project


def _models(project: Project) -> list[str]:
    return sorted({m for b in backends_for_project(project) for m in b.models_served})


def _forms(project, prelabel_data=None, finetune_data=None):
    backends = backends_for_project(project).order_by("name")
    return (
        PrelabelForm(prelabel_data, models=_models(project)),
        FineTuneForm(
            finetune_data,
            datasets=DatasetVersion.objects.filter(project=project).order_by("-version"),
            backends=backends,
        ),
    )


def _runs_page(request, project, prelabel_form, finetune_form, status=200):
    return render(
        request,
        "compute/project_runs.html",
        {
            "project": project,
            "prelabel_form": prelabel_form,
            "finetune_form": finetune_form,
            "prelabel_runs": selectors.prelabel_runs_for_project(project=project),
            "finetune_runs": selectors.finetune_runs_for_project(project=project),
        },
        status=status,
    )


@login_required
def project_runs(request, pk: int):
    project = _project(request.user, pk)
    prelabel_form, finetune_form = _forms(project)
    return _runs_page(request, project, prelabel_form, finetune_form)


@login_required
@require_POST
def prelabel_start(request, pk: int):
    project = _project(request.user, pk)
    prelabel_form, finetune_form = _forms(project, prelabel_data=request.POST)
    if prelabel_form.is_valid():
        data = prelabel_form.cleaned_data
        try:
            run = services.prelabel_run_start(
                project=project,
                created_by=request.user,
                model=data["model"],
                policy=data["policy"],
                item_filter={"include_gold": True, "only_unlabeled": False}
                if data["everything"]
                else {},
            )
        except (ValidationError, PermissionDenied) as error:
            service_errors_onto(prelabel_form, error)
        else:
            return redirect("project-prelabel-run", pk=project.pk, run_id=run.pk)
    return _runs_page(request, project, prelabel_form, finetune_form, status=400)


@login_required
@require_POST
def finetune_start(request, pk: int):
    project = _project(request.user, pk)
    prelabel_form, finetune_form = _forms(project, finetune_data=request.POST)
    if finetune_form.is_valid():
        try:
            run = finetune_run_start(
                dataset=finetune_form.cleaned_data["dataset"],
                backend=finetune_form.cleaned_data["backend"],
                created_by=request.user,
            )
        except (ValidationError, PermissionDenied) as error:
            service_errors_onto(finetune_form, error)
        else:
            return redirect("project-finetune-run", pk=project.pk, run_id=run.pk)
    return _runs_page(request, project, prelabel_form, finetune_form, status=400)


def _prelabel_state(run: PrelabelRun) -> dict:
    totals = selectors.run_totals(run=run)
    settled = totals["done_items"] + totals["failed_items"]
    progress = (
        min(settled / run.total_items, 1.0)
        if run.total_items
        else (1.0 if run.status == PrelabelRun.Status.SUCCEEDED else 0.0)
    )
    return {
        "status": run.status,
        "status_text": run.get_status_display(),
        "done": run.status in RUN_ENDED,
        "progress": round(progress, 4),
        "progress_text": f"{progress * 100:.1f} %",
        "items_text": _("%(settled)s of %(total)s items")
        % {
            "settled": f"{settled:,}",
            "total": f"{run.total_items:,}",
        },
        "failed_items": totals["failed_items"],
        "tokens": totals["prompt_tokens"] + totals["completion_tokens"],
        "cost": str(totals["cost"]),
        "cost_text": f"¥{totals['cost']:,.2f}",
    }


def _prelabel_run(user, pk: int, run_id: int) -> tuple[Project, PrelabelRun]:
    project = _project(user, pk)
    return project, get_object_or_404(PrelabelRun.objects.filter(project=project), pk=run_id)


@login_required
def prelabel_run_detail(request, pk: int, run_id: int):
    project, run = _prelabel_run(request.user, pk, run_id)
    return render(
        request,
        "compute/prelabel_run.html",
        {"project": project, "run": run, "state": _prelabel_state(run)},
    )


@login_required
@require_GET
def prelabel_run_status(request, pk: int, run_id: int):
    """Polled by the run's page while it runs."""
    run = _prelabel_run(request.user, pk, run_id)[1]
    return JsonResponse(_prelabel_state(run))


@login_required
@require_POST
def prelabel_run_action(request, pk: int, run_id: int, action: str):
    if action not in ("cancel", "resume"):
        raise Http404
    run = _prelabel_run(request.user, pk, run_id)[1]
    try:
        if action == "cancel":
            services.prelabel_run_cancel(run=run, user=request.user)
            messages.success(
                request, _("Run cancelled: items already labelled keep their suggestions.")
            )
        else:
            services.prelabel_run_resume(run=run, user=request.user)
            messages.success(request, _("Run resumed."))
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    return redirect("project-prelabel-run", pk=pk, run_id=run.pk)


def _finetune_state(run: FineTuneRun) -> dict:
    return {
        "status": run.status,
        "status_text": run.get_status_display(),
        "done": run.status in FINETUNE_ENDED,
        "trained_tokens": run.trained_tokens,
        "cost_text": f"¥{run.cost:,.2f}",
        "model": run.fine_tuned_model,
    }


@login_required
def finetune_run_detail(request, pk: int, run_id: int):
    project = _project(request.user, pk)
    run = get_object_or_404(FineTuneRun.objects.filter(project=project), pk=run_id)
    return render(
        request,
        "compute/finetune_run.html",
        {
            "project": project,
            "run": run,
            "state": _finetune_state(run),
            "status_url": reverse("project-finetune-run-status", args=[project.pk, run.pk]),
        },
    )


@login_required
@require_GET
def finetune_run_status(request, pk: int, run_id: int):
    project = _project(request.user, pk)
    run = get_object_or_404(FineTuneRun.objects.filter(project=project), pk=run_id)
    return JsonResponse(_finetune_state(run))
