"""Refuse a report configuration that contradicts itself, at start-up."""

from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.core.checks import Error, register


@register()
def trap_settings_check(app_configs, **kwargs):
    errors = []
    try:
        threshold = Decimal(str(settings.KPI_TRAP_THRESHOLD))
    except InvalidOperation:
        threshold = None
    if threshold is None or not (0 < threshold <= 1):
        errors.append(
            Error(
                f"KPI_TRAP_THRESHOLD is {settings.KPI_TRAP_THRESHOLD!r}; expected a share of "
                "revenue between 0 and 1, e.g. 0.30.",
                id="kpireports.E001",
            )
        )
    if not (1 <= settings.KPI_TRAP_MONTHS <= 36):
        errors.append(
            Error(
                f"KPI_TRAP_MONTHS is {settings.KPI_TRAP_MONTHS}; expected 1 to 36 months.",
                id="kpireports.E002",
            )
        )
    return errors
