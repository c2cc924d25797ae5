"""REST endpoints for annotation jobs: clients' projects and annotators' workspace."""

import csv
import io
import tempfile
from contextlib import contextmanager

from django.core.exceptions import ValidationError
from django.http import FileResponse, Http404, HttpResponse, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import exceptions, mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from tenants.models import Organization
from tenants.parsers import SafeJSONParser
from tenants.permissions import ANNOTATORS, REVIEWERS, WORKERS
from tenants.scoping import TenantScopedMixin
from tenants.serializers import RegionSerializer
from valuechain.selectors import annotator_standing, project_statement
from valuechain.serializers import (
    AnnotatorStandingSerializer,
    ProjectStatementSerializer,
    StatementQuerySerializer,
)

from . import exports, imports, permissions, selectors, services
from .models import (
    Assignment,
    DatasetVersion,
    ExportFormat,
    ExportJob,
    ImportJob,
    Item,
    ItemResult,
    Project,
)
from .serializers import (
    AnnotationSerializer,
    AnnotatorRecordSerializer,
    DatasetVersionCreateSerializer,
    DatasetVersionSerializer,
    ExportJobCreateSerializer,
    ExportJobSerializer,
    ImportJobSerializer,
    ImportRequestSerializer,
    ItemResultSerializer,
    ItemSerializer,
    LeaseSerializer,
    NextTaskSerializer,
    ProjectQualitySerializer,
    ProjectSerializer,
    ProjectUpdateSerializer,
    QuarantineReleaseSerializer,
    ReviewItemSerializer,
    ReviewLeaseSerializer,
    ReviewRequestSerializer,
    ReviewSerializer,
    SubmitSerializer,
    WorkspaceProjectSerializer,
)

PROJECT_EXAMPLE = {
    "name": "外卖评论情感 / delivery review sentiment",
    "task_type": "classification",
    "label_schema": {
        "labels": [{"value": "positive", "title": "正面"}, {"value": "negative", "title": "负面"}]
    },
    "instructions": "Label the sentiment of the review.",
    "overlap": 3,
    "review_rate": "0.05",
    "gold_ratio": "0.02",
    "agreement_threshold": "0.67",
    "price_per_1k_tokens": "1.20",
    "workforce": 2,
    "status": "active",
}


QUALITY_EXAMPLE = {
    "project": 12,
    "decision": "adaptive",
    "target_confidence": "0.980",
    "max_annotations": 5,
    "overlap": 1,
    "quarantine_below": "0.600",
    "items": {"total": 2000, "decided": 1990, "in_review": 6, "open": 4},
    "human_actions": {
        "annotations": 2650,
        "gold_annotations": 96,
        "reviews": 41,
        "rejected_annotations": 0,
        "per_item": 1.3935,
        "per_decided_item": 1.4005,
    },
    "decided_by_annotations": {"1": 1420, "2": 480, "3": 70, "4": 15, "5": 5},
    "charges": {
        "currency": "CNY",
        "total": "318.204000",
        "by_kind": {"annotation": "301.400000", "review": "9.104000", "inference": "7.700000"},
        "per_decided_item": "0.159902",
    },
    "accuracy": {
        "expected": 0.9912,
        "gold_check": {
            "items": 96,
            "right": 95,
            "accuracy": 0.9896,
            "low": 0.9433,
            "high": 0.9982,
            "sent_to_review": 2,
        },
        "reviewed_items": 41,
    },
    "model": {"name": "ft:tokenworks-base:12-3", "votes": True, "accuracy": 0.9125, "checked": 160},
    "annotators": {"estimated": 40, "quarantined": 5, "all_quarantined": False},
    "estimated_at": "2026-11-30T08:00:00Z",
}


class WorkforceSerializer(serializers.ModelSerializer):
    region = RegionSerializer(read_only=True)

    class Meta:
        model = Organization
        fields = ["id", "name", "region"]


@extend_schema_view(
    list=extend_schema(summary="Annotation centres a project can be staffed by"),
    retrieve=extend_schema(summary="One annotation centre"),
)
class WorkforceViewSet(viewsets.ReadOnlyModelViewSet):
    """A public directory (name and city only) so clients can choose a centre."""

    queryset = Organization.objects.filter(
        kind=Organization.Kind.WORKFORCE, is_active=True
    ).select_related("region", "region__parent")
    serializer_class = WorkforceSerializer
    public_directory = True


@extend_schema_view(
    list=extend_schema(summary="Your projects"),
    retrieve=extend_schema(summary="One project"),
    create=extend_schema(
        summary="Create a project",
        examples=[OpenApiExample("Sentiment", value=PROJECT_EXAMPLE, request_only=True)],
    ),
    partial_update=extend_schema(summary="Change a project"),
    update=extend_schema(summary="Replace a project's settings"),
    destroy=extend_schema(summary="Archive a project (its data is kept)"),
)
class ProjectViewSet(TenantScopedMixin, viewsets.ModelViewSet):
    queryset = Project.objects.select_related("organization", "workforce")
    serializer_class = ProjectSerializer
    filterset_fields = ["status", "task_type", "kind", "organization"]
    ordering_fields = ["created_at", "name"]

    def get_serializer_class(self):
        if self.action in ("update", "partial_update"):
            return ProjectUpdateSerializer
        return ProjectSerializer

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        organization = selectors.client_organization_for_new_project(
            organization_ids=self.tenant_organization_ids(),
            requested=data.pop("organization", None),
        )
        serializer.instance = services.project_create(
            organization=organization, created_by=self.request.user, **data
        )

    def perform_update(self, serializer):
        serializer.instance = services.project_update(
            project=serializer.instance, updated_by=self.request.user, **serializer.validated_data
        )

    def destroy(self, request, *args, **kwargs):
        services.project_archive(project=self.get_object(), archived_by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Import items from a file",
        description=(
            "Upload JSONL, a JSON array, CSV or Label Studio task JSON. The import runs in the "
            "background: poll the returned job. With on_error=reject (default) a file with any "
            "bad row imports nothing and the job lists every bad row; with on_error=skip the "
            "good rows go in. Rows with an external_id already in the project are updated "
            "(on_conflict=update) or left alone (skip), never duplicated. A row's optional "
            "priority (a whole number from -1000 to 1000, default 0) orders the work: "
            "annotators get the highest first."
        ),
        request={"multipart/form-data": ImportRequestSerializer},
        responses={202: ImportJobSerializer},
        operation_id="projects_items_import",
    )
    @action(
        detail=True,
        methods=["post"],
        url_path="import",
        parser_classes=[MultiPartParser, FormParser],
    )
    def import_items(self, request, pk=None):
        project = self.get_object()
        form = ImportRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        job = imports.import_job_create(
            project=project,
            created_by=request.user,
            upload=form.validated_data["file"],
            filename=form.validated_data["file"].name,
            format=form.validated_data.get("format") or "",
            encoding=form.validated_data.get("encoding") or "",
            on_conflict=form.validated_data["on_conflict"],
            on_error=form.validated_data["on_error"],
        )
        return Response(
            ImportJobSerializer(job).data,
            status=status.HTTP_202_ACCEPTED,
            headers={"Location": f"/api/v1/import-jobs/{job.pk}/"},
        )

    @extend_schema(summary="Progress and quality figures", responses=OpenApiTypes.OBJECT)
    @action(detail=True, methods=["get"])
    def stats(self, request, pk=None):
        return Response(selectors.project_stats(project=self.get_object()))

    @extend_schema(
        summary="Agreement report",
        description="Krippendorff's alpha, Fleiss' and Cohen's kappa, pairwise agreement or "
        "span F1, as fit the task type, and gold accuracy per annotator.",
        responses=OpenApiTypes.OBJECT,
    )
    @action(detail=True, methods=["get"])
    def agreement(self, request, pk=None):
        return Response(selectors.agreement_report(project=self.get_object()))

    @extend_schema(
        summary="Download an export (streamed)",
        parameters=[
            OpenApiParameter("format", enum=ExportFormat.values, required=True),
            OpenApiParameter("approved_only", bool, default=True),
        ],
        responses={
            (200, content_type.split(";")[0]): OpenApiTypes.BINARY
            for content_type in sorted({"application/jsonl", *exports.CONTENT_TYPES.values()})
        },
    )
    @action(detail=True, methods=["get"])
    def export(self, request, pk=None):
        project = self.get_object()
        fmt = request.query_params.get("format", "")
        approved_only = request.query_params.get("approved_only", "true").lower() != "false"
        exports.export_format_check(project, fmt)
        if fmt in exports.FILE_FORMATS:
            # Parquet and zip need the whole file: written to a temporary file
            # (memory stays flat), then sent. Large projects: use export jobs.
            spool = tempfile.TemporaryFile()  # noqa: SIM115 (FileResponse closes it)
            exports.export_write(project, fmt, spool, approved_only=approved_only)
            spool.seek(0)
            return FileResponse(
                spool,
                as_attachment=True,
                filename=exports.export_filename(project, fmt),
                content_type=exports.CONTENT_TYPES[fmt],
            )
        response = StreamingHttpResponse(
            exports.export_lines(project, fmt, approved_only=approved_only),
            content_type=exports.CONTENT_TYPES.get(fmt, "application/jsonl; charset=utf-8"),
        )
        response["Content-Disposition"] = (
            f'attachment; filename="{exports.export_filename(project, fmt)}"'
        )
        return response

    @extend_schema(
        summary="Monthly statement: tokens and charges by kind and tier",
        description=(
            "What the project was charged in one calendar month (in the platform's time zone), "
            "straight from the token ledger, grouped by kind of work and skill tier. Amounts "
            "are CNY as exact decimal strings with six places; the totals are the exact sums "
            "of the ledger. Rejected work appears as a reversal (-1 entry, negated tokens and "
            "amounts). A month without activity has no lines and zero totals. `format=csv` "
            "answers the same lines as CSV with a total row."
        ),
        parameters=[
            OpenApiParameter(
                "month", str, required=True, pattern=r"^\d{4}-\d{2}$", description="YYYY-MM"
            ),
            OpenApiParameter("format", enum=["json", "csv"], default="json"),
        ],
        responses={
            (200, "application/json"): ProjectStatementSerializer,
            (200, "text/csv"): OpenApiTypes.STR,
        },
    )
    @action(detail=True, methods=["get"])
    def statement(self, request, pk=None):
        project = self.get_object()  # first: another organization's project is a 404
        form = StatementQuerySerializer(data=request.query_params)
        form.is_valid(raise_exception=True)
        month = form.validated_data["month"]
        data = ProjectStatementSerializer(project_statement(project=project, month=month)).data
        if form.validated_data["format"] == "json":
            return Response(data)
        response = HttpResponse(_statement_csv(data), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = (
            f'attachment; filename="statement-{project.pk}-{month:%Y-%m}.csv"'
        )
        return response

    def get_queryset(self):
        if self.action in ("quality", "quality_release"):
            # The staffing centre's managers read (and act on) the quality record too.
            return selectors.projects_for_quality(
                user=self.request.user, organization_ids=self.tenant_organization_ids()
            )
        return super().get_queryset()

    @extend_schema(
        summary="Quality and cost: what each decided label took",
        description=(
            "Per project: human actions per item (annotations, gold answers and reviews), "
            "charges per decided item, how many annotations the decided items took, the "
            "engine's expected accuracy and the accuracy measured by replaying the decision "
            "rule on gold items (never used for training) with a Wilson 95 % interval, the "
            "model's measured accuracy and whether it votes, and how many annotators are "
            "quarantined. The client's members see counts; the staffing centre's project "
            "managers also see each annotator's estimate and quarantine reason (`people`). "
            "Figures follow the engine's last refresh (`estimated_at`, at most a minute old "
            "on active projects)."
        ),
        responses={200: ProjectQualitySerializer},
        examples=[OpenApiExample("Adaptive project", value=QUALITY_EXAMPLE, response_only=True)],
    )
    @action(detail=True, methods=["get"])
    def quality(self, request, pk=None):
        project = self.get_object()
        figures = selectors.project_quality_figures(
            project=project,
            with_annotators=permissions.can_manage_annotator_quality(request.user, project),
        )
        return Response(ProjectQualitySerializer(figures).data)

    @extend_schema(
        summary="Let a quarantined annotator back to regular work",
        description=(
            "For the staffing centre's project managers. The annotator's estimate is kept: "
            "if their answers stay under the bar, the engine quarantines them again."
        ),
        request=QuarantineReleaseSerializer,
        responses={200: AnnotatorRecordSerializer},
    )
    @action(detail=True, methods=["post"], url_path="quality/release")
    def quality_release(self, request, pk=None):
        project = self.get_object()
        form = QuarantineReleaseSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        tally = services.annotator_quarantine_release(
            project=project,
            annotator_id=form.validated_data["annotator"],
            released_by=request.user,
            reason=form.validated_data["reason"],
        )
        return Response(AnnotatorRecordSerializer(selectors.annotator_record(tally)).data)

    @extend_schema(
        summary="Re-infer answers with Dawid–Skene",
        request=None,
        responses={202: OpenApiTypes.OBJECT},
    )
    @action(detail=True, methods=["post"])
    def infer(self, request, pk=None):
        services.project_results_reinfer(project=self.get_object(), requested_by=request.user)
        return Response({"queued": True}, status=status.HTTP_202_ACCEPTED)


STATEMENT_COLUMNS = ("kind", "skill_tier", "entries", "tokens_input", "tokens_output", "revenue")


def _statement_csv(data: dict) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(STATEMENT_COLUMNS)
    for line in data["lines"]:
        writer.writerow(["" if line[c] is None else line[c] for c in STATEMENT_COLUMNS])
    writer.writerow(["total", "", *(data["totals"][c] for c in STATEMENT_COLUMNS[2:])])
    return out.getvalue()


@extend_schema_view(
    list=extend_schema(summary="Import jobs"),
    retrieve=extend_schema(summary="An import job's status and error report"),
)
class ImportJobViewSet(TenantScopedMixin, viewsets.ReadOnlyModelViewSet):
    queryset = ImportJob.objects.all()
    serializer_class = ImportJobSerializer
    filterset_fields = ["project", "status"]


@extend_schema_view(
    list=extend_schema(summary="Items, with filters"),
    retrieve=extend_schema(summary="One item with its result"),
)
class ItemViewSet(TenantScopedMixin, viewsets.ReadOnlyModelViewSet):
    queryset = Item.objects.select_related("result")
    serializer_class = ItemSerializer
    filterset_fields = ["project", "status", "is_gold", "external_id"]
    ordering_fields = ["id", "priority", "updated_at"]


@extend_schema_view(
    list=extend_schema(summary="Final answers"), retrieve=extend_schema(summary="One final answer")
)
class ItemResultViewSet(TenantScopedMixin, viewsets.ReadOnlyModelViewSet):
    queryset = ItemResult.objects.select_related("item")
    serializer_class = ItemResultSerializer
    filterset_fields = ["project", "approved", "method"]


@extend_schema_view(
    list=extend_schema(summary="Export jobs"), retrieve=extend_schema(summary="One export job")
)
class ExportJobViewSet(TenantScopedMixin, mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    queryset = ExportJob.objects.all()
    serializer_class = ExportJobSerializer
    filterset_fields = ["project", "status", "format"]

    @extend_schema(
        summary="Export to a file in the background",
        request=ExportJobCreateSerializer,
        responses={202: ExportJobSerializer},
    )
    def create(self, request, *args, **kwargs):
        form = ExportJobCreateSerializer(data=request.data, projects=_scoped_projects(self))
        form.is_valid(raise_exception=True)
        job = exports.export_job_create(
            project=form.validated_data["project"],
            created_by=request.user,
            fmt=form.validated_data["format"],
            approved_only=form.validated_data["approved_only"],
        )
        return Response(ExportJobSerializer(job).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        summary="Download the exported file",
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY},
    )
    @action(detail=True, methods=["get"])
    def download(self, request, pk=None):
        job = self.get_object()
        if job.status != ExportJob.Status.SUCCEEDED:
            raise ValidationError({"status": [f"The export is {job.status}, not ready yet."]})
        return FileResponse(
            job.file.open("rb"), as_attachment=True, filename=job.file.name.rsplit("/", 1)[-1]
        )


def _scoped_projects(view):
    return selectors.projects_visible(organization_ids=view.tenant_organization_ids())


@extend_schema_view(
    list=extend_schema(summary="Dataset versions"),
    retrieve=extend_schema(summary="One dataset version"),
)
class DatasetVersionViewSet(
    TenantScopedMixin, mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet
):
    queryset = DatasetVersion.objects.all()
    serializer_class = DatasetVersionSerializer
    filterset_fields = ["project"]

    @extend_schema(
        summary="Freeze approved answers into a new dataset version",
        request=DatasetVersionCreateSerializer,
        responses={201: DatasetVersionSerializer},
    )
    def create(self, request, *args, **kwargs):
        form = DatasetVersionCreateSerializer(data=request.data, projects=_scoped_projects(self))
        form.is_valid(raise_exception=True)
        dataset = exports.dataset_version_create(
            project=form.validated_data["project"],
            created_by=request.user,
            fmt=form.validated_data.get("format"),
            seed=form.validated_data["seed"],
            validation_ratio=form.validated_data["validation_ratio"],
        )
        return Response(DatasetVersionSerializer(dataset).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Download a split as JSONL or Parquet, or both as a Hugging Face folder",
        description="format=jsonl (the stored file) or parquet: one split. format=hf: a zip "
        "of the Hugging Face datasets folder (a DatasetDict of train and validation) that "
        "datasets.load_from_disk reads once unzipped; split is ignored.",
        parameters=[
            OpenApiParameter("split", enum=["train", "validation"], default="train"),
            OpenApiParameter("format", enum=list(exports.DATASET_FORMATS), default="jsonl"),
        ],
        responses={
            (200, content_type): OpenApiTypes.BINARY
            for content_type in ("application/octet-stream", "application/zip")
        },
    )
    @action(detail=True, methods=["get"])
    def download(self, request, pk=None):
        dataset = self.get_object()
        split = request.query_params.get("split", "train")
        fmt = request.query_params.get("format", "jsonl")
        if split not in ("train", "validation"):
            raise ValidationError({"split": ["Expected train or validation."]})
        if fmt not in exports.DATASET_FORMATS:
            raise ValidationError(
                {"format": [f"Expected one of {', '.join(exports.DATASET_FORMATS)}."]}
            )
        field = dataset.train_file if split == "train" else dataset.validation_file
        if fmt != "jsonl" and (fmt == "hf" or field):
            # Flat memory: record batches to disk; FileResponse closes the file.
            spool = tempfile.TemporaryFile()  # noqa: SIM115
            exports.dataset_version_write(dataset, fmt, spool, split=split)
            spool.seek(0)
            stem = f"project-{dataset.project_id}-v{dataset.version}"
            name = f"{stem}-hf.zip" if fmt == "hf" else f"{stem}-{split}.parquet"
            return FileResponse(spool, as_attachment=True, filename=name)
        if not field:
            raise Http404("This version has no validation split.")
        return FileResponse(
            field.open("rb"), as_attachment=True, filename=field.name.rsplit("/", 1)[-1]
        )


# --- workspace: annotators and reviewers ----------------------------------------------


@extend_schema_view(
    list=extend_schema(summary="Projects you annotate or review"),
    retrieve=extend_schema(summary="One project you work on"),
)
class WorkspaceProjectViewSet(TenantScopedMixin, viewsets.ReadOnlyModelViewSet):
    # The lease checks the annotator against the staffing centre: load it here.
    queryset = Project.objects.filter(status=Project.Status.ACTIVE).select_related("workforce")
    serializer_class = WorkspaceProjectSerializer
    tenant_path = "workforce"
    # The lean actions take the id straight to SQL: anything but a bigint is a 404.
    lookup_value_regex = "[0-9]{1,18}"

    def get_queryset(self):
        workforce_ids = selectors.centre_ids_for_worker(user=self.request.user, roles=WORKERS)
        return super().get_queryset().filter(workforce_id__in=workforce_ids).order_by("name")

    @extend_schema(
        summary="Lease your next task",
        description="Send the assignment ids this page already shows in `holding`; an "
        "active lease not among them comes back first (so reloads strand nothing), "
        "otherwise a new item is leased while you hold fewer than two.",
        request=NextTaskSerializer,
        responses={200: LeaseSerializer, 204: OpenApiResponse(description="Nothing left for you.")},
    )
    @action(detail=True, methods=["post"])
    def next(self, request, pk=None):
        holding = _holding(request.data)
        # The hot path: one statement for the gate, the lease and the item shown.
        lease = services.assignment_lease_quick(
            project_id=int(pk),
            annotator=request.user,
            centre_ids=selectors.centre_ids_for_worker(user=request.user, roles=ANNOTATORS),
            holding=holding,
        )
        if lease is not None:
            return Response(lease_payload(lease))
        assignment = services.assignment_lease(
            project=self.get_object(), annotator=request.user, holding=holding
        )
        if assignment is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(LeaseSerializer(assignment).data)

    @extend_schema(
        summary="Lease your next item to review",
        description="Reviewers take items one at a time, as annotators take tasks. The item you "
        "already hold comes back first (so a reload strands nothing); otherwise the least "
        "confident item in review that you did not annotate and no other reviewer holds is "
        "leased to you for the project's `lease_seconds`. Review it with "
        "`POST /api/v1/workspace/items/{id}/review/` or put it off with `…/release/`. "
        "`waiting` counts the items you could review now, this one included.",
        request=None,
        responses={
            200: ReviewLeaseSerializer,
            204: OpenApiResponse(description="Nothing is waiting for your review."),
            400: OpenApiResponse(description="The project is not active."),
            403: OpenApiResponse(description="You are not a reviewer of the staffing centre."),
            404: OpenApiResponse(description="No such project among those you work on."),
        },
    )
    @action(detail=True, methods=["post"], url_path="review-next")
    def review_next(self, request, pk=None):
        project = self.get_object()
        lease = services.review_lease_take(project=project, reviewer=request.user)
        if lease is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        waiting = selectors.review_waiting_count(project=project, reviewer=request.user)
        return Response(ReviewLeaseSerializer(lease, context={"waiting": waiting}).data)

    @extend_schema(
        summary="Items waiting for review (a listing; reviewers take them with review-next)",
        responses=ReviewItemSerializer(many=True),
    )
    @action(detail=True, methods=["get"], url_path="review-queue")
    def review_queue(self, request, pk=None):
        queue = selectors.review_queue(project=self.get_object(), reviewer=request.user)
        page = self.paginate_queryset(queue.prefetch_related("annotations"))
        return self.get_paginated_response(ReviewItemSerializer(page, many=True).data)


class WorkspaceAssignmentViewSet(
    TenantScopedMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Your own leases: submit or skip them."""

    queryset = Assignment.objects.select_related("item")
    serializer_class = LeaseSerializer
    parser_classes = [SafeJSONParser]
    # The lean actions take the id straight to SQL: anything but a bigint is a 404.
    lookup_value_regex = "[0-9]{1,18}"

    def get_queryset(self):
        return super().get_queryset().filter(annotator=self.request.user)

    @extend_schema(
        examples=[
            OpenApiExample(name, request_only=True, value={"answer": answer, "time_spent_ms": 4200})
            for name, answer in [
                ("classification", {"label": "positive"}),
                ("multi_label", {"labels": ["food", "delivery"]}),
                ("spans", {"spans": [{"start": 0, "end": 3, "label": "PER"}]}),
                ("text", {"text": "您好，已为您办理退款。"}),
                ("preference", {"choice": "b", "rationale": "B 更礼貌且给出了办法"}),
                ("rating", {"rating": 4}),
            ]
        ],
        summary="Submit your answer (idempotent)",
        request=SubmitSerializer,
        responses={201: AnnotationSerializer, 200: AnnotationSerializer},
    )
    @action(detail=True, methods=["post"])
    def submit(self, request, pk=None):
        form = SubmitSerializer(data=request.data)
        if not form.is_valid():
            self.get_object()  # someone else's lease is a 404 whatever the body says
            raise exceptions.ValidationError(form.errors)
        # No get_object(): the service's locking read is scoped the same way.
        with _not_yours_as_404():
            annotation, created = services.annotation_submit(
                assignment_id=int(pk),
                annotator=request.user,
                answer=form.validated_data["answer"],
                time_spent_ms=form.validated_data["time_spent_ms"],
                centre_ids=self.tenant_organization_ids(),
            )
        return Response(
            annotation_payload(annotation),
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )

    @extend_schema(
        summary="Skip this task (it is not offered to you again)",
        request=None,
        responses=LeaseSerializer,
    )
    @action(detail=True, methods=["post"])
    def skip(self, request, pk=None):
        with _not_yours_as_404():
            assignment = services.assignment_skip(
                assignment_id=int(pk),
                annotator=request.user,
                centre_ids=self.tenant_organization_ids(),
            )
        return Response(LeaseSerializer(assignment).data)


class WorkspaceItemViewSet(TenantScopedMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Items of projects you review."""

    queryset = Item.objects.select_related("result").prefetch_related("annotations")
    serializer_class = ReviewItemSerializer
    tenant_path = "project__workforce"

    def get_queryset(self):
        workforce_ids = selectors.centre_ids_for_worker(user=self.request.user, roles=REVIEWERS)
        return super().get_queryset().filter(project__workforce_id__in=workforce_ids)

    @extend_schema(
        examples=[
            OpenApiExample("accept", request_only=True, value={"verdict": "accept"}),
            OpenApiExample(
                "reject",
                request_only=True,
                value={"verdict": "reject", "annotation": 17, "reason": "商家回复不是顾客评论"},
            ),
            OpenApiExample(
                "correct",
                request_only=True,
                value={"verdict": "correct", "corrected_answer": {"label": "negative"}},
            ),
        ],
        summary="Review an item you hold: accept, reject with a reason, or correct",
        description="You must hold the item's review lease (`POST "
        "/api/v1/workspace/projects/{id}/review-next/`); the review ends the lease.",
        request=ReviewRequestSerializer,
        responses={
            201: ReviewSerializer,
            400: OpenApiResponse(
                description="A field is wrong (verdict, reason, annotation, corrected_answer), "
                "or the item is not in review."
            ),
            403: OpenApiResponse(
                description="You are not a reviewer here, or you annotated the item."
            ),
            404: OpenApiResponse(description="No such item among those you review."),
            409: OpenApiResponse(
                description="You do not hold a live lease on the item: none taken, another "
                "reviewer holds it, or yours expired or ended (`attr` is `lease`; the `code` "
                "says which)."
            ),
        },
    )
    @action(detail=True, methods=["post"])
    def review(self, request, pk=None):
        item = self.get_object()
        form = ReviewRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        with _lease_conflict_as_409():
            review = services.review_submit(
                item_id=item.pk,
                reviewer=request.user,
                verdict=form.validated_data["verdict"],
                reason=form.validated_data["reason"],
                corrected_answer=form.validated_data["corrected_answer"],
                annotation_id=form.validated_data["annotation"],
            )
        return Response(ReviewSerializer(review).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Release the item you hold, for later",
        description="Other reviewers can take it at once; it comes back to you only after "
        "the other items waiting for you.",
        request=None,
        responses={
            200: ReviewLeaseSerializer,
            404: OpenApiResponse(description="No such item among those you review."),
            409: OpenApiResponse(description="You hold no live lease on this item."),
        },
    )
    @action(detail=True, methods=["post"])
    def release(self, request, pk=None):
        item = self.get_object()
        with _lease_conflict_as_409():
            lease = services.review_lease_release(item_id=item.pk, reviewer=request.user)
        return Response(ReviewLeaseSerializer(lease).data)


_HOLDING_MAX = NextTaskSerializer().fields["holding"].max_length


def _holding(data) -> list[int]:
    """NextTaskSerializer's holding. The bodies pages send ({} or a short list
    of ids) skip building the serializer, whose fields are deep-copied for
    every instance; anything else goes through it, errors and all."""
    if isinstance(data, dict) and set(data) <= {"holding"}:
        holding = data.get("holding", [])
        if (
            isinstance(holding, list)
            and len(holding) <= _HOLDING_MAX
            and all(type(pk) is int for pk in holding)
        ):
            return holding
    form = NextTaskSerializer(data=data)
    form.is_valid(raise_exception=True)
    return form.validated_data["holding"]


@contextmanager
def _not_yours_as_404():
    """A lease that is not the caller's, or not in their centres, is not disclosed."""
    try:
        yield
    except services.LeaseNotYours as error:
        raise Http404 from error


_datetime_field = serializers.DateTimeField()


def lease_payload(lease: dict) -> dict:
    """LeaseSerializer's output for services.assignment_lease_quick's dict."""
    return {
        **lease,
        "leased_at": _datetime_field.to_representation(lease["leased_at"]),
        "expires_at": _datetime_field.to_representation(lease["expires_at"]),
    }


def annotation_payload(annotation) -> dict:
    """AnnotationSerializer's output, without building a ModelSerializer per submit."""
    return {
        "id": annotation.pk,
        "item": annotation.item_id,
        "assignment": annotation.assignment_id,
        "answer": annotation.answer,
        "status": annotation.status,
        "time_spent_ms": annotation.time_spent_ms,
        "item_tokens": annotation.item_tokens,
        "answer_tokens": annotation.answer_tokens,
        "created_at": _datetime_field.to_representation(annotation.created_at),
    }


class LeaseConflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "You do not hold this lease."
    default_code = "conflict"


@contextmanager
def _lease_conflict_as_409():
    """A missing or lapsed review lease is a conflict with the server's state, not bad input."""
    try:
        yield
    except services.ReviewLeaseError as error:
        raise LeaseConflict({"lease": error.messages}, code=error.code) from error


class WorkspaceMeView(APIView):
    @extend_schema(
        summary="Your work record: volume, gold accuracy, review outcomes",
        description="`standing` holds your tier, each bar of the next tier against your "
        "measured record, your earnings (pay from the ledger, net of rejected work; CNY as "
        "decimal strings) for this month, last month and the last 12, and your tier history.",
        responses=OpenApiTypes.OBJECT,
    )
    def get(self, request):
        record = selectors.annotator_quality(annotator=request.user)
        standing = annotator_standing(user=request.user, record=record)
        record["skill_tier"] = request.user.skill_tier
        record["standing"] = AnnotatorStandingSerializer(standing).data
        return Response(record)
