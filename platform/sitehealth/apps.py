from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SitehealthConfig(AppConfig):
    name = "sitehealth"
    verbose_name = _("Site health")
