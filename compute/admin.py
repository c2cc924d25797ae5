"""Compute's tables in the admin, read only.

Backends, runs and metering are written by compute's services (keys encrypted,
changes audited, every call on the ledger); the admin lists and shows them.
A backend's key is never shown, not even encrypted.
"""

from django.contrib import admin

from valuechain.admin import ReadOnlyAdmin

from .models import (
    Backend,
    FineTuneRun,
    InferenceCall,
    ModelRetrain,
    Prediction,
    PrelabelChunk,
    PrelabelRun,
    PromptTemplate,
)


@admin.register(Backend)
class BackendAdmin(ReadOnlyAdmin):
    list_display = [
        "name",
        "organization",
        "kind",
        "region",
        "gpu_kind",
        "gpu_count",
        "is_active",
        "health",
        "circuit",
        "last_latency_ms",
    ]
    list_filter = ["kind", "is_active", "health", "circuit"]
    search_fields = ["name", "organization__name"]
    exclude = ["api_key_encrypted"]
    list_select_related = ["organization", "region"]


@admin.register(PromptTemplate)
class PromptTemplateAdmin(ReadOnlyAdmin):
    list_display = ["project", "version", "created_by", "created_at"]
    search_fields = ["project__name", "system", "user"]
    list_select_related = ["project", "created_by"]


@admin.register(PrelabelRun)
class PrelabelRunAdmin(ReadOnlyAdmin):
    list_display = [
        "pk",
        "project",
        "purpose",
        "policy",
        "status",
        "total_items",
        "done_items",
        "failed_items",
        "cost",
        "created_at",
    ]
    list_filter = ["status", "purpose", "policy"]
    search_fields = ["project__name", "model", "error"]
    date_hierarchy = "created_at"
    list_select_related = ["project"]


@admin.register(Prediction)
class PredictionAdmin(ReadOnlyAdmin):
    list_display = ["item", "run", "model", "confidence", "prompt_tokens", "completion_tokens"]
    search_fields = ["model", "item__external_id"]
    list_select_related = ["item", "run"]
    show_full_result_count = False


@admin.register(InferenceCall)
class InferenceCallAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "run",
        "backend_name",
        "model",
        "outcome",
        "http_status",
        "prompt_tokens",
        "completion_tokens",
        "cost",
        "latency_ms",
    ]
    list_filter = ["outcome", "purpose", "final"]
    search_fields = ["backend_name", "model", "error"]
    date_hierarchy = "created_at"
    list_select_related = ["run"]
    show_full_result_count = False


@admin.register(FineTuneRun)
class FineTuneRunAdmin(ReadOnlyAdmin):
    list_display = ["pk", "project", "base_model", "method", "status", "fine_tuned_model"]
    list_filter = ["status", "method"]
    search_fields = ["project__name", "base_model", "fine_tuned_model", "remote_job"]
    list_select_related = ["project"]


@admin.register(ModelRetrain)
class ModelRetrainAdmin(ReadOnlyAdmin):
    list_display = ["pk", "project", "approved_results", "base_model", "status", "created_at"]
    list_filter = ["status"]
    search_fields = ["project__name", "base_model", "error"]
    list_select_related = ["project"]


@admin.register(PrelabelChunk)
class PrelabelChunkAdmin(ReadOnlyAdmin):
    list_display = ["id", "run", "status", "claimed_by", "lease_expires_at", "attempts"]
    list_filter = ["status"]
