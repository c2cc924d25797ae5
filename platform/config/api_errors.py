"""One error body for the whole API (drf-standardized-errors' shape):

    {"type": "validation_error",
     "errors": [{"code": "required", "detail": "This field is required.", "attr": "name"}]}

Services raise Django's ValidationError and PermissionDenied (they know
nothing of DRF); this handler maps them onto that shape, keeping their
messages and field names.
"""

from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied, RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_standardized_errors.handler import ExceptionHandler
from rest_framework import exceptions
from rest_framework.settings import api_settings

from .request_guards import PayloadTooLarge, too_large_message


class Conflict(exceptions.APIException):
    """The request is well formed but the resource's state refuses it (409)."""

    status_code = 409
    default_detail = "The resource's state does not allow this."
    default_code = "conflict"


class TokenworksExceptionHandler(ExceptionHandler):
    def convert_known_exceptions(self, exc: Exception) -> Exception:
        if isinstance(exc, DjangoValidationError) and getattr(exc, "conflict", False):
            # A service's "not in this state" (e.g. cancelling a finished job).
            return Conflict(exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
        if isinstance(exc, DjangoValidationError):
            if hasattr(exc, "error_dict"):
                detail = {
                    (
                        api_settings.NON_FIELD_ERRORS_KEY if field == NON_FIELD_ERRORS else field
                    ): messages
                    for field, messages in exc.message_dict.items()
                }
            else:
                detail = exc.messages
            return exceptions.ValidationError(detail)
        if isinstance(exc, RequestDataTooBig):
            # A body without Content-Length is only measured as it is read.
            return PayloadTooLarge(too_large_message(settings.DATA_UPLOAD_MAX_MEMORY_SIZE))
        if isinstance(exc, PermissionDenied) and exc.args:
            return exceptions.PermissionDenied(str(exc))
        return super().convert_known_exceptions(exc)
