"""The officials' dashboard and its CSV/XLSX/PDF files, scoped to a jurisdiction."""

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _

from tenants.models import Region

from .permissions import require_can_read_reports
from .report_files import REPORT_FILES
from .report_tables import (
    compare_note,
    report_sections,
    report_title,
    tier_label,
    trap_sentence,
)
from .selectors import (
    jurisdiction_regions,
    jurisdiction_roots,
    provinces_map,
    region_in_jurisdiction,
    region_report,
)
from .serializers import ReportQuerySerializer, jsonable, report_kwargs


def jurisdiction_for_request(request) -> list[Region]:
    """The caller's jurisdiction, once per request: selectors take plain arguments."""
    return jurisdiction_roots(user=request.user)


def region_or_404(*, code: str, roots: list[Region]) -> Region:
    region = region_in_jurisdiction(code=code, roots=roots)
    if region is None:
        raise Http404(_("No such region in your jurisdiction."))
    return region


def _roots(request):
    roots = jurisdiction_for_request(request)
    require_can_read_reports(request.user, roots=roots)
    return roots


@login_required
def reports_home(request):
    """The first region of the jurisdiction, or the one the picker chose."""
    roots = _roots(request)
    query = request.GET.copy()
    code = query.pop("region", [roots[0].code])[-1]
    target = redirect("kpireports:region", code=code)
    if query:
        target["Location"] += "?" + query.urlencode()
    return target


def _report_or_errors(request, region):
    """(report, period, None), or (None, None, errors naming each bad parameter)."""
    query = ReportQuerySerializer(data=request.GET)
    if not query.is_valid():
        return None, None, query.errors
    kwargs = report_kwargs(query.validated_data)
    return region_report(region=region, **kwargs), kwargs["period"], None


@login_required
def region_dashboard(request, code):
    roots = _roots(request)
    region = region_or_404(code=code, roots=roots)
    report, period, errors = _report_or_errors(request, region)
    context = {
        "region": region,
        "regions": jurisdiction_regions(roots),
        "errors": errors,
        "query": request.GET,
        "query_string": request.GET.urlencode(),
    }
    if report is not None:
        chart_data = {
            "report": jsonable(report),
            "map": jsonable(provinces_map(roots=roots, period=period)),
            "tiers": {str(level): tier_label(level) for level in (1, 2, 3, 4, 5, 0)},
        }
        context.update(
            report=report,
            title=report_title(report),
            trap=trap_sentence(report),
            compare_note=compare_note(report),
            # The map is of provinces: a city office's would shade its whole
            # province with the city's figures, so a city has none.
            show_map=any(root.level != Region.Level.CITY for root in roots),
            sections=report_sections(report),
            chart_data=chart_data,
        )
    return render(request, "kpireports/dashboard.html", context, status=400 if errors else 200)


@login_required
def region_export(request, code, file_format):
    if file_format not in REPORT_FILES:
        raise Http404
    region = region_or_404(code=code, roots=_roots(request))
    report, _period, errors = _report_or_errors(request, region)
    if errors:
        detail = "; ".join(f"{field}: {' '.join(map(str, msgs))}" for field, msgs in errors.items())
        return HttpResponse(detail, status=400, content_type="text/plain; charset=utf-8")
    content_type, writer = REPORT_FILES[file_format]
    response = HttpResponse(writer(report), content_type=content_type)
    period = report["period"]
    filename = f"tokenworks-{region.code}-{period['start']:%Y%m}-{period['end']:%Y%m}.{file_format}"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
