"""REST endpoints for compute: backends, pre-labeling runs, fine-tuning, observability."""

from datetime import timedelta

from django.core.exceptions import ValidationError
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.generics import get_object_or_404
from rest_framework.response import Response

from annotation.models import DatasetVersion
from tenants.scoping import TenantScopedMixin, organization_ids_for_request

from . import selectors, services
from .finetuning import finetune_run_start
from .models import Backend, FineTuneRun, InferenceCall, Prediction, PrelabelRun, PromptTemplate
from .serializers import (
    AcceptanceQuerySerializer,
    BackendMetricsSerializer,
    BackendSerializer,
    FineTuneRunCreateSerializer,
    FineTuneRunSerializer,
    InferenceCallSerializer,
    PredictionSerializer,
    PrelabelRunCreateSerializer,
    PrelabelRunSerializer,
    PromptTemplateSerializer,
)


def _projects(request):
    """Projects the caller's organizations own or staff."""
    return selectors.projects_owned_or_staffed(
        organization_ids=organization_ids_for_request(request)
    )


def _get(queryset, pk, field):
    obj = queryset.filter(pk=pk).first() if pk is not None else None
    if pk is not None and obj is None:
        raise ValidationError({field: ["Not found among yours."]})
    return obj


class ProjectScopedMixin(TenantScopedMixin):
    """Rows of projects the caller's organizations own (client) or staff (centre)."""

    def get_queryset(self):
        return selectors.project_rows(
            self.queryset, organization_ids=organization_ids_for_request(self.request)
        )


@extend_schema_view(
    list=extend_schema(summary="Inference backends you may use"),
    retrieve=extend_schema(summary="One backend (its API key is never returned)"),
    create=extend_schema(
        summary="Register an OpenAI-compatible backend",
        examples=[
            OpenApiExample(
                "vLLM on Ascend",
                request_only=True,
                value={
                    "organization": 2,
                    "name": "贵阳 vLLM",
                    "kind": "vllm",
                    "base_url": "http://10.0.0.5:8000/v1",
                    "api_key": "sk-…",
                    "models": ["Qwen2.5-7B-Instruct"],
                    "region": "520100",
                    "gpu_kind": "Ascend 910B",
                    "gpu_count": 8,
                    "price_input_per_million": "0.50",
                    "price_output_per_million": "1.00",
                    "max_concurrency": 64,
                    "rpm_limit": 3000,
                    "tpm_limit": 2000000,
                },
            )
        ],
    ),
    partial_update=extend_schema(summary="Change a backend"),
    destroy=extend_schema(summary="Delete a backend; runs using it fail over"),
)
class BackendViewSet(TenantScopedMixin, viewsets.ModelViewSet):
    queryset = Backend.objects.all()
    serializer_class = BackendSerializer
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    filterset_fields = ["kind", "is_active", "health"]

    def get_queryset(self):
        return selectors.backends_visible(organization_ids_for_request(self.request))

    def get_serializer(self, *args, **kwargs):
        kwargs.setdefault("organization_ids", organization_ids_for_request(self.request))
        return super().get_serializer(*args, **kwargs)

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        serializer.instance = services.backend_save(
            user=self.request.user,
            organization=data.pop("organization", None),
            api_key=data.pop("api_key", None),
            **data,
        )

    def perform_update(self, serializer):
        data = dict(serializer.validated_data)
        data.pop("organization", None)  # a backend does not move between organizations
        serializer.instance = services.backend_save(
            user=self.request.user,
            organization=serializer.instance.organization,
            backend=serializer.instance,
            api_key=data.pop("api_key", None),
            **data,
        )

    def perform_destroy(self, instance):
        services.backend_delete(backend=instance, user=self.request.user)

    @extend_schema(
        summary="Requests by outcome, error share, latency percentiles, tokens and cost",
        description="Over the last `window` seconds (default 86400, at most 30 days), from "
        "every metered attempt: `outcomes` counts attempts by outcome, `error_share` is the "
        "share the backend did not answer (429, 5xx, timeouts, connection errors, malformed "
        "replies), latency is the backend's own time for answered attempts.",
        parameters=[
            OpenApiParameter(
                "window",
                {"type": "integer", "minimum": 60, "maximum": 30 * 86400, "default": 86400},
                description="Seconds, 60 to 2592000.",
            )
        ],
        responses=BackendMetricsSerializer(many=True),
    )
    # Not paginated: one row per visible backend, few by nature.
    @action(detail=False, methods=["get"], pagination_class=None)
    def metrics(self, request):
        raw = request.query_params.get("window", "86400")
        try:
            window = int(raw)
        except ValueError:
            window = 0
        if not 60 <= window <= 30 * 86400:
            raise ValidationError({"window": ["Seconds, a whole number from 60 to 2592000."]})
        since = timezone.now() - timedelta(seconds=window)
        # The list's filters (kind, is_active, health) apply here too, as documented.
        backends = self.filter_queryset(self.get_queryset())
        rows = selectors.backend_metrics(backends=backends, since=since)
        return Response(BackendMetricsSerializer(rows, many=True).data)

    @extend_schema(
        summary="Check a backend now (GET /models)", request=None, responses=BackendSerializer
    )
    @action(detail=True, methods=["post"])
    def check(self, request, pk=None):
        backend = services.backend_health_check(backend=self.get_object())
        return Response(self.get_serializer(backend).data)


@extend_schema_view(
    list=extend_schema(summary="Prompt templates (versioned)"),
    retrieve=extend_schema(summary="One prompt version"),
)
class PromptTemplateViewSet(
    ProjectScopedMixin, mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet
):
    queryset = PromptTemplate.objects.all()
    serializer_class = PromptTemplateSerializer
    filterset_fields = ["project"]

    @extend_schema(
        summary="Add a prompt version",
        request=PromptTemplateSerializer,
        responses={201: PromptTemplateSerializer},
    )
    def create(self, request, *args, **kwargs):
        form = PromptTemplateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        project = _get(_projects(request), form.validated_data["project"].pk, "project")
        prompt = services.prompt_template_create(
            project=project,
            created_by=request.user,
            system=form.validated_data.get("system", ""),
            user=form.validated_data.get("user", "{text}"),
        )
        return Response(PromptTemplateSerializer(prompt).data, status=status.HTTP_201_CREATED)


@extend_schema_view(
    list=extend_schema(summary="Pre-labeling runs"),
    retrieve=extend_schema(summary="A run's progress, tokens and cost"),
)
class PrelabelRunViewSet(
    ProjectScopedMixin, mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet
):
    queryset = PrelabelRun.objects.all()
    serializer_class = PrelabelRunSerializer
    filterset_fields = ["project", "status", "purpose"]

    @extend_schema(
        summary="Start pre-labeling a project",
        request=PrelabelRunCreateSerializer,
        responses={202: PrelabelRunSerializer},
        examples=[
            OpenApiExample(
                "Cheapest", request_only=True, value={"project": 1, "policy": "cheapest"}
            ),
            OpenApiExample(
                "Data stays in Guizhou",
                request_only=True,
                value={"project": 1, "policy": "region", "region": "520000"},
            ),
        ],
    )
    def create(self, request, *args, **kwargs):
        form = PrelabelRunCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        project = _get(_projects(request), data["project"], "project")
        run = services.prelabel_run_start(
            project=project,
            created_by=request.user,
            prompt=_get(
                PromptTemplate.objects.filter(project=project), data.get("prompt"), "prompt"
            ),
            model=data["model"],
            policy=data["policy"],
            region=data.get("region"),
            backend=_get(
                selectors.backends_visible(organization_ids_for_request(request)),
                data.get("backend"),
                "backend",
            ),
            item_filter=data["item_filter"],
        )
        return Response(PrelabelRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        summary="Cancel a run (finished items keep their predictions)",
        request=None,
        responses={
            200: PrelabelRunSerializer,
            409: OpenApiResponse(description="The run has already ended."),
        },
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        run = services.prelabel_run_cancel(run=self.get_object(), user=request.user)
        return Response(PrelabelRunSerializer(run).data)

    @extend_schema(
        summary="Resume a run: cancelled, finished with failures, or stalled (its workers died)",
        request=None,
        responses={
            200: PrelabelRunSerializer,
            409: OpenApiResponse(
                description="Nothing to resume: the run is still making progress, has not "
                "started, or succeeded."
            ),
        },
    )
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        run = services.prelabel_run_resume(run=self.get_object(), user=request.user)
        return Response(PrelabelRunSerializer(run).data)


@extend_schema_view(
    list=extend_schema(summary="Model predictions"),
    retrieve=extend_schema(summary="One prediction"),
)
class PredictionViewSet(ProjectScopedMixin, viewsets.ReadOnlyModelViewSet):
    queryset = Prediction.objects.all()
    serializer_class = PredictionSerializer
    filterset_fields = ["project", "run", "item", "model"]

    @extend_schema(
        summary="Acceptance of suggestions by humans, per model and prompt version",
        parameters=[AcceptanceQuerySerializer],
        responses=OpenApiTypes.OBJECT,
    )
    @action(detail=False, methods=["get"])
    def acceptance(self, request):
        query = AcceptanceQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        # The project is the resource reported on: one you may not see is a 404.
        project = get_object_or_404(_projects(request), pk=query.validated_data["project"])
        return Response(selectors.suggestion_acceptance(project=project))


@extend_schema_view(
    list=extend_schema(summary="Metered calls (one per item and attempt)"),
    retrieve=extend_schema(summary="One metered call"),
)
class InferenceCallViewSet(ProjectScopedMixin, viewsets.ReadOnlyModelViewSet):
    queryset = InferenceCall.objects.all()
    serializer_class = InferenceCallSerializer
    filterset_fields = ["project", "run", "item", "outcome", "backend"]


@extend_schema_view(
    list=extend_schema(summary="Fine-tuning runs"),
    retrieve=extend_schema(summary="A fine-tuning run with its evaluation"),
)
class FineTuneRunViewSet(
    ProjectScopedMixin, mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet
):
    queryset = FineTuneRun.objects.all()
    serializer_class = FineTuneRunSerializer
    filterset_fields = ["project", "status"]

    @extend_schema(
        summary="Fine-tune a model on a dataset version",
        request=FineTuneRunCreateSerializer,
        responses={202: FineTuneRunSerializer},
    )
    def create(self, request, *args, **kwargs):
        form = FineTuneRunCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        dataset = _get(
            DatasetVersion.objects.filter(project__in=_projects(request)),
            data["dataset"],
            "dataset",
        )
        backend = _get(
            selectors.backends_visible(organization_ids_for_request(request)),
            data["backend"],
            "backend",
        )
        run = finetune_run_start(
            dataset=dataset,
            backend=backend,
            created_by=request.user,
            base_model=data["base_model"],
            method=data["method"],
        )
        return Response(FineTuneRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)
