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


class MeMembershipSerializer(serializers.Serializer):
    organization = serializers.IntegerField()
    organization_name = serializers.CharField()
    role = serializers.ChoiceField(choices=Membership.Role.choices)


class MeTokenSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    prefix = serializers.CharField()
    organization = serializers.IntegerField()
    organization_name = serializers.CharField()
    roles = serializers.ListField(
        child=serializers.ChoiceField(choices=Membership.Role.choices),
        help_text=_(
            "The roles the token may use now: those it was given that its creator may still give."
        ),
    )
    expires_at = serializers.DateTimeField(allow_null=True)
    created_by = serializers.CharField(help_text=_("Who created the token."))


class MeSerializer(serializers.Serializer):
    """The caller: a person signed in, or an API token acting for its organization."""

    principal = serializers.ChoiceField(
        choices=[("user", "user"), ("api_token", "api_token")],
        help_text=_('"api_token" when the request carries a token: the token acts, not a person.'),
    )
    id = serializers.IntegerField(
        allow_null=True, help_text=_("The person's id; null for a token.")
    )
    username = serializers.CharField(allow_null=True, help_text=_("Null for a token."))
    display_name = serializers.CharField(allow_null=True, help_text=_("Null for a token."))
    email = serializers.CharField(allow_null=True, help_text=_("Null for a token."))
    memberships = MeMembershipSerializer(
        many=True,
        help_text=_("The roles this request acts with, by organization (a token's own roles)."),
    )
    token = MeTokenSerializer(allow_null=True, help_text=_("The token; null for a person."))


class ApiTokenSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", read_only=True)
    roles = serializers.ListField(
        child=serializers.ChoiceField(choices=Membership.Role.choices),
        read_only=True,
        help_text=_(
            "What the token may do in its organization (narrowed at each request to what "
            "its creator may still give)."
        ),
    )
    expires_at = serializers.DateTimeField(
        read_only=True, allow_null=True, help_text=_("Null: until revoked.")
    )
    is_active = serializers.BooleanField(
        read_only=True, help_text=_("Neither revoked nor expired.")
    )

    class Meta:
        model = ApiToken
        fields = [
            "id",
            "organization",
            "name",
            "prefix",
            "roles",
            "created_by",
            "created_at",
            "expires_at",
            "last_used_at",
            "revoked_at",
            "is_active",
        ]
        read_only_fields = fields


class ApiTokenCreateSerializer(serializers.Serializer):
    organization = serializers.PrimaryKeyRelatedField(
        queryset=Organization.objects.none(),
        required=False,
        help_text=_(
            "One of your organizations; the token acts for it alone. May be left out when "
            "you belong to exactly one."
        ),
    )
    name = serializers.CharField(max_length=100, help_text=_("What will use the token."))
    roles = serializers.ListField(
        child=serializers.ChoiceField(choices=Membership.Role.choices),
        allow_empty=False,
        max_length=len(Membership.Role.values),
        help_text=_(
            "What the token may do there: only roles you hold in the organization (its "
            "admins may give any)."
        ),
    )
    expires_at = serializers.DateTimeField(
        required=False,
        allow_null=True,
        help_text=_("When it stops working; leave out for never."),
    )

    def __init__(self, *args, organization_ids=(), **kwargs):
        super().__init__(*args, **kwargs)
        # Another organization's id fails like a non-existent one.
        self.fields["organization"].queryset = Organization.objects.filter(
            pk__in=list(organization_ids), is_active=True
        )

    def validate(self, attrs):
        if attrs.get("organization") is None:
            organizations = list(self.fields["organization"].queryset[:2])
            if len(organizations) != 1:
                raise serializers.ValidationError(
                    {
                        "organization": _(
                            "You belong to several organizations: say which one the token acts for."
                        )
                        if organizations
                        else _("You belong to no organization that could have a token.")
                    }
                )
            attrs["organization"] = organizations[0]
        return attrs


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
