"""The form of the people page: input checks only, the rules live in valuechain.services."""

from django import forms
from django.utils.translation import gettext_lazy as _


class TierChangeForm(forms.Form):
    to_level = forms.TypedChoiceField(label=_("New tier"), coerce=int)
    reason = forms.CharField(
        label=_("Reason"),
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=2000,
        help_text=_(
            "Kept in the annotator's tier history and the audit trail; the annotator sees it."
        ),
    )

    def __init__(self, *args, tiers, current: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["to_level"].choices = [
            (tier.level, f"T{tier.level} {tier.name}") for tier in tiers if tier.level != current
        ]
