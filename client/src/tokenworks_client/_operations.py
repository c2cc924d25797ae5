"""Every API operation the client calls, declared once.

The client sends only what an operation declares here: a query parameter or
body field not in its declaration is a TypeError before any request. The
server's own OpenAPI schema is the other half of the contract:
tests/client/test_schema_contract.py checks that each path and method below
exists there and takes every parameter and field declared, so the client cannot
drift from the server unnoticed.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # relative to /api/v1/, "{id}" style placeholders
    query: frozenset[str] = field(default_factory=frozenset)
    body: frozenset[str] = field(default_factory=frozenset)
    multipart: bool = False
    # Lists answer {"count", "next", "previous", "results"}; the iterators follow "next".
    paginated: bool = False

    def url(self, **path_params: object) -> str:
        return self.path.format(**path_params)


def op(
    method: str,
    path: str,
    *,
    query: tuple[str, ...] = (),
    body: tuple[str, ...] = (),
    multipart: bool = False,
    paginated: bool = False,
) -> Operation:
    return Operation(method, path, frozenset(query), frozenset(body), multipart, paginated)


PAGE = ("page", "page_size")

PROJECT_FIELDS = (
    "name",
    "kind",
    "task_type",
    "label_schema",
    "instructions",
    "overlap",
    "review_rate",
    "gold_ratio",
    "agreement_threshold",
    "price_per_1k_tokens",
    "workforce",
    "status",
    "organization",
    "decision",
    "target_confidence",
    "max_annotations",
    "quarantine_below",
    "model_votes",
    "retrain_every",
    "lease_seconds",
)

OPERATIONS: dict[str, Operation] = {
    "me": op("GET", "me/"),
    # projects
    "projects.list": op(
        "GET",
        "projects/",
        query=(*PAGE, "status", "task_type", "kind", "organization", "ordering"),
        paginated=True,
    ),
    "projects.get": op("GET", "projects/{id}/"),
    "projects.create": op("POST", "projects/", body=PROJECT_FIELDS),
    "projects.update": op(
        "PATCH", "projects/{id}/", body=tuple(f for f in PROJECT_FIELDS if f != "organization")
    ),
    "projects.archive": op("DELETE", "projects/{id}/"),
    "projects.stats": op("GET", "projects/{id}/stats/"),
    "projects.agreement": op("GET", "projects/{id}/agreement/"),
    "projects.quality": op("GET", "projects/{id}/quality/"),
    "projects.export": op("GET", "projects/{id}/export/", query=("format", "approved_only")),
    "projects.statement": op("GET", "projects/{id}/statement/", query=("month", "format")),
    "workforces.list": op("GET", "workforces/", query=PAGE, paginated=True),
    # imports
    "imports.create": op(
        "POST",
        "projects/{id}/import/",
        body=("file", "format", "encoding", "on_conflict", "on_error"),
        multipart=True,
    ),
    "imports.list": op("GET", "import-jobs/", query=(*PAGE, "project", "status"), paginated=True),
    "imports.get": op("GET", "import-jobs/{id}/"),
    # items and results
    "items.list": op(
        "GET",
        "items/",
        query=(*PAGE, "project", "status", "is_gold", "external_id", "ordering"),
        paginated=True,
    ),
    "items.get": op("GET", "items/{id}/"),
    "results.list": op(
        "GET", "results/", query=(*PAGE, "project", "approved", "method"), paginated=True
    ),
    "results.get": op("GET", "results/{id}/"),
    # exports
    "exports.create": op("POST", "export-jobs/", body=("project", "format", "approved_only")),
    "exports.list": op(
        "GET", "export-jobs/", query=(*PAGE, "project", "status", "format"), paginated=True
    ),
    "exports.get": op("GET", "export-jobs/{id}/"),
    "exports.download": op("GET", "export-jobs/{id}/download/"),
    # dataset versions
    "datasets.create": op(
        "POST", "dataset-versions/", body=("project", "format", "seed", "validation_ratio")
    ),
    "datasets.list": op("GET", "dataset-versions/", query=(*PAGE, "project"), paginated=True),
    "datasets.get": op("GET", "dataset-versions/{id}/"),
    "datasets.download": op("GET", "dataset-versions/{id}/download/", query=("split",)),
    # backends and prompts (what a run needs)
    "backends.list": op(
        "GET", "backends/", query=(*PAGE, "kind", "is_active", "health"), paginated=True
    ),
    "backends.get": op("GET", "backends/{id}/"),
    "prompts.create": op("POST", "prompts/", body=("project", "system", "user")),
    "prompts.list": op("GET", "prompts/", query=(*PAGE, "project"), paginated=True),
    # pre-labeling runs
    "prelabel.create": op(
        "POST",
        "prelabel-runs/",
        body=("project", "prompt", "model", "policy", "region", "backend", "item_filter"),
    ),
    "prelabel.list": op(
        "GET", "prelabel-runs/", query=(*PAGE, "project", "status", "purpose"), paginated=True
    ),
    "prelabel.get": op("GET", "prelabel-runs/{id}/"),
    "prelabel.cancel": op("POST", "prelabel-runs/{id}/cancel/"),
    "prelabel.resume": op("POST", "prelabel-runs/{id}/resume/"),
    "predictions.list": op(
        "GET",
        "predictions/",
        query=(*PAGE, "project", "run", "item", "model"),
        paginated=True,
    ),
    "predictions.acceptance": op("GET", "predictions/acceptance/", query=("project",)),
    # fine-tuning runs
    "finetune.create": op(
        "POST", "finetune-runs/", body=("dataset", "backend", "base_model", "method")
    ),
    "finetune.list": op(
        "GET", "finetune-runs/", query=(*PAGE, "project", "status"), paginated=True
    ),
    "finetune.get": op("GET", "finetune-runs/{id}/"),
    # webhooks
    "webhooks.create": op("POST", "webhooks/", body=("organization", "url", "events")),
    "webhooks.list": op("GET", "webhooks/", query=PAGE, paginated=True),
    "webhooks.get": op("GET", "webhooks/{id}/"),
    "webhooks.update": op("PATCH", "webhooks/{id}/", body=("url", "events", "is_active")),
    "webhooks.delete": op("DELETE", "webhooks/{id}/"),
    "webhooks.deliveries": op(
        "GET",
        "webhook-deliveries/",
        query=(*PAGE, "endpoint", "status", "event"),
        paginated=True,
    ),
    "webhooks.redeliver": op("POST", "webhook-deliveries/{id}/redeliver/"),
    # API tokens (created by people signed in; a token may list and revoke)
    "tokens.list": op("GET", "api-tokens/", query=(*PAGE, "organization"), paginated=True),
    "tokens.get": op("GET", "api-tokens/{id}/"),
    "tokens.create": op(
        "POST", "api-tokens/", body=("organization", "name", "roles", "expires_at")
    ),
    "tokens.revoke": op("DELETE", "api-tokens/{id}/"),
    # the annotator's and reviewer's workspace
    "workspace.projects": op("GET", "workspace/projects/", query=PAGE, paginated=True),
    "workspace.next": op("POST", "workspace/projects/{id}/next/", body=("holding",)),
    "workspace.submit": op(
        "POST", "workspace/assignments/{id}/submit/", body=("answer", "time_spent_ms")
    ),
    "workspace.skip": op("POST", "workspace/assignments/{id}/skip/"),
    "workspace.review_next": op("POST", "workspace/projects/{id}/review-next/"),
    "workspace.review": op(
        "POST",
        "workspace/items/{id}/review/",
        body=("verdict", "reason", "annotation", "corrected_answer"),
    ),
    # officials' reports
    "reports.regions": op("GET", "reports/regions/"),
    "reports.get": op(
        "GET",
        "reports/regions/{code}/",
        query=(
            "start",
            "end",
            "compare",
            "kind",
            "tier",
            "trap_threshold",
            "trap_months",
            "format",
        ),
    ),
}
