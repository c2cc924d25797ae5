"""Read API of the value chain: the tier ladder, tier history, ledger entries.

So a centre's own systems can follow its people's tiers and pay, and a
client's its charges, without the web pages.
"""

from django import forms
from django.utils.translation import gettext_lazy as _
from django_filters import rest_framework as filters
from django_filters.fields import IsoDateTimeField
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import permissions, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import CursorPagination

from tenants.filtering import ApiFilterBackend, ApiFilterSet, IdFilter
from tenants.models import Membership
from tenants.scoping import principal_for_request

from . import selectors
from .models import LedgerEntry, SkillTier, TierChange
from .permissions import ledger_organization_ids, reads_own_tier_history, tier_history_centre_ids
from .serializers import LedgerEntrySerializer, SkillTierSerializer, TierChangeEntrySerializer


@extend_schema_view(
    list=extend_schema(
        summary="The skill tier ladder",
        description="T1 to T5: what each tier pays annotators and lists to clients per "
        "1,000 tokens, and the bars (gold accuracy, review acceptance, volume) an "
        "annotator clears to reach it. The platform's published table: the same for all.",
    ),
    retrieve=extend_schema(summary="One skill tier"),
)
class SkillTierViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = SkillTier.objects.all()
    serializer_class = SkillTierSerializer
    lookup_field = "level"
    pagination_class = None  # five rows
    filter_backends = []

    def get_queryset(self):
        return selectors.skill_tiers()


class NewestFirstCursor(CursorPagination):
    """Cursor pages (?cursor=… from next/previous), steady while rows are added.

    A cursor that is not one of ours is DRF's 404 ("Invalid cursor"): any string
    is a well-formed cursor, so schemathesis rightly expects no 400 for one.
    """

    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 500

    def get_page_size(self, request):
        raw = request.query_params.get(self.page_size_query_param)
        if raw is not None and not (
            raw.isascii() and raw.isdigit() and 1 <= int(raw) <= self.max_page_size
        ):
            raise ValidationError(
                {self.page_size_query_param: [_("A whole number from 1 to 500.")]}
            )
        return super().get_page_size(request)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"].update(minimum=1, maximum=self.max_page_size)
        return parameters


class TierChangeCursor(NewestFirstCursor):
    ordering = ["-day", "-id"]


class LedgerCursor(NewestFirstCursor):
    ordering = "-id"  # the ledger only grows: ids follow the order of posting


class _Given:
    """A parameter that is given must hold a value: ?until= is a 400, not no filter."""

    def clean(self, value):
        if value == "":
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        return super().clean(value)


class _GivenDateField(_Given, forms.DateField):
    pass


class _GivenDateTimeField(_Given, IsoDateTimeField):
    pass


class DateFilter(filters.DateFilter):
    field_class = _GivenDateField


class DateTimeFilter(filters.IsoDateTimeFilter):
    field_class = _GivenDateTimeField


class TierChangeFilter(ApiFilterSet):
    annotator = IdFilter(field_name="user_id", help_text=_("One annotator's changes."))
    since = DateFilter(field_name="day", lookup_expr="gte")
    until = DateFilter(field_name="day", lookup_expr="lt")

    class Meta:
        model = TierChange
        fields = ["annotator", "since", "until"]


@extend_schema_view(
    list=extend_schema(
        summary="Tier history: promotions and demotions",
        description="Your own changes (signed in as the annotator), and those of the "
        "annotators and reviewers of the centres you are an admin or project manager "
        "of; an API token sees its centre's people. Newest first, by cursor.",
    ),
)
class TierChangeViewSet(viewsets.mixins.ListModelMixin, viewsets.GenericViewSet):
    queryset = TierChange.objects.all()
    serializer_class = TierChangeEntrySerializer
    filterset_class = TierChangeFilter
    pagination_class = TierChangeCursor
    filter_backends = [ApiFilterBackend]  # no ?ordering=: a cursor keeps one order
    permission_classes = [permissions.IsAuthenticated]

    @staticmethod
    def isolation_rows(organization_ids):
        """The victim's rows for the tenant isolation test: its centres' people's."""
        return TierChange.objects.filter(
            user__memberships__organization_id__in=organization_ids,
            user__memberships__role__in=[Membership.Role.ANNOTATOR, Membership.Role.REVIEWER],
        ).distinct()

    def get_queryset(self):
        principal = principal_for_request(self.request)
        return selectors.tier_changes_visible(
            user_id=self.request.user.pk if reads_own_tier_history(principal) else None,
            centre_ids=tier_history_centre_ids(principal),
        )


class LedgerEntryFilter(ApiFilterSet):
    kind = filters.MultipleChoiceFilter(
        choices=LedgerEntry.Kind.choices, help_text=_("Repeat to match any of several.")
    )
    since = DateTimeFilter(
        field_name="occurred_at", lookup_expr="gte", help_text=_("From this time on (ISO 8601).")
    )
    until = DateTimeFilter(
        field_name="occurred_at", lookup_expr="lt", help_text=_("Before this time (ISO 8601).")
    )

    class Meta:
        model = LedgerEntry
        fields = ["kind", "project", "since", "until"]


@extend_schema_view(
    list=extend_schema(
        summary="Ledger entries of your organizations",
        description="Every unit of work as the token ledger booked it: a client sees what "
        "it was charged (revenue), a centre the work it did and what that cost it. For "
        "the organizations where you are an admin, client developer or project manager. "
        "Newest first, by cursor; corrections are entries of their own (reverses).",
    ),
)
class LedgerEntryViewSet(viewsets.mixins.ListModelMixin, viewsets.GenericViewSet):
    queryset = LedgerEntry.objects.all()
    serializer_class = LedgerEntrySerializer
    filterset_class = LedgerEntryFilter
    pagination_class = LedgerCursor
    filter_backends = [ApiFilterBackend]  # no ?ordering=: a cursor keeps one order
    permission_classes = [permissions.IsAuthenticated]

    def _organization_ids(self) -> list[int]:
        cached = getattr(self, "_ledger_ids", None)
        if cached is None:
            cached = self._ledger_ids = ledger_organization_ids(principal_for_request(self.request))
        return cached

    def get_queryset(self):
        return selectors.ledger_entries_visible(organization_ids=self._organization_ids())

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "workforce_ids": set(self._organization_ids())}
