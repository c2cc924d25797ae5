from rest_framework import serializers

from tenants.models import Organization, Region

from .models import Backend, FineTuneRun, InferenceCall, Prediction, PrelabelRun, PromptTemplate
from .permissions import can_manage_backend


class ManagedUrlField(serializers.URLField):
    """A backend's address: written by its managers, read back only by them
    (compute.schema describes it as nullable in responses)."""


class BackendSerializer(serializers.ModelSerializer):
    api_key = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        help_text="Write-only: never returned or logged.",
        style={"input_type": "password"},
    )
    has_api_key = serializers.SerializerMethodField()
    region = serializers.SlugRelatedField(
        slug_field="code", queryset=Region.objects.all(), required=False, allow_null=True
    )
    models = serializers.ListField(
        source="models_served", child=serializers.CharField(), required=False
    )
    base_url = ManagedUrlField(
        max_length=Backend._meta.get_field("base_url").max_length,
        help_text="Up to and including /v1. Null for those who do not manage the backend: "
        "an address inside a centre's network is its managers' business.",
    )

    class Meta:
        model = Backend
        fields = [
            "id",
            "organization",
            "name",
            "kind",
            "base_url",
            "api_key",
            "has_api_key",
            "models",
            "region",
            "gpu_kind",
            "gpu_count",
            "price_input_per_million",
            "price_output_per_million",
            "price_training_per_million",
            "electricity_price_kwh",
            "power_draw_kw",
            "max_concurrency",
            "rpm_limit",
            "tpm_limit",
            "is_active",
            "health",
            "circuit",
            "last_latency_ms",
            "last_checked_at",
            "created_at",
        ]
        read_only_fields = ["health", "circuit", "last_latency_ms", "last_checked_at", "created_at"]
        extra_kwargs = {
            "organization": {
                "queryset": Organization.objects.none(),
                "allow_null": True,
                "required": False,
            }
        }

    def __init__(self, *args, organization_ids=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["organization"].queryset = Organization.objects.filter(pk__in=organization_ids)

    def get_has_api_key(self, backend) -> bool:
        return bool(backend.api_key_encrypted)

    def to_representation(self, backend):
        data = super().to_representation(backend)
        request = self.context.get("request")
        user = getattr(request, "user", None)
        if user is None or not can_manage_backend(user, backend.organization):
            data["base_url"] = None
        return data


class PromptTemplateSerializer(serializers.ModelSerializer):
    class Meta:
        model = PromptTemplate
        fields = ["id", "project", "version", "system", "user", "created_at"]
        read_only_fields = ["version", "created_at"]


class PrelabelRunSerializer(serializers.ModelSerializer):
    progress = serializers.SerializerMethodField()

    class Meta:
        model = PrelabelRun
        fields = [
            "id",
            "project",
            "prompt",
            "model",
            "policy",
            "region",
            "backend",
            "item_filter",
            "purpose",
            "status",
            "total_items",
            "done_items",
            "failed_items",
            "progress",
            "prompt_tokens",
            "completion_tokens",
            "cost",
            "error",
            "failures",
            "retry_policy",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields

    def get_progress(self, run) -> float:
        if not run.total_items:
            return 1.0 if run.status == PrelabelRun.Status.SUCCEEDED else 0.0
        return round((run.done_items + run.failed_items) / run.total_items, 4)


class PrelabelRunCreateSerializer(serializers.Serializer):
    project = serializers.IntegerField()
    prompt = serializers.IntegerField(required=False, allow_null=True)
    model = serializers.CharField(required=False, allow_blank=True, default="")
    policy = serializers.ChoiceField(
        choices=["cheapest", "lowest_latency", "region"], default="cheapest"
    )
    region = serializers.SlugRelatedField(
        slug_field="code", queryset=Region.objects.all(), required=False, allow_null=True
    )
    backend = serializers.IntegerField(required=False, allow_null=True)
    item_filter = serializers.JSONField(required=False, default=dict)


class PredictionSerializer(serializers.ModelSerializer):
    class Meta:
        model = Prediction
        fields = [
            "id",
            "run",
            "item",
            "answer",
            "confidence",
            "model",
            "backend",
            "prompt_version",
            "prompt_tokens",
            "completion_tokens",
            "cost",
            "created_at",
        ]


class InferenceCallSerializer(serializers.ModelSerializer):
    class Meta:
        model = InferenceCall
        fields = [
            "id",
            "run",
            "item",
            "attempt",
            "purpose",
            "backend",
            "backend_name",
            "model",
            "outcome",
            "http_status",
            "prompt_tokens",
            "completion_tokens",
            "cost",
            "latency_ms",
            "error",
            "final",
            "created_at",
        ]


class FineTuneRunSerializer(serializers.ModelSerializer):
    class Meta:
        model = FineTuneRun
        fields = [
            "id",
            "project",
            "dataset",
            "backend",
            "base_model",
            "method",
            "status",
            "remote_job",
            "fine_tuned_model",
            "trained_tokens",
            "cost",
            "events",
            "evaluation",
            "error",
            "created_at",
            "finished_at",
        ]
        read_only_fields = fields


class FineTuneRunCreateSerializer(serializers.Serializer):
    dataset = serializers.IntegerField()
    backend = serializers.IntegerField()
    base_model = serializers.CharField(required=False, allow_blank=True, default="")
    method = serializers.ChoiceField(
        choices=FineTuneRun.Method.choices, default=FineTuneRun.Method.SUPERVISED
    )


class LatencyPercentilesSerializer(serializers.Serializer):
    p50 = serializers.FloatField(allow_null=True)
    p95 = serializers.FloatField(allow_null=True)
    p99 = serializers.FloatField(allow_null=True)


class BackendMetricsSerializer(serializers.Serializer):
    """One backend's metered attempts over the window (compute.selectors.backend_metrics)."""

    id = serializers.IntegerField()
    name = serializers.CharField()
    kind = serializers.ChoiceField(choices=Backend.Kind.choices)
    region = serializers.CharField(allow_null=True, help_text="English name; null: no region.")
    health = serializers.ChoiceField(choices=Backend.Health.choices)
    circuit = serializers.ChoiceField(choices=Backend.Circuit.choices)
    since = serializers.DateTimeField(help_text="Start of the window.")
    requests = serializers.IntegerField(help_text="Attempts sent, answered or not.")
    errors = serializers.IntegerField(help_text="Attempts the backend did not answer.")
    error_share = serializers.FloatField(allow_null=True, help_text="null: no attempts.")
    invalid_answers = serializers.IntegerField(
        help_text="Answered, but the answer broke the schema."
    )
    outcomes = serializers.DictField(
        child=serializers.IntegerField(), help_text="Attempts by outcome."
    )
    latency_ms = LatencyPercentilesSerializer(
        help_text="The backend's own time, answered attempts."
    )
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    cost = serializers.DecimalField(max_digits=20, decimal_places=6, coerce_to_string=True)


class AcceptanceQuerySerializer(serializers.Serializer):
    """?project= of the suggestion-acceptance report: required, one of yours."""

    project = serializers.IntegerField(
        min_value=1, max_value=2**63 - 1, help_text="The project to report on."
    )
