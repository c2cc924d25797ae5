from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ValuechainConfig(AppConfig):
    """Skill tiers and the token ledger: every unit of work, human or machine."""

    name = "valuechain"
    verbose_name = _("Value chain")
