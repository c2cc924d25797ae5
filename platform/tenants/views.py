"""The web shell: a home page that shows each person what their roles need, and
the page where people create and revoke their organization's API tokens."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from . import services
from .forms import ApiTokenForm
from .models import Membership, Organization
from .permissions import api_token_organizations, can_create_api_tokens, grantable_roles
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
        "Submit annotation and fine-tuning data jobs over the REST API and pull "
        "training-ready exports."
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


@login_required
def home(request):
    memberships = list(memberships_for_user(user=request.user))
    roles = {m.role for m in memberships}
    cards = [
        {
            "role": role,
            "label": Membership.Role(role).label,
            "text": text,
            "organizations": [m.organization for m in memberships if m.role == role],
            "tokens_link": role in TOKEN_CARD_ROLES,
        }
        for role, text in ROLE_CARDS.items()
        if role in roles
    ]
    return render(
        request,
        "tenants/home.html",
        {"cards": cards, "memberships": memberships, "roles": roles},
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
