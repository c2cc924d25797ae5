from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from tenants.scoping import TenantScopedMixin

from . import services
from .models import WebhookDelivery, WebhookEndpoint
from .serializers import (
    WebhookDeliveryDetailSerializer,
    WebhookDeliverySerializer,
    WebhookEndpointCreatedSerializer,
    WebhookEndpointSerializer,
)


@extend_schema_view(
    list=extend_schema(summary="Your webhook endpoints (never their secrets)"),
    retrieve=extend_schema(summary="One webhook endpoint"),
    partial_update=extend_schema(summary="Change events or pause an endpoint"),
    destroy=extend_schema(summary="Delete an endpoint"),
)
class WebhookEndpointViewSet(
    TenantScopedMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    queryset = WebhookEndpoint.objects.all()
    serializer_class = WebhookEndpointSerializer
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_serializer(self, *args, **kwargs):
        kwargs.setdefault("organization_ids", self.tenant_organization_ids())
        return super().get_serializer(*args, **kwargs)

    def perform_update(self, serializer):
        fields = dict(serializer.validated_data)
        organization = fields.pop("organization", serializer.instance.organization)
        if organization != serializer.instance.organization:
            raise ValidationError({"organization": ["An endpoint cannot move to another one."]})
        serializer.instance = services.webhook_endpoint_update(
            endpoint=serializer.instance, updated_by=self.request.user, **fields
        )

    def perform_destroy(self, instance):
        services.webhook_endpoint_delete(endpoint=instance, deleted_by=self.request.user)

    @extend_schema(
        summary="Add a webhook endpoint",
        description="The response carries the signing secret (`whsec_<base64>`), once. "
        "Deliveries are signed the Standard Webhooks way (https://www.standardwebhooks.com/): "
        "`webhook-id`, `webhook-timestamp` and `webhook-signature: v1,<base64 "
        "HMAC-SHA256(key, id + '.' + timestamp + '.' + body)>`, key being the bytes the "
        "secret's base64 encodes, so a Standard Webhooks library verifies them. Deprecated, "
        "for one release: `X-Tokenworks-Signature: sha256=<hex HMAC-SHA256(secret, "
        "timestamp + '.' + body)>`.",
        responses={201: WebhookEndpointCreatedSerializer},
    )
    def create(self, request, *args, **kwargs):
        form = self.get_serializer(data=request.data)
        form.is_valid(raise_exception=True)
        endpoint, secret = services.webhook_endpoint_create(
            organization=form.validated_data["organization"],
            created_by=request.user,
            url=form.validated_data["url"],
            events=form.validated_data.get("events"),
        )
        endpoint.secret = secret
        return Response(
            WebhookEndpointCreatedSerializer(
                endpoint, organization_ids=self.tenant_organization_ids()
            ).data,
            status=status.HTTP_201_CREATED,
        )


@extend_schema_view(
    list=extend_schema(
        summary="Webhook delivery log",
        description="Deliveries to your organizations' endpoints, newest first, a page at a "
        "time (`page`, `page_size` up to 500). Filter by endpoint, status or event.",
    ),
    retrieve=extend_schema(summary="One delivery, with every attempt made"),
)
class WebhookDeliveryViewSet(TenantScopedMixin, viewsets.ReadOnlyModelViewSet):
    queryset = WebhookDelivery.objects.all()
    serializer_class = WebhookDeliverySerializer
    filterset_fields = ["endpoint", "status", "event"]

    def get_queryset(self):
        queryset = super().get_queryset()
        if self.action == "retrieve":
            queryset = queryset.prefetch_related("attempt_log")
        return queryset

    def get_serializer_class(self):
        if self.action == "retrieve":
            return WebhookDeliveryDetailSerializer
        return super().get_serializer_class()

    @extend_schema(
        summary="Send a failed delivery again",
        description="Runs the whole retry schedule again, with the same webhook-id. A pending "
        "delivery is left as it is (it is being retried already).",
        request=None,
        responses={202: WebhookDeliverySerializer},
    )
    @action(detail=True, methods=["post"])
    def redeliver(self, request, pk=None):
        delivery = services.webhook_delivery_retry(delivery=self.get_object())
        return Response(WebhookDeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)
