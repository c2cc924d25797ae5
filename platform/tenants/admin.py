from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils.translation import gettext_lazy as _

from . import services
from .models import ApiToken, AuditEvent, Membership, Organization, Region, User


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["organization"]


def _membership_save(request, membership: Membership) -> Membership:
    """An admin form's membership, saved through the services so it is audited."""
    if membership.pk is None:
        return services.membership_create(
            user=membership.user,
            organization=membership.organization,
            role=membership.role,
            actor=request.user,
        )
    original = Membership.objects.get(pk=membership.pk)
    if (original.user_id, original.organization_id) != (
        membership.user_id,
        membership.organization_id,
    ):
        # Another person or organization is another membership.
        services.membership_delete(membership=original, actor=request.user)
        membership.pk = None
        return _membership_save(request, membership)
    return services.membership_role_change(
        membership=original, role=membership.role, actor=request.user
    )


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    fieldsets = (
        *DjangoUserAdmin.fieldsets,
        (_("Tokenworks"), {"fields": ("display_name",)}),
    )
    inlines = [MembershipInline]
    list_display = ["username", "display_name", "email", "is_staff", "is_active"]

    def save_formset(self, request, form, formset, change):
        if formset.model is not Membership:
            return super().save_formset(request, form, formset, change)
        memberships = formset.save(commit=False)
        for membership in formset.deleted_objects:
            services.membership_delete(membership=membership, actor=request.user)
        for membership in memberships:
            membership.user = form.instance
            saved = _membership_save(request, membership)
            membership.pk = saved.pk


@admin.register(Region)
class RegionAdmin(admin.ModelAdmin):
    list_display = ["code", "name_en", "name_zh", "level", "parent"]
    list_filter = ["level"]
    search_fields = ["code", "name_en", "name_zh"]
    autocomplete_fields = ["parent"]


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "region", "is_active", "created_at"]
    list_filter = ["kind", "is_active"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    autocomplete_fields = ["region"]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "organization", "role", "created_at"]
    list_filter = ["role", "organization__kind"]
    search_fields = ["user__username", "organization__name"]
    autocomplete_fields = ["user", "organization"]

    def save_model(self, request, obj, form, change):
        obj.pk = _membership_save(request, obj).pk

    def delete_model(self, request, obj):
        services.membership_delete(membership=obj, actor=request.user)

    def delete_queryset(self, request, queryset):
        for membership in queryset:
            services.membership_delete(membership=membership, actor=request.user)


class ApiTokenAddForm(forms.ModelForm):
    """A new token: its organization, name, roles and expiry, checked by the
    service's own rules (roles only those the signed-in person may give)."""

    roles = forms.MultipleChoiceField(
        label=_("roles"),
        choices=Membership.Role.choices,
        widget=forms.CheckboxSelectMultiple,
        help_text=_(
            "What the token may do in the organization: only roles you hold there "
            "(an admin of the organization may give any). Never your superuser powers."
        ),
    )

    class Meta:
        model = ApiToken
        fields = ["organization", "name", "roles", "expires_at"]

    def clean(self):
        data = super().clean()
        organization = data.get("organization")
        if organization is None or self.errors:
            return data
        try:
            data.update(
                services.api_token_fields_check(
                    organization=organization,
                    created_by=self.request_user,
                    name=data.get("name", ""),
                    roles=data.get("roles", []),
                    expires_at=data.get("expires_at"),
                )
            )
        except PermissionDenied as exc:
            self.add_error("organization", str(exc))
        except ValidationError as exc:
            self.add_error(None, exc)
        return data


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are created here too; the secret is shown once, in a message."""

    list_display = [
        "name",
        "prefix",
        "organization",
        "roles",
        "created_by",
        "expires_at",
        "last_used_at",
        "revoked_at",
    ]
    list_filter = ["organization"]
    search_fields = ["name", "prefix", "organization__name"]
    fields = [
        "organization",
        "name",
        "roles",
        "expires_at",
        "prefix",
        "created_by",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    readonly_fields = ["prefix", "created_by", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def get_readonly_fields(self, request, obj=None):
        if obj is not None:
            return [*self.readonly_fields, "organization", "name", "roles", "expires_at"]
        return self.readonly_fields

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = ApiTokenAddForm
        form = super().get_form(request, obj, change=change, **kwargs)
        form.request_user = request.user
        return form

    def save_model(self, request, obj, form, change):
        if change:
            return
        token, secret = services.api_token_create(
            organization=obj.organization,
            created_by=request.user,
            name=obj.name,
            roles=form.cleaned_data["roles"],
            expires_at=obj.expires_at,
        )
        obj.pk = token.pk
        self.message_user(
            request,
            _("Token created. Copy it now, it will not be shown again: %(secret)s")
            % {"secret": secret},
            messages.WARNING,
        )

    def has_delete_permission(self, request, obj=None):
        return False  # revoke instead, so the audit trail stays

    @admin.action(description=_("Revoke selected tokens"))
    def revoke(self, request, queryset):
        tokens = list(queryset.filter(revoked_at__isnull=True))
        for token in tokens:
            services.api_token_revoke(token=token, revoked_by=request.user)
        self.message_user(request, _("%(count)d token(s) revoked.") % {"count": len(tokens)})


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """The audit trail, read-only: the services write it, nobody edits it."""

    list_display = [
        "created_at",
        "event_type",
        "organization",
        "actor_label",
        "target_type",
        "target_repr",
    ]
    list_filter = ["event_type", "organization"]
    search_fields = ["target_repr", "target_type", "target_id", "actor_label"]
    date_hierarchy = "created_at"
    list_select_related = ["organization"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
