"""The API's one error body, raised as typed exceptions.

Every error the server answers has the shape

    {"type": "validation_error",
     "errors": [{"code": "required", "detail": "This field is required.", "attr": "name"}]}

(platform/config/api_errors.py). Each status maps to one exception class, and
every entry of ``errors`` is kept, with the field it names (``attr``), so a
script can say which field of which row was wrong.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class ErrorDetail:
    code: str
    detail: str
    attr: str | None = None

    def __str__(self) -> str:
        return f"{self.attr}: {self.detail}" if self.attr else self.detail


class TokenworksError(Exception):
    """Anything this client raises on purpose."""


class ConnectionFailed(TokenworksError):
    """The server could not be reached, or the connection broke or timed out."""


class APIError(TokenworksError):
    """The server answered with an error status."""

    status_code: int
    type: str
    errors: list[ErrorDetail]

    def __init__(
        self,
        status_code: int,
        type: str = "client_error",
        errors: list[ErrorDetail] | None = None,
        *,
        response: httpx.Response | None = None,
    ) -> None:
        self.status_code = status_code
        self.type = type
        self.errors = errors or []
        self.response = response
        super().__init__(self._message())

    def _message(self) -> str:
        details = "; ".join(str(e) for e in self.errors) or "no detail"
        return f"HTTP {self.status_code} {self.type}: {details}"

    @property
    def fields(self) -> dict[str, list[str]]:
        """Messages by the field they name (errors naming no field under "non_field_errors")."""
        out: dict[str, list[str]] = {}
        for error in self.errors:
            out.setdefault(error.attr or "non_field_errors", []).append(error.detail)
        return out


class ValidationError(APIError):
    """400: the input was wrong; ``fields`` says which field (or row) and why."""


class AuthenticationError(APIError):
    """401: no token, or the token is unknown, revoked or expired."""


class PermissionDenied(APIError):
    """403: the token (or person) may not do this."""


class NotFound(APIError):
    """404: no such object among those the caller may see."""


class Conflict(APIError):
    """409: the object's state forbids this now (e.g. a lease another reviewer holds)."""


class PayloadTooLarge(APIError):
    """413: the body or upload is over the server's limit."""


class RateLimited(APIError):
    """429: still throttled after the client's bounded retries."""

    def __init__(self, *args: Any, retry_after: float | None = None, **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(*args, **kwargs)


class ServerError(APIError):
    """5xx: the server failed or is unavailable (503 after the bounded retries)."""

    def __init__(self, *args: Any, retry_after: float | None = None, **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(*args, **kwargs)


class JobFailed(TokenworksError):
    """A job or run waited for ended failed or cancelled; ``job`` is its last state."""

    def __init__(self, kind: str, job: dict[str, Any]) -> None:
        self.kind = kind
        self.job = job
        reason = job.get("error") or job.get("status")
        errors = job.get("errors") or []
        if errors:
            reason = f"{reason}; first: {errors[0]}"
        super().__init__(f"{kind} {job.get('id')} {job.get('status')}: {reason}")


class WaitTimeout(TokenworksError):
    """A wait gave up before the job ended; ``job`` is its last state."""

    def __init__(self, kind: str, job: dict[str, Any], seconds: float) -> None:
        self.kind = kind
        self.job = job
        super().__init__(f"{kind} {job.get('id')} still {job.get('status')} after {seconds:g} s")


_BY_STATUS: dict[int, type[APIError]] = {
    400: ValidationError,
    401: AuthenticationError,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    429: RateLimited,
}


def error_from_response(response: httpx.Response, *, retry_after: float | None = None) -> APIError:
    """The typed exception for an error response (its body already read)."""
    status = response.status_code
    kind, errors = _parse_body(response)
    cls = _BY_STATUS.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else APIError
    if cls in (RateLimited, ServerError):
        return cls(status, kind, errors, response=response, retry_after=retry_after)
    return cls(status, kind, errors, response=response)


def _parse_body(response: httpx.Response) -> tuple[str, list[ErrorDetail]]:
    default_type = "server_error" if response.status_code >= 500 else "client_error"
    try:
        body = json.loads(response.content)
    except ValueError:
        text = response.text.strip()[:500]
        return default_type, [ErrorDetail("error", text or response.reason_phrase)]
    if not isinstance(body, dict) or not isinstance(body.get("errors"), list):
        return default_type, [ErrorDetail("error", json.dumps(body, ensure_ascii=False)[:500])]
    errors = [
        ErrorDetail(
            code=str(e.get("code", "error")),
            detail=str(e.get("detail", "")),
            attr=e.get("attr") or None,
        )
        for e in body["errors"]
        if isinstance(e, dict)
    ]
    return str(body.get("type", default_type)), errors
