"""API shapes of the value chain's reads. Money leaves as exact decimal strings."""

import re
from datetime import date

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from .models import LedgerEntry, SkillTier, TierChange


def _money():
    # All six places, never a float: nothing is rounded away on the wire.
    return serializers.DecimalField(max_digits=None, decimal_places=6, coerce_to_string=True)


# --- the annotator's standing -------------------------------------------------------------


class TierSummarySerializer(serializers.Serializer):
    level = serializers.IntegerField()
    name_en = serializers.CharField()
    name_zh = serializers.CharField()
    pay_per_1k_tokens = _money()


class RequirementSerializer(serializers.Serializer):
    bar = serializers.ChoiceField(choices=["gold_accuracy", "review_acceptance", "volume_tokens"])
    # Shares (0.850) and token counts alike, as exact decimal strings.
    required = serializers.DecimalField(max_digits=None, decimal_places=None)
    measured = serializers.DecimalField(max_digits=None, decimal_places=None, allow_null=True)
    evidence = serializers.IntegerField(allow_null=True)
    evidence_required = serializers.IntegerField(allow_null=True)
    cleared = serializers.BooleanField()
    progress = serializers.FloatField(help_text="0 to 1; 1 only when the bar is cleared.")


class NextTierSerializer(TierSummarySerializer):
    eligible = serializers.BooleanField(help_text="Every bar cleared: the daily review promotes.")
    requirements = RequirementSerializer(many=True)


class EarningsMonthSerializer(serializers.Serializer):
    month = serializers.DateField(format="%Y-%m")
    entries = serializers.IntegerField()
    tokens = serializers.IntegerField()
    earnings = _money()


class EarningsSerializer(serializers.Serializer):
    this_month = EarningsMonthSerializer()
    last_month = EarningsMonthSerializer()
    months = EarningsMonthSerializer(many=True, help_text="The last 12 months, newest first.")
    total_12_months = _money()
    total = _money()


class TierChangeSerializer(serializers.Serializer):
    day = serializers.DateField()
    from_level = serializers.IntegerField()
    to_level = serializers.IntegerField()
    promoted = serializers.BooleanField()
    reason = serializers.CharField()


class AnnotatorStandingSerializer(serializers.Serializer):
    tier = TierSummarySerializer(allow_null=True)
    next_tier = NextTierSerializer(allow_null=True, help_text="null at the top tier.")
    earnings = EarningsSerializer()
    history = TierChangeSerializer(many=True)


# --- client statements ------------------------------------------------------------------

MONTH_PATTERN = re.compile(r"^(\d{4})-(\d{2})$")
# The ledger's months: wide enough for any real statement or report, narrow
# enough that month arithmetic never leaves Python's dates and the time zone
# never falls back to local mean time (Shanghai's was +08:05:43 before 1901).
FIRST_YEAR, LAST_YEAR = 2000, 2100


class MonthField(serializers.Field):
    """A calendar month as YYYY-MM, returned as the date of its first day."""

    default_error_messages = {
        "invalid": _("Expected a month as YYYY-MM, e.g. 2026-05."),
        "out_of_range": _("Expected a month from 2000-01 to 2100-12."),
    }

    def to_internal_value(self, data):
        match = MONTH_PATTERN.match(str(data).strip())
        if not match or not 1 <= int(match[2]) <= 12:
            self.fail("invalid")
        year = int(match[1])
        if not FIRST_YEAR <= year <= LAST_YEAR:
            self.fail("out_of_range")
        return date(year, int(match[2]), 1)

    def to_representation(self, value):
        return f"{value:%Y-%m}"


class StatementQuerySerializer(serializers.Serializer):
    month = MonthField(
        error_messages={
            "required": _("Expected a month as YYYY-MM, e.g. 2026-05."),
            "null": _("Expected a month as YYYY-MM, e.g. 2026-05."),
        }
    )
    format = serializers.ChoiceField(
        choices=["json", "csv"],
        default="json",
        error_messages={"invalid_choice": "Expected json or csv."},
    )


class StatementLineSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=LedgerEntry.Kind.choices)
    skill_tier = serializers.IntegerField(allow_null=True, help_text="null for machine work.")
    entries = serializers.IntegerField(help_text="Units of work; a reversal counts -1.")
    tokens_input = serializers.IntegerField()
    tokens_output = serializers.IntegerField()
    revenue = _money()


class StatementTotalsSerializer(serializers.Serializer):
    entries = serializers.IntegerField()
    tokens_input = serializers.IntegerField()
    tokens_output = serializers.IntegerField()
    revenue = _money()


class ProjectStatementSerializer(serializers.Serializer):
    project = serializers.IntegerField()
    month = serializers.DateField(format="%Y-%m")
    currency = serializers.CharField()
    time_zone = serializers.CharField()
    period_start = serializers.DateTimeField()
    period_end = serializers.DateTimeField()
    lines = StatementLineSerializer(many=True)
    totals = StatementTotalsSerializer()


# --- read API: the tier ladder, tier history, ledger entries ----------------------------


class SkillTierSerializer(serializers.ModelSerializer):
    pay_per_1k_tokens = _money()
    price_per_1k_tokens = _money()

    class Meta:
        model = SkillTier
        fields = [
            "level",
            "name_en",
            "name_zh",
            "description",
            "pay_per_1k_tokens",
            "price_per_1k_tokens",
            "min_gold_accuracy",
            "min_review_acceptance",
            "min_volume_tokens",
        ]
        read_only_fields = fields


class TierChangeEntrySerializer(serializers.ModelSerializer):
    annotator = serializers.IntegerField(source="user_id", read_only=True)
    username = serializers.CharField(source="user.username", read_only=True)
    promoted = serializers.SerializerMethodField()

    class Meta:
        model = TierChange
        fields = [
            "id",
            "annotator",
            "username",
            "day",
            "from_level",
            "to_level",
            "promoted",
            "reason",
            "measured",
            "created_at",
        ]
        read_only_fields = fields

    def get_promoted(self, change) -> bool:
        return change.to_level > change.from_level


class LedgerEntrySerializer(serializers.ModelSerializer):
    revenue = _money()
    cost = serializers.SerializerMethodField(
        help_text=_(
            "What the work cost the centre that did it (pay, compute): shown to that "
            "centre only; null for the client charged."
        )
    )
    reverses = serializers.PrimaryKeyRelatedField(
        read_only=True, allow_null=True, help_text=_("The entry this one corrects, if any.")
    )

    class Meta:
        model = LedgerEntry
        fields = [
            "id",
            "occurred_at",
            "kind",
            "client",
            "workforce",
            "project",
            "region",
            "skill_tier",
            "tokens_input",
            "tokens_output",
            "revenue",
            "cost",
            "gpu_ms",
            "reverses",
        ]
        read_only_fields = fields

    def get_cost(self, entry) -> str | None:
        if entry.workforce_id in self.context.get("workforce_ids", ()):
            return f"{entry.cost:.6f}"
        return None
