from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from . import selectors


@never_cache
@require_GET
def healthz(request):
    """200 when the database and the broker answer, 503 otherwise."""
    checks = {"database": selectors.database_health(), "broker": selectors.broker_health()}
    healthy = all(check["status"] == "ok" for check in checks.values())
    body = {"status": "ok" if healthy else "error", "checks": checks}
    if checks["database"]["status"] == "ok":
        body["heartbeats"] = selectors.heartbeat_health()
    return JsonResponse(body, status=200 if healthy else 503)
