"""Forms of the tenants pages: input checks only, the rules live in services."""

from datetime import timedelta

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .models import Membership

# Offered lifetimes, in days; "" is a token that lasts until revoked.
EXPIRY_CHOICES = [
    ("", _("Never (until revoked)")),
    ("30", _("30 days")),
    ("90", _("90 days")),
    ("365", _("1 year")),
]


class ApiTokenForm(forms.Form):
    organization = forms.ModelChoiceField(
        label=_("Organization"),
        queryset=None,
        empty_label=None,
        help_text=_("The token acts for this organization alone."),
    )
    name = forms.CharField(
        label=_("Name"),
        max_length=100,
        help_text=_("What will use the token, e.g. “KPI importer”."),
    )
    roles = forms.MultipleChoiceField(
        label=_("Roles"),
        widget=forms.CheckboxSelectMultiple,
        help_text=_(
            "What the token may do there: only roles you hold in the organization "
            "(its administrators may give any)."
        ),
    )
    expires_in_days = forms.ChoiceField(label=_("Expires"), choices=EXPIRY_CHOICES, required=False)

    def __init__(self, *args, organizations, roles, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["organization"].queryset = organizations
        only = list(organizations[:2])
        # One organization: nothing to choose, so nothing to send (a missing
        # `organization` was a 400 although there was only one answer).
        self.single_organization = only[0] if len(only) == 1 else None
        if self.single_organization is not None:
            self.fields["organization"].required = False
            self.fields["organization"].widget = forms.HiddenInput()
        self.fields["roles"].choices = [
            (value, label) for value, label in Membership.Role.choices if value in roles
        ]

    def clean_organization(self):
        return self.cleaned_data.get("organization") or self.single_organization

    def expires_at(self):
        days = self.cleaned_data.get("expires_in_days")
        return timezone.now() + timedelta(days=int(days)) if days else None
