from django.contrib import admin

from . import services
from .models import LedgerEntry, LedgerRollup, SkillTier


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
