"""List filters of the whole API.

A filter on a related object takes its id and matches by it: an id that names
nothing (or nothing you may see) gives an empty page, as any other filter
value matching no row does. django-filter's default, a choice among every row
of the related table, answered a well-formed id with a 400 instead.

A parameter that is given must hold what the schema says: `?backend=`,
`?role=` or `?is_active=null` is a 400 naming it, not silently no filter.
"""

from django import forms
from django.db import models
from django.utils.translation import gettext_lazy as _
from django_filters import rest_framework as filters
from django_filters.fields import ChoiceField
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field


class WholeNumberField(forms.IntegerField):
    def clean(self, value):
        if value == "":
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        return super().clean(value)


class TrueFalseField(forms.Field):
    default_error_messages = {"invalid": _("Either true or false.")}
    # The raw text: DRF's BooleanWidget would read anything else as "absent".
    widget = forms.TextInput

    def to_python(self, value):
        if value is None:
            return None
        if value in ("true", "True", "1"):
            return True
        if value in ("false", "False", "0"):
            return False
        raise forms.ValidationError(self.error_messages["invalid"], code="invalid")


@extend_schema_field(OpenApiTypes.INT)
class IdFilter(filters.NumberFilter):
    field_class = WholeNumberField


@extend_schema_field(OpenApiTypes.BOOL)
class TrueFalseFilter(filters.BooleanFilter):
    field_class = TrueFalseField

    def __init__(self, *args, **kwargs):
        kwargs["widget"] = forms.TextInput
        super().__init__(*args, **kwargs)


class OneOfField(ChoiceField):
    def clean(self, value):
        if value == "":
            raise forms.ValidationError(
                self.error_messages["invalid_choice"], code="invalid_choice", params={"value": ""}
            )
        return super().clean(value)


class OneOfFilter(filters.ChoiceFilter):
    field_class = OneOfField


class ApiFilterSet(filters.FilterSet):
    FILTER_DEFAULTS = {
        **filters.FilterSet.FILTER_DEFAULTS,
        models.ForeignKey: {"filter_class": IdFilter},
        models.OneToOneField: {"filter_class": IdFilter},
        models.BooleanField: {"filter_class": TrueFalseFilter},
    }

    @classmethod
    def filter_for_lookup(cls, field, lookup_type):
        filter_class, params = super().filter_for_lookup(field, lookup_type)
        if filter_class is filters.ChoiceFilter:
            filter_class = OneOfFilter
        return filter_class, params


class ApiFilterBackend(filters.DjangoFilterBackend):
    filterset_base = ApiFilterSet
