"""Skill tiers and the append-only token ledger with its daily rollups.

Money is Decimal with six places of a yuan; nothing is ever a float. The
ledger is append-only: PostgreSQL refuses UPDATE and DELETE on it (a trigger,
see migration 0002, kept on every partition), and a correction is a reversing
entry.

On PostgreSQL the ledger is partitioned by month of occurred_at (migration
0005, valuechain.partitions). A partitioned table's unique constraints must
include the partition key, so an idempotency key cannot be unique in the
ledger itself: LedgerKey holds every key once, and posting inserts the key and
the entry in one statement. The rollups are brought up to date from the
ledger by a batcher (rollups_catch_up), never by the posting transaction.
"""

from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

MONEY = {"max_digits": 18, "decimal_places": 6}


class SkillTier(models.Model):
    """T1 basic labeling … T5 model operations, with pay, price and entry bars."""

    level = models.PositiveSmallIntegerField(
        unique=True,
        validators=[MinValueValidator(1), MaxValueValidator(5)],
        verbose_name=_("level"),
    )
    name_en = models.CharField(max_length=100, verbose_name=_("name en"))
    name_zh = models.CharField(max_length=100, verbose_name=_("name zh"))
    description = models.TextField(blank=True, verbose_name=_("description"))
    pay_per_1k_tokens = models.DecimalField(
        _("pay to the annotator per 1,000 tokens (CNY)"), **MONEY
    )
    price_per_1k_tokens = models.DecimalField(_("list price per 1,000 tokens (CNY)"), **MONEY)
    min_gold_accuracy = models.DecimalField(
        max_digits=4, decimal_places=3, default=0, verbose_name=_("min gold accuracy")
    )
    min_review_acceptance = models.DecimalField(
        max_digits=4, decimal_places=3, default=0, verbose_name=_("min review acceptance")
    )
    min_volume_tokens = models.PositiveBigIntegerField(
        default=0, verbose_name=_("min volume tokens")
    )

    tenant_path = None  # the platform's published tier table

    class Meta:
        verbose_name = _("skill tier")
        verbose_name_plural = _("skill tiers")
        ordering = ["level"]
        constraints = [
            models.CheckConstraint(
                name="tier_pay_not_above_price",
                condition=Q(pay_per_1k_tokens__lte=models.F("price_per_1k_tokens")),
            ),
            models.CheckConstraint(
                name="tier_money_not_negative",
                condition=Q(pay_per_1k_tokens__gte=0, price_per_1k_tokens__gte=0),
            ),
        ]

    def __str__(self):
        return f"T{self.level} {self.name_en}"

    # Each bar and price must rise (or stay) from one tier to the next: a
    # higher tier that is easier to enter, or pays less, contradicts the ladder.
    RISING = (
        "min_gold_accuracy",
        "min_review_acceptance",
        "min_volume_tokens",
        "pay_per_1k_tokens",
        "price_per_1k_tokens",
    )

    def clean(self):
        errors = {}
        for name in ("min_gold_accuracy", "min_review_acceptance"):
            value = getattr(self, name)
            if value is not None and not (0 <= value <= 1):
                errors[name] = [f"A share between 0 and 1 is expected, not {value}."]
        if (
            self.pay_per_1k_tokens is not None
            and self.price_per_1k_tokens is not None
            and self.pay_per_1k_tokens > self.price_per_1k_tokens
        ):
            errors["pay_per_1k_tokens"] = [
                f"Pay ({self.pay_per_1k_tokens}) exceeds the list price "
                f"({self.price_per_1k_tokens}): the tier would lose money on every token."
            ]
        neighbours = SkillTier.objects.filter(level__in=[self.level - 1, self.level + 1])
        for other in neighbours.exclude(pk=self.pk):
            for name in self.RISING:
                mine, theirs = getattr(self, name), getattr(other, name)
                if mine is None or name in errors:
                    continue
                if other.level < self.level and mine < theirs:
                    errors[name] = [
                        f"Below T{other.level}'s {theirs}: a higher tier cannot ask less."
                    ]
                elif other.level > self.level and mine > theirs:
                    errors[name] = [
                        f"Above T{other.level}'s {theirs}: a lower tier cannot ask more."
                    ]
        if errors:
            raise ValidationError(errors)


class LedgerEntry(models.Model):
    class Kind(models.TextChoices):
        ANNOTATION = "annotation", _("Human annotation")
        REVIEW = "review", _("Review")
        INFERENCE = "inference", _("Model inference")
        FINE_TUNING = "fine_tuning", _("Fine-tuning")

    # Unique through LedgerKey (see the module docstring), not here.
    idempotency_key = models.CharField(max_length=200, verbose_name=_("idempotency key"))
    kind = models.CharField(max_length=16, choices=Kind.choices, verbose_name=_("kind"))
    occurred_at = models.DateTimeField(verbose_name=_("occurred at"))
    tokens_input = models.BigIntegerField(default=0, verbose_name=_("tokens input"))
    tokens_output = models.BigIntegerField(default=0, verbose_name=_("tokens output"))
    skill_tier = models.PositiveSmallIntegerField(
        null=True, blank=True, verbose_name=_("skill tier")
    )
    region = models.ForeignKey(
        "tenants.Region", on_delete=models.PROTECT, related_name="+", verbose_name=_("region")
    )
    client = models.ForeignKey(
        "tenants.Organization",
        on_delete=models.PROTECT,
        related_name="ledger_as_client",
        verbose_name=_("client"),
    )
    workforce = models.ForeignKey(
        "tenants.Organization",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="ledger_as_workforce",
        verbose_name=_("workforce"),
    )
    project = models.ForeignKey(
        "annotation.Project",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("project"),
    )
    worker = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("worker"),
    )
    # History outlives backends: the id stays when a backend is deleted (no
    # constraint and no cascade, since the ledger is never updated).
    backend = models.ForeignKey(
        "compute.Backend",
        on_delete=models.DO_NOTHING,
        null=True,
        blank=True,
        related_name="+",
        db_constraint=False,
        verbose_name=_("backend"),
    )
    revenue = models.DecimalField(**MONEY, verbose_name=_("revenue"))
    cost = models.DecimalField(**MONEY, verbose_name=_("cost"))
    # Machine work only: GPU time the work held (a call's wall time times the
    # backend's GPUs, shared among its concurrent calls; a fine-tuning run's
    # duration times its GPUs). Tokens per GPU-hour is read from it.
    gpu_ms = models.BigIntegerField(default=0, verbose_name=_("GPU ms"))
    # A correction: this entry reverses that one (amounts and tokens negated).
    # No database constraint: on PostgreSQL a foreign key into a partitioned
    # table needs the partition key too; ledger_reverse checks the entry and
    # serialises reversals of it on its LedgerKey row (one reversal per entry).
    reverses = models.ForeignKey(
        "self",
        on_delete=models.DO_NOTHING,
        null=True,
        blank=True,
        related_name="reversed_by",
        db_constraint=False,
        verbose_name=_("reverses"),
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    tenant_path = "client"

    class Meta:
        verbose_name = _("ledger entry")
        verbose_name_plural = _("ledger entries")
        ordering = ["pk"]
        constraints = [
            models.CheckConstraint(
                name="ledger_amounts_signed_by_reversal",
                condition=(
                    Q(
                        reverses__isnull=True,
                        revenue__gte=0,
                        cost__gte=0,
                        tokens_input__gte=0,
                        tokens_output__gte=0,
                        gpu_ms__gte=0,
                    )
                    | Q(
                        reverses__isnull=False,
                        revenue__lte=0,
                        cost__lte=0,
                        tokens_input__lte=0,
                        tokens_output__lte=0,
                        gpu_ms__lte=0,
                    )
                ),
            ),
        ]
        indexes = [
            models.Index(fields=["occurred_at"], name="ledger_occurred"),
            # Client statements: one project's month.
            models.Index(fields=["project", "occurred_at"], name="ledger_project_time"),
        ]

    def __str__(self):
        return f"{self.kind} {self.idempotency_key}"


class LedgerKey(models.Model):
    """Every idempotency key once, across all the ledger's partitions (months).

    A key replayed in another month is refused here, where a unique index per
    partition could not see it. entry_id and occurred_at find the entry in
    its own partition.
    """

    idempotency_key = models.CharField(max_length=200, primary_key=True)
    entry_id = models.BigIntegerField()
    occurred_at = models.DateTimeField()

    tenant_path = None  # written and read only by the ledger services

    class Meta:
        verbose_name = _("ledger key")
        verbose_name_plural = _("ledger keys")

    def __str__(self):
        return self.idempotency_key


class RollupWatermark(models.Model):
    """How far one rollup table has been brought up to date from the ledger.

    applied_id: every ledger entry with id <= it is counted in the table, and
    none above it. pending_id/pending_bound: a horizon taken by the batcher, safe
    to apply once no transaction below pending_bound (an xid) still runs (see
    services.rollups_catch_up). reconciled_id: reconcile proved the table equal
    to the ledger up to there, so a routine reconcile checks only what is above.
    """

    rollup = models.CharField(max_length=63, primary_key=True)  # the table's name
    applied_id = models.BigIntegerField(default=0)
    # Every entry committed before this moment is counted.
    applied_as_of = models.DateTimeField(null=True, blank=True)
    pending_id = models.BigIntegerField(null=True, blank=True)
    pending_bound = models.BigIntegerField(null=True, blank=True)
    pending_at = models.DateTimeField(null=True, blank=True)
    reconciled_id = models.BigIntegerField(default=0)
    reconciled_at = models.DateTimeField(null=True, blank=True)

    tenant_path = None  # platform bookkeeping, no tenant's data

    class Meta:
        verbose_name = _("rollup watermark")
        verbose_name_plural = _("rollup watermarks")

    def __str__(self):
        return f"{self.rollup} at {self.applied_id}"


class RollupSums(models.Model):
    """What every rollup adds up; reversals count −1 entry with negated amounts."""

    entries = models.BigIntegerField(default=0, verbose_name=_("entries"))
    tokens_input = models.BigIntegerField(default=0, verbose_name=_("tokens input"))
    tokens_output = models.BigIntegerField(default=0, verbose_name=_("tokens output"))
    revenue = models.DecimalField(default=Decimal(0), **MONEY, verbose_name=_("revenue"))
    cost = models.DecimalField(default=Decimal(0), **MONEY, verbose_name=_("cost"))

    class Meta:
        abstract = True


class LedgerRollup(RollupSums):
    """Day × region × tier × kind × client totals, brought up to date by the batcher."""

    day = models.DateField(verbose_name=_("day"))
    region = models.ForeignKey(
        "tenants.Region", on_delete=models.PROTECT, related_name="+", verbose_name=_("region")
    )
    skill_tier = models.PositiveSmallIntegerField(
        default=0, verbose_name=_("skill tier")
    )  # 0: no tier (machine work)
    kind = models.CharField(max_length=16, choices=LedgerEntry.Kind.choices, verbose_name=_("kind"))
    client = models.ForeignKey(
        "tenants.Organization", on_delete=models.PROTECT, related_name="+", verbose_name=_("client")
    )

    tenant_path = "client"

    class Meta:
        verbose_name = _("daily ledger rollup")
        verbose_name_plural = _("daily ledger rollups")
        constraints = [
            models.UniqueConstraint(
                fields=["day", "region", "skill_tier", "kind", "client"], name="rollup_key"
            ),
        ]

    def __str__(self):
        return f"{self.day} {self.region_id} T{self.skill_tier} {self.kind}"


class RegionMonthRollup(RollupSums):
    """Month × region × tier × kind totals: what regional reports read.

    Small enough (a few thousand rows a year) that any report over any region
    and period sums it in milliseconds, however large the ledger grows.
    """

    month = models.DateField()  # the first day of the month
    region = models.ForeignKey("tenants.Region", on_delete=models.PROTECT, related_name="+")
    skill_tier = models.PositiveSmallIntegerField(default=0)  # 0: no tier (machine work)
    kind = models.CharField(max_length=16, choices=LedgerEntry.Kind.choices)

    tenant_path = None  # aggregate reading only, through the reports selectors

    class Meta:
        verbose_name = _("regional monthly rollup")
        verbose_name_plural = _("regional monthly rollups")
        constraints = [
            models.UniqueConstraint(
                fields=["month", "region", "skill_tier", "kind"], name="region_month_rollup_key"
            ),
        ]

    def __str__(self):
        return f"{self.month:%Y-%m} {self.region_id} T{self.skill_tier} {self.kind}"


class BackendRollup(RollupSums):
    """Month × backend × region × kind totals of machine work: compute per GPU-hour."""

    month = models.DateField()  # the first day of the month
    backend_id = models.BigIntegerField()  # outlives the backend, like the ledger's
    region = models.ForeignKey("tenants.Region", on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=16, choices=LedgerEntry.Kind.choices)
    gpu_ms = models.BigIntegerField(default=0)

    tenant_path = None  # aggregate reading only, through the reports selectors

    class Meta:
        verbose_name = _("backend monthly rollup")
        verbose_name_plural = _("backend monthly rollups")
        constraints = [
            models.UniqueConstraint(
                fields=["month", "backend_id", "region", "kind"], name="backend_rollup_key"
            ),
        ]

    def __str__(self):
        return f"{self.month:%Y-%m} backend {self.backend_id} {self.kind}"


class WorkerMonthRollup(RollupSums):
    """Month × region × worker totals of human work: employment and earnings.

    Read only in aggregate (counts and medians); a person is never shown.
    """

    month = models.DateField()  # the first day of the month
    region = models.ForeignKey("tenants.Region", on_delete=models.PROTECT, related_name="+")
    worker = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    # cost: the worker's earnings

    tenant_path = None  # aggregate reading only, through the reports selectors

    class Meta:
        verbose_name = _("worker monthly rollup")
        verbose_name_plural = _("worker monthly rollups")
        constraints = [
            models.UniqueConstraint(
                fields=["month", "region", "worker"], name="worker_month_rollup_key"
            ),
        ]

    def __str__(self):
        return f"{self.month:%Y-%m} worker {self.worker_id}"


class TierChange(models.Model):
    """An annotator's tier history: every promotion and demotion, with its reason."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="tier_changes",
        verbose_name=_("user"),
    )
    day = models.DateField(verbose_name=_("day"))
    from_level = models.PositiveSmallIntegerField(verbose_name=_("from level"))
    to_level = models.PositiveSmallIntegerField(verbose_name=_("to level"))
    # Where the person worked when the change was made: regional reports count
    # promotions and demotions without naming anyone.
    region = models.ForeignKey(
        "tenants.Region",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("region"),
    )
    reason = models.TextField(verbose_name=_("reason"))
    measured = models.JSONField(default=dict, verbose_name=_("measured"))
    # Who changed it by hand (a centre's manager); None for the daily review.
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("changed by"),
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    tenant_path = None  # read through the person's own page, never listed across tenants

    class Meta:
        verbose_name = _("tier change")
        verbose_name_plural = _("tier changes")
        ordering = ["-day", "-pk"]
        constraints = [
            # The daily review changes a person's tier at most once a day; a
            # manager may correct it the same day, and each correction is a row.
            models.UniqueConstraint(
                fields=["user", "day"],
                condition=models.Q(changed_by__isnull=True),
                name="tier_change_once_a_day",
            ),
        ]

    def __str__(self):
        return f"{self.user_id}: T{self.from_level} → T{self.to_level} on {self.day}"
