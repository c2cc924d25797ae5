"""Input the application must never see: refused at the door with a 4xx.

Each guard exists because the input once reached PostgreSQL or Python's own
limits and came back as a 500:

- a NUL byte in the path or query string (PostgreSQL text cannot hold one);
- a request body larger than the documented limit (413 before it is read);
- JSON nested deeper than any real answer, or with NUL in a string or key.

API paths get the standard error body; pages get a plain 400 or 413.
"""

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, status

API_PREFIX = "/api/"


def error_body(*, code: str, detail: str, attr: str | None = None, kind="client_error") -> dict:
    """The API's one error shape (drf-standardized-errors)."""
    return {"type": kind, "errors": [{"code": code, "detail": detail, "attr": attr}]}


def _refuse(request, status_code: int, code: str, detail: str):
    if request.path.startswith(API_PREFIX):
        return JsonResponse(error_body(code=code, detail=detail), status=status_code)
    return HttpResponse(detail, status=status_code, content_type="text/plain; charset=utf-8")


def _content_length(request) -> int | None:
    try:
        return int(request.META.get("CONTENT_LENGTH") or "")
    except ValueError:
        return None


class RequestGuardMiddleware:
    """NUL bytes in the URL and oversized bodies, before any view runs."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if "\x00" in request.path or "%00" in request.META.get("QUERY_STRING", ""):
            return _refuse(
                request,
                status.HTTP_400_BAD_REQUEST,
                "null_character",
                _("The address contains a NUL character (%00), which no resource has."),
            )
        length = _content_length(request)
        if length is not None and length > body_limit(request):
            return _refuse(
                request,
                status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
                "payload_too_large",
                too_large_message(body_limit(request)),
            )
        return self.get_response(request)


def body_limit(request) -> int:
    """Uploads (multipart) may be as large as an import file; anything else is a form or JSON."""
    if request.META.get("CONTENT_TYPE", "").startswith("multipart/"):
        return settings.UPLOAD_MAX_BYTES
    return settings.DATA_UPLOAD_MAX_MEMORY_SIZE


def too_large_message(limit: int) -> str:
    return _("The request body is larger than the limit of %(limit)s bytes.") % {
        "limit": f"{limit:,}"
    }


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "payload_too_large"
    default_detail = "The request body is too large."


@csrf_exempt
def api_not_found(request, *args, **kwargs):
    """Every /api/ address that matches no route answers in the API's own shape.

    CSRF-exempt: there is nothing here to protect, and a write to a missing
    address must be a 404, not the CSRF failure page (an HTML 403).
    """
    detail = _("No API resource at this address.")
    if not request.path.endswith("/"):
        detail += " " + _("API addresses end with a slash.")
    return JsonResponse(error_body(code="not_found", detail=detail), status=404)
