from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ComputeConfig(AppConfig):
    """Inference backends, pre-labeling runs and fine-tuning (issue 4)."""

    name = "compute"
    verbose_name = _("Compute")

    def ready(self):
        from . import schema  # noqa: F401 - registers the OpenAPI field extension
