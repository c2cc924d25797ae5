"""The 403, 404 and 500 pages: the site's own, in the visitor's language, never
debug information; under /api/ the API's JSON error body instead.

Django shows its technical pages only while DEBUG is on (development); these
views are what everyone else sees.
"""

from django.http import HttpResponseServerError, JsonResponse
from django.shortcuts import render
from django.template import loader
from django.utils.translation import gettext as _
from django.views.decorators.csrf import requires_csrf_token

from .request_guards import API_PREFIX, error_body


def _is_api(request) -> bool:
    return request.path.startswith(API_PREFIX)


@requires_csrf_token
def permission_denied(request, exception=None):
    # PermissionDenied messages are written for the people who meet them
    # (each app's require_… rules); a bare PermissionDenied gets a general one.
    message = str(exception) if exception is not None and exception.args else ""
    if _is_api(request):
        detail = message or _("You do not have permission to perform this action.")
        return JsonResponse(error_body(code="permission_denied", detail=detail), status=403)
    return render(request, "403.html", {"message": message}, status=403)


@requires_csrf_token
def page_not_found(request, exception=None):
    # The exception's text is not shown: Django's own 404s name models and queries.
    if _is_api(request):
        return JsonResponse(error_body(code="not_found", detail=_("Not found.")), status=404)
    return render(request, "404.html", status=404)


def server_error(request):
    # No context processors and no database: whatever failed may be either of them.
    if _is_api(request):
        body = error_body(code="error", detail=_("A server error occurred."), kind="server_error")
        return JsonResponse(body, status=500)
    return HttpResponseServerError(loader.get_template("500.html").render())
