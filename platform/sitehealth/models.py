from django.db import models


class Heartbeat(models.Model):
    """When each background process last proved it was alive.

    Celery beat schedules a heartbeat task and a worker runs it, so a fresh
    `beat` row means both halves of the task pipeline are working.
    """

    source = models.CharField(max_length=64, unique=True)
    seen_at = models.DateTimeField()
    hostname = models.CharField(max_length=255, blank=True)

    tenant_path = None  # operational data, no organization's

    def __str__(self):
        return f"{self.source} @ {self.seen_at:%Y-%m-%d %H:%M:%S}"
