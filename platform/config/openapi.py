"""The API schema, told the way clients need it.

One place decides, for every operation, its operationId, its tag, which error
responses it can give and that its description is written for clients (never
the Python docstring of a view or a mixin). Views say only what is particular
to them, with `extend_schema`.
"""

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.utils import OpenApiResponse
from drf_standardized_errors.openapi import AutoSchema as StandardizedErrorsAutoSchema
from rest_framework import permissions, serializers
from rest_framework.authentication import SessionAuthentication

# The client-facing group of each URL prefix (router prefix with "/" and "-"
# as "_"), and of the actions that belong to another group than their prefix.
TAGS_BY_RESOURCE = {
    "me": "Organizations",
    "organizations": "Organizations",
    "memberships": "Organizations",
    "regions": "Regions",
    "workforces": "Workforces",
    "api_tokens": "Tokens",
    "audit_events": "Audit",
    "projects": "Projects",
    "items": "Items",
    "results": "Items",
    "import_jobs": "Imports",
    "export_jobs": "Exports",
    "dataset_versions": "Exports",
    "backends": "Backends",
    "prompts": "Pre-labeling",
    "prelabel_runs": "Pre-labeling",
    "predictions": "Pre-labeling",
    "inference_calls": "Pre-labeling",
    "finetune_runs": "Fine-tuning",
    "webhooks": "Webhooks",
    "webhook_deliveries": "Webhooks",
    "reports_regions": "Reports",
    "skill_tiers": "Tiers",
    "tier_changes": "Tiers",
    "ledger_entries": "Ledger",
    "workspace_me": "Workspace",
    "workspace_projects": "Workspace",
    "workspace_assignments": "Workspace",
    "workspace_items": "Review",
}
TAGS_BY_OPERATION = {
    "projects_items_import": "Imports",
    "projects_export": "Exports",
    "projects_statement": "Statements",
    "projects_infer": "Pre-labeling",
    "workspace_projects_review_next": "Review",
    "workspace_projects_review_queue": "Review",
}

ERROR_DESCRIPTIONS = {
    "400": (
        "The request is not valid: `validation_error` names each field at fault in `attr`; "
        "`client_error` is a body that could not be parsed or an address holding a NUL."
    ),
    "401": ("No credentials, or credentials that are not valid (`WWW-Authenticate` says how)."),
    "403": (
        "Authenticated, but your role may not do this here (or, with a session, the CSRF "
        "token is missing)."
    ),
    "404": ("Nothing at this address that you may see, or a page past the last one."),
    "405": ("This address does not accept this method."),
    "406": ("No representation matches the `Accept` header: ask for `application/json`."),
    "409": ("The resource is in a state that does not allow this now."),
    "413": ("The request body is larger than the documented limit."),
    "415": ("The body's `Content-Type` is not one this operation accepts."),
    "429": ("Too many requests: wait the number of seconds in `Retry-After`."),
    "500": ("A fault on our side; the body never carries internal details."),
}
STANDARD_ACTION_DESCRIPTIONS = {
    "list": (
        "The %(plural)s you may see, %(page)s. The query parameters below filter and order them."
    ),
    "retrieve": ("One %(name)s by its id; 404 when it does not exist or you may not see it."),
    "create": ("Creates the %(name)s the body describes and returns it."),
    "update": ("Replaces every writable field of the %(name)s and returns it."),
    "partial_update": ("Changes the fields given of the %(name)s and returns it."),
    "destroy": ("Deletes the %(name)s. The response has no body."),
}
PAGINATED = "a page at a time (`page`, `page_size` up to 500; `count`, `next` and `previous`)"


class ErrorSerializer(serializers.Serializer):
    code = serializers.CharField(
        help_text="What went wrong, for programs: e.g. required, invalid, does_not_exist, "
        "not_found, permission_denied, not_authenticated, throttled, payload_too_large."
    )
    detail = serializers.CharField(help_text="What went wrong, for people.")
    attr = serializers.CharField(
        allow_null=True,
        help_text="The field at fault (nested fields joined by dots, list positions as "
        "numbers), or null when the error is about the whole request.",
    )


class ErrorResponseSerializer(serializers.Serializer):
    """The one error body of the whole API (see config.api_errors)."""

    type = serializers.ChoiceField(
        choices=["validation_error", "client_error", "server_error"],
        help_text="validation_error: fields at fault; client_error: any other 4xx; "
        "server_error: 5xx.",
    )
    errors = ErrorSerializer(many=True)

    class Meta:
        ref_name = "ErrorResponse"


def _resource_and_action(schema: SpectacularAutoSchema) -> tuple[str, str]:
    tokens = [t.replace("-", "_") for t in schema._tokenize_path()]
    view = schema.view
    action = getattr(view, "action", None)
    handler = getattr(view, action, None) if action else None
    url_path = getattr(handler, "url_path", None)
    if url_path is not None:
        # A custom router action: its URL segment names it, not its Python name.
        segments = [t for t in url_path.split("/") if t and not t.startswith("{")]
        resource = "_".join(tokens[: -len(segments)])
        name = "_".join(segments).replace("-", "_")
        if len(getattr(handler, "mapping", {})) > 1:
            name += "_" + schema.method_mapping[schema.method.lower()]
        return resource, name
    if action:
        return "_".join(tokens), action
    return "_".join(tokens), schema.method_mapping[schema.method.lower()]


class AutoSchema(StandardizedErrorsAutoSchema):
    """operationIds `<resource>_<action>`, tags by resource, every error response."""

    def get_operation_id(self) -> str:
        resource, action = _resource_and_action(self)
        return f"{resource}_{action}"

    def get_tags(self) -> list[str]:
        operation_id = self.get_operation_id()
        if operation_id in TAGS_BY_OPERATION:
            return [TAGS_BY_OPERATION[operation_id]]
        resource, _action = _resource_and_action(self)
        # The longest known prefix: a sub-resource (projects/{id}/quality/)
        # belongs with its parent unless listed itself.
        for known in sorted(TAGS_BY_RESOURCE, key=len, reverse=True):
            if resource == known or resource.startswith(known + "_"):
                return [TAGS_BY_RESOURCE[known]]
        raise KeyError(f"no tag for the API resource {resource!r}: add it to TAGS_BY_RESOURCE")

    def get_description(self) -> str:
        # Only what a view wrote for clients (extend_schema's description, else
        # its summary), or the standard sentence of a standard action: never a
        # docstring, which is for maintainers.
        action = getattr(self.view, "action", None)
        template = STANDARD_ACTION_DESCRIPTIONS.get(action)
        model = getattr(getattr(self.view, "queryset", None), "model", None)
        if template is None or model is None:
            return self.get_summary() or ""
        return template % {
            "name": model._meta.verbose_name,
            "plural": model._meta.verbose_name_plural,
            "page": PAGINATED,
        }

    # --- which error responses an operation can give ---------------------------

    def _has_request_body(self) -> bool:
        return self.method in ("POST", "PUT", "PATCH")

    def _should_add_error_response(self, responses: dict, status_code: str) -> bool:
        if status_code in responses:
            return False
        if status_code == "400":
            # The request guard refuses a NUL anywhere in an API address or
            # query string, whatever the operation.
            return True
        if status_code in ("413", "415"):
            return self._has_request_body()
        return super()._should_add_error_response(responses, status_code)

    def _should_add_http403_error_response(self) -> bool:
        checks = [
            p
            for p in self.view.get_permissions()
            if type(p) not in (permissions.IsAuthenticated, permissions.AllowAny)
        ]
        # Services refuse a write the caller's role does not allow, and a
        # session must carry its CSRF token on every write.
        session = any(isinstance(a, SessionAuthentication) for a in self.view.get_authenticators())
        return bool(checks) or (self.method not in permissions.SAFE_METHODS and session)

    def _get_error_response_serializer(self, status_code: str):
        return ErrorResponseSerializer

    def _get_response_for_code(
        self, serializer, status_code, media_types=None, direction="response"
    ):
        if (
            isinstance(serializer, OpenApiResponse)
            and serializer.response is None
            and str(status_code)[0] in "45"
        ):
            # A view that explains one of its errors in words still answers
            # with the standard body.
            serializer = OpenApiResponse(
                response=ErrorResponseSerializer,
                description=serializer.description,
                examples=serializer.examples,
            )
        response = super()._get_response_for_code(serializer, status_code, media_types, direction)
        if str(status_code) in ERROR_DESCRIPTIONS and not response.get("description"):
            response["description"] = ERROR_DESCRIPTIONS[str(status_code)]
        return response
