"""Annotation jobs: projects, items, leases, annotations, reviews and results.

Invariants the database enforces, not only the code:
- an item never has more live reservations (leases + submitted annotations)
  than it needs (`item_reserved_within_target`);
- an annotator gets an item at most once, ever (`assignment_once_per_annotator`);
- a lease yields at most one annotation (`Annotation.assignment` is one-to-one),
  so a retried submit cannot create a second one;
- regular items have a target, gold items none (`item_target_unless_gold`);
- an item has at most one live review lease, and a reviewer at most one per
  project (partial unique indexes on `ReviewLease`).
"""

import uuid
from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _


class TaskType(models.TextChoices):
    CLASSIFICATION = "classification", _("Classification (one label)")
    MULTI_LABEL = "multi_label", _("Multi-label classification")
    SPANS = "spans", _("Spans (named entities)")
    TEXT = "text", _("Text response writing")
    PREFERENCE = "preference", _("Preference between two responses")
    RATING = "rating", _("Rating on a rubric")


class Project(models.Model):
    class Kind(models.TextChoices):
        ANNOTATION = "annotation", _("Annotation")
        FINE_TUNING = "fine_tuning", _("Fine-tuning data")

    class Decision(models.TextChoices):
        FIXED = "fixed", _("Fixed overlap, majority vote")
        ADAPTIVE = "adaptive", _("Adaptive: ask until confident")

    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        ACTIVE = "active", _("Active")
        PAUSED = "paused", _("Paused")
        COMPLETED = "completed", _("Completed")
        ARCHIVED = "archived", _("Archived")

    organization = models.ForeignKey(
        "tenants.Organization",
        on_delete=models.PROTECT,
        related_name="projects",
        help_text=_("The client organization that owns the job."),
    )
    workforce = models.ForeignKey(
        "tenants.Organization",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="staffed_projects",
        help_text=_("The annotation centre whose annotators and reviewers do the work."),
    )
    name = models.CharField(_("name"), max_length=200)
    description = models.TextField(_("description"), blank=True)
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices, default=Kind.ANNOTATION)
    task_type = models.CharField(_("task type"), max_length=16, choices=TaskType.choices)
    label_schema = models.JSONField(_("label schema"), default=dict, blank=True)
    instructions = models.TextField(_("instructions (Markdown)"), blank=True)
    required_tier = models.PositiveSmallIntegerField(
        _("required skill tier"),
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(5)],
    )
    overlap = models.PositiveSmallIntegerField(
        _("overlap"),
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(20)],
        help_text=_("Distinct annotators per item."),
    )
    review_rate = models.DecimalField(
        _("review rate"),
        max_digits=4,
        decimal_places=3,
        default=0,
        validators=[MinValueValidator(0), MaxValueValidator(1)],
        help_text=_("Share of finished items sampled for review."),
    )
    gold_ratio = models.DecimalField(
        _("gold ratio"),
        max_digits=4,
        decimal_places=3,
        default=0,
        validators=[MinValueValidator(0), MaxValueValidator(1)],
        help_text=_("Share of tasks served from gold items."),
    )
    # A model's suggestion pre-fills the answer only when it is at least this
    # sure; below, annotators see it as a hint (a 5 % guess pre-filled nudges
    # people toward it, and a three-way preference at 33 % is chance).
    suggestion_prefill_floor = models.DecimalField(
        _("suggestion pre-fill floor"),
        max_digits=4,
        decimal_places=3,
        default=Decimal("0.6"),
        validators=[MinValueValidator(0), MaxValueValidator(1)],
        help_text=_(
            "A model suggestion at least this confident pre-fills the answer; a less "
            "confident one is shown as a hint only."
        ),
    )
    agreement_threshold = models.DecimalField(
        _("agreement threshold"),
        max_digits=4,
        decimal_places=3,
        default=Decimal("0.6"),
        validators=[MinValueValidator(0), MaxValueValidator(1)],
        help_text=_("Items whose answer confidence is below this go to review."),
    )
    # The quality engine (annotation/quality.py). "fixed" asks every item for
    # `overlap` annotations and votes; "adaptive" asks one at a time until the
    # answer's posterior reaches `target_confidence`, up to `max_annotations`,
    # after which a reviewer decides.
    decision = models.CharField(
        _("decision rule"),
        max_length=16,
        choices=Decision.choices,
        default=Decision.FIXED,
    )
    target_confidence = models.DecimalField(
        _("target confidence"),
        max_digits=4,
        decimal_places=3,
        default=Decimal("0.98"),
        validators=[MinValueValidator(Decimal("0.5")), MaxValueValidator(Decimal("0.999"))],
        help_text=_("Adaptive: an item is decided once its best answer is this likely."),
    )
    max_annotations = models.PositiveSmallIntegerField(
        _("most annotations per item"),
        default=5,
        validators=[MinValueValidator(1), MaxValueValidator(20)],
        help_text=_("Adaptive: an item still undecided after this many goes to a reviewer."),
    )
    quarantine_below = models.DecimalField(
        _("quarantine below accuracy"),
        max_digits=4,
        decimal_places=3,
        default=Decimal("0.6"),
        validators=[MinValueValidator(0), MaxValueValidator(1)],
        help_text=_(
            "Annotators whose estimated accuracy is surely under this (its upper confidence "
            "bound) get only gold until they prove themselves; 0 turns quarantine off."
        ),
    )
    model_votes = models.BooleanField(
        _("model votes"),
        default=True,
        help_text=_(
            "Adaptive: a model's prediction counts as one more annotator, weighed by its "
            "accuracy measured on gold."
        ),
    )
    retrain_every = models.PositiveIntegerField(
        _("retrain the model every N decided items"),
        default=0,
        help_text=_("0: never retrain automatically."),
    )
    price_per_1k_tokens = models.DecimalField(
        _("price per 1,000 tokens (CNY)"),
        max_digits=12,
        decimal_places=4,
        default=0,
        validators=[MinValueValidator(0)],
    )
    lease_seconds = models.PositiveIntegerField(
        _("lease length (seconds)"),
        default=900,
        validators=[MinValueValidator(30), MaxValueValidator(24 * 3600)],
    )
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.DRAFT
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    # When every item was last done; cleared when new items arrive. The
    # project.completed webhook fires on that transition, once.
    completed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    tenant_path = "organization"

    class Meta:
        verbose_name = _("project")
        verbose_name_plural = _("projects")
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(name="project_overlap_positive", condition=Q(overlap__gte=1)),
            models.CheckConstraint(
                name="project_rates_are_shares",
                condition=Q(
                    review_rate__gte=0,
                    review_rate__lte=1,
                    gold_ratio__gte=0,
                    gold_ratio__lte=1,
                    agreement_threshold__gte=0,
                    agreement_threshold__lte=1,
                ),
            ),
            models.CheckConstraint(
                name="project_price_not_negative", condition=Q(price_per_1k_tokens__gte=0)
            ),
            models.CheckConstraint(
                name="project_quality_knobs_in_range",
                condition=Q(
                    target_confidence__gte=Decimal("0.5"),
                    target_confidence__lte=Decimal("0.999"),
                    max_annotations__gte=1,
                    quarantine_below__gte=0,
                    quarantine_below__lte=1,
                ),
            ),
            models.CheckConstraint(
                name="project_tier_in_range",
                condition=Q(required_tier__gte=1, required_tier__lte=5),
            ),
        ]

    def __str__(self):
        return self.name

    @property
    def initial_target(self) -> int:
        """Annotations a new regular item asks for: adaptive items start with one
        (a confident annotator or a model's agreement can decide it) and ask for
        more only while undecided."""
        return 1 if self.decision == self.Decision.ADAPTIVE else self.overlap


class Item(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", _("Needs annotations")
        IN_REVIEW = "in_review", _("In review")
        DONE = "done", _("Done")

    # No index of its own: the unique (project, external_id) index serves
    # every lookup by project, and one index fewer speeds up bulk imports.
    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="items", db_index=False
    )
    # Given by the client, or generated as "auto:<import>:<row>" so that every
    # item has one and re-imports can match on it.
    external_id = models.CharField(_("external id"), max_length=255)
    data = models.JSONField(_("data"))
    gold_answer = models.JSONField(_("gold answer"), null=True, blank=True)
    is_gold = models.BooleanField(_("gold item"), default=False)
    metadata = models.JSONField(_("metadata"), default=dict, blank=True)
    # Higher first: a model's uncertainty about the item when predictions exist.
    priority = models.FloatField(_("priority"), default=0.0)
    # Distinct annotators the item needs. Gold items have none (NULL): each
    # annotator gets one at most once, and the project's gold ratio decides how
    # often (see services.assignment_lease), not a count on the item.
    target_annotations = models.PositiveSmallIntegerField(default=1, null=True, blank=True)
    # Live leases + submitted annotations; the distribution counter.
    reserved_count = models.PositiveSmallIntegerField(default=0)
    annotation_count = models.PositiveSmallIntegerField(default=0)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    token_count = models.PositiveIntegerField(_("tokens in the item"), default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    tenant_path = "project__organization"

    class Meta:
        verbose_name = _("item")
        verbose_name_plural = _("items")
        ordering = ["pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "external_id"], name="item_external_id_unique_in_project"
            ),
            models.CheckConstraint(
                name="item_reserved_within_target",
                condition=Q(reserved_count__lte=F("target_annotations")),
            ),
            models.CheckConstraint(
                name="item_annotations_within_reserved",
                condition=Q(annotation_count__lte=F("reserved_count")),
            ),
            models.CheckConstraint(
                name="item_gold_has_answer",
                condition=Q(is_gold=False) | Q(gold_answer__isnull=False),
            ),
            models.CheckConstraint(
                name="item_target_unless_gold",
                condition=Q(is_gold=False, target_annotations__isnull=False)
                | Q(is_gold=True, target_annotations__isnull=True),
            ),
        ]
        indexes = [
            # The next-task scan: open items with room, best first. Partial, so
            # its size follows the open work, not the project's history.
            models.Index(
                "project",
                "is_gold",
                F("priority").desc(),
                "id",
                name="item_next_task",
                condition=Q(status="open", reserved_count__lt=F("target_annotations")),
            ),
            # The gold scan: few rows, none of them in item_next_task (no target).
            models.Index(
                "project",
                F("priority").desc(),
                "id",
                name="item_next_gold",
                condition=Q(status="open", is_gold=True),
            ),
            models.Index(fields=["project", "status"], name="item_project_status"),
        ]

    def __str__(self):
        return f"{self.project_id}/{self.external_id}"


class Assignment(models.Model):
    """A lease of an item to one annotator; at most one per (item, annotator)."""

    class Status(models.TextChoices):
        LEASED = "leased", _("Leased")
        SUBMITTED = "submitted", _("Submitted")
        SKIPPED = "skipped", _("Skipped")
        EXPIRED = "expired", _("Expired")
        RETURNED = "returned", _("Returned after rejection")

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="assignments")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="assignments")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="assignments"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.LEASED)
    leased_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    tenant_path = "project__workforce"

    class Meta:
        verbose_name = _("assignment")
        verbose_name_plural = _("assignments")
        ordering = ["pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["item", "annotator"], name="assignment_once_per_annotator"
            ),
        ]
        indexes = [
            models.Index(
                fields=["status", "expires_at"],
                name="assignment_lease_expiry",
                condition=Q(status="leased"),
            ),
            models.Index(fields=["annotator", "project", "status"], name="assignment_annotator"),
        ]

    def __str__(self):
        return (
            f"assignment {self.pk}: item {self.item_id} → user {self.annotator_id} ({self.status})"
        )


class AnnotatorTally(models.Model):
    """How many tasks, and how many of them gold, an annotator was served in a
    project: what the gold ratio is checked against. The lease statement keeps
    it current and reads it (locked) in the same statement, so the check costs
    neither a COUNT over the annotator's history nor a round trip."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    tasks = models.PositiveIntegerField(default=0)
    gold = models.PositiveIntegerField(default=0)
    # db_default on these: the lease statement inserts tallies in raw SQL.
    gold_correct = models.PositiveIntegerField(default=0, db_default=0)
    # The worker model (annotation.quality), re-estimated by project_quality_refresh
    # from gold and decided items: mean accuracy and its 95 % interval, over
    # `evidence` checked answers (decided items weigh their posterior).
    accuracy = models.FloatField(null=True, blank=True)
    accuracy_low = models.FloatField(null=True, blank=True)
    accuracy_high = models.FloatField(null=True, blank=True)
    evidence = models.FloatField(default=0, db_default=0)
    estimated_at = models.DateTimeField(null=True, blank=True)
    # Quarantined annotators get no regular task in the project, only gold (at
    # most PROBATION_GOLD after quarantine) to earn their way back. The lease
    # statement reads the flag; `gold_at_quarantine` counts the probation.
    quarantined = models.BooleanField(default=False, db_default=False)
    quarantined_at = models.DateTimeField(null=True, blank=True)
    quarantine_reason = models.TextField(blank=True, db_default="")
    gold_at_quarantine = models.PositiveIntegerField(default=0, db_default=0)

    class Meta:
        verbose_name = _("annotator tally")
        verbose_name_plural = _("annotator tallies")
        constraints = [
            models.UniqueConstraint(
                fields=["project", "annotator"], name="annotator_tally_once_per_project"
            ),
            models.CheckConstraint(
                name="annotator_tally_gold_within_tasks", condition=Q(gold__lte=F("tasks"))
            ),
            models.CheckConstraint(
                name="annotator_tally_gold_correct_within_gold",
                condition=Q(gold_correct__lte=F("gold")),
            ),
        ]

    def __str__(self):
        return f"tally of user {self.annotator_id} in project {self.project_id}"


class ProjectQuality(models.Model):
    """What the quality engine learned about a project, rewritten by
    project_quality_refresh and read by every adaptive decision.

    `classes` are the answer keys the engine votes over (the task type's
    `answer_keys`), and the arrays below are indexed by their position:
    `priors[k]`, `errors[t][l]` (the share of wrong answers to a true `t` that
    say `l`, shared by all annotators: the confusable pairs of the task) and,
    for the model whose predictions are on the items, `model_bins`: its
    accuracy by confidence band, measured on gold and audit items only, never
    on items its own vote decided.
    """

    project = models.OneToOneField(Project, on_delete=models.CASCADE, related_name="quality")
    classes = models.JSONField(default=list)
    priors = models.JSONField(default=list)
    errors = models.JSONField(default=list)
    model_name = models.CharField(max_length=200, blank=True)
    # [[upper bound of the band's confidence, correct, checked], …], ascending.
    model_bins = models.JSONField(default=list)
    model_accuracy = models.FloatField(null=True, blank=True)
    model_checked = models.PositiveIntegerField(default=0)
    estimated_at = models.DateTimeField(null=True, blank=True)

    tenant_path = "project__organization"

    class Meta:
        verbose_name = _("project quality estimate")
        verbose_name_plural = _("project quality estimates")

    def __str__(self):
        return f"quality model of project {self.project_id}"


class Annotation(models.Model):
    class Status(models.TextChoices):
        SUBMITTED = "submitted", _("Submitted")
        ACCEPTED = "accepted", _("Accepted")
        REJECTED = "rejected", _("Rejected")

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="annotations")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="annotations")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="annotations"
    )
    assignment = models.OneToOneField(
        Assignment, on_delete=models.PROTECT, related_name="annotation"
    )
    answer = models.JSONField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.SUBMITTED)
    # For gold items: did the answer match the gold answer?
    gold_correct = models.BooleanField(null=True, blank=True)
    time_spent_ms = models.PositiveIntegerField(default=0)
    item_tokens = models.PositiveIntegerField(default=0)
    answer_tokens = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    tenant_path = "project__organization"

    class Meta:
        verbose_name = _("annotation")
        verbose_name_plural = _("annotations")
        ordering = ["pk"]
        indexes = [models.Index(fields=["project", "item"], name="annotation_project_item")]

    def __str__(self):
        return f"annotation {self.pk} of item {self.item_id}"


class Review(models.Model):
    class Verdict(models.TextChoices):
        ACCEPT = "accept", _("Accept")
        REJECT = "reject", _("Reject")
        CORRECT = "correct", _("Correct")

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="reviews")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="reviews")
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="reviews"
    )
    verdict = models.CharField(max_length=16, choices=Verdict.choices)
    # The annotation a rejection sends back; null for accept and correct.
    annotation = models.ForeignKey(
        Annotation, on_delete=models.PROTECT, null=True, blank=True, related_name="reviews"
    )
    reason = models.TextField(blank=True)
    corrected_answer = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    tenant_path = "project__organization"

    class Meta:
        verbose_name = _("review")
        verbose_name_plural = _("reviews")
        ordering = ["pk"]
        constraints = [
            models.CheckConstraint(
                name="review_reject_has_reason_and_annotation",
                condition=~Q(verdict="reject") | (Q(annotation__isnull=False) & ~Q(reason="")),
            ),
            models.CheckConstraint(
                name="review_correct_has_answer",
                condition=~Q(verdict="correct") | Q(corrected_answer__isnull=False),
            ),
        ]

    def __str__(self):
        return f"{self.verdict} of item {self.item_id}"


class ReviewLease(models.Model):
    """A reviewer's claim on one item in review, for the project's `lease_seconds`.

    Reviewers take items the way annotators take tasks (`review_lease_take`):
    one statement picks with `FOR UPDATE SKIP LOCKED` and inserts the lease,
    so concurrent reviewers are never handed the same item and nobody answers
    an item another reviewer is already looking at.

    A row of its own rather than lease fields on ItemResult:
    - the database can say "at most one live lease per item" as a partial
      unique index (`review_lease_one_live_per_item`) that the lease
      statement's ON CONFLICT relies on; on ItemResult, a reject deletes the
      row and Dawid-Skene rewrites results in bulk under its own row locks,
      which leasing would then contend with;
    - the history stays: who held what and when, which lease became which
      review (`review`), and which items a reviewer put off ("later"), which
      are then served to them after the others;
    - a reviewer holds one live lease per project
      (`review_lease_one_live_per_reviewer`), so a second tab or a double
      click gets the held item back instead of hoarding a second one.

    Leases end as reviewed (with the review), released (skipped for later),
    expired (past `expires_at`, returned by the beat expiry task), or
    withdrawn (the item left review, e.g. re-inferred as confident).
    """

    class Status(models.TextChoices):
        LEASED = "leased", _("Leased")
        REVIEWED = "reviewed", _("Reviewed")
        RELEASED = "released", _("Released")
        EXPIRED = "expired", _("Expired")
        WITHDRAWN = "withdrawn", _("Withdrawn: the item left review")

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="review_leases")
    # Indexed by review_lease_item_reviewer below (item first).
    item = models.ForeignKey(
        Item, on_delete=models.CASCADE, related_name="review_leases", db_index=False
    )
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="review_leases"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.LEASED)
    leased_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    review = models.OneToOneField(
        Review, on_delete=models.PROTECT, null=True, blank=True, related_name="lease"
    )

    tenant_path = "project__workforce"

    class Meta:
        verbose_name = _("review lease")
        verbose_name_plural = _("review leases")
        ordering = ["pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["item"],
                condition=Q(status="leased"),
                name="review_lease_one_live_per_item",
            ),
            models.UniqueConstraint(
                fields=["project", "reviewer"],
                condition=Q(status="leased"),
                name="review_lease_one_live_per_reviewer",
            ),
            models.CheckConstraint(
                name="review_lease_reviewed_has_review",
                condition=(Q(status="reviewed") & Q(review__isnull=False))
                | (~Q(status="reviewed") & Q(review__isnull=True)),
            ),
        ]
        indexes = [
            models.Index(
                fields=["status", "expires_at"],
                name="review_lease_expiry",
                condition=Q(status="leased"),
            ),
            models.Index(fields=["item", "reviewer"], name="review_lease_item_reviewer"),
        ]

    def __str__(self):
        return (
            f"review lease {self.pk}: item {self.item_id} → user {self.reviewer_id} ({self.status})"
        )


class ItemResult(models.Model):
    """The answer a project delivers for an item, with how it was decided."""

    class Method(models.TextChoices):
        MAJORITY = "majority", _("Majority vote")
        DAWID_SKENE = "dawid_skene", _("Dawid–Skene")
        REVIEW = "review", _("Reviewer's correction")
        SINGLE = "single", _("Single annotation")
        POSTERIOR = "posterior", _("Adaptive posterior")

    item = models.OneToOneField(Item, on_delete=models.CASCADE, related_name="result")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="results")
    answer = models.JSONField()
    confidence = models.FloatField()
    method = models.CharField(max_length=16, choices=Method.choices)
    agreement = models.FloatField(null=True, blank=True)
    # Approved: accepted by a reviewer, corrected by one, or confident enough
    # not to need one. Only approved results go into dataset versions.
    approved = models.BooleanField(default=False)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    provenance = models.JSONField(default=dict)
    updated_at = models.DateTimeField(auto_now=True)

    tenant_path = "project__organization"

    class Meta:
        verbose_name = _("item result")
        verbose_name_plural = _("item results")
        ordering = ["item_id"]
        indexes = [models.Index(fields=["project", "approved"], name="result_project_approved")]

    def __str__(self):
        return f"result of item {self.item_id} ({self.method}, {self.confidence:.2f})"


class LeasedJob(models.Model):
    """A background job that one run at a time holds under a lease (job_sweep.py).

    A run claims the job (claimed_by, lease_expires_at) and renews the lease every
    JOB_HEARTBEAT_SECONDS; beat re-dispatches a job whose lease expired (its worker
    died) or whose queued message was never taken (dispatched_at long ago), and
    fails it with the reason once JOB_MAX_ATTEMPTS runs have stopped.
    """

    claimed_by = models.CharField(max_length=200, blank=True, default="")
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    dispatched_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True


class JobRecord(models.Model):
    """What every kind of background job records of its life, whatever its work
    (imports, exports, pre-labeling and fine-tuning runs): who started it, when it
    was made and when it ended, and why it failed. Each kind keeps its own states
    (`status`), counts and project relation (their related names differ); the
    lifecycle itself is annotation.job_sweep's, for the kinds held under a lease."""

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    tenant_path = "project__organization"

    class Meta:
        abstract = True


class ImportJob(JobRecord, LeasedJob):
    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        RUNNING = "running", _("Running")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")

    class OnConflict(models.TextChoices):
        UPDATE = "update", _("Update the existing item")
        SKIP = "skip", _("Keep the existing item")

    class OnError(models.TextChoices):
        REJECT = "reject", _("Reject the whole file")
        SKIP = "skip", _("Import the good rows, report the bad ones")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="imports")
    file = models.FileField(upload_to="imports/%Y/%m/")
    filename = models.CharField(max_length=255, blank=True)
    file_size = models.PositiveBigIntegerField(default=0)
    format = models.CharField(max_length=16, blank=True)
    encoding = models.CharField(max_length=32, blank=True)
    on_conflict = models.CharField(
        max_length=8, choices=OnConflict.choices, default=OnConflict.UPDATE
    )
    on_error = models.CharField(max_length=8, choices=OnError.choices, default=OnError.REJECT)
    # File columns read as other names, e.g. {"review": "text"}: a file made for
    # something else imports as it is, without being rewritten first.
    columns = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    rows_read = models.PositiveIntegerField(default=0)
    rows_valid = models.PositiveIntegerField(default=0)
    rows_invalid = models.PositiveIntegerField(default=0)
    created_count = models.PositiveIntegerField(default=0)
    updated_count = models.PositiveIntegerField(default=0)
    skipped_count = models.PositiveIntegerField(default=0)
    duplicate_count = models.PositiveIntegerField(default=0)
    bytes_read = models.PositiveBigIntegerField(default=0)
    # The first errors, each {"row", "field", "message"}; rows_invalid counts all.
    errors = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True, help_text=_("Why the whole file failed, if it did."))
    started_at = models.DateTimeField(null=True, blank=True)
    # Written as batches are staged; a running job whose heartbeat is old has lost
    # its worker, and beat fails it (import_jobs_fail_stale).
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("import job")
        verbose_name_plural = _("import jobs")
        ordering = ["-created_at"]

    def __str__(self):
        return f"import {self.pk} ({self.status})"

    @property
    def progress(self) -> float:
        """The share of the file read: at most 0.99 while running (the merge is left),
        1.0 once succeeded, and where it stopped once failed."""
        if self.status == self.Status.SUCCEEDED:
            return 1.0
        if not self.file_size:
            return 0.0
        read = min(self.bytes_read / self.file_size, 1.0)
        return read if self.status == self.Status.FAILED else min(read, 0.99)


class ImportStagingRow(models.Model):
    """Validated rows of a running import, merged into items in one transaction.

    Staging outside the final transaction lets progress be visible while the
    file is read, and keeps the merge itself atomic.
    """

    job = models.ForeignKey(  # indexed by staging_job_row below
        ImportJob, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    row = models.PositiveIntegerField()
    external_id = models.CharField(max_length=255)
    data = models.JSONField()
    gold_answer = models.JSONField(null=True)
    metadata = models.JSONField(default=dict)
    priority = models.IntegerField(default=0)
    token_count = models.PositiveIntegerField(default=0)

    tenant_path = "job__project__organization"

    class Meta:
        verbose_name = _("import staging row")
        verbose_name_plural = _("import staging rows")
        indexes = [models.Index(fields=["job", "external_id", "row"], name="staging_job_row")]

    def __str__(self):
        return f"staged row {self.row} of {self.job_id}"


class ExportFormat(models.TextChoices):
    RESULTS_JSONL = "results_jsonl", _("Final answers, JSONL")
    RESULTS_CSV = "results_csv", _("Final answers, CSV")
    ANNOTATIONS_JSONL = "annotations_jsonl", _("Every annotation, JSONL")
    OPENAI_CHAT = "openai_chat", _("OpenAI chat fine-tuning JSONL")
    DPO = "dpo", _("Preference pairs for DPO (prompt, chosen, rejected)")
    OPENAI_PREFERENCE = "openai_preference", _("OpenAI preference fine-tuning JSONL")
    RESULTS_PARQUET = "results_parquet", _("Final answers, Parquet")
    ANNOTATIONS_PARQUET = "annotations_parquet", _("Every annotation, Parquet")
    RESULTS_HF = "results_hf", _("Final answers, Hugging Face datasets folder (zip)")
    LABEL_STUDIO = "label_studio", _("Label Studio JSON")
    CONLL = "conll", _("CoNLL with BIO tags (span projects)")


class ExportJob(JobRecord, LeasedJob):
    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        RUNNING = "running", _("Running")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="exports")
    format = models.CharField(max_length=32, choices=ExportFormat.choices)
    approved_only = models.BooleanField(default=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    file = models.FileField(upload_to="exports/%Y/%m/", blank=True)
    row_count = models.PositiveIntegerField(default=0)
    # Written as the file is written; beat fails a running job whose heartbeat is
    # old (export_jobs_fail_stale).
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("export job")
        verbose_name_plural = _("export jobs")
        ordering = ["-created_at"]

    def __str__(self):
        return f"export {self.pk} ({self.format}, {self.status})"


class DatasetVersion(models.Model):
    """An immutable snapshot of a project's approved answers, split for training.

    Fine-tuning runs consume these; nothing ever changes one once written.
    """

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="datasets")
    version = models.PositiveIntegerField()
    format = models.CharField(max_length=32, choices=ExportFormat.choices)
    seed = models.BigIntegerField(default=0)
    validation_ratio = models.DecimalField(
        max_digits=4,
        decimal_places=3,
        default=Decimal("0.1"),
        validators=[MinValueValidator(0), MaxValueValidator(Decimal("0.5"))],
    )
    train_count = models.PositiveIntegerField(default=0)
    validation_count = models.PositiveIntegerField(default=0)
    train_tokens = models.PositiveBigIntegerField(default=0)
    content_hash = models.CharField(max_length=64)
    train_file = models.FileField(upload_to="datasets/%Y/%m/")
    validation_file = models.FileField(upload_to="datasets/%Y/%m/", blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    tenant_path = "project__organization"

    class Meta:
        verbose_name = _("dataset version")
        verbose_name_plural = _("dataset versions")
        ordering = ["project_id", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["project", "version"], name="dataset_version_unique"),
        ]

    def __str__(self):
        return f"{self.project_id} v{self.version}"
