"""REST endpoints for accounts and tenancy (/api/v1/...)."""

from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.response import Response
from rest_framework.views import APIView

from . import selectors, services
from .models import ApiToken, Membership, Organization, Region
from .scoping import TenantScopedMixin, organization_ids_for_request
from .serializers import (
    ApiTokenCreatedSerializer,
    ApiTokenCreateSerializer,
    ApiTokenSerializer,
    MembershipSerializer,
    MeSerializer,
    OrganizationSerializer,
    RegionSerializer,
)


class MeView(APIView):
    @extend_schema(responses=MeSerializer, summary="The caller and their roles")
    def get(self, request):
        memberships = selectors.memberships_for_user(user=request.user).filter(
            organization_id__in=organization_ids_for_request(request)
        )
        return Response(MeSerializer(request.user, context={"memberships": memberships}).data)


class RegionFilter(filters.FilterSet):
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
    list=extend_schema(summary="Your organizations' API tokens (never their secrets)"),
    retrieve=extend_schema(summary="One API token"),
    destroy=extend_schema(
        summary="Revoke an API token",
        description="The token stops working at once. Revoking twice is harmless.",
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
    queryset = ApiToken.objects.select_related("created_by")
    serializer_class = ApiTokenSerializer
    filterset_fields = ["organization"]

    @extend_schema(
        summary="Create an API token",
        request=ApiTokenCreateSerializer,
        responses={201: ApiTokenCreatedSerializer},
        examples=[
            OpenApiExample(
                "Create", value={"organization": 1, "name": "training pipeline"}, request_only=True
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
        )
        token.token = secret
        return Response(ApiTokenCreatedSerializer(token).data, status=status.HTTP_201_CREATED)

    def destroy(self, request, *args, **kwargs):
        services.api_token_revoke(token=self.get_object(), revoked_by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
