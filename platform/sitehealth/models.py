from django.db import models
from django.utils.translation import gettext_lazy as _


class Heartbeat(models.Model):
    """When each background process last proved it was alive.

    Celery beat schedules a heartbeat task and a worker runs it, so a fresh
    `beat` row means both halves of the task pipeline are working.
    """

    source = models.CharField(max_length=64, unique=True, verbose_name=_("source"))
    seen_at = models.DateTimeField(verbose_name=_("seen at"))
    hostname = models.CharField(max_length=255, blank=True, verbose_name=_("hostname"))

    tenant_path = None  # operational data, no organization's

    class Meta:
        verbose_name = _("heartbeat")
        verbose_name_plural = _("heartbeats")

    def __str__(self):
        return f"{self.source} @ {self.seen_at:%Y-%m-%d %H:%M:%S}"
