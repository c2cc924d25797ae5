import uuid

from django.db import models
from django.utils.translation import gettext_lazy as _

from tenants.secrets_cipher import secret_decrypt

from .schedule import MAX_ATTEMPTS


class Event(models.TextChoices):
    PROJECT_COMPLETED = "project.completed", _("Project completed")
    IMPORT_FINISHED = "import.finished", _("Import finished")
    EXPORT_READY = "export.ready", _("Export ready")


class WebhookEndpoint(models.Model):
    organization = models.ForeignKey(
        "tenants.Organization",
        on_delete=models.CASCADE,
        related_name="webhooks",
        verbose_name=_("organization"),
    )
    url = models.URLField(_("URL"), max_length=500)
    # Fernet token of the signing secret (tenants.secrets_cipher): needed in
    # clear to sign deliveries, so encrypted rather than hashed; never returned
    # after creation.
    secret_encrypted = models.TextField(verbose_name=_("secret encrypted"))
    events = models.JSONField(
        default=list, help_text=_("Event names; empty means all."), verbose_name=_("events")
    )
    is_active = models.BooleanField(default=True, verbose_name=_("is active"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    tenant_path = "organization"

    class Meta:
        verbose_name = _("webhook endpoint")
        verbose_name_plural = _("webhook endpoints")
        ordering = ["pk"]

    def __str__(self):
        return self.url

    def wants(self, event: str) -> bool:
        return self.is_active and (not self.events or event in self.events)

    def signing_secret(self) -> str:
        return secret_decrypt(self.secret_encrypted)


class WebhookDelivery(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        SUCCEEDED = "succeeded", _("Delivered")
        FAILED = "failed", _("Gave up")

    id = models.UUIDField(
        primary_key=True, default=uuid.uuid4, editable=False, verbose_name=_("ID")
    )
    endpoint = models.ForeignKey(
        WebhookEndpoint,
        on_delete=models.CASCADE,
        related_name="deliveries",
        verbose_name=_("endpoint"),
    )
    event = models.CharField(max_length=40, choices=Event.choices, verbose_name=_("event"))
    payload = models.JSONField(verbose_name=_("payload"))
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.PENDING, verbose_name=_("status")
    )
    # Attempts made so far, never reset: it is also the version an attempt
    # claims (attempt n runs only while attempts == n - 1), so two messages
    # for the same attempt send it once.
    attempts = models.PositiveSmallIntegerField(default=0, verbose_name=_("attempts"))
    # Give up once attempts reaches it; a manual redelivery raises it by a
    # whole schedule.
    attempt_limit = models.PositiveSmallIntegerField(
        default=MAX_ATTEMPTS, verbose_name=_("attempt limit")
    )
    # The last attempt's outcome, kept for lists; every attempt is a WebhookAttempt.
    last_status_code = models.PositiveSmallIntegerField(
        null=True, blank=True, verbose_name=_("last status code")
    )
    last_error = models.TextField(blank=True, verbose_name=_("last error"))
    # While pending: when the next attempt is due, or, while one is being
    # made, when its claim lapses. The sweeper re-sends what is overdue.
    next_attempt_at = models.DateTimeField(null=True, blank=True, verbose_name=_("next attempt at"))
    delivered_at = models.DateTimeField(null=True, blank=True, verbose_name=_("delivered at"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    tenant_path = "endpoint__organization"

    class Meta:
        verbose_name = _("webhook delivery")
        verbose_name_plural = _("webhook deliveries")
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="delivery_due")]

    def __str__(self):
        return f"{self.event} → {self.endpoint_id} ({self.status})"


class WebhookAttempt(models.Model):
    """One try at sending a delivery: written when claimed, completed with its outcome.

    An attempt with no finished_at was cut short (its worker died); the
    sweeper makes the next one once the claim lapses.
    """

    delivery = models.ForeignKey(
        WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log"
    )
    number = models.PositiveSmallIntegerField()
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    # The address the connection was pinned to (empty when none was reached).
    address = models.GenericIPAddressField(null=True, blank=True)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    # The first kilobyte of the receiver's answer, for debugging.
    response_excerpt = models.TextField(blank=True)

    tenant_path = "delivery__endpoint__organization"

    class Meta:
        verbose_name = _("webhook attempt")
        verbose_name_plural = _("webhook attempts")
        ordering = ["delivery", "number"]
        constraints = [
            models.UniqueConstraint(fields=["delivery", "number"], name="attempt_number_once")
        ]

    def __str__(self):
        return f"{self.delivery_id} #{self.number}"
