"""REST endpoints for accounts and tenancy (/api/v1/...)."""

from django_filters import rest_framework as filters
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.response import Response
from rest_framework.views import APIView

from . import selectors, services
from .filtering import ApiFilterSet
from .models import ApiToken, AuditEvent, Membership, Organization, Region
from .permissions import api_token_organizations, can_read_audit_log, is_platform_staff
from .scoping import TenantScopedMixin, principal_for_request
from .serializers import (
    ApiTokenCreatedSerializer,
    ApiTokenCreateSerializer,
    ApiTokenSerializer,
    AuditEventSerializer,
    MembershipSerializer,
    MeSerializer,
    OrganizationSerializer,
    RegionSerializer,
)


class MeView(APIView):
    @extend_schema(
        responses=MeSerializer,
        summary="The caller and their roles",
        description="A person signed in: who they are and their roles in each organization. "
        'An API token (`principal: "api_token"`): the token itself, its organization and '
        "the roles it acts with; never the person who created it.",
    )
    def get(self, request):
        principal = principal_for_request(request)
        if principal.is_token:
            token = principal.token
            roles = sorted(principal.token_roles())
            organization = {
                "organization": token.organization_id,
                "organization_name": token.organization.name,
            }
            me = {
                "principal": "api_token",
                "id": None,
                "username": None,
                "display_name": None,
                "email": None,
                "memberships": [{**organization, "role": role} for role in roles],
                "token": {
                    "id": token.pk,
                    "name": token.name,
                    "prefix": token.prefix,
                    **organization,
                    "roles": roles,
                    "expires_at": token.expires_at,
                    "created_by": token.created_by.username,
                },
            }
        else:
            user = request.user
            me = {
                "principal": "user",
                "id": user.pk,
                "username": user.username,
                "display_name": user.display_name,
                "email": user.email,
                "memberships": [
                    {
                        "organization": m.organization_id,
                        "organization_name": m.organization.name,
                        "role": m.role,
                    }
                    for m in selectors.memberships_for_user(user=user)
                ],
                "token": None,
            }
        return Response(MeSerializer(me).data)


class RegionFilter(ApiFilterSet):
    parent_code = filters.CharFilter(field_name="parent__code")

    class Meta:
        model = Region
        fields = ["level", "parent", "parent_code", "code"]


@extend_schema_view(
    list=extend_schema(summary="Regions (country, provinces, cities)"),
    retrieve=extend_schema(summary="One region"),
)
class RegionViewSet(TenantScopedMixin, viewsets.ReadOnlyModelViewSet):
    queryset = Region.objects.select_related("parent").order_by("code")
    serializer_class = RegionSerializer
    filterset_class = RegionFilter


@extend_schema_view(
    list=extend_schema(summary="Your organizations"),
    retrieve=extend_schema(summary="One of your organizations"),
)
class OrganizationViewSet(TenantScopedMixin, viewsets.ReadOnlyModelViewSet):
    queryset = Organization.objects.select_related("region", "region__parent")
    serializer_class = OrganizationSerializer
    filterset_fields = ["kind"]


@extend_schema_view(
    list=extend_schema(summary="Members of your organizations"),
    retrieve=extend_schema(summary="One membership"),
)
class MembershipViewSet(TenantScopedMixin, viewsets.ReadOnlyModelViewSet):
    queryset = Membership.objects.select_related("user")
    serializer_class = MembershipSerializer
    filterset_fields = ["organization", "role"]


@extend_schema_view(
    list=extend_schema(
        summary="Your organizations' API tokens (never their secrets)",
        description="Tokens of the organizations whose tokens you manage (admins, client "
        "developers, officials, project managers).",
    ),
    retrieve=extend_schema(summary="One API token"),
    destroy=extend_schema(
        summary="Revoke an API token",
        description="The token stops working at once. Revoking twice is harmless.",
        responses={
            204: OpenApiResponse(description="Revoked (or already revoked)."),
            404: OpenApiResponse(description="No such token among those you manage."),
        },
    ),
)
class ApiTokenViewSet(
    TenantScopedMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    queryset = ApiToken.objects.select_related("created_by", "organization")
    serializer_class = ApiTokenSerializer
    filterset_fields = ["organization"]

    def get_queryset(self):
        # Scoped to the caller's organizations, then to those whose tokens they manage.
        manageable = [o.pk for o in api_token_organizations(self.request.user)]
        return super().get_queryset().filter(organization_id__in=manageable)

    @extend_schema(
        summary="Create an API token",
        description="The token acts for one organization with the roles you give it, "
        "never more than you hold there (an admin of the organization may give any role), "
        "and stops working when revoked, when it expires, or when you no longer hold the "
        "roles it was given. The secret is in this response only. Tokens are created by "
        "people signed in, not by other tokens.",
        request=ApiTokenCreateSerializer,
        responses={
            201: ApiTokenCreatedSerializer,
            403: OpenApiResponse(
                description="You may not create this organization's tokens, or the request "
                "was made with a token."
            ),
        },
        examples=[
            OpenApiExample(
                "Create",
                value={
                    "organization": 1,
                    "name": "training pipeline",
                    "roles": ["client_developer"],
                    "expires_at": "2027-06-30T00:00:00+08:00",
                },
                request_only=True,
            ),
        ],
    )
    def create(self, request, *args, **kwargs):
        serializer = ApiTokenCreateSerializer(
            data=request.data, organization_ids=self.tenant_organization_ids()
        )
        serializer.is_valid(raise_exception=True)
        token, secret = services.api_token_create(
            organization=serializer.validated_data["organization"],
            created_by=request.user,
            name=serializer.validated_data["name"],
            roles=serializer.validated_data["roles"],
            expires_at=serializer.validated_data.get("expires_at"),
        )
        token.token = secret
        return Response(ApiTokenCreatedSerializer(token).data, status=status.HTTP_201_CREATED)

    def destroy(self, request, *args, **kwargs):
        services.api_token_revoke(token=self.get_object(), revoked_by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class AuditEventFilter(ApiFilterSet):
    event_type = filters.MultipleChoiceFilter(
        choices=AuditEvent.EventType.choices, help_text="Repeat to match any of several."
    )
    target_type = filters.CharFilter(help_text='"app_label.model", e.g. "annotation.project".')
    target_id = filters.CharFilter()
    since = filters.IsoDateTimeFilter(
        field_name="created_at", lookup_expr="gte", help_text="From this time on (ISO 8601)."
    )
    until = filters.IsoDateTimeFilter(
        field_name="created_at", lookup_expr="lt", help_text="Before this time (ISO 8601)."
    )

    class Meta:
        model = AuditEvent
        fields = ["organization", "event_type", "target_type", "target_id", "since", "until"]


class CanReadAuditLog(permissions.BasePermission):
    message = "Only an admin of the organization may read its audit trail."

    def has_permission(self, request, view):
        return view.sees_everything() or bool(view.audit_organization_ids())


@extend_schema_view(
    list=extend_schema(
        summary="Your organizations' audit trail",
        description="Who changed what and when, newest first: projects, API tokens, "
        "memberships, backends, webhooks, tier changes. For the organizations you are an "
        "admin of (platform superusers: all, including platform-wide events). Secrets "
        "never appear: a rotated key is shown as changed, with both values redacted.",
    ),
)
class AuditEventViewSet(TenantScopedMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    queryset = AuditEvent.objects.all()
    serializer_class = AuditEventSerializer
    filterset_class = AuditEventFilter
    permission_classes = [permissions.IsAuthenticated, CanReadAuditLog]
    ordering_fields = ["created_at"]

    def sees_everything(self) -> bool:
        # A token acts for its one organization, even a superuser's token.
        return is_platform_staff(self.request.user)

    def audit_organization_ids(self) -> list[int]:
        cached = getattr(self, "_audit_organization_ids", None)
        if cached is None:
            cached = self._audit_organization_ids = [
                organization.pk
                for organization in Organization.objects.filter(
                    pk__in=self.tenant_organization_ids()
                )
                if can_read_audit_log(self.request.user, organization)
            ]
        return cached

    def get_queryset(self):
        if self.sees_everything():
            return AuditEvent.objects.all()
        # Scoped to the caller's organizations, then to those they administer.
        return super().get_queryset().filter(organization_id__in=self.audit_organization_ids())
