"""REST for officials' own systems: the same reports as the dashboard, as JSON."""

from django.http import HttpResponse
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import exceptions, mixins, permissions, serializers, viewsets
from rest_framework.response import Response

from tenants.models import Region

from .permissions import can_read_reports
from .report_files import REPORT_FILES
from .selectors import jurisdiction_regions, provinces_map, region_report
from .serializers import ReportQuerySerializer, jsonable, report_kwargs
from .views import jurisdiction_for_request, region_or_404


class IsOfficial(permissions.BasePermission):
    message = _("Regional reports are for officials of a regional office (or its API tokens).")

    def has_permission(self, request, view):
        return can_read_reports(request.user, roots=view.jurisdiction())


class ReportRegionSerializer(serializers.ModelSerializer):
    class Meta:
        model = Region
        fields = ["id", "code", "level", "name_en", "name_zh", "parent"]


REPORT_PARAMETERS = [
    OpenApiParameter(
        "start", str, description="First month, YYYY-MM (default: 11 months before end)."
    ),
    OpenApiParameter(
        "end", str, description="Last month, YYYY-MM (default: the last closed month)."
    ),
    OpenApiParameter("compare", str, enum=["none", "previous", "year"]),
    OpenApiParameter("kind", str, enum=["human", "machine"]),
    OpenApiParameter("tier", int, description="0 (untiered machine work) to 5."),
    OpenApiParameter("trap_threshold", str, description="Override of KPI_TRAP_THRESHOLD."),
    OpenApiParameter("trap_months", int, description="Override of KPI_TRAP_MONTHS."),
    OpenApiParameter(
        "format",
        str,
        enum=["json", *REPORT_FILES],
        default="json",
        description="json, or the dashboard's file: csv, xlsx or pdf.",
    ),
]


@extend_schema_view(
    list=extend_schema(
        summary="Regions in your jurisdiction",
        description="A province's office sees the province and its cities, a city's office "
        "its city. For officials of a regional office and their office's API tokens.",
    ),
)
class ReportRegionViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Regions in the caller's jurisdiction, and each one's KPI report.

    A province's office sees the province and its cities, a city's office its
    city; any other region answers 404. Reports hold aggregates only: no
    person is ever named.
    """

    queryset = Region.objects.all()
    serializer_class = ReportRegionSerializer
    permission_classes = [permissions.IsAuthenticated, IsOfficial]
    lookup_field = "code"
    pagination_class = None

    @classmethod
    def isolation_rows(cls, organization_ids):
        """The regions these organizations' offices report on (for the isolation test)."""
        from tenants.models import Organization

        roots = Region.objects.filter(
            pk__in=Organization.objects.filter(
                pk__in=organization_ids, kind=Organization.Kind.GOVERNMENT
            ).values("region_id")
        )
        return jurisdiction_regions(list(roots))

    def jurisdiction(self) -> list[Region]:
        """The caller's jurisdiction, looked up once per request (the view is per request)."""
        if not hasattr(self, "_jurisdiction"):
            self._jurisdiction = jurisdiction_for_request(self.request)
        return self._jurisdiction

    def get_queryset(self):
        ids = [r.pk for r in jurisdiction_regions(self.jurisdiction())]
        return Region.objects.filter(pk__in=ids).order_by("code")

    def _query(self):
        query = ReportQuerySerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        return query.validated_data

    @extend_schema(
        summary="A region's KPI report for a period",
        description="Aggregates only: no person is ever named. A region outside your "
        "jurisdiction answers 404, as one that does not exist.",
        parameters=REPORT_PARAMETERS,
        responses={
            (200, "application/json"): OpenApiTypes.OBJECT,
            **{
                (200, kind.split(";")[0]): OpenApiTypes.BINARY for kind, _w in REPORT_FILES.values()
            },
        },
    )
    def retrieve(self, request, code=None):
        region = region_or_404(code=code, roots=self.jurisdiction())
        file_format = request.query_params.get("format", "json")
        if file_format != "json" and file_format not in REPORT_FILES:
            raise exceptions.ValidationError({"format": [_("Expected json, csv, xlsx or pdf.")]})
        query = self._query()
        report = region_report(region=region, **report_kwargs(query))
        if file_format != "json":
            # The same file as the dashboard's download, for the office's own systems.
            content_type, writer = REPORT_FILES[file_format]
            response = HttpResponse(writer(report), content_type=content_type)
            period = report["period"]
            response["Content-Disposition"] = (
                f'attachment; filename="tokenworks-{region.code}-'
                f'{period["start"]:%Y%m}-{period["end"]:%Y%m}.{file_format}"'
            )
            return response
        # The map's provinces: only those within the caller's jurisdiction.
        report["map"] = provinces_map(roots=self.jurisdiction(), period=query["period"])
        return Response(jsonable(report))
