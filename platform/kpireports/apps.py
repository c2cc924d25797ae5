from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class KpireportsConfig(AppConfig):
    """Regional KPI reports for officials, read from the value-chain rollups."""

    name = "kpireports"
    verbose_name = _("Regional KPI reports")

    def ready(self):
        from . import checks  # noqa: F401  (registers the settings check)
