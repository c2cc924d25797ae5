"""GPU inference backends, pre-labeling runs, metered calls and fine-tuning runs."""

from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from annotation.models import JobRecord, LeasedJob

MONEY = {"max_digits": 16, "decimal_places": 6}


class Backend(models.Model):
    """An OpenAI-compatible inference endpoint: vLLM, SGLang, a provider, or the built-in one."""

    class Kind(models.TextChoices):
        BUILTIN = "builtin", _("Built-in CPU model")
        VLLM = "vllm", _("vLLM")
        SGLANG = "sglang", _("SGLang")
        PROVIDER = "provider", _("Hosted provider (DeepSeek, Qwen, …)")

    class Health(models.TextChoices):
        UNKNOWN = "unknown", _("Unknown")
        HEALTHY = "healthy", _("Healthy")
        UNHEALTHY = "unhealthy", _("Unhealthy")

    class Circuit(models.TextChoices):
        CLOSED = "closed", _("Closed (in service)")
        OPEN = "open", _("Open (taken out)")
        HALF_OPEN = "half_open", _("Half-open (probing)")

    # Null: a platform-wide backend every organization may route to.
    organization = models.ForeignKey(
        "tenants.Organization",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="backends",
    )
    name = models.CharField(_("name"), max_length=100)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.VLLM)
    base_url = models.URLField(
        _("base URL"), max_length=300, help_text=_("Up to and including /v1.")
    )
    # Fernet token of the API key (see compute.api_key_cipher); never returned.
    api_key_encrypted = models.TextField(blank=True)
    models_served = models.JSONField(_("models"), default=list, blank=True)
    region = models.ForeignKey(
        "tenants.Region", on_delete=models.PROTECT, null=True, blank=True, related_name="backends"
    )
    gpu_kind = models.CharField(_("GPU kind"), max_length=64, blank=True)
    gpu_count = models.PositiveIntegerField(_("GPU count"), default=0)
    price_input_per_million = models.DecimalField(
        _("price per million input tokens (CNY)"),
        default=Decimal(0),
        validators=[MinValueValidator(0)],
        **MONEY,
    )
    price_output_per_million = models.DecimalField(
        _("price per million output tokens (CNY)"),
        default=Decimal(0),
        validators=[MinValueValidator(0)],
        **MONEY,
    )
    price_training_per_million = models.DecimalField(
        _("price per million trained tokens (CNY)"),
        default=Decimal(0),
        validators=[MinValueValidator(0)],
        **MONEY,
    )
    electricity_price_kwh = models.DecimalField(
        _("electricity price per kWh (CNY)"),
        null=True,
        blank=True,
        max_digits=8,
        decimal_places=4,
        validators=[MinValueValidator(0)],
    )
    power_draw_kw = models.DecimalField(
        _("power draw (kW)"),
        null=True,
        blank=True,
        max_digits=9,
        decimal_places=3,
        validators=[MinValueValidator(0)],
    )
    max_concurrency = models.PositiveIntegerField(default=16, validators=[MinValueValidator(1)])
    rpm_limit = models.PositiveIntegerField(_("requests per minute"), null=True, blank=True)
    tpm_limit = models.PositiveIntegerField(_("tokens per minute"), null=True, blank=True)
    is_active = models.BooleanField(default=True)
    health = models.CharField(max_length=16, choices=Health.choices, default=Health.UNKNOWN)
    circuit = models.CharField(max_length=16, choices=Circuit.choices, default=Circuit.CLOSED)
    consecutive_failures = models.PositiveIntegerField(default=0)
    circuit_opened_at = models.DateTimeField(null=True, blank=True)
    last_latency_ms = models.FloatField(null=True, blank=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    tenant_path = "organization"

    class Meta:
        verbose_name = _("backend")
        verbose_name_plural = _("backends")
        ordering = ["name", "pk"]
        constraints = [
            models.CheckConstraint(
                name="backend_prices_not_negative",
                condition=Q(
                    price_input_per_million__gte=0,
                    price_output_per_million__gte=0,
                    price_training_per_million__gte=0,
                ),
            ),
        ]

    def __str__(self):
        return self.name

    @property
    def in_service(self) -> bool:
        return self.is_active and self.circuit != self.Circuit.OPEN


class PromptTemplate(models.Model):
    """A versioned prompt for pre-labeling a project; versions never change."""

    project = models.ForeignKey(
        "annotation.Project", on_delete=models.CASCADE, related_name="prompts"
    )
    version = models.PositiveIntegerField()
    system = models.TextField(blank=True)
    # Python str.format fields from the item's data, e.g. "{text}".
    user = models.TextField(default="{text}")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    tenant_path = "project__organization"

    class Meta:
        verbose_name = _("prompt template")
        verbose_name_plural = _("prompt templates")
        ordering = ["project_id", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["project", "version"], name="prompt_version_unique"),
        ]

    def __str__(self):
        return f"prompt v{self.version} of project {self.project_id}"


class RoutingPolicy(models.TextChoices):
    CHEAPEST = "cheapest", _("Cheapest healthy backend")
    LOWEST_LATENCY = "lowest_latency", _("Lowest latency")
    REGION = "region", _("Pinned to a region (data residency)")


class PrelabelRun(JobRecord):
    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        RUNNING = "running", _("Running")
        CANCELLED = "cancelled", _("Cancelled")
        SUCCEEDED = "succeeded", _("Succeeded")
        # Finished, and some items (not all) ended without an answer: see failures.
        PARTIAL = "partial", _("Finished with failed items")
        FAILED = "failed", _("Failed")

    project = models.ForeignKey(
        "annotation.Project", on_delete=models.CASCADE, related_name="prelabel_runs"
    )
    prompt = models.ForeignKey(PromptTemplate, on_delete=models.PROTECT, related_name="runs")
    model = models.CharField(
        max_length=200, blank=True, help_text=_("Model name; empty lets the policy choose.")
    )
    policy = models.CharField(
        max_length=16, choices=RoutingPolicy.choices, default=RoutingPolicy.CHEAPEST
    )
    region = models.ForeignKey(
        "tenants.Region",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text=_("With the region policy: data may not leave it."),
    )
    backend = models.ForeignKey(
        Backend,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="pinned_runs",
        help_text=_("Pin one backend; others are used on failover."),
    )
    item_filter = models.JSONField(default=dict, blank=True)
    # Evaluation runs label held-out, human-answered items to score a model;
    # they do not touch what annotators see.
    purpose = models.CharField(
        max_length=16,
        choices=[("prelabel", _("Pre-labeling")), ("evaluation", _("Evaluation"))],
        default="prelabel",
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    total_items = models.PositiveIntegerField(default=0)
    done_items = models.PositiveIntegerField(default=0)
    failed_items = models.PositiveIntegerField(default=0)
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)
    cost = models.DecimalField(default=Decimal(0), **MONEY)
    # Items that ended without an answer, by the outcome of their last call.
    failures = models.JSONField(default=dict, blank=True)
    # The bounds every call of the run was retried within (compute.retry_policy).
    retry_policy = models.JSONField(default=dict, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("pre-labeling run")
        verbose_name_plural = _("pre-labeling runs")
        ordering = ["-created_at", "-pk"]

    def __str__(self):
        return f"pre-label run {self.pk} ({self.status})"


class PrelabelChunk(LeasedJob):
    """A run's unit of work: up to CHUNK_SIZE items one worker labels at a time.

    Claimed in the database under a lease (annotation.job_sweep), not only through
    the broker: a live worker's chunk is never run twice (a re-delivered message
    finds the lease held and does nothing), and a dead worker's chunk is
    re-dispatched by beat once its lease lapses, whatever the broker's visibility
    timeout. A retried chunk skips the items that already have an outcome.
    """

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        DONE = "done", _("Done")
        # The run ended (cancelled, failed) before the chunk was: not run again.
        CLOSED = "closed", _("Closed with its run")

    run = models.ForeignKey(PrelabelRun, on_delete=models.CASCADE, related_name="chunks")
    item_ids = models.JSONField(default=list)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    tenant_path = "run__project__organization"

    class Meta:
        ordering = ["pk"]
        indexes = [models.Index(fields=["status", "run"], name="prelabel_chunk_open")]
        verbose_name = _("pre-labeling chunk")
        verbose_name_plural = _("pre-labeling chunks")

    def __str__(self):
        return f"chunk {self.pk} of pre-label run {self.run_id} ({self.status})"


class Prediction(models.Model):
    """A model's answer for an item, shown to annotators as a suggestion."""

    run = models.ForeignKey(PrelabelRun, on_delete=models.CASCADE, related_name="predictions")
    project = models.ForeignKey(
        "annotation.Project", on_delete=models.CASCADE, related_name="predictions"
    )
    item = models.ForeignKey(
        "annotation.Item", on_delete=models.CASCADE, related_name="predictions"
    )
    answer = models.JSONField()
    confidence = models.FloatField()
    model = models.CharField(max_length=200)
    backend = models.ForeignKey(
        Backend, on_delete=models.SET_NULL, null=True, related_name="predictions"
    )
    prompt_version = models.PositiveIntegerField()
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    cost = models.DecimalField(default=Decimal(0), **MONEY)
    created_at = models.DateTimeField(auto_now_add=True)

    tenant_path = "project__organization"

    class Meta:
        verbose_name = _("prediction")
        verbose_name_plural = _("predictions")
        ordering = ["pk"]
        constraints = [
            # A retried chunk cannot predict an item twice in one run.
            models.UniqueConstraint(fields=["run", "item"], name="prediction_once_per_run"),
        ]

    def __str__(self):
        return f"prediction of item {self.item_id} by {self.model}"


class InferenceCall(models.Model):
    """Metering: one row per HTTP attempt to a backend, keyed by run, item and attempt.

    Written ahead: the row is inserted `in_flight` before the request is sent (one
    insert per wave of requests, not per call), and completed in place with what
    the backend answered as attempts return (in small batches), failures
    included, so the error rate is what the backend answered. A worker killed
    with calls in flight leaves their rows `in_flight`; whoever takes its work
    over marks them `interrupted` (compute.services.prelabel_calls_interrupt):
    sent, outcome unknown, billed at the prompt tokens counted locally and no
    completion. So every request a backend received has exactly one row.
    """

    class Purpose(models.TextChoices):
        PRELABEL = "prelabel", _("Pre-labeling")
        EVALUATION = "evaluation", _("Evaluation")

    class Outcome(models.TextChoices):
        OK = "ok", _("Answered")
        INVALID = "invalid", _("Answer violated the schema")
        RATE_LIMITED = "rate_limited", _("Rate limited (429)")
        SERVER_ERROR = "server_error", _("Server error (5xx)")
        TIMEOUT = "timeout", _("Timed out")
        CONNECTION = "connection", _("Connection failed")
        MALFORMED = "malformed", _("Malformed reply")
        REJECTED = "rejected", _("Rejected (4xx)")
        ERROR = "error", _("Failed")  # calls metered before outcomes were told apart
        # Written ahead of the request; completed in place when it returns.
        IN_FLIGHT = "in_flight", _("Sent, no answer yet")
        # Sent by a worker that stopped before it recorded the answer.
        INTERRUPTED = "interrupted", _("Interrupted (outcome unknown)")

    # Outcomes that count in a backend's error share: it was asked and did not
    # answer. A rejected request or an invalid answer is the request's or the
    # model's fault, not the backend's, and an interrupted call is our worker's.
    BACKEND_ERRORS = ("rate_limited", "server_error", "timeout", "connection", "malformed", "error")
    # What the circuit breaker counts against a backend: not a 429, which says the
    # backend is alive and asks for less (Retry-After is honoured; opening the
    # circuit would take a busy but working backend out of every run).
    CIRCUIT_FAILURES = ("server_error", "timeout", "connection", "malformed", "error")

    run = models.ForeignKey(PrelabelRun, on_delete=models.CASCADE, null=True, related_name="calls")
    project = models.ForeignKey(
        "annotation.Project", on_delete=models.CASCADE, related_name="inference_calls"
    )
    item = models.ForeignKey(
        "annotation.Item", on_delete=models.CASCADE, related_name="inference_calls"
    )
    attempt = models.PositiveSmallIntegerField(default=1)
    purpose = models.CharField(max_length=16, choices=Purpose.choices, default=Purpose.PRELABEL)
    backend = models.ForeignKey(Backend, on_delete=models.SET_NULL, null=True, related_name="calls")
    backend_name = models.CharField(max_length=100, blank=True)
    model = models.CharField(max_length=200)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    # As the backend reported them; in flight or interrupted, as counted locally
    # (annotation.token_estimate), with no completion.
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    cost = models.DecimalField(default=Decimal(0), **MONEY)
    # The backend's time for this request: sending to reading the response,
    # without queueing for a concurrency slot or backoff sleeps.
    latency_ms = models.FloatField(default=0)
    error = models.TextField(blank=True)
    # The item's last attempt when it ended without an answer: its recorded final
    # failure, so a retried chunk or a resumed run does not try it again.
    final = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    tenant_path = "project__organization"

    class Meta:
        verbose_name = _("inference call")
        verbose_name_plural = _("inference calls")
        ordering = ["pk"]
        constraints = [
            models.UniqueConstraint(fields=["run", "item", "attempt"], name="inference_call_once"),
        ]
        indexes = [
            models.Index(fields=["backend", "created_at"], name="call_backend_time"),
            # Few rows at any time: what the sweep and a takeover look for.
            models.Index(
                fields=["run", "item"], condition=Q(outcome="in_flight"), name="call_in_flight"
            ),
        ]

    def __str__(self):
        return f"call {self.pk} ({self.outcome})"


class FineTuneRun(JobRecord, LeasedJob):
    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        UPLOADING = "uploading", _("Uploading")
        QUEUED = "queued", _("Queued at the backend")
        RUNNING = "running", _("Training")
        EVALUATING = "evaluating", _("Evaluating")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")
        CANCELLED = "cancelled", _("Cancelled")

    class Method(models.TextChoices):
        SUPERVISED = "supervised", _("Supervised")
        DPO = "dpo", _("Direct preference optimization")

    project = models.ForeignKey(
        "annotation.Project", on_delete=models.CASCADE, related_name="finetune_runs"
    )
    dataset = models.ForeignKey(
        "annotation.DatasetVersion", on_delete=models.PROTECT, related_name="finetune_runs"
    )
    backend = models.ForeignKey(
        Backend, on_delete=models.SET_NULL, null=True, related_name="finetune_runs"
    )
    base_model = models.CharField(max_length=200)
    method = models.CharField(max_length=16, choices=Method.choices, default=Method.SUPERVISED)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    remote_training_file = models.CharField(max_length=200, blank=True)
    remote_validation_file = models.CharField(max_length=200, blank=True)
    remote_job = models.CharField(max_length=200, blank=True)
    fine_tuned_model = models.CharField(max_length=300, blank=True)
    trained_tokens = models.PositiveBigIntegerField(default=0)
    cost = models.DecimalField(default=Decimal(0), **MONEY)
    events = models.JSONField(default=list, blank=True)
    evaluation = models.JSONField(default=dict, blank=True)
    # Where the evaluated model and the humans disagree, send the item to a
    # reviewer. Automatic retrains do not: they would send the same held-out
    # items back at every retrain, a human cost the quality engine accounts for
    # itself by weighing the model on gold.
    review_disagreements = models.BooleanField(default=True)

    class Meta:
        verbose_name = _("fine-tuning run")
        verbose_name_plural = _("fine-tuning runs")
        ordering = ["-created_at", "-pk"]

    def __str__(self):
        return f"fine-tune {self.pk} ({self.status})"


class ModelRetrain(models.Model):
    """One automatic retraining of a project's model (compute.retraining).

    Freezes the approved answers, fine-tunes the base model on them, then
    pre-labels the project's open items (gold included) with the new model, so
    the quality engine sees and calibrates the model it votes with. The last
    row's `approved_results` is the baseline the next retrain counts from.
    """

    class Status(models.TextChoices):
        TRAINING = "training", _("Fine-tuning")
        PRELABELING = "prelabeling", _("Pre-labeling open items")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")

    UNFINISHED = (Status.TRAINING, Status.PRELABELING)

    project = models.ForeignKey(
        "annotation.Project", on_delete=models.CASCADE, related_name="model_retrains"
    )
    # Approved results when it started: the next one is due `retrain_every` later.
    approved_results = models.PositiveIntegerField()
    backend = models.ForeignKey(
        Backend, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    base_model = models.CharField(max_length=200, blank=True)
    dataset = models.ForeignKey(
        "annotation.DatasetVersion",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    finetune_run = models.ForeignKey(
        FineTuneRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    prelabel_run = models.ForeignKey(
        PrelabelRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.TRAINING)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    tenant_path = "project__organization"

    class Meta:
        verbose_name = _("model retraining")
        verbose_name_plural = _("model retrainings")
        ordering = ["-created_at", "-pk"]
        constraints = [
            # Two beat ticks (or the bench and beat) can never start two at once.
            models.UniqueConstraint(
                fields=["project"],
                condition=Q(status__in=["training", "prelabeling"]),
                name="model_retrain_one_unfinished",
            ),
        ]

    def __str__(self):
        return f"model retrain {self.pk} of project {self.project_id} ({self.status})"
