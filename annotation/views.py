"""Web pages for annotators and reviewers.

The views are thin: they find the project through the caller's workforce
memberships (another centre's project, or one the caller holds no fitting
role for, is a 404) and render a template. Every write goes from the page's
JavaScript to the REST API under /api/v1/workspace/ with the session cookie
and the CSRF token.
"""

from django.contrib.auth.decorators import login_required
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.formats import number_format
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.csrf import ensure_csrf_cookie

from tenants.models import Organization
from tenants.permissions import ANNOTATORS, REVIEWERS, can_open_workspace, principal_for
from valuechain.selectors import annotator_standing

from .models import Item, Project
from .permissions import has_required_tier
from .schemas import SchemaError, label_schema_validate
from .selectors import annotator_quality, projects_for_worker
from .task_types import task_type_spec


def _annotate_projects(user) -> QuerySet[Project]:
    return projects_for_worker(user=user, roles=ANNOTATORS)


def _review_projects(user) -> QuerySet[Project]:
    # The same roles the API lets review (annotation.permissions.can_review_project).
    return projects_for_worker(user=user, roles=REVIEWERS)


def _label_schema(project: Project) -> dict:
    """The schema as the API validates answers against it (hotkeys filled in)."""
    try:
        return label_schema_validate(project.task_type, project.label_schema)
    except SchemaError:
        return project.label_schema or {}


def _api_urls(project: Project) -> dict:
    # Per-object routes are sent with an {id} placeholder the page fills in.
    def with_placeholder(name):
        return reverse(name, args=[0]).replace("/0/", "/{id}/")

    return {
        "next": reverse("v1:workspace-project-next", args=[project.pk]),
        "reviewNext": reverse("v1:workspace-project-review-next", args=[project.pk]),
        "submit": with_placeholder("v1:workspace-assignment-submit"),
        "skip": with_placeholder("v1:workspace-assignment-skip"),
        "review": with_placeholder("v1:workspace-item-review"),
        "release": with_placeholder("v1:workspace-item-release"),
    }


def _js_strings() -> dict:
    """Every string the page scripts show, in the request's language."""
    return {
        "backToProjects": _("Back to your projects"),
        "networkError": _("The server could not be reached. Check your connection and try again."),
        "serverError": _("Something went wrong on the server (HTTP %(status)s). Try again."),
        "notAllowed": _("You cannot work on this project: %(detail)s"),
        "leaseLost": _("This task is no longer yours: %(detail)s"),
        "nextTask": _("Take the next task"),
        "saved": _("Saved."),
        "skipped": _("Skipped."),
        "nothingToUndo": _("Nothing to undo."),
        "undone": _("Undone."),
        "chooseLabel": _("Choose a label first."),
        "chooseOption": _("Choose A, B or tie first."),
        "chooseRating": _("Choose a score first."),
        "selectTextFirst": _("Select some text first, then pick a label."),
        "spanExists": _("That span is already marked with this label."),
        "spanRemoved": _("Span removed."),
        "clickToRemove": _("Click to remove"),
        "noSpans": _("No spans marked yet."),
        "suggestion": _("Model suggestion"),
        "noSuggestion": _("No model suggestion for this item."),
        "suggestionPrefilled": _("Pre-filled from %(model)s, confidence %(confidence)s"),
        "suggestionHint": _(
            "%(model)s suggests “%(answer)s” at %(confidence)s confidence: under this "
            "project's %(floor)s floor, so nothing is pre-filled. Decide for yourself."
        ),
        "previousSaved": _("Previous task saved."),
        "confidence": _("Confidence"),
        "model": _("Model"),
        "prompt": _("Prompt"),
        "system": _("System"),
        "response": _("Response"),
        "responseA": _("Response A"),
        "responseB": _("Response B"),
        "tie": _("Tie"),
        "yourAnswer": _("Your answer"),
        "rationaleRequired": _("Rationale (required)"),
        "rationaleOptional": _("Rationale (optional)"),
        "characters": _("%(count)s characters"),
        "charactersRange": _("%(count)s characters (%(min)s–%(max)s)"),
        "rubric": _("Rubric"),
        "labels": _("Labels"),
        "none": _("none"),
        "annotation": _("Annotation #%(id)s"),
        "timeSpent": _("%(seconds)s s"),
        "result": _("Current result"),
        "method": _("Method"),
        "agreement": _("Agreement"),
        "item": _("Item #%(id)s"),
        "accepted": _("Accepted."),
        "rejected": _("Rejected and sent back."),
        "corrected": _("Correction saved."),
        "reasonRequired": _("Say why the annotation is rejected."),
        "pickAnnotation": _("Choose which annotation to reject."),
        "nextItem": _("Take the next item"),
        "reviewLeaseLost": _("This item is no longer yours to review: %(detail)s"),
        "released": _("Put off for later."),
        "methods": {
            "majority": _("Majority vote"),
            "dawid_skene": _("Dawid–Skene"),
            "review": _("Reviewer's correction"),
            "single": _("Single annotation"),
        },
    }


def _page_config(project: Project) -> dict:
    return {
        "project": {
            "id": project.pk,
            "name": project.name,
            "taskType": project.task_type,
            "labelSchema": _label_schema(project),
            # Below this a suggestion is a hint, not a pre-filled answer.
            "suggestionFloor": float(project.suggestion_prefill_floor),
        },
        "api": _api_urls(project),
        "urls": {"projects": reverse("annotation:projects")},
        "strings": _js_strings(),
    }


@login_required
def projects(request):
    """The projects the caller can annotate or review, with a button per role."""
    annotate = list(_annotate_projects(request.user))
    review = list(_review_projects(request.user))
    annotate_ids = {p.pk for p in annotate}
    review_ids = {p.pk for p in review}
    by_id = {p.pk: p for p in [*annotate, *review]}
    rows = [
        {
            "project": project,
            "can_annotate": project.pk in annotate_ids,
            "tier_ok": has_required_tier(request.user, project),
            "can_review": project.pk in review_ids,
        }
        for project in sorted(by_id.values(), key=lambda p: (p.name.lower(), p.pk))
    ]
    held = principal_for(request.user).role_kinds()
    return render(
        request,
        "annotation/projects.html",
        {
            "rows": rows,
            # Only annotators have a tier to speak of; others are told where their work is.
            "is_annotator": any(
                role in ANNOTATORS and kind == Organization.Kind.WORKFORCE for role, kind in held
            ),
            "is_worker": can_open_workspace(request.user, held=held),
        },
    )


@login_required
@ensure_csrf_cookie
def workspace(request, pk: int):
    """The labeling workspace of one project the caller annotates."""
    project = get_object_or_404(_annotate_projects(request.user), pk=pk)
    return render(
        request,
        "annotation/workspace.html",
        {
            "project": project,
            "config": _page_config(project),
            "editor": _editor(project),
            "shortcuts": _shortcuts(project, review=False),
        },
    )


@login_required
@ensure_csrf_cookie
def review(request, pk: int):
    """The review page of one project the caller reviews: one leased item at a time."""
    project = get_object_or_404(_review_projects(request.user), pk=pk)
    return render(
        request,
        "annotation/review.html",
        {
            "project": project,
            "config": _page_config(project),
            "editor": _editor(project),
            "shortcuts": _shortcuts(project, review=True),
        },
    )


@login_required
def me(request):
    """The caller's own record: tier, volume, quality, recent rejections."""
    record = annotator_quality(annotator=request.user)
    rejections = record["recent_rejections"]
    items = Item.objects.filter(pk__in=[r["item_id"] for r in rejections]).select_related("project")
    items_by_id = {item.pk: item for item in items}
    for rejection in rejections:
        rejection["item"] = items_by_id.get(rejection["item_id"])
    standing = annotator_standing(user=request.user, record=record)
    chinese = (get_language() or "").startswith("zh")
    for tier in (standing["tier"], standing["next_tier"]):
        if tier:
            tier["name"] = tier["name_zh"] if chinese else tier["name_en"]
    if standing["next_tier"]:
        for requirement in standing["next_tier"]["requirements"]:
            requirement.update(_requirement_text(requirement))
    return render(
        request,
        "annotation/me.html",
        {
            "record": record,
            "skill_tier": request.user.skill_tier,
            "gold_accuracy": _percent(record["gold_accuracy"]),
            "review_acceptance": _percent(record["review_acceptance"]),
            "rejections": rejections,
            "standing": standing,
        },
    )


def _percent(share):
    return None if share is None else f"{share * 100:.1f}%"


def _requirement_text(requirement: dict) -> dict:
    """A bar of the next tier in words: its name, measured against required, its evidence."""
    if requirement["bar"] == "volume_tokens":
        return {
            "label": _("Tokens labelled on this platform"),
            "measured_text": number_format(requirement["measured"], force_grouping=True),
            "required_text": number_format(requirement["required"], force_grouping=True),
            "evidence_text": "",
        }
    evidence, minimum = requirement["evidence"], requirement["evidence_required"]
    if requirement["bar"] == "gold_accuracy":
        label = _("Gold accuracy")
        evidence_text = _("%(count)s gold tasks checked, %(minimum)s needed") % {
            "count": evidence,
            "minimum": minimum,
        }
    else:
        label = _("Review acceptance")
        evidence_text = _("%(count)s reviewed, %(minimum)s needed") % {
            "count": evidence,
            "minimum": minimum,
        }
    return {
        "label": label,
        "measured_text": _percent(requirement["measured"]) or "–",
        "required_text": _percent(requirement["required"]),
        "evidence_text": evidence_text,
    }


def _editor(project: Project) -> dict:
    """The task type's editor component and how its submit key reads."""
    spec = task_type_spec(project.task_type)
    return {
        "script": spec.editor_script,
        "submit_keys": spec.submit_keys[0],
        "submit_kbd": spec.submit_keys[1],
    }


def _shortcuts(project: Project, *, review: bool) -> list[tuple[str | None, list]]:
    """The keyboard map shown beside the task: (group title, [(keys, what they do)])."""
    spec = task_type_spec(project.task_type)
    editing = spec.editor_shortcuts(_label_schema(project))
    if review:
        verdicts = [
            ("A", _("Accept")),
            ("R", _("Reject with a reason")),
            ("C", _("Correct the answer")),
            ("N", _("Leave for later")),
        ]
        editing += [
            ("Enter", _("Save the correction")),
            ("Esc", _("Cancel the correction")),
            ("Z", _("Undo the last change")),
        ]
        return [(None, verdicts), (_("While correcting"), editing)]
    if spec.has_text_box:
        editing += [
            ("Ctrl+Enter", _("Submit while typing")),
            ("Esc", _("Leave the text box")),
        ]
    editing += [
        ("Enter", _("Submit")),
        ("S", _("Skip")),
        ("Z", _("Undo the last change")),
    ]
    # A label's own hotkey wins over S and Z in the workspace.
    labels = _label_schema(project).get("labels", [])
    taken = {str(lb.get("hotkey", "")).lower() for lb in labels if isinstance(lb, dict)}
    return [(None, [(key, meaning) for key, meaning in editing if key.lower() not in taken])]
