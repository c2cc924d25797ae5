"""Web pages for the people who run projects: a client's editors and a centre's
project managers.

The views do I/O only: they find the project among those the caller runs
(annotation.selectors.projects_managed; anyone else's is a 404), read through
selectors and change through the same services as the REST API, so a page never
offers what the API would refuse. A service's refusal or validation error is
shown beside the field it names, never as a 500.
"""

import logging

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import FileResponse, Http404, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET, require_POST

from tenants.models import Organization
from tenants.permissions import principal_for
from valuechain.models import LedgerEntry
from valuechain.selectors import (
    month_start,
    project_charges,
    project_statement,
    tier_list_prices,
)

from . import exports, imports, permissions, selectors, services
from .forms import (
    NEW_PROJECT_INITIAL,
    DatasetForm,
    ExportForm,
    ImportForm,
    ProjectForm,
    StatementMonthForm,
    service_errors_onto,
)
from .instructions import instructions_html
from .models import DatasetVersion, ExportFormat, ExportJob, ImportJob, Project, ReviewLease
from .task_types import task_type_spec

logger = logging.getLogger(__name__)


def _managed_project(user, pk: int) -> Project:
    return get_object_or_404(selectors.projects_managed(user=user), pk=pk)


def _flash_errors(request, form) -> None:
    """A small form posted from the project page: its errors shown at the top of it."""
    for field, errors in form.errors.items():
        label = form.fields[field].label if field in form.fields else ""
        text = " ".join(errors)
        messages.error(request, f"{label}: {text}" if label else text)


def _export_formats(project: Project) -> list[str]:
    allowed = []
    for fmt in ExportFormat.values:
        try:
            exports.export_format_check(project, fmt)
        except ValidationError:
            continue
        allowed.append(fmt)
    return allowed


# --- list, create, settings -------------------------------------------------------


@login_required
def project_list(request):
    projects = list(selectors.projects_managed(user=request.user))
    rows = [{"project": p, "counts": selectors.project_counts(project=p)} for p in projects]
    can_create = selectors.client_organizations_for_new_project(user=request.user).exists()
    if not rows and not can_create:
        raise PermissionDenied(
            _(
                "Projects are run by a client's developers, managers and admins, and by the "
                "project managers of the centres that staff them."
            )
        )
    return render(
        request, "annotation/manage/project_list.html", {"rows": rows, "can_create": can_create}
    )


def _schema_editor_config() -> dict:
    """What the label-schema editor needs: each task type's example schema and
    the strings it shows, in the request's language."""
    return {
        "examples": {
            "classification": {
                "labels": [
                    {"value": "positive", "title": "正面 positive", "hotkey": "1"},
                    {"value": "negative", "title": "负面 negative", "hotkey": "2"},
                ]
            },
            "multi_label": {
                "labels": [
                    {"value": "price", "title": "价格 price", "hotkey": "1"},
                    {"value": "speed", "title": "速度 speed", "hotkey": "2"},
                ]
            },
            "spans": {
                "labels": [
                    {"value": "PER", "title": "人名 person", "hotkey": "p"},
                    {"value": "LOC", "title": "地名 place", "hotkey": "l"},
                ]
            },
            "text": {"min_length": 1, "max_length": 2000},
            "preference": {"allow_tie": True, "rationale": "optional"},
            "rating": {"min": 1, "max": 5, "rubric": {}},
        },
        "labelled": ["classification", "multi_label", "spans"],
        "strings": {
            "value": _("Value"),
            "title": _("Shown as"),
            "hotkey": _("Key"),
            "add": _("Add a label"),
            "remove": _("Remove"),
            "invalidJson": _("The schema is not valid JSON."),
            "preview": _("What annotators see"),
            "noLabels": _("No labels yet."),
            "tie": _("Tie"),
            "responseA": _("Response A"),
            "responseB": _("Response B"),
            "score": _("Score %(min)s to %(max)s"),
            "textBox": _("A text box, %(min)s to %(max)s characters"),
            "previewFailed": _("The preview could not be made. Try again."),
            "listPrice": _("List price of T%(tier)s: ¥%(price)s per 1,000 tokens"),
        },
        "markdownPreview": reverse("project-markdown-preview"),
    }


def _project_form_page(request, form, *, project=None, status=200):
    return render(
        request,
        "annotation/manage/project_form.html",
        {
            "form": form,
            "project": project,
            "editor_config": _schema_editor_config(),
            "list_prices": {str(k): f"{v:.2f}" for k, v in tier_list_prices().items()},
        },
        status=status,
    )


@login_required
@ensure_csrf_cookie
def project_create(request):
    organizations = selectors.client_organizations_for_new_project(user=request.user)
    if not organizations.exists():
        raise PermissionDenied(
            _(
                "Projects are created by a client's developers, managers and admins, or by "
                "the project manager of a centre that already works for the client."
            )
        )
    workforces = selectors.workforces_for_new_project(user=request.user)
    initial = dict(NEW_PROJECT_INITIAL)
    if organizations.count() == 1:
        initial["organization"] = organizations.first().pk
    if workforces.count() == 1:
        initial["workforce"] = workforces.first().pk
    form = ProjectForm(
        request.POST if request.method == "POST" else None,
        organizations=organizations,
        workforces=workforces,
        initial=initial,
    )
    if request.method == "POST" and form.is_valid():
        try:
            project = services.project_create(
                organization=form.cleaned_data["organization"],
                created_by=request.user,
                **form.service_fields(list_prices=tier_list_prices()),
            )
        except (ValidationError, PermissionDenied) as error:
            service_errors_onto(form, error, default="label_schema", denied="organization")
        else:
            messages.success(request, _("Project “%(name)s” created.") % {"name": project.name})
            return redirect("project-detail", pk=project.pk)
    return _project_form_page(request, form, status=400 if form.errors else 200)


@login_required
@ensure_csrf_cookie
def project_settings(request, pk: int):
    project = _managed_project(request.user, pk)
    permissions.require_can_manage_project(request.user, project, "change projects")
    workforces = selectors.workforces_for_new_project(user=request.user)
    if project.workforce_id and not workforces.filter(pk=project.workforce_id).exists():
        # The current centre stays selectable even for someone who could not pick it.
        workforces = workforces | Organization.objects.filter(pk=project.workforce_id)
    form = ProjectForm(
        request.POST if request.method == "POST" else None,
        organizations=None,
        workforces=workforces,
        project=project,
        initial=ProjectForm.initial_from(project),
    )
    if request.method == "POST" and form.is_valid():
        fields = form.service_fields(list_prices=tier_list_prices())
        # Only what changed: a project with items refuses a task-type "change" even
        # to the same type, and the audit row lists real changes only.
        changed = {name: value for name, value in fields.items() if value != getattr(project, name)}
        try:
            services.project_update(project=project, updated_by=request.user, **changed)
        except (ValidationError, PermissionDenied) as error:
            service_errors_onto(form, error, default="label_schema", denied="workforce")
        else:
            messages.success(request, _("Settings saved."))
            return redirect("project-detail", pk=project.pk)
    return _project_form_page(request, form, project=project, status=400 if form.errors else 200)


@login_required
@require_POST
def markdown_preview(request):
    """The instructions as annotators will see them (the same renderer and cleaner)."""
    if not selectors.client_organizations_for_new_project(user=request.user).exists() and (
        not selectors.projects_managed(user=request.user).exists()
    ):
        raise PermissionDenied(_("Only those who run projects preview instructions."))
    html = instructions_html(request.POST.get("text", ""))
    return HttpResponse(html, content_type="text/html; charset=utf-8")


# --- the project page -------------------------------------------------------------


def _percent(share) -> str | None:
    return None if share is None else f"{share * 100:.1f} %"


@login_required
@ensure_csrf_cookie
def project_detail(request, pk: int):
    project = _managed_project(request.user, pk)
    counts = selectors.project_counts(project=project)
    stats = selectors.project_stats(project=project)
    figures = selectors.project_quality_figures(
        project=project,
        with_annotators=permissions.can_manage_annotator_quality(request.user, project),
    )
    charges = project_charges(project=project)
    throughput = selectors.project_throughput(project=project)
    peak = max((d["annotations"] for d in throughput), default=0) or 1
    for day in throughput:
        # Bars as <meter> values: no inline style is allowed.
        day["share"] = round(day["annotations"] / peak, 3)
    people = figures["annotators"].get("people")
    if people:
        for person in people:
            person["accuracy_text"] = _percent(person["accuracy"])
    confusion = selectors.gold_confusion(project=project)
    if confusion:
        confusion["table"] = list(zip(confusion["classes"], confusion["rows"], strict=True))
    by_annotations = sorted(
        ((int(k), v) for k, v in figures["decided_by_annotations"].items()), key=lambda kv: kv[0]
    )
    review = {
        "waiting": counts["in_review"],
        "held": ReviewLease.objects.filter(
            project=project, status=ReviewLease.Status.LEASED
        ).count(),
    }
    jobs = selectors.project_jobs(project=project)
    this_month = month_start(timezone.localdate())
    month_form = StatementMonthForm(
        request.GET if "month" in request.GET else None,
        initial={"month": this_month},
    )
    month = month_form.cleaned_data["month"] if month_form.is_valid() else this_month
    statement = project_statement(project=project, month=month)
    for line in statement["lines"]:
        line["kind_text"] = LedgerEntry.Kind(line["kind"]).label
    can_manage = permissions.can_manage_project(request.user, project)
    total = counts["total"] or 0
    return render(
        request,
        "annotation/manage/project_detail.html",
        {
            "project": project,
            "counts": counts,
            "progress": (counts["done"] / total) if total else 0,
            "progress_text": _percent(counts["done"] / total) if total else "0.0 %",
            "stats": stats,
            "figures": figures,
            "gold_accuracy": _percent(figures["accuracy"]["gold_check"]["accuracy"]),
            "expected_accuracy": _percent(figures["accuracy"]["expected"]),
            "target_confidence": _percent(project.target_confidence),
            "charges": [
                (LedgerEntry.Kind(kind).label, amount) for kind, amount in sorted(charges.items())
            ],
            "charged_total": sum(charges.values()),
            "throughput": throughput,
            "people": people,
            "confusion": confusion,
            "by_annotations": by_annotations,
            "review": review,
            "jobs": jobs,
            "can_manage": can_manage,
            "month_form": month_form,
            "statement": statement,
            # The CSV comes from the REST API, which serves the owning organization.
            "statement_csv": principal_for(request.user).roles_in(project.organization),
            "import_form": ImportForm(),
            "export_form": ExportForm(formats=_export_formats(project)),
            "dataset_form": DatasetForm(initial={"validation_ratio": 10}),
            "can_freeze": bool(task_type_spec(project.task_type).training_formats),
        },
    )


# --- imports ------------------------------------------------------------------------


@login_required
@require_POST
def project_import(request, pk: int):
    project = _managed_project(request.user, pk)
    form = ImportForm(request.POST, request.FILES)
    if form.is_valid():
        try:
            job = imports.import_job_create(
                project=project,
                created_by=request.user,
                upload=form.cleaned_data["file"],
                filename=form.cleaned_data["file"].name,
                on_conflict=form.cleaned_data["on_conflict"],
                on_error=form.cleaned_data["on_error"],
                columns=form.columns(),
            )
        except (ValidationError, PermissionDenied) as error:
            service_errors_onto(
                form, error, default="file", denied="file", aliases={"columns": "text_column"}
            )
        else:
            return redirect("project-import-detail", pk=project.pk, job_id=job.pk)
    return render(
        request,
        "annotation/manage/import_form.html",
        {"project": project, "import_form": form},
        status=400,
    )


def _import_job(user, pk: int, job_id) -> tuple[Project, ImportJob]:
    project = _managed_project(user, pk)
    return project, get_object_or_404(ImportJob.objects.filter(project=project), pk=job_id)


def _import_status(job: ImportJob) -> dict:
    return {
        "status": job.status,
        "status_text": job.get_status_display(),
        "done": job.status in (ImportJob.Status.SUCCEEDED, ImportJob.Status.FAILED),
        "progress": round(job.progress, 4),
        "progress_text": _percent(job.progress),
        "rows_read": job.rows_read,
        "rows_invalid": job.rows_invalid,
    }


@login_required
def import_detail(request, pk: int, job_id):
    project, job = _import_job(request.user, pk, job_id)
    return render(
        request,
        "annotation/manage/import_detail.html",
        {"project": project, "job": job, "state": _import_status(job)},
    )


@login_required
@require_GET
def import_status(request, pk: int, job_id):
    """Polled by the import page while the job runs."""
    _project, job = _import_job(request.user, pk, job_id)
    return JsonResponse(_import_status(job))


# --- exports and datasets ---------------------------------------------------------------


@login_required
@require_POST
def project_export(request, pk: int):
    project = _managed_project(request.user, pk)
    form = ExportForm(request.POST, formats=_export_formats(project))
    if form.is_valid():
        try:
            exports.export_job_create(
                project=project,
                created_by=request.user,
                fmt=form.cleaned_data["format"],
                approved_only=form.cleaned_data["approved_only"],
            )
        except (ValidationError, PermissionDenied) as error:
            service_errors_onto(form, error, default="format", denied="format")
        else:
            messages.success(request, _("Export started; it is listed below."))
            return redirect(reverse("project-detail", args=[project.pk]) + "#exports")
    _flash_errors(request, form)
    return redirect(reverse("project-detail", args=[project.pk]) + "#exports")


@login_required
@require_GET
def export_status(request, pk: int, job_id):
    project = _managed_project(request.user, pk)
    job = get_object_or_404(ExportJob.objects.filter(project=project), pk=job_id)
    return JsonResponse(
        {
            "status": job.status,
            "status_text": job.get_status_display(),
            "done": job.status in (ExportJob.Status.SUCCEEDED, ExportJob.Status.FAILED),
        }
    )


@login_required
@require_GET
def export_download(request, pk: int, job_id):
    project = _managed_project(request.user, pk)
    permissions.require_can_manage_project(request.user, project, "export data")
    job = get_object_or_404(
        ExportJob.objects.filter(project=project, status=ExportJob.Status.SUCCEEDED), pk=job_id
    )
    return FileResponse(
        job.file.open("rb"), as_attachment=True, filename=job.file.name.rsplit("/", 1)[-1]
    )


@login_required
@require_POST
def dataset_create(request, pk: int):
    project = _managed_project(request.user, pk)
    form = DatasetForm(request.POST)
    if form.is_valid():
        try:
            dataset = exports.dataset_version_create(
                project=project,
                created_by=request.user,
                validation_ratio=form.cleaned_data["validation_ratio"],
            )
        except (ValidationError, PermissionDenied) as error:
            service_errors_onto(form, error, default="validation_ratio", denied="validation_ratio")
        else:
            messages.success(
                request, _("Dataset version %(version)s frozen.") % {"version": dataset.version}
            )
            return redirect(reverse("project-detail", args=[project.pk]) + "#datasets")
    _flash_errors(request, form)
    return redirect(reverse("project-detail", args=[project.pk]) + "#datasets")


@login_required
@require_GET
def dataset_download(request, pk: int, dataset_id: int, split: str):
    project = _managed_project(request.user, pk)
    permissions.require_can_manage_project(request.user, project, "export data")
    dataset = get_object_or_404(DatasetVersion.objects.filter(project=project), pk=dataset_id)
    if split not in ("train", "validation"):
        raise Http404
    field = dataset.train_file if split == "train" else dataset.validation_file
    if not field:
        raise Http404(_("This version has no validation split."))
    return FileResponse(
        field.open("rb"), as_attachment=True, filename=field.name.rsplit("/", 1)[-1]
    )
