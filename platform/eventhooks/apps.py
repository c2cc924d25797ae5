from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class EventhooksConfig(AppConfig):
    """Signed webhooks to client systems, retried with backoff, with a delivery log."""

    name = "eventhooks"
    verbose_name = _("Webhooks")
