from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _

from . import services
from .models import WebhookAttempt, WebhookDelivery, WebhookEndpoint


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    """Changes go through the services, so they are checked and audited like the API's."""

    list_display = ["url", "organization", "events", "is_active", "created_at"]
    list_filter = ["is_active"]
    exclude = ["secret_encrypted"]

    def get_readonly_fields(self, request, obj=None):
        return ["organization"] if obj is not None else []

    def save_model(self, request, obj, form, change):
        if change:
            services.webhook_endpoint_update(
                endpoint=obj,
                updated_by=request.user,
                **{name: form.cleaned_data[name] for name in form.changed_data},
            )
            return
        endpoint, secret = services.webhook_endpoint_create(
            organization=obj.organization, created_by=request.user, url=obj.url, events=obj.events
        )
        obj.pk = endpoint.pk
        self.message_user(
            request,
            _(
                "Endpoint created. Copy its signing secret now, it will not be shown again: "
                "%(secret)s"
            )
            % {"secret": secret},
            messages.WARNING,
        )

    def delete_model(self, request, obj):
        services.webhook_endpoint_delete(endpoint=obj, deleted_by=request.user)

    def delete_queryset(self, request, queryset):
        for endpoint in queryset:
            services.webhook_endpoint_delete(endpoint=endpoint, deleted_by=request.user)


class WebhookAttemptInline(admin.TabularInline):
    """Attempts are a record of what happened: read only."""

    model = WebhookAttempt
    fields = readonly_fields = [
        "number",
        "started_at",
        "finished_at",
        "address",
        "status_code",
        "latency_ms",
        "error",
        "response_excerpt",
    ]
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = ["event", "endpoint", "status", "attempts", "last_status_code", "created_at"]
    list_filter = ["status", "event"]
    readonly_fields = [f.name for f in WebhookDelivery._meta.fields]
    inlines = [WebhookAttemptInline]

    # Deliveries are made by events and ended by their attempts: never by hand.
    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(WebhookAttempt)
class WebhookAttemptAdmin(admin.ModelAdmin):
    """Each try of a delivery, as it happened: read only."""

    list_display = ["delivery", "number", "started_at", "status_code", "latency_ms", "address"]
    list_filter = ["status_code"]
    search_fields = ["address", "error"]
    list_select_related = ["delivery"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
