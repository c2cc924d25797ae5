"""The webhooks page: an organization's endpoints listed, created (the signing
secret shown once) and deleted, through the same services as the REST API."""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from tenants.models import Organization
from tenants.permissions import INTEGRATION_MANAGERS, principal_for

from . import services
from .models import Event, WebhookEndpoint
from .permissions import can_manage_webhooks


class WebhookForm(forms.Form):
    organization = forms.ModelChoiceField(
        label=gettext_lazy("Organization"), queryset=None, empty_label=None
    )
    url = forms.URLField(
        label=gettext_lazy("Address (https://…)"),
        max_length=500,
        assume_scheme="https",
        help_text=gettext_lazy("Your system's endpoint; it must be reachable from the internet."),
    )
    events = forms.MultipleChoiceField(
        label=gettext_lazy("Events"),
        choices=Event.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=gettext_lazy("None ticked: every event."),
    )

    def __init__(self, *args, organizations, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["organization"].queryset = organizations


def _organizations(user):
    ids = principal_for(user).organization_ids(roles=INTEGRATION_MANAGERS)
    own = Organization.objects.filter(pk__in=ids).order_by("name")
    return Organization.objects.filter(pk__in=[o.pk for o in own if can_manage_webhooks(user, o)])


@login_required
def webhooks(request):
    organizations = _organizations(request.user)
    if not organizations.exists():
        raise PermissionDenied(
            _(
                "Webhooks are set up by an organization's admins, client developers and "
                "project managers."
            )
        )
    form = WebhookForm(
        request.POST if request.method == "POST" else None,
        organizations=organizations,
        initial={"organization": organizations.first().pk},
    )
    created = secret = None
    if request.method == "POST" and form.is_valid():
        try:
            created, secret = services.webhook_endpoint_create(
                organization=form.cleaned_data["organization"],
                created_by=request.user,
                url=form.cleaned_data["url"],
                events=form.cleaned_data["events"],
            )
        except PermissionDenied as error:
            form.add_error("organization", str(error))
        except ValidationError as error:
            for field, errors in error.message_dict.items():
                form.add_error(field if field in form.fields else "url", errors)
    endpoints = WebhookEndpoint.objects.filter(organization__in=organizations).select_related(
        "organization"
    )
    return render(
        request,
        "eventhooks/webhooks.html",
        {
            "form": form,
            "endpoints": endpoints.order_by("organization__name", "url"),
            "created": created,
            # Rendered once, here; never stored in the clear, logged or put in the session.
            "secret": secret,
        },
        status=201 if created else (400 if form.errors else 200),
    )


@login_required
@require_POST
def webhook_delete(request, pk: int):
    endpoint = get_object_or_404(
        WebhookEndpoint.objects.filter(organization__in=_organizations(request.user)), pk=pk
    )
    services.webhook_endpoint_delete(endpoint=endpoint, deleted_by=request.user)
    messages.success(request, _("Webhook to %(url)s deleted.") % {"url": endpoint.url})
    return redirect("webhooks")
