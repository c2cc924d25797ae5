"""The web shell: a home page that shows each person what their roles need, and
the page where people create and revoke their organization's API tokens."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from . import services
from .forms import ApiTokenForm
from .models import Membership, Organization
from .permissions import (
    api_token_organizations,
    can_create_api_tokens,
    grantable_roles,
    page_permissions,
)
from .selectors import api_tokens_manageable, memberships_for_user

# What each role finds on the home page, in the order the cards are shown.
ROLE_CARDS = {
    Membership.Role.ANNOTATOR: _(
        "Take tasks fitted to your skill tier from the queue and label them with "
        "keyboard shortcuts and model suggestions."
    ),
    Membership.Role.REVIEWER: _(
        "Check other annotators' work: accept, reject with a reason, or correct it."
    ),
    Membership.Role.PROJECT_MANAGER: _(
        "Run your centre's projects: staffing, progress, quality and pre-labeling."
    ),
    Membership.Role.CLIENT_DEVELOPER: _(
        "Define projects, import data, follow progress and charges, and pull "
        "training-ready exports, here or over the REST API."
    ),
    Membership.Role.OFFICIAL: _(
        "Read your region's KPIs: tokens processed, revenue per token by skill tier, "
        "employment and compute cost."
    ),
    Membership.Role.ADMIN: _("Manage your organization's members and API tokens."),
}
# Roles whose card links to the API tokens page (tenants.permissions.TOKEN_MANAGERS).
TOKEN_CARD_ROLES = {
    Membership.Role.PROJECT_MANAGER,
    Membership.Role.CLIENT_DEVELOPER,
    Membership.Role.OFFICIAL,
    Membership.Role.ADMIN,
}


def _url(name: str) -> str | None:
    """A page's address, or None while the page is not installed (the project
    pages come with another change; the home page must not break without them)."""
    try:
        return reverse(name)
    except NoReverseMatch:
        return None


def _role_links(role: str, can: dict[str, bool], user) -> list[tuple[str, str, str]]:
    """(address, label, key) of every page the role leads to, in the order a
    person in that role needs them; only pages the rules let user open."""
    Role = Membership.Role
    projects = _url("project-list")
    wanted: list[tuple[bool, str | None, str, str]] = []
    if role == Role.ANNOTATOR:
        wanted = [
            (can["workspace"], _url("annotation:projects"), _("Open the workspace"), "workspace"),
            (can["workspace"], _url("annotation:me"), _("My tier, record and earnings"), "me"),
        ]
    elif role == Role.REVIEWER:
        wanted = [
            (
                can["workspace"],
                _url("annotation:projects"),
                _("Open the review queues"),
                "workspace",
            )
        ]
    elif role == Role.PROJECT_MANAGER:
        wanted = [
            (
                can["projects"],
                projects,
                _("Projects: create, import, pre-label, export"),
                "projects",
            ),
            (can["people"], _url("people"), _("People and tiers"), "people"),
            (can["workspace"], _url("annotation:projects"), _("Review queues"), "workspace"),
            (can["statements"], _url("statements"), _("Projects and statements"), "statements"),
            (can["backends"], _url("compute-backends"), _("Inference backends"), "backends"),
        ]
    elif role == Role.CLIENT_DEVELOPER:
        wanted = [
            (
                can["projects"],
                projects,
                _("Projects: create, import, pre-label, export"),
                "projects",
            ),
            (can["statements"], _url("statements"), _("Progress and statements"), "statements"),
            (can["backends"], _url("compute-backends"), _("Inference backends"), "backends"),
            (True, _url("api-docs"), _("Open the API documentation"), "api-docs"),
        ]
    elif role == Role.OFFICIAL:
        wanted = [
            (
                can["reports"],
                _url("kpireports:home"),
                _("Open the regional KPI dashboard"),
                "reports",
            ),
            (True, _url("api-docs"), _("Open the API documentation"), "api-docs"),
        ]
    elif role == Role.ADMIN:
        wanted = [
            (
                can["projects"],
                projects,
                _("Projects: create, import, pre-label, export"),
                "projects",
            ),
            (can["people"], _url("people"), _("People and tiers"), "people"),
            (can["statements"], _url("statements"), _("Projects and statements"), "statements"),
            (can["backends"], _url("compute-backends"), _("Inference backends"), "backends"),
            (user.is_staff, _url("admin:index"), _("Open the administration site"), "admin"),
            (True, _url("api-docs"), _("Open the API documentation"), "api-docs"),
        ]
    if role in TOKEN_CARD_ROLES and can["api_tokens"]:
        wanted.append(
            (
                True,
                _url("api-tokens"),
                _("Create and revoke your organization's API tokens"),
                "api-tokens",
            )
        )
    return [(url, label, key) for allowed, url, label, key in wanted if allowed and url]


@login_required
def home(request):
    memberships = list(memberships_for_user(user=request.user))
    roles = {m.role for m in memberships}
    can = page_permissions(request.user)
    cards = [
        {
            "role": role,
            "label": Membership.Role(role).label,
            "text": text,
            "organizations": [m.organization for m in memberships if m.role == role],
            "links": _role_links(role, can, request.user),
        }
        for role, text in ROLE_CARDS.items()
        if role in roles
    ]
    staff_links = []
    if request.user.is_staff:
        staff_links = [
            (url, label, key)
            for allowed, url, label, key in (
                (True, _url("admin:index"), _("Open the administration site"), "admin"),
                (can["reports"], _url("kpireports:home"), _("Regional KPIs"), "reports"),
                (can["backends"], _url("compute-backends"), _("Inference backends"), "backends"),
                (True, _url("api-docs"), _("Open the API documentation"), "api-docs"),
            )
            if allowed and url
        ]
    return render(
        request,
        "tenants/home.html",
        {
            "cards": cards,
            "memberships": memberships,
            "roles": roles,
            "staff_links": staff_links,
        },
    )


# --- API tokens ----------------------------------------------------------------------


def _token_organizations(user) -> tuple[list[Organization], list[Organization]]:
    """(organizations whose tokens user manages, those where they may create one)."""
    manageable = api_token_organizations(user)
    return manageable, [o for o in manageable if can_create_api_tokens(user, o)]


def _form_errors_from(form, exc: ValidationError) -> None:
    """A service's ValidationError beside the form's fields (or above the form)."""
    for field, errors in exc.message_dict.items():
        form.add_error(field if field in form.fields else NON_FIELD_ERRORS, errors)


@login_required
def api_tokens(request):
    """List, create (the secret shown once, in this response only) and revoke."""
    manageable, creatable = _token_organizations(request.user)
    if not manageable:
        raise PermissionDenied(
            gettext(
                "API tokens are created by the admins, client developers, officials and "
                "project managers of an organization."
            )
        )
    roles = set().union(*(grantable_roles(request.user, o) for o in creatable))
    form = ApiTokenForm(
        request.POST if request.method == "POST" else None,
        organizations=Organization.objects.filter(pk__in=[o.pk for o in creatable]),
        roles=roles,
        initial={"organization": creatable[0].pk} if len(creatable) == 1 else None,
    )
    created = secret = None
    if request.method == "POST" and form.is_valid():
        try:
            created, secret = services.api_token_create(
                organization=form.cleaned_data["organization"],
                created_by=request.user,
                name=form.cleaned_data["name"],
                roles=form.cleaned_data["roles"],
                expires_at=form.expires_at(),
            )
        except PermissionDenied as exc:
            form.add_error("organization", str(exc))
        except ValidationError as exc:
            _form_errors_from(form, exc)
    status = 201 if created else (400 if form.errors else 200)
    tokens = api_tokens_manageable(organization_ids=[o.pk for o in manageable])
    return render(
        request,
        "tenants/api_tokens.html",
        {
            "form": form,
            "can_create": bool(creatable),
            "tokens": tokens,
            "created": created,
            # Rendered once, here; never stored, logged or put in the session.
            "secret": secret,
        },
        status=status,
    )


@login_required
@require_POST
def api_token_revoke(request, pk):
    manageable, _creatable = _token_organizations(request.user)
    token = get_object_or_404(
        api_tokens_manageable(organization_ids=[o.pk for o in manageable]), pk=pk
    )
    services.api_token_revoke(token=token, revoked_by=request.user)
    messages.success(
        request,
        gettext("Token “%(name)s” revoked: it stops working at once.") % {"name": token.name},
    )
    return redirect("api-tokens")


def login_locked_out(request, original_response=None, credentials=None):
    """django-axes' lockout response: the login page again, saying why and for how long.

    429, so scripts see throttling rather than a wrong password (django-axes logs
    the lockout itself, with the username and address masked)."""
    minutes = max(1, round(settings.AXES_COOLOFF_TIME.total_seconds() / 60))
    return render(
        request,
        "registration/login.html",
        {"locked_out_minutes": minutes, "next": request.POST.get("next", "")},
        status=429,
    )
