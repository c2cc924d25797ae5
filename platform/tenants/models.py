"""Who works on Tokenworks, for which organization, and where.

Tenancy: every piece of client, workforce or government data belongs to an
Organization; a User acts for an organization through a Membership with a
role; an API token acts for exactly one organization.
"""

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class User(AbstractUser):
    """Custom from the first migration, so the model can grow without pain."""

    display_name = models.CharField(_("display name"), max_length=150, blank=True)
    # T1 basic labeling … T5 model operations. Promotion and demotion (with
    # their history) belong to the value-chain app; distribution only reads it.
    skill_tier = models.PositiveSmallIntegerField(
        _("skill tier"),
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(5)],
    )

    class Meta(AbstractUser.Meta):
        verbose_name = _("user")
        verbose_name_plural = _("users")
        swappable = "AUTH_USER_MODEL"

    def __str__(self):
        return self.display_name or self.username


class Region(models.Model):
    """China's administrative hierarchy: country -> province-level -> city."""

    class Level(models.TextChoices):
        COUNTRY = "country", _("Country")
        PROVINCE = "province", _("Province-level division")
        CITY = "city", _("City")

    # GB/T 2260 administrative division code (e.g. 520100 for Guiyang);
    # "CN" for the country.
    code = models.CharField(_("code"), max_length=12, unique=True)
    level = models.CharField(_("level"), max_length=16, choices=Level.choices)
    parent = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="children"
    )
    name_zh = models.CharField(_("Chinese name"), max_length=64)
    name_en = models.CharField(_("English name"), max_length=64)

    # Reference data every caller may read: not scoped to an organization.
    tenant_path = None

    class Meta:
        verbose_name = _("region")
        verbose_name_plural = _("regions")
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(
                name="region_parent_matches_level",
                condition=(Q(level="country", parent__isnull=True))
                | (Q(level__in=["province", "city"], parent__isnull=False)),
            ),
        ]

    def __str__(self):
        return f"{self.name_en} ({self.name_zh})"


class Organization(models.Model):
    class Kind(models.TextChoices):
        CLIENT = "client", _("Enterprise client")
        WORKFORCE = "workforce", _("Annotation centre")
        GOVERNMENT = "government", _("Regional office")

    name = models.CharField(_("name"), max_length=200)
    slug = models.SlugField(_("slug"), max_length=80, unique=True)
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    region = models.ForeignKey(
        Region,
        on_delete=models.PROTECT,
        related_name="organizations",
        help_text=_(
            "Where the organization is: a workforce centre's city, a government office's "
            "jurisdiction (province or city)."
        ),
    )
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    tenant_path = "pk"

    class Meta:
        verbose_name = _("organization")
        verbose_name_plural = _("organizations")
        ordering = ["name"]

    def __str__(self):
        return self.name


class Membership(models.Model):
    class Role(models.TextChoices):
        ANNOTATOR = "annotator", _("Annotator")
        REVIEWER = "reviewer", _("Reviewer")
        PROJECT_MANAGER = "project_manager", _("Project manager")
        CLIENT_DEVELOPER = "client_developer", _("Client developer")
        OFFICIAL = "official", _("Official")
        ADMIN = "admin", _("Administrator")

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(_("role"), max_length=32, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    tenant_path = "organization"

    class Meta:
        verbose_name = _("membership")
        verbose_name_plural = _("memberships")
        ordering = ["organization_id", "user_id", "role"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "organization", "role"], name="membership_unique_role"
            ),
        ]

    def __str__(self):
        return f"{self.user} — {self.get_role_display()} @ {self.organization}"


class ApiToken(models.Model):
    """A bearer token for one organization's systems, with its own roles there.

    A token acts as (organization, roles), never as the person who created
    it: not with their superuser status, not in their other organizations.
    Its roles are chosen at creation from those the creator may grant, and
    each request narrows them again to what the creator may still grant
    (tenants.permissions.Principal), so taking the creator's role away
    narrows the token too.

    Only a SHA-256 digest of the secret is stored: the secret is shown once,
    when the token is created. Tokens are 256-bit random, so a fast digest is
    enough (a slow password hash would only slow every request).
    """

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="api_tokens"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="api_tokens"
    )
    name = models.CharField(_("name"), max_length=100)
    # The first characters of the secret, so people can tell tokens apart.
    prefix = models.CharField(_("prefix"), max_length=16, db_index=True)
    digest = models.CharField(max_length=64, unique=True)
    # Membership.Role values; a JSON list rather than an array so that the
    # SQLite of `make run` stores it too.
    roles = models.JSONField(_("roles"), default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(_("expires"), null=True, blank=True)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True)

    tenant_path = "organization"

    class Meta:
        verbose_name = _("API token")
        verbose_name_plural = _("API tokens")
        ordering = ["-created_at", "-pk"]

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and not self.is_expired

    def get_roles_display(self) -> str:
        labels = dict(Membership.Role.choices)
        return ", ".join(str(labels.get(role, role)) for role in self.roles or ())

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()


class AuditEvent(models.Model):
    """Who changed what, when: one append-only row per change (after Zulip's RealmAuditLog).

    Written by the service that makes the change, in its transaction, so the
    change and its record commit or roll back together. A PostgreSQL trigger
    refuses to rewrite or delete rows; the only update allowed is the
    database's own SET NULL when an actor user or token is deleted, and
    `actor_label` keeps who it was. Secrets never appear in `changes`.
    """

    class EventType(models.TextChoices):
        PROJECT_CREATED = "project.created", _("Project created")
        PROJECT_UPDATED = "project.updated", _("Project updated")
        PROJECT_STATUS_CHANGED = "project.status_changed", _("Project status changed")
        API_TOKEN_CREATED = "api_token.created", _("API token created")
        API_TOKEN_REVOKED = "api_token.revoked", _("API token revoked")
        BACKEND_CREATED = "backend.created", _("Backend created")
        BACKEND_UPDATED = "backend.updated", _("Backend updated")
        BACKEND_KEY_ROTATED = "backend.key_rotated", _("Backend key rotated")
        BACKEND_DELETED = "backend.deleted", _("Backend deleted")
        MEMBERSHIP_CREATED = "membership.created", _("Membership created")
        MEMBERSHIP_ROLE_CHANGED = "membership.role_changed", _("Membership role changed")
        MEMBERSHIP_DELETED = "membership.deleted", _("Membership deleted")
        TIER_CHANGED = "tier.changed", _("Skill tier changed")
        SKILL_TIER_UPDATED = "skill_tier.updated", _("Tier ladder updated")
        LEDGER_REPAIRED = "ledger.repaired", _("Ledger rollups repaired")
        WEBHOOK_ENDPOINT_CREATED = "webhook_endpoint.created", _("Webhook endpoint created")
        WEBHOOK_ENDPOINT_UPDATED = "webhook_endpoint.updated", _("Webhook endpoint updated")
        WEBHOOK_ENDPOINT_DELETED = "webhook_endpoint.deleted", _("Webhook endpoint deleted")
        ANNOTATOR_QUARANTINED = "annotator.quarantined", _("Annotator quarantined")
        ANNOTATOR_RELEASED = "annotator.released", _("Annotator released from quarantine")
        MODEL_RETRAIN_STARTED = "model_retrain.started", _("Model retraining started")
        MODEL_RETRAIN_FINISHED = "model_retrain.finished", _("Model retraining finished")

    created_at = models.DateTimeField(_("when"), default=timezone.now, db_index=True)
    # Null only for platform-wide objects (e.g. a platform backend, the tier
    # ladder). PROTECT: an organization with history is deactivated, not deleted.
    organization = models.ForeignKey(
        Organization,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="audit_events",
        verbose_name=_("organization"),
    )
    # Null for system actors (beat, the daily tier review, a management command).
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("actor"),
    )
    actor_token = models.ForeignKey(
        ApiToken,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("actor API token"),
    )
    # Who acted, as text, so the history reads the same after deletions.
    actor_label = models.CharField(_("actor label"), max_length=200)
    event_type = models.CharField(_("event type"), max_length=64, choices=EventType.choices)
    # "app_label.model_name", a string rather than a content type so that
    # filtering is plain and rows outlive the models they name.
    target_type = models.CharField(_("target type"), max_length=100, blank=True)
    target_id = models.CharField(_("target id"), max_length=64, blank=True)
    target_repr = models.CharField(_("target"), max_length=200, blank=True)
    changes = models.JSONField(
        _("changes"), default=dict, blank=True, encoder=DjangoJSONEncoder
    )  # {field: [before, after]}
    extra = models.JSONField(_("extra"), default=dict, blank=True, encoder=DjangoJSONEncoder)

    tenant_path = "organization"

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("audit event")
        verbose_name_plural = _("audit events")
        indexes = [
            models.Index(fields=["organization", "-created_at"], name="audit_org_created"),
            models.Index(fields=["target_type", "target_id"], name="audit_target"),
        ]

    def __str__(self):
        return f"{self.event_type} {self.target_repr} by {self.actor_label}"
