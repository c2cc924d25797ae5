"""The API token behind the current request, for the audit trail.

Services take the acting user as an argument, but not the token: rather than
thread it through every call, ApiTokenAuthentication binds it here and
audit_event_record reads it. AuditContextMiddleware clears it around every
request, so a token never leaks into the next request on the same thread.
"""

from contextvars import ContextVar

_api_token: ContextVar = ContextVar("tenants_request_api_token", default=None)
# Facts looked up once per request (a person's roles): None outside a request,
# where nothing is remembered between calls.
_request_memo: ContextVar = ContextVar("tenants_request_memo", default=None)


def api_token_bind(token) -> None:
    _api_token.set(token)


def api_token_current():
    return _api_token.get()


def request_memo() -> dict | None:
    """This request's memo (a dict), or None outside a request."""
    return _request_memo.get()


class AuditContextMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        reset = _api_token.set(None)
        reset_memo = _request_memo.set({})
        try:
            return self.get_response(request)
        finally:
            _request_memo.reset(reset_memo)
            _api_token.reset(reset)
