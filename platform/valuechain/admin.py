from django.contrib import admin

from . import services
from .models import (
    BackendRollup,
    LedgerEntry,
    LedgerKey,
    LedgerRollup,
    RegionMonthRollup,
    RollupWatermark,
    SkillTier,
    TierChange,
    WorkerMonthRollup,
)


@admin.register(SkillTier)
class SkillTierAdmin(admin.ModelAdmin):
    list_display = [
        "level",
        "name_en",
        "name_zh",
        "pay_per_1k_tokens",
        "price_per_1k_tokens",
        "min_gold_accuracy",
        "min_review_acceptance",
        "min_volume_tokens",
    ]
    # Five fixed tiers: edited (and checked against each other), never added or removed.
    readonly_fields = ["level"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        # Through the service: the ladder is checked against its neighbours
        # under lock, and the change is audited.
        services.skill_tier_update(
            level=obj.level,
            actor=request.user,
            **{name: form.cleaned_data[name] for name in form.changed_data},
        )


class ReadOnlyAdmin(admin.ModelAdmin):
    """The ledger is append-only: the admin shows it and changes nothing."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = [
        "occurred_at",
        "kind",
        "skill_tier",
        "region",
        "client",
        "tokens_input",
        "tokens_output",
        "revenue",
        "cost",
        "idempotency_key",
    ]
    list_filter = ["kind", "skill_tier"]
    search_fields = ["idempotency_key"]
    date_hierarchy = "occurred_at"
    list_select_related = ["region", "client"]
    show_full_result_count = False  # the ledger grows by a row per unit of work


@admin.register(LedgerRollup)
class LedgerRollupAdmin(ReadOnlyAdmin):
    list_display = [
        "day",
        "region",
        "skill_tier",
        "kind",
        "client",
        "entries",
        "tokens_input",
        "tokens_output",
        "revenue",
        "cost",
    ]
    list_filter = ["kind", "skill_tier"]


@admin.register(RegionMonthRollup)
class RegionMonthRollupAdmin(ReadOnlyAdmin):
    list_display = [
        "month",
        "region",
        "skill_tier",
        "kind",
        "entries",
        "tokens_input",
        "tokens_output",
        "revenue",
        "cost",
    ]
    list_filter = ["kind", "skill_tier"]
    search_fields = ["region__name"]


@admin.register(BackendRollup)
class BackendRollupAdmin(ReadOnlyAdmin):
    list_display = [
        "month",
        "backend_id",
        "region",
        "kind",
        "entries",
        "tokens_input",
        "tokens_output",
        "gpu_ms",
        "cost",
    ]
    list_filter = ["kind"]


@admin.register(WorkerMonthRollup)
class WorkerMonthRollupAdmin(ReadOnlyAdmin):
    list_display = ["month", "worker", "region", "entries", "tokens_input", "revenue", "cost"]
    search_fields = ["worker__username"]
    list_select_related = ["worker", "region"]


@admin.register(TierChange)
class TierChangeAdmin(ReadOnlyAdmin):
    """An annotator's promotions and demotions: a record, never edited."""

    list_display = ["day", "user", "from_level", "to_level", "region", "created_at"]
    list_filter = ["to_level", "from_level"]
    search_fields = ["user__username", "reason"]
    date_hierarchy = "day"
    list_select_related = ["user", "region"]


@admin.register(LedgerKey)
class LedgerKeyAdmin(ReadOnlyAdmin):
    list_display = ["idempotency_key", "entry_id", "occurred_at"]
    search_fields = ["idempotency_key"]


@admin.register(RollupWatermark)
class RollupWatermarkAdmin(ReadOnlyAdmin):
    # How fresh each rollup table is, for an operator asking why a report lags.
    list_display = ["rollup", "applied_id", "applied_as_of", "reconciled_id", "reconciled_at"]
