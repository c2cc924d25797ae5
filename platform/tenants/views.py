"""The web shell: a home page that shows each person what their roles need."""

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.utils.translation import gettext_lazy as _

from .models import Membership
from .selectors import memberships_for_user

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
        }
        for role, text in ROLE_CARDS.items()
        if role in roles
    ]
    return render(
        request,
        "tenants/home.html",
        {"cards": cards, "memberships": memberships, "roles": roles},
    )


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
