from decimal import Decimal

from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from tenants.models import Organization

from .import_readers import FORMATS
from .models import (
    Annotation,
    Assignment,
    DatasetVersion,
    ExportFormat,
    ExportJob,
    ImportJob,
    Item,
    ItemResult,
    Project,
    Review,
    ReviewLease,
)


class ProjectSerializer(serializers.ModelSerializer):
    workforce = serializers.PrimaryKeyRelatedField(
        queryset=Organization.objects.filter(kind=Organization.Kind.WORKFORCE, is_active=True),
        allow_null=True,
        required=False,
        help_text=_("The annotation centre that will do the work (see /api/v1/workforces/)."),
    )

    class Meta:
        model = Project
        fields = [
            "id",
            "organization",
            "workforce",
            "name",
            "description",
            "kind",
            "task_type",
            "label_schema",
            "instructions",
            "required_tier",
            "decision",
            "overlap",
            "target_confidence",
            "max_annotations",
            "quarantine_below",
            "suggestion_prefill_floor",
            "model_votes",
            "retrain_every",
            "review_rate",
            "gold_ratio",
            "agreement_threshold",
            "price_per_1k_tokens",
            "lease_seconds",
            "status",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]
        extra_kwargs = {"organization": {"required": False}}


class ProjectUpdateSerializer(ProjectSerializer):
    class Meta(ProjectSerializer.Meta):
        read_only_fields = ["organization", "created_at", "updated_at"]


class ResultBriefSerializer(serializers.ModelSerializer):
    class Meta:
        model = ItemResult
        fields = ["answer", "confidence", "method", "agreement", "approved"]


class ItemSerializer(serializers.ModelSerializer):
    # null until the item has a result.
    result = ResultBriefSerializer(read_only=True, allow_null=True)

    class Meta:
        model = Item
        fields = [
            "id",
            "project",
            "external_id",
            "data",
            "gold_answer",
            "is_gold",
            "metadata",
            "priority",
            "status",
            "target_annotations",
            "annotation_count",
            "token_count",
            "result",
            "created_at",
            "updated_at",
        ]


class ItemResultSerializer(serializers.ModelSerializer):
    external_id = serializers.CharField(source="item.external_id", read_only=True)

    class Meta:
        model = ItemResult
        fields = [
            "id",
            "item",
            "external_id",
            "project",
            "answer",
            "confidence",
            "method",
            "agreement",
            "approved",
            "provenance",
            "updated_at",
        ]


class ImportRequestSerializer(serializers.Serializer):
    file = serializers.FileField(
        help_text=_(
            "JSONL, JSON array, CSV, Label Studio JSON, CoNLL/BIO (span projects), Parquet, "
            "or a Hugging Face dataset saved to disk (a zip or tar of the folder)."
        )
    )
    format = serializers.ChoiceField(
        choices=FORMATS,
        required=False,
        allow_blank=True,
        help_text=_("Detected from the name and content if left out."),
    )
    encoding = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=ImportJob._meta.get_field("encoding").max_length,
        help_text=_(
            "Detected (UTF-8 or GB18030/GBK) if left out. utf-16 without a byte order mark "
            "is read when its Latin characters show the byte order; else give utf-16-le or "
            "utf-16-be."
        ),
    )
    on_conflict = serializers.ChoiceField(
        choices=ImportJob.OnConflict.choices, default=ImportJob.OnConflict.UPDATE
    )
    on_error = serializers.ChoiceField(
        choices=ImportJob.OnError.choices, default=ImportJob.OnError.REJECT
    )


class ImportJobSerializer(serializers.ModelSerializer):
    progress = serializers.FloatField(
        read_only=True,
        help_text=_(
            "The share of the file read: at most 0.99 while running, 1.0 once succeeded, "
            "and where it stopped once failed."
        ),
    )

    class Meta:
        model = ImportJob
        fields = [
            "id",
            "project",
            "filename",
            "file_size",
            "format",
            "encoding",
            "on_conflict",
            "on_error",
            "status",
            "progress",
            "rows_read",
            "rows_valid",
            "rows_invalid",
            "created_count",
            "updated_count",
            "skipped_count",
            "duplicate_count",
            "errors",
            "error",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields


class ExportJobSerializer(serializers.ModelSerializer):
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = ExportJob
        fields = [
            "id",
            "project",
            "format",
            "approved_only",
            "status",
            "row_count",
            "error",
            "download_url",
            "created_at",
            "finished_at",
        ]
        read_only_fields = [
            "status",
            "row_count",
            "error",
            "download_url",
            "created_at",
            "finished_at",
        ]

    def get_download_url(self, job) -> str | None:
        if job.status != ExportJob.Status.SUCCEEDED:
            return None
        return f"/api/v1/export-jobs/{job.pk}/download/"


class _ProjectChoiceSerializer(serializers.Serializer):
    """`project` may name only the caller's projects; others fail as missing."""

    project = serializers.PrimaryKeyRelatedField(queryset=Project.objects.none())

    def __init__(self, *args, projects=None, **kwargs):
        super().__init__(*args, **kwargs)
        if projects is not None:
            self.fields["project"].queryset = projects


class ExportJobCreateSerializer(_ProjectChoiceSerializer):
    format = serializers.ChoiceField(choices=ExportFormat.choices)
    approved_only = serializers.BooleanField(default=True)


class DatasetVersionSerializer(serializers.ModelSerializer):
    class Meta:
        model = DatasetVersion
        fields = [
            "id",
            "project",
            "version",
            "format",
            "seed",
            "validation_ratio",
            "train_count",
            "validation_count",
            "train_tokens",
            "content_hash",
            "created_at",
        ]
        read_only_fields = fields


class DatasetVersionCreateSerializer(_ProjectChoiceSerializer):
    format = serializers.ChoiceField(
        choices=[ExportFormat.OPENAI_CHAT, ExportFormat.DPO, ExportFormat.OPENAI_PREFERENCE],
        required=False,
    )
    seed = serializers.IntegerField(default=0, min_value=0, max_value=2**62)
    validation_ratio = serializers.DecimalField(
        max_digits=4,
        decimal_places=3,
        default=Decimal("0.1"),
        min_value=Decimal(0),
        max_value=Decimal("0.5"),
    )


# --- workspace (annotators and reviewers) -----------------------------------------


class WorkspaceProjectSerializer(serializers.ModelSerializer):
    class Meta:
        model = Project
        fields = [
            "id",
            "name",
            "task_type",
            "label_schema",
            "instructions",
            "required_tier",
            "overlap",
            "lease_seconds",
        ]


class LeaseSerializer(serializers.ModelSerializer):
    item = serializers.SerializerMethodField()

    class Meta:
        model = Assignment
        fields = ["id", "project", "status", "leased_at", "expires_at", "item"]

    def get_item(self, assignment) -> dict:
        # Gold answers and client metadata are never shown to annotators.
        return {
            "id": assignment.item_id,
            "data": assignment.item.data,
            "suggestion": assignment.item.metadata.get("suggestion"),
        }


class NextTaskSerializer(serializers.Serializer):
    holding = serializers.ListField(
        child=serializers.IntegerField(), required=False, default=list, max_length=10
    )


class SubmitSerializer(serializers.Serializer):
    answer = serializers.JSONField()
    time_spent_ms = serializers.IntegerField(min_value=0, default=0)


class AnnotationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Annotation
        fields = [
            "id",
            "item",
            "assignment",
            "answer",
            "status",
            "time_spent_ms",
            "item_tokens",
            "answer_tokens",
            "created_at",
        ]


class ReviewRequestSerializer(serializers.Serializer):
    verdict = serializers.ChoiceField(choices=Review.Verdict.choices)
    reason = serializers.CharField(required=False, allow_blank=True, default="")
    corrected_answer = serializers.JSONField(required=False, allow_null=True, default=None)
    annotation = serializers.IntegerField(required=False, allow_null=True, default=None)


class ReviewSerializer(serializers.ModelSerializer):
    class Meta:
        model = Review
        fields = ["id", "item", "verdict", "annotation", "reason", "corrected_answer", "created_at"]


class ReviewAnnotationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Annotation
        fields = ["id", "answer", "time_spent_ms", "created_at"]


class ReviewItemSerializer(serializers.ModelSerializer):
    annotations = serializers.SerializerMethodField()
    suggestion = serializers.SerializerMethodField()
    result = ResultBriefSerializer(read_only=True, allow_null=True)

    class Meta:
        model = Item
        fields = ["id", "data", "status", "result", "annotations", "suggestion"]

    def get_suggestion(self, item) -> dict | None:
        # Only the model's suggestion: the rest of the metadata is the client's.
        return (item.metadata or {}).get("suggestion")

    def get_annotations(self, item) -> list[dict]:
        live = [a for a in item.annotations.all() if a.status != Annotation.Status.REJECTED]
        return ReviewAnnotationSerializer(live, many=True).data


class ReviewLeaseSerializer(serializers.ModelSerializer):
    item = ReviewItemSerializer(read_only=True)
    seconds_left = serializers.SerializerMethodField(
        help_text="Seconds until the lease ends, by the server's clock (0 once it has)."
    )
    waiting = serializers.SerializerMethodField(
        help_text="Items waiting for you in this project, this one included."
    )

    class Meta:
        model = ReviewLease
        fields = [
            "id",
            "project",
            "status",
            "leased_at",
            "expires_at",
            "seconds_left",
            "item",
            "waiting",
        ]

    def get_seconds_left(self, lease) -> int:
        # A countdown a browser can trust whatever its own clock says.
        return max(0, int((lease.expires_at - timezone.now()).total_seconds()))

    def get_waiting(self, lease) -> int | None:
        return self.context.get("waiting")


# --- the quality engine's figures --------------------------------------------------


class _QualityItemsSerializer(serializers.Serializer):
    total = serializers.IntegerField(help_text=_("Regular items (gold not counted)."))
    decided = serializers.IntegerField()
    in_review = serializers.IntegerField()
    open = serializers.IntegerField()


class _QualityActionsSerializer(serializers.Serializer):
    annotations = serializers.IntegerField(help_text=_("On regular items, rejected included."))
    gold_annotations = serializers.IntegerField()
    reviews = serializers.IntegerField()
    rejected_annotations = serializers.IntegerField()
    per_item = serializers.FloatField(
        allow_null=True, help_text=_("(annotations + gold annotations + reviews) / items.")
    )
    per_decided_item = serializers.FloatField(allow_null=True)


class _QualityChargesSerializer(serializers.Serializer):
    currency = serializers.CharField()
    total = serializers.DecimalField(max_digits=20, decimal_places=6)
    by_kind = serializers.DictField(child=serializers.DecimalField(max_digits=20, decimal_places=6))
    per_decided_item = serializers.DecimalField(max_digits=20, decimal_places=6, allow_null=True)


class _GoldCheckSerializer(serializers.Serializer):
    items = serializers.IntegerField(help_text=_("Gold items the decision rule settled."))
    right = serializers.IntegerField()
    accuracy = serializers.FloatField(allow_null=True)
    low = serializers.FloatField(allow_null=True, help_text=_("Wilson 95 % interval."))
    high = serializers.FloatField(allow_null=True)
    sent_to_review = serializers.IntegerField()


class _QualityAccuracySerializer(serializers.Serializer):
    expected = serializers.FloatField(
        allow_null=True, help_text=_("Mean confidence of the delivered answers.")
    )
    gold_check = _GoldCheckSerializer()
    reviewed_items = serializers.IntegerField()


class _QualityModelSerializer(serializers.Serializer):
    name = serializers.CharField(allow_null=True)
    votes = serializers.BooleanField(help_text=_("Whether its predictions count as a vote now."))
    accuracy = serializers.FloatField(allow_null=True, help_text=_("On gold and audit items."))
    checked = serializers.IntegerField()


class AnnotatorRecordSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    tasks = serializers.IntegerField()
    gold = serializers.IntegerField()
    gold_correct = serializers.IntegerField()
    accuracy = serializers.FloatField(allow_null=True)
    accuracy_low = serializers.FloatField(allow_null=True)
    accuracy_high = serializers.FloatField(allow_null=True)
    evidence = serializers.FloatField()
    quarantined = serializers.BooleanField()
    quarantined_at = serializers.DateTimeField(allow_null=True)
    reason = serializers.CharField(allow_blank=True)


class _QualityAnnotatorsSerializer(serializers.Serializer):
    estimated = serializers.IntegerField()
    quarantined = serializers.IntegerField()
    all_quarantined = serializers.BooleanField(
        help_text=_("Every annotator is quarantined: no regular work is handed out.")
    )
    people = AnnotatorRecordSerializer(
        many=True,
        required=False,
        help_text=_("Only for the staffing centre's project managers."),
    )


class ProjectQualitySerializer(serializers.Serializer):
    project = serializers.IntegerField()
    decision = serializers.ChoiceField(choices=Project.Decision.choices)
    target_confidence = serializers.DecimalField(max_digits=4, decimal_places=3)
    max_annotations = serializers.IntegerField()
    overlap = serializers.IntegerField()
    quarantine_below = serializers.DecimalField(max_digits=4, decimal_places=3)
    items = _QualityItemsSerializer()
    human_actions = _QualityActionsSerializer()
    decided_by_annotations = serializers.DictField(
        child=serializers.IntegerField(),
        help_text=_("Decided items by how many annotations they took."),
    )
    charges = _QualityChargesSerializer()
    accuracy = _QualityAccuracySerializer()
    model = _QualityModelSerializer()
    annotators = _QualityAnnotatorsSerializer()
    estimated_at = serializers.DateTimeField(allow_null=True)


class QuarantineReleaseSerializer(serializers.Serializer):
    annotator = serializers.IntegerField(help_text=_("The annotator's user id."))
    reason = serializers.CharField(max_length=1000)
