"""Annotation's tables in the admin, read only.

Every write to these tables goes through annotation's services (checked,
audited, kept consistent with leases, tallies and the ledger), so the admin
is a window: lists with filters and search, and each row in full.
"""

from django.contrib import admin

from valuechain.admin import ReadOnlyAdmin

from .models import (
    Annotation,
    AnnotatorTally,
    Assignment,
    DatasetVersion,
    ExportJob,
    ImportJob,
    ImportStagingRow,
    Item,
    ItemResult,
    Project,
    ProjectQuality,
    Review,
    ReviewLease,
)


@admin.register(Project)
class ProjectAdmin(ReadOnlyAdmin):
    list_display = [
        "name",
        "organization",
        "workforce",
        "task_type",
        "kind",
        "status",
        "required_tier",
        "overlap",
        "created_at",
    ]
    list_filter = ["status", "task_type", "kind", "required_tier"]
    search_fields = ["name", "organization__name", "workforce__name"]
    date_hierarchy = "created_at"
    list_select_related = ["organization", "workforce"]


@admin.register(Item)
class ItemAdmin(ReadOnlyAdmin):
    list_display = [
        "external_id",
        "project",
        "status",
        "is_gold",
        "annotation_count",
        "target_annotations",
        "token_count",
        "created_at",
    ]
    list_filter = ["status", "is_gold", "project__task_type"]
    search_fields = ["external_id", "project__name"]
    list_select_related = ["project"]
    show_full_result_count = False  # a count over millions of items costs a scan


@admin.register(Assignment)
class AssignmentAdmin(ReadOnlyAdmin):
    list_display = ["item", "project", "annotator", "status", "leased_at", "expires_at"]
    list_filter = ["status"]
    search_fields = ["annotator__username", "item__external_id"]
    list_select_related = ["item", "project", "annotator"]
    show_full_result_count = False


@admin.register(AnnotatorTally)
class AnnotatorTallyAdmin(ReadOnlyAdmin):
    list_display = [
        "annotator",
        "project",
        "tasks",
        "gold",
        "gold_correct",
        "accuracy",
        "quarantined",
        "estimated_at",
    ]
    list_filter = ["quarantined"]
    search_fields = ["annotator__username", "project__name"]
    list_select_related = ["annotator", "project"]


@admin.register(ProjectQuality)
class ProjectQualityAdmin(ReadOnlyAdmin):
    list_display = ["project", "model_name", "model_accuracy", "model_checked", "estimated_at"]
    search_fields = ["project__name", "model_name"]
    list_select_related = ["project"]


@admin.register(Annotation)
class AnnotationAdmin(ReadOnlyAdmin):
    list_display = [
        "pk",
        "item",
        "project",
        "annotator",
        "status",
        "gold_correct",
        "time_spent_ms",
        "created_at",
    ]
    list_filter = ["status", "gold_correct", "project__task_type"]
    search_fields = ["annotator__username", "item__external_id"]
    date_hierarchy = "created_at"
    list_select_related = ["item", "project", "annotator"]
    show_full_result_count = False


@admin.register(Review)
class ReviewAdmin(ReadOnlyAdmin):
    list_display = ["item", "project", "reviewer", "verdict", "created_at"]
    list_filter = ["verdict"]
    search_fields = ["reviewer__username", "item__external_id", "reason"]
    list_select_related = ["item", "project", "reviewer"]


@admin.register(ReviewLease)
class ReviewLeaseAdmin(ReadOnlyAdmin):
    list_display = ["item", "project", "reviewer", "status", "leased_at", "expires_at"]
    list_filter = ["status"]
    search_fields = ["reviewer__username", "item__external_id"]
    list_select_related = ["item", "project", "reviewer"]


@admin.register(ItemResult)
class ItemResultAdmin(ReadOnlyAdmin):
    list_display = ["item", "project", "method", "confidence", "agreement", "approved"]
    list_filter = ["method", "approved"]
    search_fields = ["item__external_id", "project__name"]
    list_select_related = ["item", "project"]
    show_full_result_count = False


@admin.register(ImportJob)
class ImportJobAdmin(ReadOnlyAdmin):
    list_display = [
        "pk",
        "project",
        "filename",
        "format",
        "status",
        "rows_read",
        "rows_invalid",
        "created_count",
        "created_at",
    ]
    list_filter = ["status", "format", "on_error"]
    search_fields = ["filename", "project__name", "error"]
    list_select_related = ["project"]


@admin.register(ImportStagingRow)
class ImportStagingRowAdmin(ReadOnlyAdmin):
    list_display = ["job", "row", "external_id", "priority"]
    search_fields = ["external_id"]
    show_full_result_count = False


@admin.register(ExportJob)
class ExportJobAdmin(ReadOnlyAdmin):
    list_display = ["pk", "project", "format", "status", "row_count", "created_at", "finished_at"]
    list_filter = ["status", "format"]
    search_fields = ["project__name", "error"]
    list_select_related = ["project"]


@admin.register(DatasetVersion)
class DatasetVersionAdmin(ReadOnlyAdmin):
    list_display = [
        "project",
        "version",
        "format",
        "train_count",
        "validation_count",
        "train_tokens",
        "created_at",
    ]
    list_filter = ["format"]
    search_fields = ["project__name", "content_hash"]
    list_select_related = ["project"]
