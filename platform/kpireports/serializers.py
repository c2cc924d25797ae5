"""Report query parameters: parsed and refused here, with the field named."""

from datetime import date
from decimal import Decimal

from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from valuechain.selectors import month_add
from valuechain.serializers import MonthField

from .selectors import Period

LONGEST_PERIOD_MONTHS = 60


class ReportQuerySerializer(serializers.Serializer):
    start = MonthField(required=False, help_text=_("First month, YYYY-MM."))
    end = MonthField(required=False, help_text=_("Last month, YYYY-MM; default: last month."))
    compare = serializers.ChoiceField(
        choices=[
            ("none", _("No comparison")),
            ("previous", _("The previous period of the same length")),
            ("year", _("The same months a year earlier")),
        ],
        default="none",
    )
    kind = serializers.ChoiceField(
        choices=[("human", _("Human work")), ("machine", _("Machine work"))],
        required=False,
        allow_blank=True,
    )
    tier = serializers.IntegerField(
        min_value=0, max_value=5, required=False, help_text=_("0 for untiered machine work.")
    )
    trap_threshold = serializers.DecimalField(
        max_digits=5,
        decimal_places=4,
        min_value=Decimal("0.0001"),
        max_value=Decimal(1),
        required=False,
    )
    trap_months = serializers.IntegerField(min_value=1, max_value=36, required=False)

    def validate(self, attrs):
        # By default the last twelve closed months: a month still under way
        # would read as a slump (and end every low-end-trap streak).
        end = attrs.get("end") or month_add(timezone.localdate().replace(day=1), -1)
        start = attrs.get("start") or month_add(end, -11)
        if start > end:
            raise serializers.ValidationError(
                {
                    "start": [
                        _("The period starts after it ends (start %(s)s, end %(e)s).")
                        % {"s": f"{start:%Y-%m}", "e": f"{end:%Y-%m}"}
                    ]
                }
            )
        if len(Period(start, end).months) > LONGEST_PERIOD_MONTHS:
            raise serializers.ValidationError(
                {"start": [_("A period is at most %(n)d months.") % {"n": LONGEST_PERIOD_MONTHS}]}
            )
        attrs["period"] = Period(start, end)
        attrs["kind"] = attrs.get("kind") or None
        return attrs


def report_kwargs(validated: dict) -> dict:
    return {
        "period": validated["period"],
        "compare": validated["compare"],
        "kind": validated.get("kind"),
        "tier": validated.get("tier"),
        "trap_threshold": validated.get("trap_threshold"),
        "trap_months": validated.get("trap_months"),
    }


def jsonable(value):
    """Money and rates as exact decimal strings, months as YYYY-MM, dates ISO."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date):
        return f"{value:%Y-%m}" if value.day == 1 else value.isoformat()
    return value
