from django.apps import AppConfig


class SitehealthConfig(AppConfig):
    name = "sitehealth"
    verbose_name = "Site health"
