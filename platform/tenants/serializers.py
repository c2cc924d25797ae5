from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from .models import ApiToken, AuditEvent, Membership, Organization, Region, User


class RegionSerializer(serializers.ModelSerializer):
    # The country has no parent: null there (declared so, for generated clients).
    parent_code = serializers.CharField(
        source="parent.code", read_only=True, default=None, allow_null=True
    )

    class Meta:
        model = Region
        fields = ["id", "code", "level", "parent", "parent_code", "name_zh", "name_en"]


class OrganizationSerializer(serializers.ModelSerializer):
    region = RegionSerializer(read_only=True)

    class Meta:
        model = Organization
        fields = ["id", "name", "slug", "kind", "region", "is_active", "created_at"]


class UserBriefSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ["id", "username", "display_name"]


class MembershipSerializer(serializers.ModelSerializer):
    user = UserBriefSerializer(read_only=True)

    class Meta:
        model = Membership
        fields = ["id", "organization", "user", "role", "created_at"]


class MeSerializer(serializers.ModelSerializer):
    memberships = serializers.SerializerMethodField()

    class Meta:
        model = User
        fields = ["id", "username", "display_name", "email", "memberships"]

    def get_memberships(self, user) -> list[dict]:
        return [
            {
                "organization": m.organization_id,
                "organization_name": m.organization.name,
                "role": m.role,
            }
            for m in self.context["memberships"]
        ]


class ApiTokenSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", read_only=True)

    class Meta:
        model = ApiToken
        fields = [
            "id",
            "organization",
            "name",
            "prefix",
            "created_by",
            "created_at",
            "last_used_at",
            "revoked_at",
            "is_active",
        ]
        read_only_fields = fields


class ApiTokenCreateSerializer(serializers.Serializer):
    organization = serializers.PrimaryKeyRelatedField(
        queryset=Organization.objects.none(),
        help_text=_("One of your organizations; the token acts for it alone."),
    )
    name = serializers.CharField(max_length=100, help_text=_("What will use the token."))

    def __init__(self, *args, organization_ids=(), **kwargs):
        super().__init__(*args, **kwargs)
        # Another organization's id fails like a non-existent one.
        self.fields["organization"].queryset = Organization.objects.filter(
            pk__in=organization_ids, is_active=True
        )


class ApiTokenCreatedSerializer(ApiTokenSerializer):
    token = serializers.CharField(
        read_only=True, help_text=_("The secret. Shown only in this response: store it now.")
    )

    class Meta(ApiTokenSerializer.Meta):
        fields = [*ApiTokenSerializer.Meta.fields, "token"]
        read_only_fields = fields


class AuditEventSerializer(serializers.ModelSerializer):
    actor = serializers.IntegerField(
        source="actor_user_id", read_only=True, allow_null=True, help_text=_("None: the system.")
    )
    actor_token = serializers.IntegerField(
        source="actor_token_id",
        read_only=True,
        allow_null=True,
        help_text=_("The API token the change was made with, if any."),
    )
    changes = serializers.JSONField(
        read_only=True, help_text=_("{field: [before, after]}; secrets appear as <redacted>.")
    )
    extra = serializers.JSONField(read_only=True)

    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "created_at",
            "organization",
            "event_type",
            "actor",
            "actor_token",
            "actor_label",
            "target_type",
            "target_id",
            "target_repr",
            "changes",
            "extra",
        ]
        read_only_fields = fields
