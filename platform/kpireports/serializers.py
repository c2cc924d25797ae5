"""Report query parameters: parsed and refused here, with the field named."""

import re
from datetime import date
from decimal import Decimal

from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from valuechain.selectors import month_add

from .selectors import Period

MONTH = re.compile(r"^(\d{4})-(\d{2})$")
LONGEST_PERIOD_MONTHS = 60


class MonthField(serializers.Field):
    default_error_messages = {
        "invalid": _("Expected a month as YYYY-MM, e.g. 2026-05."),
    }

    def to_internal_value(self, data):
        match = MONTH.match(str(data).strip())
        if not match:
            self.fail("invalid")
        year, month = int(match[1]), int(match[2])
        if not (1 <= month <= 12 and 2000 <= year <= 2100):
            self.fail("invalid")
        return date(year, month, 1)

    def to_representation(self, value):
        return f"{value:%Y-%m}"


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
